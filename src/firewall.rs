//! The one panic firewall. A panic (an invariant huelab failed to check, or libtorch raising
//! through one of tch's infallible calls) must never reach a user as a Rust backtrace, nor end
//! a worker thread silently: [`catch`] turns it into an error that says what was being done
//! and asks for a bug report. The process-wide panic hook is installed once and is
//! thread-safe: it records the message for the thread that panicked instead of printing it.
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::error::{Error, Result};

static INSTALL: Once = Once::new();

thread_local! {
    /// The message and location of this thread's last panic, set by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook (idempotent; every entry point calls it).
pub fn install() {
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            // libtorch's C++ errors carry a backtrace after the first line; keep the message.
            let first = message.lines().next().unwrap_or(message).trim();
            let location = info.location().map(|l| format!(" ({}:{})", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{first}{location}")));
        }));
    });
}

/// Runs `f`; a panic inside it becomes [`Error::Internal`] naming `what`.
pub fn catch<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_any(what, f).and_then(|result| result)
}

/// Runs `f`, whatever it returns; a panic inside it becomes [`Error::Internal`] naming `what`
/// (for callers with an error type of their own, like the command line's).
pub fn catch_any<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    install();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let message = recorded.unwrap_or_else(|| {
                payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into())
            });
            Err(Error::Internal { what: what.to_owned(), message })
        }
    }
}
