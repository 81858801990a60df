//! Stopping long work cleanly. Two requests exist:
//! - **stop** (Ctrl-C: the `huelab` binary's handler calls [`request`]): the training loop,
//!   activation extraction, memory building and classification call [`check`] between batches,
//!   and the script engine between operations, so a run stops at the next batch with every
//!   finished output (written atomically) intact;
//! - **checkpoint and stop** (a cluster's warning signal before preemption or the time limit,
//!   [`request_checkpoint`]): a run with a checkpoint directory finishes its current batch,
//!   writes a checkpoint at that batch boundary and stops with [`Error::Preempted`], so it can
//!   be requeued and resume exactly there.
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static CHECKPOINT_REQUESTED: AtomicBool = AtomicBool::new(false);

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
