//! The Debug Adapter Protocol over the script debugger ([`crate::script::debugger`]): DAP's
//! requests answered as JSON, once for both carriers — Jupyter's debug messages (the kernel
//! wraps each DAP message in `debug_request` / `debug_reply` / `debug_event`) and `huelab
//! debug`, which speaks DAP over stdio to an editor ([`stdio`]).
//!
//! Requests split in two: those about breakpoints and the session ([`answer_any_time`]) are
//! answered by whichever thread reads them, even while a cell runs; those about a stopped
//! script ([`answer_stopped`]) by the script's own thread inside the stop, where its values live.
pub mod stdio;

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::script::{DebugControl, Resume, Stop, Variable};

/// The one thread a script runs on, as DAP numbers threads.
pub const THREAD_ID: u64 = 1;

/// DAP's `seq` of the messages a debugger sends, counted from 1.
#[derive(Debug, Default)]
pub struct Sequence(AtomicU64);

impl Sequence {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A successful response to `request` with `body`.
    pub fn response(&self, request: &Value, body: Value) -> Value {
        json!({ "seq": self.next(), "type": "response", "request_seq": request["seq"], "success": true, "command": request["command"], "body": body })
    }

    /// A failed response to `request`; `message` says why (clients show it).
    pub fn failure(&self, request: &Value, message: &str) -> Value {
        json!({ "seq": self.next(), "type": "response", "request_seq": request["seq"], "success": false, "command": request["command"], "message": message, "body": { "error": { "id": 1, "format": message } } })
    }

    pub fn event(&self, event: &str, body: Value) -> Value {
        json!({ "seq": self.next(), "type": "event", "event": event, "body": body })
    }

    pub fn stopped(&self, reason: &str) -> Value {
        self.event("stopped", json!({ "reason": reason, "threadId": THREAD_ID, "allThreadsStopped": true }))
    }

    pub fn continued(&self) -> Value {
        self.event("continued", json!({ "threadId": THREAD_ID, "allThreadsContinued": true }))
    }
}

/// The command of a DAP request (`""` when it has none).
pub fn command(request: &Value) -> &str {
    request["command"].as_str().unwrap_or_default()
}

/// What this debugger can do (the `initialize` response's body).
pub fn capabilities() -> Value {
    json!({
        "supportsConfigurationDoneRequest": true,
        "supportsEvaluateForHovers": true,
        "supportsSetVariable": false,
        "supportsConditionalBreakpoints": false,
        "supportsStepBack": false,
        "supportsTerminateRequest": false,
        "supportsDelayedStackTraceLoading": false,
        "exceptionBreakpointFilters": [],
    })
}

/// Requests answered from the shared state alone, by any thread at any time; `None` for a
/// request only the script's thread can answer.
pub fn answer_any_time(sequence: &Sequence, control: &DebugControl, request: &Value) -> Option<Value> {
    let arguments = &request["arguments"];
    Some(match command(request) {
        "initialize" => sequence.response(request, capabilities()),
        "attach" | "launch" => {
            control.attach();
            sequence.response(request, json!({}))
        }
        "disconnect" => {
            // A stopped script resumes (it sees the client gone) and runs to its end.
            control.detach();
            sequence.response(request, json!({}))
        }
        "setBreakpoints" => {
            let Some(path) = arguments["source"]["path"].as_str() else {
                return Some(sequence.failure(request, "setBreakpoints needs arguments.source.path"));
            };
            let asked: Vec<usize> = match arguments["breakpoints"].as_array() {
                Some(points) => points.iter().filter_map(|p| p["line"].as_u64()).map(|l| l as usize).collect(),
                None => arguments["lines"].as_array().map(|ls| ls.iter().filter_map(Value::as_u64).map(|l| l as usize).collect()).unwrap_or_default(),
            };
            let placed = place_breakpoints(path, &asked);
            control.set_breakpoints(path, placed.iter().filter_map(|&(_, line)| line));
            let points: Vec<Value> = placed.iter().map(|&(asked, line)| breakpoint_json(path, asked, line)).collect();
            sequence.response(request, json!({ "breakpoints": points }))
        }
        "setExceptionBreakpoints" => sequence.response(request, json!({ "breakpoints": [] })),
        "configurationDone" => sequence.response(request, json!({})),
        "threads" => sequence.response(request, json!({ "threads": [{ "id": THREAD_ID, "name": "script" }] })),
        "source" => {
            let path = arguments["source"]["path"].as_str().unwrap_or_default();
            match crate::input::read_text(std::path::Path::new(path), crate::input::limits::SCRIPT) {
                Ok(content) => sequence.response(request, json!({ "content": content, "mimeType": "text/x-rhai" })),
                Err(e) => sequence.failure(request, &format!("source unavailable: {e}")),
            }
        }
        "modules" => sequence.response(request, json!({ "modules": [], "totalModules": 0 })),
        "loadedSources" => sequence.response(request, json!({ "sources": [] })),
        _ => return None,
    })
}

/// Each asked line with the line it stops at, on the file's code: moved to the next line with
/// code, or `None` past the last one. A file that cannot be read or parsed now (a module
/// written later, a cell being edited) keeps the lines as asked.
fn place_breakpoints(path: &str, asked: &[usize]) -> Vec<(usize, Option<usize>)> {
    let lines = crate::input::read_text(std::path::Path::new(path), crate::input::limits::SCRIPT).map_err(|e| e.to_string()).and_then(|code| crate::script::breakable_lines(&code));
    asked
        .iter()
        .map(|&asked| match &lines {
            Err(_) => (asked, (asked >= 1).then_some(asked)),
            Ok(lines) => (asked, crate::script::breakpoint_line(lines, asked.max(1))),
        })
        .collect()
}

/// A DAP breakpoint in `path` asked for at line `asked`: verified at `placed`, or unverified
/// (it cannot stop: no code on or after that line).
pub fn breakpoint_json(path: &str, asked: usize, placed: Option<usize>) -> Value {
    match placed {
        Some(line) => json!({ "verified": true, "line": line, "source": { "path": path } }),
        None => json!({ "verified": false, "line": asked, "message": "no code on or after this line", "source": { "path": path } }),
    }
}

/// A request about the stopped script, answered inside the stop; with the way to go on when
/// it is one of `continue`, `next`, `stepIn`, `stepOut`.
pub fn answer_stopped(sequence: &Sequence, stop: &mut Stop<'_>, request: &Value) -> (Value, Option<Resume>) {
    let arguments = &request["arguments"];
    let resume = match command(request) {
        "continue" => Some(Resume::Continue),
        "next" => Some(Resume::Next),
        "stepIn" => Some(Resume::StepIn),
        "stepOut" => Some(Resume::StepOut),
        _ => None,
    };
    if let Some(resume) = resume {
        let body = if resume == Resume::Continue { json!({ "allThreadsContinued": true }) } else { json!({}) };
        return (sequence.response(request, body), Some(resume));
    }
    let response = match command(request) {
        "stackTrace" => {
            let frames: Vec<Value> = stop
                .frames()
                .iter()
                .enumerate()
                .map(|(id, frame)| {
                    let mut source = json!({ "name": frame.source });
                    if let Some(path) = &frame.path {
                        source["path"] = json!(path);
                    }
                    json!({ "id": id, "name": frame.name, "line": frame.line, "column": frame.column, "source": source })
                })
                .collect();
            let total = frames.len();
            sequence.response(request, json!({ "stackFrames": frames, "totalFrames": total }))
        }
        "scopes" => {
            let frame = arguments["frameId"].as_u64().unwrap_or(0) as usize;
            let scopes: Vec<Value> = stop.scopes(frame).iter().map(|s| json!({ "name": s.name, "variablesReference": s.reference, "namedVariables": s.count, "expensive": false })).collect();
            sequence.response(request, json!({ "scopes": scopes }))
        }
        "variables" => {
            let reference = arguments["variablesReference"].as_u64().unwrap_or(0) as usize;
            sequence.response(request, json!({ "variables": variables_json(&stop.variables(reference)) }))
        }
        "evaluate" => {
            let expression = arguments["expression"].as_str().unwrap_or_default();
            if arguments["frameId"].as_u64().is_some_and(|f| f != 0) {
                return (sequence.failure(request, "expressions are evaluated in the innermost frame only (frameId 0)"), None);
            }
            match stop.evaluate(expression) {
                Ok(value) => sequence.response(request, json!({ "result": value.value, "type": value.type_name, "variablesReference": value.reference })),
                Err(e) => sequence.failure(request, &e),
            }
        }
        "pause" => sequence.failure(request, "the script is already stopped"),
        other => sequence.failure(request, &format!("huelab's debugger does not answer '{other}'")),
    };
    (response, None)
}

/// A request that needs a stopped script, when none is.
pub fn not_stopped(sequence: &Sequence, request: &Value) -> Value {
    sequence.failure(request, &format!("'{}' needs a stopped script, and none is stopped", command(request)))
}

/// Variables as DAP lists them.
pub fn variables_json(variables: &[Variable]) -> Vec<Value> {
    variables
        .iter()
        .map(|v| {
            // JupyterLab's panel shows the value of `str`, `int`, `float` and `bool` and the type
            // of anything else (Python's names): a Rhai string is reported as `str` so that its
            // text shows.
            let type_name = if v.type_name == "string" { "str" } else { v.type_name.as_str() };
            let mut item = json!({ "name": v.name, "value": v.value, "type": type_name, "variablesReference": v.reference, "evaluateName": v.name });
            if v.reference > 0 {
                item["namedVariables"] = json!(v.children);
            }
            item
        })
        .collect()
}
