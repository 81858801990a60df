//! The one place where library errors and panics become Rhai errors. Errors carry
//! `Position::NONE`; Rhai fills in the position of the script call that raised them.
use rhai::{EvalAltResult, Position};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub fn to_rhai(e: impl std::fmt::Display) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE).into()
}

/// Runs `f` behind the panic firewall, turning a library error or a panic (an unchecked
/// invariant, or libtorch raising through one of tch's infallible calls) into a script error,
/// so a script never dies with a Rust backtrace.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> crate::Result<T>) -> RhaiResult<T> {
    crate::firewall::catch(what, f).map_err(from_library)
}

/// A library error as a script error; a run stopped for preemption keeps its type
/// ([`super::handles::Preempted`]).
pub fn from_library(e: crate::Error) -> Box<EvalAltResult> {
    match e {
        crate::Error::Preempted { .. } => EvalAltResult::ErrorRuntime(rhai::Dynamic::from(super::handles::Preempted(e.to_string())), Position::NONE).into(),
        e => to_rhai(e),
    }
}

/// The error that ends a cluster task's script once its unit ran; `ScriptRunner` takes it as
/// success.
pub fn task_complete() -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(rhai::Dynamic::from(super::handles::TaskComplete), Position::NONE).into()
}
