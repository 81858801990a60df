//! `plan.json`: the units of work of a script run on a cluster, written by the planning step
//! and read by every task, the gather job, `huelab status` and `--resume`. Each unit is one
//! training run (an arm on a fold with a seed, or one `train` call) with its own checkpoint
//! directory and a fingerprint of everything that defines it (options, data, split), so a task
//! refuses to run a unit the script no longer makes.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::slurm::SlurmOptions;
use crate::data::{ImageDataset, Split};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::train::TrainConfig;

pub const PLAN_FILE: &str = "plan.json";
/// Written by a gather that wrote every unit's outputs.
pub const GATHERED_FILE: &str = "gathered.json";

#[derive(Debug, Serialize, Deserialize)]
struct Gathered {
    /// How many submissions the plan had when the gather wrote the outputs.
    submissions: usize,
}
const FORMAT: u32 = 1;

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedUnit {
    /// Its index in the plan (the Slurm array index).
    pub index: usize,
    /// The run's name, e.g. `onehot fold 2 seed 0`.
    pub name: String,
    /// The script call it belongs to: `compare` number k (from 1) or `train` number k.
    pub call: String,
    pub arm: Option<String>,
    pub fold: Option<usize>,
    pub seed: u64,
    pub epochs: usize,
    pub checkpoint: PathBuf,
    /// SHA-256 of the run's options, the data's content hash and the split.
    pub fingerprint: String,
}

/// A submission of some of the plan's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub array_job: String,
    pub gather_job: String,
    pub units: Vec<usize>,
    pub submitted_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// The script (absolute), its SHA-256 and its `key=value` arguments.
    pub script: PathBuf,
    pub script_sha256: String,
    pub args: BTreeMap<String, String>,
    /// Where the script runs (its relative paths resolve here).
    pub cwd: PathBuf,
    /// The huelab binary the tasks run.
    pub huelab: PathBuf,
    pub slurm: SlurmOptions,
    pub units: Vec<PlannedUnit>,
    #[serde(default)]
    pub submissions: Vec<Submission>,
}

/// A unit's fingerprint: what makes two runs the same run.
pub fn fingerprint(config: &TrainConfig, data: &ImageDataset, split: &Split) -> Result<String> {
    let mut h = Sha256::new();
    // Not the device: a unit that failed on a wrong device is the same unit on the right one.
    h.update(serde_json::to_vec(&config.identity()?).map_err(|e| Error::msg(format!("cannot serialise the config: {e}")))?);
    h.update(data.summary().sha256.as_bytes());
    h.update(crate::train::checkpoint::split_hash(split).as_bytes());
    Ok(format!("{:x}", h.finalize()))
}

impl Plan {
    pub fn new(script: PathBuf, script_sha256: String, args: BTreeMap<String, String>, slurm: SlurmOptions) -> Result<Self> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let huelab = crate::exe::huelab_command().map_err(|e| Error::msg(format!("cannot find the huelab binary: {e}")))?;
        Ok(Plan { format: FORMAT, script, script_sha256, args, cwd, huelab, slurm, units: vec![], submissions: vec![] })
    }

    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(PLAN_FILE)
    }

    pub fn load(run_dir: &Path) -> Result<Self> {
        let path = Self::path(run_dir);
        if !path.exists() {
            return Err(Error::Data { path, message: "not found (huelab run --slurm writes it)".into() });
        }
        let bytes = crate::input::read(&path, crate::input::limits::JSON)?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| Error::Data { path: path.clone(), message: format!("not a huelab plan: {e}") })?;
        if plan.format != FORMAT {
            return Err(Error::Data { path, message: format!("plan format {} is not supported (expected {FORMAT})", plan.format) });
        }
        if let Some((i, u)) = plan.units.iter().enumerate().find(|(i, u)| u.index != *i) {
            return Err(Error::Data { path, message: format!("unit {i} has index {}", u.index) });
        }
        Ok(plan)
    }

    /// Writes the plan, readable, atomically.
    /// Whether a gather wrote the outputs of every unit after the latest submission (it leaves
    /// [`GATHERED_FILE`] naming that submission).
    pub fn gathered(&self, run_dir: &Path) -> bool {
        let marker: Option<Gathered> = crate::input::read(&run_dir.join(GATHERED_FILE), crate::input::limits::JSON).ok().and_then(|b| serde_json::from_slice(&b).ok());
        marker.is_some_and(|m| m.submissions == self.submissions.len())
    }

    /// Records that a gather wrote the outputs of every unit (see [`Self::gathered`]).
    pub fn mark_gathered(&self, run_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(&Gathered { submissions: self.submissions.len() }).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&run_dir.join(GATHERED_FILE), &json)
    }

    /// Whether the gather job running now (`SLURM_JOB_ID`) is an older submission's: a newer
    /// submission's gather comes after it and writes the outputs.
    pub fn is_stale_gather(&self, job_id: &str) -> bool {
        self.submissions.last().is_some_and(|last| last.gather_job != job_id) && self.submissions.iter().any(|s| s.gather_job == job_id)
    }

    pub fn save(&self, run_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&Self::path(run_dir), &json)
    }

    /// The latest submission that included `unit`.
    pub fn submission_of(&self, unit: usize) -> Option<&Submission> {
        self.submissions.iter().rev().find(|s| s.units.contains(&unit))
    }

    /// An error unless `other` (a new planning of the same script) has the same units.
    pub fn check_same_units(&self, other: &Plan) -> Result<()> {
        if self.units.len() != other.units.len() {
            return Err(Error::msg(format!("the script now makes {} units, the plan has {}; plan into a new run directory", other.units.len(), self.units.len())));
        }
        if let Some((a, _)) = self.units.iter().zip(&other.units).find(|(a, b)| a.fingerprint != b.fingerprint || a.checkpoint != b.checkpoint) {
            return Err(Error::msg(format!("unit {} ({}) is not the one the plan has (the script, its arguments or its data changed); plan into a new run directory", a.index, a.name)));
        }
        Ok(())
    }
}
