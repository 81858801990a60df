//! `manifest.json`: what a result records so that it can be rerun and judged: the versions it
//! ran on, the script with its hash and arguments, and the runs themselves with every option.
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::knn::KnnRun;
use crate::train::TrainReport;

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
    /// Every run, with all of its options (every loss option included), seed, data hash,
    /// device, per-epoch metrics, test metrics and wall time.
    Runs(Vec<&'a TrainReport>),
    /// The comparison's settings, every run as above, and the statistics.
    Comparison(&'a Comparison),
    /// Memory classifications: memory and classifier settings, data sources, accuracy.
    Knn(Vec<&'a KnnRun>),
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
