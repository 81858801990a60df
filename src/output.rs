//! Everything a run writes to disk: atomic file writes, the per-epoch metrics CSV and the run
//! manifest. A result file is either absent or complete: each is written to a temporary file
//! beside its target and renamed into place.
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::train::TrainReport;

/// Writes `bytes` to `path` atomically, creating missing parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // tempfile makes private (0600) files; a result file is for sharing.
    let mut tmp = tempfile::Builder::new()
        .prefix(".huelab-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// For writers that only take a path (libtorch's safetensors, FAISS's `write_index`, `.npy`):
/// `write` fills `.<name>.partial` beside `path`, which is then renamed into place, so `path`
/// is either absent, the previous version or complete. Creates missing parent directories.
pub fn write_then_rename(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let partial = dir.join(format!(".{}.partial", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    write(&partial)?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
}

/// Writes `rows` (the first one the header) as a CSV file, atomically.
pub fn write_csv(path: &Path, rows: Vec<Vec<String>>) -> Result<()> {
    let csv_error = |e: &dyn std::fmt::Display| Error::msg(format!("{}: {e}", path.display()));
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(row).map_err(|e| csv_error(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| csv_error(&e))?;
    write_atomic(path, &bytes)
}

/// A CSV cell for a value a row may not have: empty when absent.
pub fn cell(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// One row per run and epoch: `run, epoch, train_loss, train_onehot_loss, train_hue_loss,
/// train_accuracy, val_accuracy, val_hue_accuracy, lr, seconds`. Empty cells are values a run
/// does not have (the hue loss of a one-hot run).
pub fn write_metrics_csv(path: &Path, reports: &[&TrainReport]) -> Result<()> {
    let header = [
        "run", "epoch", "train_loss", "train_onehot_loss", "train_hue_loss", "train_accuracy", "val_accuracy",
        "val_hue_accuracy", "lr", "seconds",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for report in reports {
        for e in &report.epochs {
            rows.push(vec![
                report.name().to_owned(),
                e.epoch.to_string(),
                e.train_loss.to_string(),
                e.train_onehot_loss.to_string(),
                cell(e.train_hue_loss),
                e.train_accuracy.to_string(),
                cell(e.val_accuracy),
                cell(e.val_hue_accuracy),
                e.lr.to_string(),
                e.seconds.to_string(),
            ]);
        }
    }
    write_csv(path, rows)
}

/// Versions of huelab and of what it runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub huelab: &'static str,
    /// The git commit huelab was built from ("-dirty": with uncommitted changes).
    pub commit: &'static str,
    pub tch: &'static str,
    pub torch: &'static str,
}

pub const VERSIONS: Versions =
    Versions { huelab: env!("CARGO_PKG_VERSION"), commit: env!("HUELAB_GIT_COMMIT"), tch: "0.24.0", torch: env!("HUELAB_TORCH_VERSION") };

/// The script that produced a result, as it was when it ran.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptInfo {
    pub path: String,
    pub sha256: String,
    /// The `key=value` arguments given on the command line.
    pub args: BTreeMap<String, String>,
}

/// What a manifest is about: a list of runs, or a comparison (which holds its runs).
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestBody<'a> {
    /// Every run, with all of its options (every hue option included), seed, data hash,
    /// device, per-epoch metrics, test metrics and wall time.
    Runs(Vec<&'a TrainReport>),
    /// The comparison's settings, every run as above, and the statistics.
    Comparison(&'a Comparison),
    /// Memory classifications: memory and classifier settings, data sources, accuracy.
    Knn(Vec<&'a crate::knn::KnnRun>),
}

/// What `manifest.json` records: enough to rerun and to judge a result.
#[derive(Debug, Serialize)]
pub struct RunManifest<'a> {
    pub versions: Versions,
    /// Seconds since the Unix epoch when the manifest was written.
    pub written_unix: u64,
    pub script: Option<&'a ScriptInfo>,
    #[serde(flatten)]
    pub body: ManifestBody<'a>,
}

pub fn write_manifest(path: &Path, script: Option<&ScriptInfo>, reports: &[&TrainReport]) -> Result<()> {
    write_manifest_of(path, script, ManifestBody::Runs(reports.to_vec()))
}

pub fn write_manifest_of(path: &Path, script: Option<&ScriptInfo>, body: ManifestBody) -> Result<()> {
    let manifest = RunManifest {
        versions: VERSIONS,
        written_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        script,
        body,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    write_atomic(path, &json)
}
