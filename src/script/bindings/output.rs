use rhai::plugin::*;
use rhai::Array;

use crate::script::errors::{to_rhai, RhaiResult};
use crate::script::handles::{handles_of, ReportHandle};
use crate::script::session::ScriptSession;
use crate::train::TrainReport;

#[export_module]
pub mod output_api {
    use std::path::{Component, Path, PathBuf};

    use rhai::{Array, ImmutableString};

    use crate::error::Error;
    use crate::results::{plot_training_curves as library_plot_training_curves, write_manifest as library_write_manifest, write_metrics_csv as library_write_metrics_csv};
    use crate::script::errors::{guarded, to_rhai, RhaiResult};
    use crate::script::session::ScriptSession;

    use super::{parse_arg, refs, reports_of};

    /// The command-line argument `name` (given as `name=value` after the script path), read as
    /// the type of `default`; `default` when it was not given.
    /// ```rhai
    /// let epochs = arg("epochs", 15);
    /// ```
    #[rhai_fn(name = "arg", return_raw)]
    pub fn arg_int(ctx: NativeCallContext, name: &str, default: i64) -> RhaiResult<i64> {
        parse_arg(&ctx, name, default, "an integer")
    }

    #[rhai_fn(name = "arg", return_raw)]
    pub fn arg_float(ctx: NativeCallContext, name: &str, default: f64) -> RhaiResult<f64> {
        parse_arg(&ctx, name, default, "a number")
    }

    #[rhai_fn(name = "arg", return_raw)]
    pub fn arg_bool(ctx: NativeCallContext, name: &str, default: bool) -> RhaiResult<bool> {
        parse_arg(&ctx, name, default, "true or false")
    }

    #[rhai_fn(name = "arg")]
    pub fn arg_string(ctx: NativeCallContext, name: &str, default: ImmutableString) -> ImmutableString {
        ScriptSession::of(&ctx).arg(name).map_or(default, Into::into)
    }

    /// `runs/<name>`, created if missing and locked while the script runs (a second run
    /// writing into it stops with an error); `name` may have `/` but no `..` or leading `/`.
    /// ```rhai
    /// let dir = run_dir("quickstart");   // "runs/quickstart"
    /// ```
    #[rhai_fn(return_raw)]
    pub fn run_dir(ctx: NativeCallContext, name: &str) -> RhaiResult<String> {
        let relative = Path::new(name);
        if name.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(to_rhai(format!("run_dir: '{name}' must be a relative name without '..'")));
        }
        let dir = PathBuf::from("runs").join(relative);
        // Through the file-access check like every other path: `runs` may be a link elsewhere.
        ScriptSession::checked(&ctx, &dir.to_string_lossy(), "run_dir")?;
        std::fs::create_dir_all(&dir).map_err(|e| to_rhai(Error::io(&dir, e)))?;
        let session = ScriptSession::of(&ctx);
        // Cluster tasks run side by side and write nothing here; the gather job writes.
        if !session.defers_outputs() {
            session.lock_run_dir(&dir).map_err(to_rhai)?;
        }
        Ok(dir.to_string_lossy().into_owned())
    }

    /// Writes the per-epoch metrics of every run to a CSV file (one row per run and epoch).
    /// ```rhai
    /// write_metrics_csv("runs/quickstart/metrics.csv", [a, b]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_metrics_csv(ctx: NativeCallContext, path: &str, runs: Array) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let reports = reports_of(&runs)?;
        guarded("write_metrics_csv", || library_write_metrics_csv(Path::new(path), &refs(&reports)))
    }

    /// A PNG with training loss and accuracy per epoch for every run.
    /// ```rhai
    /// plot_training_curves("runs/quickstart/curves.png", [a, b]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn plot_training_curves(ctx: NativeCallContext, path: &str, runs: Array) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let reports = reports_of(&runs)?;
        guarded("plot_training_curves", || library_plot_training_curves(Path::new(path), &refs(&reports)))
    }

    /// A JSON manifest of the runs: versions, the script and its arguments, and for every run
    /// all options, seed, data hash, device, metrics and wall time.
    /// ```rhai
    /// write_manifest("runs/quickstart/manifest.json", [a, b]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_manifest(ctx: NativeCallContext, path: &str, runs: Array) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let reports = reports_of(&runs)?;
        let session = ScriptSession::of(&ctx);
        guarded("write_manifest", || library_write_manifest(Path::new(path), Some(&session.script), &refs(&reports)))
    }
}

fn parse_arg<T: std::str::FromStr>(ctx: &NativeCallContext, name: &str, default: T, expected: &str) -> RhaiResult<T> {
    match ScriptSession::of(ctx).arg(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| to_rhai(format!("argument '{name}={text}': expected {expected}"))),
    }
}

fn reports_of(runs: &Array) -> RhaiResult<Vec<ReportHandle>> {
    handles_of(runs, "runs", "TrainReport (from train)")
}

fn refs(reports: &[ReportHandle]) -> Vec<&TrainReport> {
    reports.iter().map(|r| r.0.as_ref()).collect()
}
