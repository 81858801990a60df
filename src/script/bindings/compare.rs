use rhai::plugin::*;

#[export_module]
pub mod compare_api {
    use std::path::Path;
    use std::rc::Rc;

    use rhai::{Array, Dynamic, Map};

    use crate::compare::{compare_with, TrainLocally};
    use crate::script::live::RunWatch;
    use crate::script::errors::task_complete;
    use crate::results::{write_comparison as library_write_comparison, write_summary_csv as library_write_summary_csv};
    use crate::script::configs::{arm_config, compare_config};
    use crate::script::errors::{guarded, RhaiResult};
    use crate::script::handles::{handles_of, ComparisonHandle, DatasetHandle};
    use crate::script::session::{LastRun, ScriptSession};

    pub type Comparison = ComparisonHandle;

    /// Trains every arm (a train options map with a `name`, no `seed`) on every fold × seed,
    /// with identical splits, initial weights, batch order and augmentation across the arms of
    /// a pair; the first arm is the baseline of the paired tests. Run with `huelab run --slurm`,
    /// every arm × fold × seed becomes a unit of a Slurm array job instead.
    /// ```rhai
    /// let c = compare(data, [#{ name: "onehot", loss: "onehot" }, #{ name: "hue", loss: "onehot+hue" }], #{ seeds: [0, 1], folds: 3 });
    /// print(c.table);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn compare(ctx: NativeCallContext, data: DatasetHandle, arms: Array, options: Map) -> RhaiResult<Comparison> {
        let session = ScriptSession::of(&ctx);
        guarded("compare", || {
            let config = compare_config(options)?;
            let arms = arms
                .into_iter()
                .enumerate()
                .map(|(i, arm)| {
                    let type_name = arm.type_name();
                    let map = arm.try_cast::<Map>().ok_or_else(|| crate::Error::invalid_option("arms", format!("arm {i} must be a map of train options, got {type_name}")))?;
                    let arm = arm_config(map).map_err(|e| crate::Error::msg(format!("arm {i}: {e}")))?;
                    if let Some(dir) = &arm.config.checkpoint {
                        session.path(&dir.to_string_lossy(), "checkpoint").map_err(|e| crate::Error::msg(format!("arm {i}: {e}")))?;
                    }
                    Ok(arm)
                })
                .collect::<crate::Result<Vec<_>>>()?;
            match session.cluster() {
                None => {
                    // In a notebook, the arms of the current fold and seed in one live figure.
                    let mut watch = RunWatch::new(session.clone(), arms.iter().all(|a| a.config.live), arms.len());
                    let mut on_epoch = |so_far: &crate::train::TrainReport| watch.epoch(so_far);
                    let mut runner = TrainLocally::watched(&mut on_epoch);
                    let compared = compare_with(&data.0, &arms, &config, None, &mut runner);
                    let so_far = runner.so_far.take();
                    let finished: Vec<_> = compared.as_ref().map(|c| c.runs.iter().map(|r| &r.report).collect()).unwrap_or_default();
                    watch.end(&finished);
                    match (compared, so_far) {
                        (Err(crate::Error::Interrupted), Some(so_far)) => {
                            let message = format!(
                                "interrupted after {} of {} units (outputs finished before it are intact); last_run() returns the comparison of the finished ones",
                                so_far.runs.len(),
                                so_far.runs.len() + so_far.missing.len()
                            );
                            session.remember(LastRun::Compare(Rc::new(so_far)));
                            Err(crate::Error::msg(message))
                        }
                        (compared, _) => {
                            let compared = Rc::new(compared?);
                            session.remember(LastRun::Compare(compared.clone()));
                            Ok(ComparisonHandle(compared, false))
                        }
                    }
                }
                Some(mut cluster) => {
                    let root = cluster.begin_compare();
                    let comparison = compare_with(&data.0, &arms, &config, Some(&root), &mut *cluster)?;
                    Ok(ComparisonHandle(Rc::new(comparison), cluster.defers_outputs()))
                }
            }
        })
        .and_then(|c| if session.cluster().is_some_and(|cl| cl.task_done()) { Err(task_complete()) } else { Ok(c) })
    }

    /// The per-arm table with paired differences and tests, as text.
    #[rhai_fn(get = "table", pure)]
    pub fn table(c: &mut Comparison) -> String {
        if c.1 {
            return format!("(a cluster run's comparison of {} arms: its results come with the gather job)", c.0.arms.len());
        }
        c.0.table()
    }

    /// Per arm: `arm`, `test_accuracy` and `test_hue_accuracy` (each `#{ n, mean, sd }`),
    /// `train_seconds`.
    #[rhai_fn(get = "summary", pure, return_raw)]
    pub fn summary(c: &mut Comparison) -> RhaiResult<Array> {
        c.0.summary.iter().map(rhai::serde::to_dynamic).collect()
    }

    /// Per non-baseline arm: `baseline`, `arm`, `differences`, `mean_difference`, `t_test`
    /// (`#{ t, df, p, ci95 }` or `()`), `wilcoxon` (`#{ w_plus, n, p, method }` or `()`).
    #[rhai_fn(get = "paired", pure, return_raw)]
    pub fn paired(c: &mut Comparison) -> RhaiResult<Array> {
        c.0.paired.iter().map(rhai::serde::to_dynamic).collect()
    }

    /// Writes `runs.csv`, `summary.csv`, `metrics.csv`, `comparison.png` and `manifest.json`
    /// into `dir`.
    /// ```rhai
    /// write_comparison(run_dir("table1/fashion-resnet18"), c);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_comparison(ctx: NativeCallContext, dir: &str, c: Comparison) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, dir, "dir")? {
            return Ok(());
        }
        let session = ScriptSession::of(&ctx);
        guarded("write_comparison", || library_write_comparison(Path::new(dir), &c.0, Some(&session.script)))
    }

    /// One `summary.csv` for several comparisons (one row per arm of each).
    #[rhai_fn(return_raw)]
    pub fn write_summary_csv(ctx: NativeCallContext, path: &str, comparisons: Array) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let handles: Vec<ComparisonHandle> = handles_of(&comparisons, "comparisons", "Comparison (from compare)")?;
        let refs: Vec<_> = handles.iter().map(|h| h.0.as_ref()).collect();
        guarded("write_summary_csv", || library_write_summary_csv(Path::new(path), &refs))
    }

    /// Whether an interrupt stopped it: its statistics are over the finished units, the others
    /// are listed as missing (see `last_run`).
    #[rhai_fn(get = "interrupted", pure)]
    pub fn interrupted(c: &mut Comparison) -> bool {
        c.0.interrupted
    }

    /// The unit an interrupt stopped, as far as it got (its finished epochs, `interrupted`
    /// true); `()` for a comparison that was not interrupted.
    #[rhai_fn(get = "interrupted_run", pure)]
    pub fn interrupted_run(c: &mut Comparison) -> Dynamic {
        c.0.interrupted_run.clone().map_or(Dynamic::UNIT, |report| Dynamic::from(crate::script::handles::ReportHandle(Rc::new(report))))
    }

    #[rhai_fn(get = "runs", pure)]
    pub fn runs(c: &mut Comparison) -> Array {
        c.0.runs
            .iter()
            .map(|r| Dynamic::from(crate::script::handles::ReportHandle(Rc::new(r.report.clone()))))
            .collect()
    }
}
