//! The one place where library errors and panics become Rhai errors. Errors carry
//! `Position::NONE`; Rhai fills in the position of the script call that raised them.
use std::panic::{catch_unwind, AssertUnwindSafe};

use rhai::{EvalAltResult, Position};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub fn to_rhai(e: impl std::fmt::Display) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE).into()
}

/// Runs `f`, turning a library error or a panic (tch's infallible calls and libtorch can
/// panic) into a script error, so a script never dies with a Rust backtrace.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> crate::Result<T>) -> RhaiResult<T> {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(result) => result.map_err(to_rhai),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(to_rhai(format!("{what} failed inside libtorch or huelab: {detail}")))
        }
    }
}

/// The error that ends a cluster task's script once its unit ran; `ScriptRunner` takes it as
/// success.
pub fn task_complete() -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(rhai::Dynamic::from(super::handles::TaskComplete), Position::NONE).into()
}
