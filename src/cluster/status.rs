//! The state of every unit of a planned run, from its checkpoint and from Slurm: done,
//! running (with its epoch), pending, or failed with the tail of its log.
use std::path::Path;

use super::plan::Plan;
use super::slurm::{task_states, LOG_DIR};
use crate::error::Result;
use crate::train::checkpoint;

#[derive(Debug, Clone, PartialEq)]
pub enum UnitState {
    /// The checkpoint holds the finished run.
    Done,
    Running,
    Pending,
    /// Its task ended without finishing the run (or Slurm no longer knows it and the run is
    /// unfinished).
    Failed,
    /// Never submitted.
    NotSubmitted,
}

impl UnitState {
    pub fn name(&self) -> &'static str {
        match self {
            UnitState::Done => "done",
            UnitState::Running => "running",
            UnitState::Pending => "pending",
            UnitState::Failed => "failed",
            UnitState::NotSubmitted => "not submitted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnitStatus {
    pub index: usize,
    pub name: String,
    pub state: UnitState,
    /// Checkpoint progress (`epoch 3/10`, `epoch 3/10, batch 12`) and the Slurm job.
    pub detail: String,
    /// The last lines of the task's log, for a failed unit.
    pub log_tail: Vec<String>,
}

/// The last `n` lines of a file (empty when it cannot be read).
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    // Progress bars redraw with carriage returns; keep what a terminal would show.
    let lines: Vec<String> = text.lines().map(|l| l.rsplit('\r').next().unwrap_or(l).to_owned()).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub fn status(plan: &Plan, run_dir: &Path) -> Result<Vec<UnitStatus>> {
    let mut states = std::collections::BTreeMap::new();
    for submission in &plan.submissions {
        // A gather-only submission has no array.
        if submission.array_job.is_empty() {
            continue;
        }
        for (task, state) in task_states(&submission.array_job) {
            states.insert((submission.array_job.clone(), task), state);
        }
    }
    Ok(plan
        .units
        .iter()
        .map(|unit| {
            let progress = checkpoint::progress(&unit.checkpoint);
            let submission = plan.submission_of(unit.index);
            let slurm = submission.and_then(|s| states.get(&(s.array_job.clone(), unit.index)).cloned());
            let mut detail = match &progress {
                None => "no checkpoint".to_owned(),
                Some(p) => format!("epoch {}/{}{}", p.epoch, p.epochs, p.partial_batch.map(|b| format!(", batch {b}")).unwrap_or_default()),
            };
            if let (Some(s), Some(state)) = (submission, &slurm) {
                detail.push_str(&format!("; job {}_{} {state}", s.array_job, unit.index));
            }
            let state = match (progress.as_ref().is_some_and(|p| p.finished), slurm.as_deref(), submission) {
                (true, _, _) => UnitState::Done,
                (false, Some("RUNNING" | "COMPLETING" | "CONFIGURING" | "SUSPENDED" | "REQUEUED"), _) => UnitState::Running,
                (false, Some("PENDING" | "REQUEUE_HOLD" | "REQUEUE_FED"), _) => UnitState::Pending,
                (false, _, None) => UnitState::NotSubmitted,
                (false, _, Some(_)) => UnitState::Failed,
            };
            let log_tail = if state == UnitState::Failed { tail(&run_dir.join(LOG_DIR).join(format!("unit-{}.log", unit.index)), 5) } else { vec![] };
            UnitStatus { index: unit.index, name: unit.name.clone(), state, detail, log_tail }
        })
        .collect())
}

/// Units to (re)submit: neither done nor pending or running.
pub fn unfinished(statuses: &[UnitStatus]) -> Vec<usize> {
    statuses.iter().filter(|s| matches!(s.state, UnitState::Failed | UnitState::NotSubmitted)).map(|s| s.index).collect()
}
