//! Stopping long work cleanly. The `huelab` binary's Ctrl-C handler calls [`request`]; the
//! training loop, activation extraction, memory building and classification call [`check`]
//! between batches, and the script engine between operations, so a run stops at the next
//! batch with every finished output (written atomically) intact.
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
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
