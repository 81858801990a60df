//! Running a script's training on a Slurm cluster. One script, three modes:
//! - **plan** (`huelab run --slurm`): every `compare` and `train` records its units of work
//!   (one per arm × fold × seed, or per `train` call), each with its own checkpoint directory,
//!   instead of training; the plan is written to `plan.json` and submitted as one array job
//!   plus a gather job that depends on it;
//! - **task** (`huelab run --task i`): the script runs up to unit *i*, trains it with
//!   checkpoints (resuming, so a requeued task continues where it stopped) and ends;
//! - **gather** (`huelab run --gather`): the script runs normally; every unit finds its
//!   checkpoint complete, so it is only evaluated, and the script writes its outputs. Units
//!   without a complete checkpoint are listed in the output and the manifest.
//!
//! Which units exist is decided by the script, the same way in every mode, so checkpoint
//! directories are assigned in call order and every unit carries a fingerprint of its options,
//! data and split.
pub mod plan;
pub mod slurm;
pub mod status;

use std::path::{Path, PathBuf};

use crate::compare::{MissingUnit, Unit, UnitRunner};
use crate::data::{ImageDataset, Split};
use crate::error::{Error, Result};
use crate::train::{checkpoint, train, TrainConfig, TrainReport};
use plan::{fingerprint, Plan, PlannedUnit};

/// Where unit checkpoints go inside a run directory.
pub const UNITS_DIR: &str = "units";

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Plan,
    Task { index: usize },
    Gather,
}

/// A script's cluster run: its mode, run directory and the units seen so far.
#[derive(Debug)]
pub struct ClusterRun {
    pub mode: Mode,
    pub run_dir: PathBuf,
    /// The plan (task and gather modes).
    plan: Option<Plan>,
    /// Units seen in this execution of the script (recorded in plan mode).
    seen: Vec<PlannedUnit>,
    compares: usize,
    trains: usize,
    /// Set in task mode once the task's unit ran.
    task_done: bool,
    /// The call being run (`compare 2`) and the missing units of the current call.
    call: String,
    missing: Vec<MissingUnit>,
    /// Every missing unit of the gather, as `name: reason`.
    pub all_missing: Vec<String>,
    /// Resources the script asked for with `slurm(#{ … })`.
    pub slurm: slurm::SlurmOptions,
}

impl ClusterRun {
    /// `run_dir` absolute; task and gather modes load its plan.
    pub fn new(mode: Mode, run_dir: &Path) -> Result<Self> {
        let run_dir = if run_dir.is_absolute() { run_dir.to_owned() } else { std::env::current_dir().map_err(|e| Error::io(".", e))?.join(run_dir) };
        let plan = match mode {
            Mode::Plan => None,
            Mode::Task { .. } | Mode::Gather => Some(Plan::load(&run_dir)?),
        };
        if let (Mode::Task { index }, Some(plan)) = (&mode, &plan) {
            if *index >= plan.units.len() {
                return Err(Error::invalid_option("task", format!("unit {index} is beyond the plan's {} units", plan.units.len())));
            }
        }
        Ok(ClusterRun { mode, run_dir, plan, seen: vec![], compares: 0, trains: 0, task_done: false, call: String::new(), missing: vec![], all_missing: vec![], slurm: Default::default() })
    }

    /// Outputs (tables, CSVs, figures, manifests) are written by the gather only.
    pub fn defers_outputs(&self) -> bool {
        !matches!(self.mode, Mode::Gather)
    }

    pub fn task_done(&self) -> bool {
        self.task_done
    }

    /// The units this execution of the script made.
    pub fn units(&self) -> &[PlannedUnit] {
        &self.seen
    }

    /// Starts a `compare` call: its checkpoint root for arms without one.
    pub fn begin_compare(&mut self) -> PathBuf {
        self.compares += 1;
        self.call = format!("compare {}", self.compares);
        self.missing.clear();
        self.run_dir.join(UNITS_DIR).join(format!("compare{}", self.compares))
    }

    /// A `train` call run as a unit (with the config's checkpoint, or one in the run
    /// directory): its report where this mode produces one.
    pub fn train_unit(&mut self, data: &ImageDataset, split: &Split, config: &TrainConfig) -> Result<Option<TrainReport>> {
        self.trains += 1;
        self.call = format!("train {}", self.trains);
        self.missing.clear();
        let checkpoint = config.checkpoint.clone().unwrap_or_else(|| self.run_dir.join(UNITS_DIR).join(format!("train{}", self.trains)));
        let unit = Unit { arm_index: 0, arm: config.name.clone(), fold: 0, seed: config.seed, config: TrainConfig { checkpoint: Some(checkpoint), ..config.clone() } };
        let report = self.run_unit(&unit, data, split)?;
        if let Some(m) = self.missing.first() {
            return Err(Error::msg(format!("{}: {}", unit.config.name, m.reason)));
        }
        Ok(report)
    }

    fn run_unit(&mut self, unit: &Unit, data: &ImageDataset, split: &Split) -> Result<Option<TrainReport>> {
        let index = self.seen.len();
        let dir = unit.config.checkpoint.clone().ok_or_else(|| Error::msg("a cluster unit needs a checkpoint directory"))?;
        let planned = PlannedUnit {
            index,
            name: unit.config.name.clone(),
            call: self.call.clone(),
            arm: (unit.fold > 0).then(|| unit.arm.clone()),
            fold: (unit.fold > 0).then_some(unit.fold),
            seed: unit.seed,
            epochs: unit.config.epochs,
            checkpoint: dir.clone(),
            fingerprint: fingerprint(&unit.config, data, split)?,
        };
        self.seen.push(planned.clone());
        if let Some(plan) = &self.plan {
            let expected = plan.units.get(index).ok_or_else(|| Error::msg(format!("the script makes more units than the plan's {} (the script or its arguments changed since it was planned)", plan.units.len())))?;
            if expected.fingerprint != planned.fingerprint || expected.checkpoint != planned.checkpoint {
                return Err(Error::msg(format!("unit {index} ({}) is not the planned '{}': the script, its arguments or its data changed since it was planned", planned.name, expected.name)));
            }
        }
        let resume = TrainConfig { resume: true, ..unit.config.clone() };
        match self.mode {
            Mode::Plan => Ok(None),
            Mode::Task { index: target } if target == index => {
                self.task_done = true;
                if checkpoint::progress(&dir).is_some_and(|p| p.finished) {
                    eprintln!("unit {index} ({}): its checkpoint is complete already", planned.name);
                    return Ok(None);
                }
                train(data, split, &resume)?;
                Ok(None)
            }
            Mode::Task { .. } => Ok(None),
            Mode::Gather => match checkpoint::progress(&dir) {
                Some(p) if p.finished => Ok(Some(train(data, split, &resume)?)),
                progress => {
                    let reason = match progress {
                        None => "no checkpoint (the task never ran, or failed before its first epoch)".to_owned(),
                        Some(p) => format!("unfinished: checkpoint after epoch {} of {}{}", p.epoch, p.epochs, p.partial_batch.map(|b| format!(", batch {b}")).unwrap_or_default()),
                    };
                    let reason = format!("unit {index}: {reason}; see {}", self.run_dir.join(slurm::LOG_DIR).join(format!("unit-{index}.log")).display());
                    self.all_missing.push(format!("{}: {reason}", planned.name));
                    self.missing.push(MissingUnit { arm: unit.arm.clone(), fold: unit.fold, seed: unit.seed, reason });
                    Ok(None)
                }
            },
        }
    }
}

impl UnitRunner for ClusterRun {
    fn run(&mut self, unit: &Unit, data: &ImageDataset, split: &Split) -> Result<Option<TrainReport>> {
        self.run_unit(unit, data, split)
    }

    fn missing(&self) -> Vec<MissingUnit> {
        self.missing.clone()
    }
}
