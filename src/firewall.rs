//! The one panic firewall. A panic (an invariant huelab failed to check, or libtorch raising
//! through one of tch's infallible calls) must never reach a user as a Rust backtrace, nor end
//! a worker thread silently: [`catch`] turns it into an error that says what was being done
//! and asks for a bug report. The process-wide panic hook is installed once and is
//! thread-safe: inside [`catch`] it records the message for the thread that panicked instead of
//! printing it; a panic outside any `catch` (a failing assertion in a test, a bug in a thread
//! huelab did not start) goes to the hook that was there before, so its message is printed.
//!
//! One firewall per entry point, not one per library function: the `huelab` process
//! (`main`), each call a script makes into huelab (`script::errors::guarded`), each request and
//! cell of the notebook kernel, each fuzz case, and each worker thread huelab starts (a batch
//! being prepared), where a panic would otherwise be lost with its thread.
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::error::{Error, Result};

static INSTALL: Once = Once::new();

thread_local! {
    /// The message and location of this thread's last panic, set by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many [`catch`]es this thread is inside.
    static CATCH_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Installs the hook (idempotent; every entry point calls it).
pub fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCH_DEPTH.with(Cell::get) == 0 {
                previous(info);
                return;
            }
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
    CATCH_DEPTH.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    CATCH_DEPTH.with(|d| d.set(d.get() - 1));
    match outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_catch_becomes_an_error_naming_the_work() {
        let err = catch("sorting", || -> Result<()> { panic!("index out of range") }).unwrap_err().to_string();
        assert!(err.contains("sorting") && err.contains("index out of range"), "{err}");
    }

    /// Run as a child by the test below: installs the firewall, then fails an assertion
    /// outside any `catch`, as a test calling into huelab would.
    #[test]
    fn child_panicking_outside_catch() {
        if std::env::var_os("HUELAB_FIREWALL_CHILD").is_none() {
            return;
        }
        install();
        let _ = catch("warm-up", || Ok(()));
        assert_eq!(1 + 1, 3, "the assertion message must be printed");
    }

    #[test]
    fn a_panic_outside_catch_reaches_the_default_hook_and_is_printed() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "firewall::tests::child_panicking_outside_catch", "--nocapture", "--test-threads", "1"])
            .env("HUELAB_FIREWALL_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the child's assertion must fail");
        assert!(stderr.contains("the assertion message must be printed"), "{stderr}");
    }
}
