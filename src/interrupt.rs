//! Stopping long work cleanly. Two requests exist:
//! - **stop** (Ctrl-C: the `huelab` binary's handler calls [`request`]): the training loop,
//!   activation extraction, memory building and classification call [`check`] between batches,
//!   and the script engine between operations, so a run stops at the next batch with every
//!   finished output (written atomically) intact;
//! - **checkpoint and stop** (a cluster's warning signal before preemption or the time limit,
//!   [`request_checkpoint`]): a run with a checkpoint directory finishes its current batch,
//!   writes a checkpoint at that batch boundary and stops with [`Error::Preempted`], so it can
//!   be requeued and resume exactly there. A request that lands after an epoch's last batch
//!   is honoured once that epoch is validated and checkpointed, so every checkpoint holds
//!   either whole epochs or an epoch stopped strictly inside;
//! - SIGTERM is a checkpoint request after which Slurm requeues or ends the job itself.
//!
//! [`reached`] is the test hook: `HUELAB_STOP_AT` makes one of these requests at a named
//! [`StopPoint`] of a training run or a kNN memory's work, so tests stop a run anywhere without
//! racing a signal.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static CHECKPOINT_REQUESTED: AtomicBool = AtomicBool::new(false);
static TERMINATED: AtomicBool = AtomicBool::new(false);

pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Forgets a stop request once the stopped work has ended (a notebook kernel goes on to the
/// next cell).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// An error if a stop was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Async-signal-safe: only stores a flag.
pub fn request_checkpoint() {
    CHECKPOINT_REQUESTED.store(true, Ordering::SeqCst);
}

pub fn checkpoint_requested() -> bool {
    CHECKPOINT_REQUESTED.load(Ordering::SeqCst)
}

/// Forgets a checkpoint request (tests run several trainings in one process).
pub fn clear_checkpoint_request() {
    CHECKPOINT_REQUESTED.store(false, Ordering::SeqCst);
}

/// SIGTERM (Slurm's preemption, `scontrol requeue`, `scancel`): a checkpoint request after
/// which Slurm itself requeues or ends the job, so the task must not requeue itself.
/// Async-signal-safe: only stores flags.
pub fn request_termination() {
    TERMINATED.store(true, Ordering::SeqCst);
    request_checkpoint();
}

/// Whether the checkpoint request came with SIGTERM ([`request_termination`]).
pub fn terminated() -> bool {
    TERMINATED.load(Ordering::SeqCst)
}

/// A place in a training run or a kNN memory's work where a stop request can land. The trainer names each one it
/// passes ([`reached`]), so that a test can make a stop land there deterministically instead
/// of racing a signal against the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// After batch `batch` (from 1, counted over the whole epoch) of epoch `epoch` (from 1).
    AfterBatch { epoch: usize, batch: usize },
    /// After epoch `epoch`'s validation, before the epoch is recorded and checkpointed.
    Validated { epoch: usize },
    /// After the last epoch, before the test part is evaluated.
    Testing,
    /// Before the finished model is saved.
    SavingModel,
    /// After a batch that brings a kNN memory to `batch` batches' worth of images (`add_batch`
    /// each, counted over every `add` to it).
    MemoryBatch { batch: usize },
    /// After batch `batch` (from 1) of queries classified against a kNN memory.
    QueryBatch { batch: usize },
}

/// Which request the test hook makes: the one each handler makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookRequest {
    /// Ctrl-C's [`request`].
    Interrupt,
    /// SIGUSR1's [`request_checkpoint`].
    Checkpoint,
    /// SIGTERM's [`request_termination`].
    Terminate,
}

/// The test hook's environment variable: `HUELAB_STOP_AT=<request>@<point>`, with `<request>`
/// one of `int`, `usr1`, `term` and `<point>` one of `batch:E:B`, `validated:E`, `test`,
/// `save` (a training run's), `add:B`, `query:B` (a kNN memory's). The request is made once
/// per process, the first time the run passes the point.
pub const STOP_AT_VARIABLE: &str = "HUELAB_STOP_AT";

static HOOK: OnceLock<Result<Option<(HookRequest, StopPoint)>, String>> = OnceLock::new();
static HOOK_FIRED: AtomicBool = AtomicBool::new(false);

/// Called by the trainer and the kNN memory at each [`StopPoint`]: when `HUELAB_STOP_AT` names this point, makes
/// its request exactly as the signal handler would. An unreadable value is an error, so a test
/// never passes because its stop silently never happened.
pub fn reached(point: StopPoint) -> Result<()> {
    let hook = HOOK.get_or_init(|| std::env::var(STOP_AT_VARIABLE).ok().map(|v| parse_hook(&v)).transpose());
    match hook {
        Err(message) => Err(Error::msg(message.clone())),
        Ok(Some((request_kind, at))) if *at == point && !HOOK_FIRED.swap(true, Ordering::SeqCst) => {
            match request_kind {
                HookRequest::Interrupt => request(),
                HookRequest::Checkpoint => request_checkpoint(),
                HookRequest::Terminate => request_termination(),
            }
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

fn parse_hook(value: &str) -> Result<(HookRequest, StopPoint), String> {
    let bad = |why: &str| format!("{STOP_AT_VARIABLE}='{value}': {why} (expected <int|usr1|term>@<batch:E:B|validated:E|test|save|add:B|query:B>)");
    let (kind, point) = value.split_once('@').ok_or_else(|| bad("no '@'"))?;
    let kind = match kind {
        "int" => HookRequest::Interrupt,
        "usr1" => HookRequest::Checkpoint,
        "term" => HookRequest::Terminate,
        _ => return Err(bad("unknown request")),
    };
    let number = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| bad("epochs and batches count from 1"));
    let fields: Vec<&str> = point.split(':').collect();
    let point = match fields.as_slice() {
        ["batch", epoch, batch] => StopPoint::AfterBatch { epoch: number(epoch)?, batch: number(batch)? },
        ["validated", epoch] => StopPoint::Validated { epoch: number(epoch)? },
        ["test"] => StopPoint::Testing,
        ["save"] => StopPoint::SavingModel,
        ["add", batch] => StopPoint::MemoryBatch { batch: number(batch)? },
        ["query", batch] => StopPoint::QueryBatch { batch: number(batch)? },
        _ => return Err(bad("unknown point")),
    };
    Ok((kind, point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_values_parse_and_bad_ones_are_named() {
        assert_eq!(parse_hook("usr1@batch:2:7"), Ok((HookRequest::Checkpoint, StopPoint::AfterBatch { epoch: 2, batch: 7 })));
        assert_eq!(parse_hook("term@validated:3"), Ok((HookRequest::Terminate, StopPoint::Validated { epoch: 3 })));
        assert_eq!(parse_hook("int@test"), Ok((HookRequest::Interrupt, StopPoint::Testing)));
        assert_eq!(parse_hook("int@save"), Ok((HookRequest::Interrupt, StopPoint::SavingModel)));
        assert_eq!(parse_hook("int@add:2"), Ok((HookRequest::Interrupt, StopPoint::MemoryBatch { batch: 2 })));
        assert_eq!(parse_hook("int@query:1"), Ok((HookRequest::Interrupt, StopPoint::QueryBatch { batch: 1 })));
        for bad in ["usr1", "kill@test", "int@batch:0:1", "int@batch:1", "int@epoch:1", "int@batch:x:1", "int@add:0", "int@query"] {
            let message = parse_hook(bad).unwrap_err();
            assert!(message.contains(STOP_AT_VARIABLE) && message.contains(bad), "{message}");
        }
    }
}
