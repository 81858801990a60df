//! `huelab bench kernel`: the huelab kernel against ipykernel with PyTorch, in one run,
//! alternating round by round (benches/kernel_bench.py is the client, `jupyter_client`). It
//! lives with the kernel because it installs the kernel's spec.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Serialize;
use serde_json::{json, Value};

use crate::bench::{median, quartiles};

const CLIENT: &str = include_str!("../../benches/kernel_bench.py");
const TRAIN_TWIN: &str = include_str!("../../benches/train_pytorch.py");

/// What to measure with.
#[derive(Debug, Clone)]
pub struct KernelBench {
    /// Python with jupyter_client (setup's notebook venv).
    pub client_python: PathBuf,
    /// Python with ipykernel and torch (benches/setup-venv.sh).
    pub torch_python: PathBuf,
    pub rounds: usize,
    pub threads: i32,
}

/// A measurement over rounds: median and interquartile range.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let (q1, q3) = quartiles(values);
        Spread { median: median(values), q1, q3 }
    }
}

/// The summary `huelab bench kernel` prints and writes.
#[derive(Debug, Clone, Serialize)]
pub struct KernelBenchResult {
    pub rounds: usize,
    pub huelab_ready_s: Spread,
    /// Start -> the first cell's result: the session process up, with libtorch loaded (behind
    /// the front, ready comes before it).
    pub huelab_usable_s: Spread,
    pub ipykernel_ready_s: Spread,
    pub ipykernel_torch_ready_s: Spread,
    /// huelab usable / (ipykernel start + `import torch`), per round: both with libtorch
    /// loaded and a cell run.
    pub ready_ratio: Spread,
    pub huelab_trivial_ms: Spread,
    pub ipykernel_trivial_ms: Spread,
    /// The training cell: round trip minus the work timed inside it, per round.
    pub huelab_cell_overhead_ms: Spread,
    pub huelab_cell_s: Spread,
    pub huelab_work_s: Spread,
    /// The same work under `huelab run`, timed inside the script.
    pub run_work_s: Spread,
    pub torch_cell_s: Spread,
    pub interrupt_to_idle_s: Spread,
    /// A 15-epoch quickstart training cell with its live curves on and off, round trips, and
    /// on / off per round.
    pub live_on_s: Spread,
    pub live_off_s: Spread,
    pub live_ratio: Spread,
    /// `knn_classify` of the digits against a pixel memory of them with its live figure on and
    /// off, round trips, and on / off per round.
    pub knn_live_on_s: Spread,
    pub knn_live_off_s: Spread,
    pub knn_live_ratio: Spread,
    /// A pure-script cell (the debugger hook's worst case) and the training work, timed inside
    /// the cell: never attached, attached without breakpoints, detached; ratios per round.
    pub script_never_attached_s: Spread,
    pub script_attached_ratio: Spread,
    pub script_detached_ratio: Spread,
    /// A breakpoint in another cell (the hook on the engine, nothing stops) / attached without
    /// one, interleaved run by run.
    pub script_breakpoint_elsewhere_ratio: Spread,
    pub train_attached_ratio: Spread,
    /// The training work with both cores busy (another session's two `nice 10` loops): in the
    /// kernel, under `huelab run`, and their ratio per round.
    pub huelab_busy_work_s: Spread,
    pub run_busy_work_s: Spread,
    pub busy_ratio: Spread,
    /// Every round's measurements, as the client reported them.
    pub raw: Vec<Value>,
}

/// Runs the benchmark; `progress` hears about each finished round.
pub fn bench_kernel(bench: &KernelBench, progress: impl Fn(&str)) -> Result<KernelBenchResult, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = work.path();
    let huelab = std::env::current_exe().map_err(|e| format!("cannot find the huelab binary: {e}"))?;
    let jupyter_path = dir.join("jupyter");
    // The kernel as `huelab kernel install` sets it up: behind its front.
    let launch = super::spec::Launch::of_this_huelab()?;
    if launch.front.is_none() {
        return Err(format!("huelab-kernel (the kernel's front) is not beside {}: build it with `cargo build --release`", huelab.display()));
    }
    super::spec::install(&super::spec::Place::DataDir(jupyter_path.clone()), &launch, &[])?;
    let torch_spec = jupyter_path.join("kernels/python-torch");
    std::fs::create_dir_all(&torch_spec).map_err(|e| e.to_string())?;
    let spec = json!({ "argv": [bench.torch_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python (torch)", "language": "python" });
    std::fs::write(torch_spec.join("kernel.json"), spec.to_string()).map_err(|e| e.to_string())?;
    // The digits for the PyTorch twin, as the huelab cell sees them.
    let digits = crate::data::digits();
    let images = digits.images().map_err(|e| e.to_string())?;
    crate::activations::Activations::new(images, digits.labels().to_vec(), digits.class_names().to_vec(), "digits")
        .and_then(|a| a.save_npy(&dir.join("images.npy"), &dir.join("labels.npy")))
        .map_err(|e| e.to_string())?;
    let benches = dir.join("benches");
    std::fs::create_dir_all(&benches).map_err(|e| e.to_string())?;
    for (name, text) in [("kernel_bench.py", CLIENT), ("train_pytorch.py", TRAIN_TWIN)] {
        std::fs::write(benches.join(name), text).map_err(|e| e.to_string())?;
    }
    let mut child = Command::new(&bench.client_python)
        .arg(benches.join("kernel_bench.py"))
        .arg("--jupyter-path")
        .arg(&jupyter_path)
        .arg("--huelab")
        .arg(&huelab)
        .arg("--digits")
        .arg(dir)
        .arg("--benches")
        .arg(&benches)
        .args(["--rounds", &bench.rounds.to_string(), "--threads", &bench.threads.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e} (setup.sh makes the notebook venv)", bench.client_python.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from the client")?;
    let mut rounds: Option<Vec<Value>> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
        if let Some(done) = value.get("progress") {
            progress(&format!("round {done}/{} done", bench.rounds));
        } else if let Some(all) = value.get("rounds").and_then(Value::as_array) {
            rounds = Some(all.clone());
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let rounds = match (output.status.success(), rounds) {
        (true, Some(rounds)) if !rounds.is_empty() => rounds,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
            return Err(format!("the benchmark client failed ({}); is {} the benchmark venv (benches/setup-venv.sh)?\n{}", output.status, bench.torch_python.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
        }
    };
    summarise(rounds)
}

fn summarise(rounds: Vec<Value>) -> Result<KernelBenchResult, String> {
    let series = |key: &str| -> Result<Vec<f64>, String> { rounds.iter().map(|r| r[key].as_f64().ok_or_else(|| format!("round without '{key}': {r}"))).collect() };
    let per_round = |f: &dyn Fn(&Value) -> Option<f64>| -> Result<Vec<f64>, String> { rounds.iter().map(|r| f(r).ok_or_else(|| format!("incomplete round: {r}"))).collect() };
    let ms = |v: Vec<f64>| v.into_iter().map(|s| s * 1000.0).collect::<Vec<_>>();
    Ok(KernelBenchResult {
        rounds: rounds.len(),
        huelab_ready_s: Spread::of(&series("huelab_ready")?),
        huelab_usable_s: Spread::of(&series("huelab_usable")?),
        ipykernel_ready_s: Spread::of(&series("ipykernel_ready")?),
        ipykernel_torch_ready_s: Spread::of(&series("ipykernel_torch_ready")?),
        ready_ratio: Spread::of(&per_round(&|r| Some(r["huelab_usable"].as_f64()? / r["ipykernel_torch_ready"].as_f64()?))?),
        huelab_trivial_ms: Spread::of(&ms(series("huelab_trivial")?)),
        ipykernel_trivial_ms: Spread::of(&ms(series("ipykernel_trivial")?)),
        huelab_cell_overhead_ms: Spread::of(&ms(per_round(&|r| Some(r["huelab_cell"].as_f64()? - r["huelab_work"].as_f64()?))?)),
        huelab_cell_s: Spread::of(&series("huelab_cell")?),
        huelab_work_s: Spread::of(&series("huelab_work")?),
        run_work_s: Spread::of(&series("run_work")?),
        torch_cell_s: Spread::of(&series("torch_cell")?),
        interrupt_to_idle_s: Spread::of(&series("huelab_interrupt")?),
        live_on_s: Spread::of(&series("live_on")?),
        live_off_s: Spread::of(&series("live_off")?),
        live_ratio: Spread::of(&per_round(&|r| Some(r["live_on"].as_f64()? / r["live_off"].as_f64()?))?),
        knn_live_on_s: Spread::of(&series("knn_live_on")?),
        knn_live_off_s: Spread::of(&series("knn_live_off")?),
        knn_live_ratio: Spread::of(&per_round(&|r| Some(r["knn_live_on"].as_f64()? / r["knn_live_off"].as_f64()?))?),
        script_never_attached_s: Spread::of(&series("script_never_attached")?),
        script_attached_ratio: Spread::of(&per_round(&|r| Some(r["script_attached"].as_f64()? / r["script_never_attached"].as_f64()?))?),
        script_detached_ratio: Spread::of(&per_round(&|r| Some(r["script_detached"].as_f64()? / r["script_never_attached"].as_f64()?))?),
        script_breakpoint_elsewhere_ratio: Spread::of(&per_round(&|r| Some(r["script_breakpoint_elsewhere"].as_f64()? / r["script_attached"].as_f64()?))?),
        train_attached_ratio: Spread::of(&per_round(&|r| Some(r["train_attached"].as_f64()? / r["train_never_attached"].as_f64()?))?),
        huelab_busy_work_s: Spread::of(&series("huelab_busy_work")?),
        run_busy_work_s: Spread::of(&series("run_busy_work")?),
        busy_ratio: Spread::of(&per_round(&|r| Some(r["huelab_busy_work"].as_f64()? / r["run_busy_work"].as_f64()?))?),
        raw: rounds,
    })
}

/// `huelab bench kernel`: runs [`bench_kernel`] and prints its rows.
pub fn report(client_python: PathBuf, torch_python: PathBuf, rounds: usize, threads: i32, out: Option<&std::path::Path>) -> Result<(), String> {
    let bench = KernelBench { client_python, torch_python, rounds, threads };
    let r = bench_kernel(&bench, |step| eprintln!("bench kernel: {step}"))?;
    let row = |what: &str, s: Spread, unit: &str| crate::outln!("{what:<58} {:>9.3} {unit}  (IQR {:.3} – {:.3})", s.median, s.q1, s.q3);
    crate::outln!("{rounds} alternating rounds, {threads} threads; medians over rounds");
    row("huelab kernel: start -> kernel_info_reply", r.huelab_ready_s, "s");
    row("huelab kernel: start -> first cell done  [goal <= 0.5 s]", r.huelab_usable_s, "s");
    row("ipykernel: start -> kernel_info_reply", r.ipykernel_ready_s, "s");
    row("ipykernel: start -> `import torch` done", r.ipykernel_torch_ready_s, "s");
    row("first cell done: huelab / (ipykernel + import torch)  [goal <= 0.25]", r.ready_ratio, "");
    row("trivial cell `1 + 1`, huelab kernel", r.huelab_trivial_ms, "ms");
    row("trivial cell `1 + 1`, ipykernel", r.ipykernel_trivial_ms, "ms");
    row("digits + small CNN 1 epoch: huelab cell round trip", r.huelab_cell_s, "s");
    row("  the same work timed inside the cell", r.huelab_work_s, "s");
    row("  the same work timed inside `huelab run`", r.run_work_s, "s");
    row("  per-cell overhead (round trip - work)  [goal <= 10 ms]", r.huelab_cell_overhead_ms, "ms");
    row("  PyTorch twin in ipykernel, round trip", r.torch_cell_s, "s");
    row("interrupt during training -> idle  [goal <= 1 s]", r.interrupt_to_idle_s, "s");
    row("15-epoch quickstart cell, live curves on", r.live_on_s, "s");
    row("  the same with live: false", r.live_off_s, "s");
    row("  on / off, per round  [goal <= 1.02]", r.live_ratio, "");
    row("knn_classify of the digits, live figure on", r.knn_live_on_s, "s");
    row("  the same with live: false", r.knn_live_off_s, "s");
    row("  on / off, per round  [goal <= 1.02]", r.knn_live_ratio, "");
    crate::outln!("JupyterLab's debugger, timed inside the cell (median of 3 per round):");
    row("  1 000 000-turn script loop, no debugger ever attached", r.script_never_attached_s, "s");
    row("  attached, no breakpoint / never attached  [goal <= 1.02]", r.script_attached_ratio, "");
    row("  a breakpoint in another cell / none (interleaved)", r.script_breakpoint_elsewhere_ratio, "");
    row("  after disconnecting / never attached  [goal: 1]", r.script_detached_ratio, "");
    row("  training work attached / never attached  [goal <= 1.02]", r.train_attached_ratio, "");
    crate::outln!("both cores busy with another session's two `nice 10` loops:");
    row("  the training work in the huelab kernel", r.huelab_busy_work_s, "s");
    row("  the same work under `huelab run`", r.run_busy_work_s, "s");
    row("  kernel / `huelab run`, per round  [goal <= 1.1]", r.busy_ratio, "");
    if let Some(path) = out {
        crate::bench::write_result_json(path, serde_json::json!({ "threads": threads, "result": r })).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_summarised_with_their_spread() {
        let round = |x: f64| {
            json!({ "huelab_ready": 0.1 * x, "huelab_usable": 0.2 * x, "ipykernel_ready": 1.0, "ipykernel_torch_ready": 2.0 * x, "huelab_trivial": 0.001, "ipykernel_trivial": 0.002,
                    "huelab_cell": 1.005, "huelab_work": 1.0, "run_work": 1.0, "torch_cell": 3.0, "huelab_interrupt": 0.1, "torch_work": 2.9,
                    "huelab_busy_work": 2.2 * x, "run_busy_work": 2.0, "live_on": 1.01, "live_off": 1.0, "knn_live_on": 2.02, "knn_live_off": 2.0,
                    "script_never_attached": 0.2, "script_attached": 0.2 * x, "script_detached": 0.2, "script_breakpoint_elsewhere": 0.21, "train_never_attached": 1.0, "train_attached": 1.01 })
        };
        let r = summarise(vec![round(1.0), round(1.0), round(2.0)]).unwrap();
        assert!((r.ready_ratio.median - 0.1).abs() < 1e-12);
        assert!((r.huelab_cell_overhead_ms.median - 5.0).abs() < 1e-6);
        assert_eq!(r.rounds, 3);
        assert!((r.busy_ratio.median - 1.1).abs() < 1e-12);
        assert!(summarise(vec![json!({ "huelab_ready": 1.0 })]).unwrap_err().contains("huelab_usable"));
    }
}
