//! The state of every unit of a planned run, from its checkpoint and from Slurm: done,
//! running (with its epoch), pending, failed with the reason Slurm or its log gives and the tail
//! of its log, or unknown while the Slurm controller cannot be reached; and the gather's state.
use std::path::Path;

use super::plan::Plan;
use super::slurm::{exit_reason, job_state, task_states, TaskState, Unreachable, LOG_DIR};
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
    /// Its task was cancelled (`scancel`) before the run finished: not a failure of the run,
    /// and resubmitted by `--resume` like one.
    Cancelled,
    /// Never submitted.
    NotSubmitted,
    /// Unfinished, and Slurm cannot be asked whether it runs (the controller is unreachable).
    Unknown,
}

impl UnitState {
    pub fn name(&self) -> &'static str {
        match self {
            UnitState::Done => "done",
            UnitState::Running => "running",
            UnitState::Pending => "pending",
            UnitState::Failed => "failed",
            UnitState::Cancelled => "cancelled",
            UnitState::NotSubmitted => "not submitted",
            UnitState::Unknown => "unknown",
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

/// A planned run as a whole: its units, whether Slurm could be asked, and the gather.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    pub units: Vec<UnitStatus>,
    /// Set when the Slurm controller could not be reached: states of unfinished units are then
    /// unknown, and nothing should be resubmitted.
    pub unreachable: Option<String>,
    /// The latest gather job and its Slurm state (if Slurm still knows it).
    pub gather: Option<(String, Option<String>)>,
    /// Whether a gather wrote every unit's outputs after the latest submission.
    pub gathered: bool,
}

impl RunStatus {
    pub fn count(&self, state: UnitState) -> usize {
        self.units.iter().filter(|u| u.state == state).count()
    }

    /// Whether the latest gather job is still to run or running (another would be a duplicate).
    pub fn gather_waiting(&self) -> bool {
        self.gather.as_ref().is_some_and(|(_, state)| matches!(state.as_deref(), Some("PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING")))
    }
}

/// Why a unit's task ended unfinished, in words: Slurm's state where it says more than
/// "failed", else the end of the task's log (Slurm writes `*** JOB … CANCELLED …` there).
fn failure_reason(slurm_state: Option<&str>, job: Option<String>, log: &[String]) -> String {
    let from_state = match slurm_state {
        Some("CANCELLED") => Some("cancelled".to_owned()),
        Some("TIMEOUT") => Some("time limit reached".to_owned()),
        Some("NODE_FAIL") => Some("node failure".to_owned()),
        Some("PREEMPTED") => Some("preempted".to_owned()),
        Some("OUT_OF_MEMORY") => Some("out of memory".to_owned()),
        Some("BOOT_FAIL") => Some("node boot failure".to_owned()),
        Some("DEADLINE") => Some("deadline reached".to_owned()),
        _ => None,
    };
    if let Some(reason) = from_state {
        return reason;
    }
    let text = log.join("\n");
    let from_log = [
        ("DUE TO TIME LIMIT", "time limit reached"),
        ("DUE TO PREEMPTION", "preempted"),
        ("DUE TO NODE FAILURE", "node failure"),
        ("CANCELLED AT", "cancelled"),
        ("oom-kill", "out of memory"),
        ("Out Of Memory", "out of memory"),
    ]
    .iter()
    .find(|(marker, _)| text.contains(marker))
    .map(|(_, reason)| (*reason).to_owned());
    from_log.or_else(|| job.and_then(|j| exit_reason(&j))).unwrap_or_else(|| {
        if log.is_empty() {
            // Slurm keeps no record of an array task cancelled before it started.
            "never started: no log (cancelled while pending, or its job was lost)".to_owned()
        } else if text.contains("error:") {
            "huelab stopped with an error (log below)".to_owned()
        } else {
            "ended unfinished (log below)".to_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::failure_reason;

    #[test]
    fn a_requeued_task_held_until_its_begin_time_says_so() {
        let task = |state: &str, reason: &str, start: Option<&str>| super::TaskState { state: state.into(), reason: reason.into(), start: start.map(str::to_owned) };
        let held = super::pending_reason(&task("PENDING", "BeginTime", Some("2026-12-06T18:04:52")));
        assert!(held.contains("held until 2026-12-06T18:04:52") && held.contains("requeued"), "{held}");
        assert_eq!(super::pending_reason(&task("PENDING", "Priority", None)), "");
        assert_eq!(super::pending_reason(&task("PENDING", "JobHeldUser", None)), " (JobHeldUser)");
        assert_eq!(super::pending_reason(&task("RUNNING", "None", None)), "");
    }

    #[test]
    fn a_failed_unit_gets_the_reason_slurm_or_its_log_gives() {
        let log = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(failure_reason(Some("TIMEOUT"), None, &[]), "time limit reached");
        assert_eq!(failure_reason(Some("CANCELLED"), None, &[]), "cancelled");
        assert_eq!(failure_reason(Some("NODE_FAIL"), None, &[]), "node failure");
        let cancelled = log(&["epoch 2/4", "slurmstepd-localhost: error: *** JOB 7 ON localhost CANCELLED AT 2026-12-02T20:01:02 ***"]);
        assert_eq!(failure_reason(None, None, &cancelled), "cancelled");
        let timed_out = log(&["slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T20:01:02 DUE TO TIME LIMIT ***"]);
        assert_eq!(failure_reason(None, None, &timed_out), "time limit reached");
        let preempted = log(&["slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T20:01:02 DUE TO PREEMPTION ***"]);
        assert_eq!(failure_reason(None, None, &preempted), "preempted");
        assert!(failure_reason(None, None, &[]).starts_with("never started"));
        assert!(failure_reason(None, None, &log(&["error: unit 3: option 'lr' must be positive"])).contains("error"));
    }
}

pub fn status(plan: &Plan, run_dir: &Path) -> Result<RunStatus> {
    let mut states = std::collections::BTreeMap::new();
    let mut unreachable: Option<String> = None;
    for submission in &plan.submissions {
        // A gather-only submission has no array.
        if submission.array_job.is_empty() {
            continue;
        }
        match task_states(&submission.array_job) {
            Ok(tasks) => tasks.into_iter().for_each(|(task, state)| {
                states.insert((submission.array_job.clone(), task), state);
            }),
            Err(Unreachable(message)) => unreachable = Some(message),
        }
    }
    let units = plan
        .units
        .iter()
        .map(|unit| {
            let progress = checkpoint::progress(&unit.checkpoint);
            let submission = plan.submission_of(unit.index);
            let task = submission.and_then(|s| states.get(&(s.array_job.clone(), unit.index)).cloned());
            let slurm = task.as_ref().map(|t| t.state.clone());
            let mut detail = match &progress {
                None => "no checkpoint".to_owned(),
                Some(p) => format!("epoch {}/{}{}", p.epoch, p.epochs, p.partial_batch.map(|b| format!(", batch {b}")).unwrap_or_default()),
            };
            if let (Some(s), Some(task)) = (submission, &task) {
                detail.push_str(&format!("; job {}_{} {}{}", s.array_job, unit.index, task.state, pending_reason(task)));
            }
            let state = match (progress.as_ref().is_some_and(|p| p.finished), slurm.as_deref(), submission) {
                (true, _, _) => UnitState::Done,
                (false, Some("RUNNING" | "COMPLETING" | "CONFIGURING" | "SUSPENDED" | "REQUEUED"), _) => UnitState::Running,
                (false, Some("PENDING" | "REQUEUE_HOLD" | "REQUEUE_FED"), _) => UnitState::Pending,
                (false, _, None) => UnitState::NotSubmitted,
                (false, None, Some(_)) if unreachable.is_some() => UnitState::Unknown,
                (false, _, Some(_)) => UnitState::Failed,
            };
            let log = tail(&run_dir.join(LOG_DIR).join(format!("unit-{}.log", unit.index)), 5);
            let (state, log_tail) = if state == UnitState::Failed {
                let job = submission.map(|s| format!("{}_{}", s.array_job, unit.index));
                let reason = failure_reason(slurm.as_deref(), job, &log);
                detail.push_str(&format!("; {reason}"));
                let state = if reason == "cancelled" { UnitState::Cancelled } else { UnitState::Failed };
                (state, log)
            } else {
                (state, vec![])
            };
            UnitStatus { index: unit.index, name: unit.name.clone(), state, detail, log_tail }
        })
        .collect();
    let gather = plan.submissions.last().map(|last| {
        let state = job_state(&last.gather_job).unwrap_or_else(|Unreachable(message)| {
            unreachable.get_or_insert(message);
            None
        });
        (last.gather_job.clone(), state)
    });
    Ok(RunStatus { units, unreachable, gather, gathered: plan.gathered(run_dir) })
}

/// Units to (re)submit: neither done nor pending or running.
pub fn unfinished(statuses: &[UnitStatus]) -> Vec<usize> {
    statuses.iter().filter(|s| matches!(s.state, UnitState::Failed | UnitState::Cancelled | UnitState::NotSubmitted)).map(|s| s.index).collect()
}

/// Why a pending task waits, in words, when Slurm says more than "waiting its turn": a
/// requeued task is held until its `BeginTime` (two minutes on most clusters), which a bare
/// "PENDING" made look stuck.
fn pending_reason(task: &TaskState) -> String {
    if task.state != "PENDING" {
        return String::new();
    }
    match task.reason.as_str() {
        "BeginTime" => match task.start.as_deref() {
            Some(start) => format!(" (held until {start}: Slurm holds a requeued task before it starts again)"),
            None => " (held until its begin time: Slurm holds a requeued task before it starts again)".to_owned(),
        },
        "" | "None" | "Priority" | "Resources" => String::new(),
        reason => format!(" ({reason})"),
    }
}
