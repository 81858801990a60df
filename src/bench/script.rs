//! `huelab bench script`: the overhead of driving training from Rhai. The same work — the
//! quickstart comparison (two small-CNN runs on the built-in digits, metrics.csv, curves.png,
//! manifest.json) — run as a user runs it, `huelab run scripts/quickstart.rhai`, and as the Rust
//! program `examples/train_digits.rs`, alternately in whole processes, so each side includes
//! everything its user waits for (start-up, the script's compilation, writing the results).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct ScriptBench {
    /// The `huelab` binary that runs the script.
    pub huelab: PathBuf,
    /// The built `train_digits` example.
    pub example: PathBuf,
    pub script: PathBuf,
    pub epochs: usize,
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptBenchResult {
    pub bench: ScriptBench,
    pub rhai_seconds: Vec<f64>,
    pub rust_seconds: Vec<f64>,
    pub rhai_median: f64,
    pub rust_median: f64,
    /// Rhai's median wall time over Rust's, minus one: the overhead (goal: within 2 %).
    pub overhead: f64,
    /// The quartiles of the per-round overheads.
    pub overhead_iqr: (f64, f64),
}

fn timed(what: &str, command: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let out = command.stdout(Stdio::null()).stderr(Stdio::piped()).output().map_err(|e| Error::msg(format!("cannot start {what}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::msg(format!("{what} failed ({}): {}", out.status, stderr.lines().last().unwrap_or(""))));
    }
    Ok(start.elapsed().as_secs_f64())
}

pub fn bench_script_overhead(b: &ScriptBench, progress: impl Fn(&str)) -> Result<ScriptBenchResult> {
    if !b.example.is_file() {
        return Err(Error::msg(format!(
            "{} is not built: run `cargo build --release --example train_digits` first (or pass --example)",
            b.example.display()
        )));
    }
    let epochs = b.epochs.to_string();
    let rhai = || {
        let mut c = Command::new(&b.huelab);
        c.arg("run").arg(&b.script).arg(format!("epochs={epochs}")).arg("name=bench-script").arg("device=cpu");
        c
    };
    let rust = || {
        let mut c = Command::new(&b.example);
        c.arg(&epochs).arg("cpu");
        c
    };
    let (mut rhai_seconds, mut rust_seconds) = (vec![], vec![]);
    let rounds = b.rounds.max(1);
    for round in 0..rounds {
        // Alternate which side goes first, so neither always meets the other's cache state.
        let order: [bool; 2] = if round % 2 == 0 { [true, false] } else { [false, true] };
        for is_rhai in order {
            if is_rhai {
                progress(&format!("round {}/{rounds}: huelab run {}", round + 1, b.script.display()));
                rhai_seconds.push(timed("huelab run", &mut rhai())?);
            } else {
                progress(&format!("round {}/{rounds}: {}", round + 1, b.example.display()));
                rust_seconds.push(timed("the train_digits example", &mut rust())?);
            }
        }
    }
    let (rhai_median, rust_median) = (super::median(&rhai_seconds), super::median(&rust_seconds));
    let per_round: Vec<f64> = rhai_seconds.iter().zip(&rust_seconds).map(|(r, s)| r / s - 1.0).collect();
    Ok(ScriptBenchResult {
        bench: b.clone(),
        overhead: rhai_median / rust_median - 1.0,
        overhead_iqr: super::quartiles(&per_round),
        rhai_seconds,
        rust_seconds,
        rhai_median,
        rust_median,
    })
}

/// Where `cargo build --release --example train_digits` puts the example beside `huelab`.
pub fn default_example_path(huelab: &Path) -> PathBuf {
    huelab.parent().unwrap_or(Path::new(".")).join("examples/train_digits")
}
