//! Benchmarks that measure huelab against a reference in the same run and print ratios:
//! training throughput against PyTorch eager (`train`), pixel-kNN classification against raw
//! FAISS search through its Python package (`knn`), the image pipeline against torchvision's
//! DataLoader (`data`), a `.rhai` script against the same work from Rust (`script`).
mod data;
mod knn;
mod script;
pub mod report;
mod train;

pub use data::*;
pub use knn::*;
pub use script::*;
pub use train::*;

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// The machine a benchmark ran on, for its JSON: ratios hold for one CPU, not for another
/// (the GEMM peak and bf16's speed-up depend on its vector units).
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    let flags = crate::precision::cpu_flags();
    let has = |f: &str| flags.iter().any(|g| g == f);
    serde_json::json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "avx2": has("avx2"),
        "avx512f": has("avx512f"),
        "avx512_bf16": has("avx512_bf16"),
        "amx_bf16": has("amx_bf16"),
    })
}

/// Writes a benchmark's `--out` file (atomically): `fields` (a JSON object) with the versions
/// huelab ran on and [`machine`].
pub fn write_result_json(path: &Path, fields: serde_json::Value) -> Result<()> {
    let mut json = serde_json::json!({ "versions": crate::results::VERSIONS, "machine": machine() });
    if let (Some(all), serde_json::Value::Object(more)) = (json.as_object_mut(), fields) {
        all.extend(more);
    }
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    crate::files::write_atomic(path, &bytes)
}

/// The median of repeated measurements (the upper one of an even count); `v` is not empty.
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut x = v.to_vec();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// The quartiles (25 %, 75 %) of `v`, interpolated linearly between order statistics (as
/// numpy's default): nearest rank made the lower quartile of three rounds their median.
pub fn quartiles(v: &[f64]) -> (f64, f64) {
    let mut x = v.to_vec();
    x.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let position = (x.len() - 1) as f64 * q;
        let (below, above) = (position.floor() as usize, position.ceil() as usize);
        x[below] + (x[above] - x[below]) * (position - below as f64)
    };
    (at(0.25), at(0.75))
}

/// Runs the embedded Python `twin` with `args` and parses the JSON line it prints.
pub(crate) fn run_python_twin(python: &Path, twin: &str, args: &[String]) -> Result<serde_json::Value> {
    let script = tempfile::Builder::new().suffix(".py").tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    std::fs::write(script.path(), twin).map_err(|e| Error::io(script.path(), e))?;
    let out = Command::new(python)
        .arg(script.path())
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("cannot run {}: {e}; benches/setup-venv.sh makes the benchmark venv", python.display())))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{} failed on the reference script (run benches/setup-venv.sh to make the benchmark venv): {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).map_err(|e| Error::msg(format!("unexpected output of the reference script '{line}': {e}")))
}

#[cfg(test)]
mod tests {
    use super::quartiles;

    #[test]
    fn quartiles_interpolate_between_rounds() {
        assert_eq!(quartiles(&[3.0, 1.0, 2.0]), (1.5, 2.5));
        assert_eq!(quartiles(&[4.0]), (4.0, 4.0));
        assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), (2.0, 4.0));
    }
}
