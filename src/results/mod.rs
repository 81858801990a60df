//! Result files, above the things they record: run manifests, `metrics.csv`, a comparison's
//! tables and figure, a memory classification's CSV files, and the figures of runs,
//! comparisons and memories (turned into the plain data `plot` draws).
mod comparison;
mod figures;
mod knn;
mod manifest;
mod metrics;

pub use comparison::{write_comparison, write_runs_csv, write_summary_csv};
pub use figures::*;
pub use knn::{write_match_summary_csv, write_predictions_csv};
pub use manifest::{write_manifest, write_manifest_of, ManifestBody, RunManifest, ScriptInfo, Versions, VERSIONS};
pub use metrics::write_metrics_csv;
