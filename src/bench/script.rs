//! `huelab bench script`: the overhead of driving training from Rhai. The same work — the
//! quickstart comparison (two small-CNN runs on the built-in digits, metrics.csv, curves.png,
//! manifest.json) — run as a user runs it, `huelab run scripts/quickstart.rhai`, and as the Rust
//! program `examples/train_digits.rs`, alternately in whole processes, so each side includes
//! everything its user waits for (start-up, the script's compilation, writing the results).
//!
//! Also the cost of growing a script's own values: a list of pairs built by `push` at two
//! lengths, timed against the same process with an empty loop, so that a push that costs more
//! the longer the list is (Rhai's size limits re-measured the whole list after every push)
//! shows as a ratio above 1.
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

/// Pairs in the two lists of [`bench_script_growth`].
pub const GROWTH_LENGTHS: [usize; 2] = [100_000, 1_000_000];

#[derive(Debug, Clone, Serialize)]
pub struct GrowthBenchResult {
    pub lengths: [usize; 2],
    /// Whole `huelab run` times: the empty loop, then each length.
    pub empty_seconds: Vec<f64>,
    pub short_seconds: Vec<f64>,
    pub long_seconds: Vec<f64>,
    /// Time per push in the long list over time per push in the short one, each less the
    /// empty run: 1 when a push costs the same at any length, 10 when it is O(length).
    pub per_push_ratio: f64,
    /// The quartiles of the per-round ratios.
    pub ratio_iqr: (f64, f64),
}

/// `for i in 0..n { p.push([1.0, 0.0]); }` through `huelab run` for both [`GROWTH_LENGTHS`]
/// and an empty loop of the longer length, `rounds` times in rotating order.
pub fn bench_script_growth(huelab: &Path, rounds: usize, progress: impl Fn(&str)) -> Result<GrowthBenchResult> {
    let dir = tempfile::tempdir().map_err(|e| Error::msg(format!("cannot make a temporary directory: {e}")))?;
    let [short, long] = GROWTH_LENGTHS;
    let write = |name: &str, body: &str| -> Result<PathBuf> {
        let path = dir.path().join(name);
        std::fs::write(&path, body).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    };
    let empty = write("empty.rhai", &format!("let p = [];\nfor i in 0..{long} {{ }}\nprint(p.len());\n"))?;
    let pairs = |n: usize| format!("let p = [];\nfor i in 0..{n} {{ p.push([1.0, 0.0]); }}\nprint(p.len());\n");
    let scripts = [empty, write("short.rhai", &pairs(short))?, write("long.rhai", &pairs(long))?];
    let mut seconds: [Vec<f64>; 3] = Default::default();
    let rounds = rounds.max(1);
    for round in 0..rounds {
        for k in 0..3 {
            let which = (round + k) % 3;
            progress(&format!("round {}/{rounds}: {}", round + 1, scripts[which].file_name().unwrap_or_default().to_string_lossy()));
            let mut command = Command::new(huelab);
            command.arg("run").arg(&scripts[which]).current_dir(dir.path());
            seconds[which].push(timed("huelab run", &mut command)?);
        }
    }
    let ratio = |empty: f64, short_s: f64, long_s: f64| ((long_s - empty).max(1e-9) / long as f64) / ((short_s - empty).max(1e-9) / short as f64);
    let per_round: Vec<f64> = (0..rounds).map(|r| ratio(seconds[0][r], seconds[1][r], seconds[2][r])).collect();
    let [empty_seconds, short_seconds, long_seconds] = seconds;
    Ok(GrowthBenchResult {
        lengths: GROWTH_LENGTHS,
        per_push_ratio: ratio(super::median(&empty_seconds), super::median(&short_seconds), super::median(&long_seconds)),
        ratio_iqr: super::quartiles(&per_round),
        empty_seconds,
        short_seconds,
        long_seconds,
    })
}
