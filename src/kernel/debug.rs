//! Jupyter's debug protocol (JupyterLab's debugger and variables panel) over the script
//! debugger: `debug_request`s on the control channel carry DAP requests, `debug_reply`s their
//! responses, `debug_event`s on IOPub the DAP events. Requests about breakpoints and the
//! session are answered on the control thread at once ([`KernelDebugger::answer_on_control`]);
//! the rest reach the session's thread: inside a stop ([`KernelStops`]), or between cells
//! ([`answer_idle`]).
//!
//! Cells are known to JupyterLab by a file name made from their text: the Murmur2 hash that
//! `debugInfo` declares, between the prefix and suffix it declares (ipykernel's scheme).
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::output::{mime_bundle, CapturedOutput, CurrentRequest};
use super::sockets::{Incoming, Outgoing, Sender};
use super::wire::Message;
use crate::dap::{self, Sequence};
use crate::script::{DebugControl, Repl, Resume, Stop, StopHandler};

/// The seed of the cell-name hash (ipykernel's, so JupyterLab's names match either kernel's).
pub const HASH_SEED: u32 = 0xC70F_6907;

/// Murmur2 (32-bit, Austin Appleby's) of `data`, as JupyterLab hashes a cell's UTF-8 text.
pub fn murmur2(data: &[u8], seed: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = seed ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &byte) in tail.iter().enumerate() {
            k |= u32::from(byte) << (8 * i);
        }
        h = (h ^ k).wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The kernel's debugger state, shared by the control thread and the session's thread.
pub struct KernelDebugger {
    pub control: DebugControl,
    pub sequence: Sequence,
    /// Between `initialize` and `disconnect`.
    started: AtomicBool,
    /// While a cell is stopped.
    stopped: AtomicBool,
    /// Where cells are dumped (`dumpCell`), one folder per kernel process.
    cells_dir: PathBuf,
}

impl KernelDebugger {
    pub fn new() -> Arc<Self> {
        let cells_dir = std::env::temp_dir().join(format!("huelab_{}", std::process::id()));
        Arc::new(KernelDebugger { control: DebugControl::default(), sequence: Sequence::default(), started: AtomicBool::new(false), stopped: AtomicBool::new(false), cells_dir })
    }

    /// Removes the dumped cells (at shutdown).
    pub fn remove_dumped_cells(&self) {
        if self.cells_dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.cells_dir) {
                super::log(&format!("could not remove {}: {e}", self.cells_dir.display()));
            }
        }
    }

    /// The file JupyterLab knows a cell of text `code` by.
    pub fn cell_path(&self, code: &str) -> String {
        format!("{}/{}.rhai", self.cells_dir.display(), murmur2(code.as_bytes(), HASH_SEED))
    }

    /// The DAP response to a request answered on the control thread; `None` for one the
    /// session's thread answers.
    pub fn answer_on_control(&self, request: &Value) -> Option<Value> {
        let sequence = &self.sequence;
        match dap::command(request) {
            "debugInfo" => {
                let breakpoints: Vec<Value> = self
                    .control
                    .breakpoints()
                    .into_iter()
                    .map(|(source, lines)| json!({ "source": source, "breakpoints": lines.iter().map(|l| json!({ "line": l })).collect::<Vec<_>>() }))
                    .collect();
                let stopped: Vec<u64> = if self.stopped.load(Ordering::SeqCst) { vec![dap::THREAD_ID] } else { vec![] };
                Some(sequence.response(
                    request,
                    json!({
                        "isStarted": self.started.load(Ordering::SeqCst),
                        "hashMethod": "Murmur2",
                        "hashSeed": HASH_SEED,
                        "tmpFilePrefix": format!("{}/", self.cells_dir.display()),
                        "tmpFileSuffix": ".rhai",
                        "breakpoints": breakpoints,
                        "stoppedThreads": stopped,
                        "richRendering": true,
                        "exceptionPaths": [],
                        "copyToGlobals": false,
                    }),
                ))
            }
            "initialize" => {
                self.started.store(true, Ordering::SeqCst);
                dap::answer_any_time(sequence, &self.control, request)
            }
            "disconnect" => {
                self.started.store(false, Ordering::SeqCst);
                dap::answer_any_time(sequence, &self.control, request)
            }
            "dumpCell" => {
                let code = request["arguments"]["code"].as_str().unwrap_or_default();
                let path = self.cell_path(code);
                let written = std::fs::create_dir_all(&self.cells_dir).and_then(|_| crate::files::write_atomic(std::path::Path::new(&path), code.as_bytes()).map_err(std::io::Error::other));
                Some(match written {
                    Ok(()) => sequence.response(request, json!({ "sourcePath": path })),
                    Err(e) => sequence.failure(request, &format!("cannot write the cell to {path}: {e}")),
                })
            }
            "inspectVariables" | "richInspectVariables" | "variables" | "stackTrace" | "scopes" | "evaluate" | "continue" | "next" | "stepIn" | "stepOut" | "pause" | "copyToGlobals" => None,
            other => Some(dap::answer_any_time(sequence, &self.control, request).unwrap_or_else(|| sequence.failure(request, &format!("huelab's debugger does not answer '{other}'")))),
        }
    }

    /// The breakpoints of a cell about to run, placed on its code: a client that named the
    /// cell's file without dumping it first (it knows the naming from `debugInfo`) had them
    /// placed as asked. One DAP `breakpoint` event (reason `changed`) for each that moved to
    /// the next line with code, or that cannot stop (past the last line; removed).
    pub fn place_for_cell(&self, path: &str, code: &str) -> Vec<Value> {
        if !self.control.is_attached() {
            return vec![];
        }
        let Some(asked) = self.control.breakpoints().get(path).cloned() else { return vec![] };
        let Ok(lines) = crate::script::breakable_lines(code) else { return vec![] };
        let mut kept = vec![];
        let mut events = vec![];
        for line in asked {
            let placed = crate::script::breakpoint_line(&lines, line);
            kept.extend(placed);
            if placed != Some(line) {
                events.push(self.sequence.event("breakpoint", json!({ "reason": "changed", "breakpoint": dap::breakpoint_json(path, line, placed) })));
            }
        }
        if !events.is_empty() {
            self.control.set_breakpoints(path, kept);
        }
        events
    }

    /// A `debug_event` on IOPub, under the running cell's request when there is one.
    fn publish(&self, sender: &Sender, current: &CurrentRequest, event: Value) {
        let message = current.message("debug_event", event.clone()).unwrap_or_else(|| Message::new(&super::wire::new_id(), "debug_event", event));
        sender.send(Outgoing::IoPub(message));
    }
}

/// The session thread's queue: requests from the sockets, and those a stopped cell set aside
/// for after it. Debug requests are served before the shell requests queued with them.
pub struct Inbox {
    pub receiver: Receiver<Incoming>,
    set_aside: RefCell<VecDeque<Incoming>>,
}

impl Inbox {
    pub fn new(receiver: Receiver<Incoming>) -> Rc<Self> {
        Rc::new(Inbox { receiver, set_aside: RefCell::default() })
    }

    /// The next request to serve (waiting for one); `None` when the sockets are gone.
    pub fn next(&self) -> Option<Incoming> {
        let mut queue = self.set_aside.borrow_mut();
        queue.extend(self.receiver.try_iter());
        if let Some(at) = queue.iter().position(|m| matches!(m, Incoming::Debug(_))) {
            return queue.remove(at);
        }
        if let Some(next) = queue.pop_front() {
            return Some(next);
        }
        drop(queue);
        self.receiver.recv().ok()
    }

    /// Everything queued now (for `stop_on_error`'s aborts).
    pub fn take_queued(&self) -> Vec<Incoming> {
        let mut queue = self.set_aside.borrow_mut();
        queue.extend(self.receiver.try_iter());
        queue.drain(..).collect()
    }
}

/// A stopped cell's side: debug requests answered in the stop until one says how to go on;
/// other requests set aside for after the cell.
pub struct KernelStops {
    pub debugger: Arc<KernelDebugger>,
    pub inbox: Rc<Inbox>,
    pub sender: Sender,
    pub current: CurrentRequest,
    pub captured: CapturedOutput,
}

impl StopHandler for KernelStops {
    fn stopped(&self, stop: &mut Stop<'_>) -> Resume {
        // What the cell printed so far shows before the stop.
        self.captured.flush();
        let debugger = &self.debugger;
        debugger.stopped.store(true, Ordering::SeqCst);
        debugger.publish(&self.sender, &self.current, debugger.sequence.stopped(stop.reason.as_str()));
        let resume = loop {
            // Disconnected, or interrupted: the cell runs on, and an interrupt ends it at its
            // next operation with the session kept.
            if !debugger.control.is_attached() || crate::interrupt::requested() {
                break Resume::Continue;
            }
            match self.inbox.receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(Incoming::Debug(message)) => {
                    let (response, resume) = match dap::command(&message.content) {
                        "richInspectVariables" => (rich_variable(&debugger.sequence, &message.content, |name| stop.rich(name)), None),
                        "inspectVariables" => {
                            // The panel while stopped: the innermost frame's locals.
                            let locals = stop.scopes(0).first().map_or(vec![], |scope| stop.variables(scope.reference));
                            (debugger.sequence.response(&message.content, json!({ "variables": dap::variables_json(&locals) })), None)
                        }
                        _ => dap::answer_stopped(&debugger.sequence, stop, &message.content),
                    };
                    self.sender.send(Outgoing::Control(Message::reply_to(&message, "debug_reply", response)));
                    if let Some(resume) = resume {
                        break resume;
                    }
                }
                Ok(Incoming::Shutdown) => {
                    self.inbox.set_aside.borrow_mut().push_back(Incoming::Shutdown);
                    crate::interrupt::request();
                    break Resume::Continue;
                }
                Ok(other) => self.inbox.set_aside.borrow_mut().push_back(other),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Resume::Continue,
            }
        };
        debugger.stopped.store(false, Ordering::SeqCst);
        debugger.publish(&self.sender, &self.current, debugger.sequence.continued());
        resume
    }
}

/// A debug request between cells: the variables panel (`inspectVariables`, `variables`,
/// `richInspectVariables`) from the session's variables; stepping needs a stopped cell.
pub fn answer_idle(debugger: &KernelDebugger, repl: &mut Repl, request: &Value) -> Value {
    let sequence = &debugger.sequence;
    match dap::command(request) {
        "inspectVariables" => sequence.response(request, json!({ "variables": dap::variables_json(&repl.inspect_variables()) })),
        "variables" => {
            let reference = request["arguments"]["variablesReference"].as_u64().unwrap_or(0) as usize;
            sequence.response(request, json!({ "variables": dap::variables_json(&repl.variable_children(reference)) }))
        }
        "richInspectVariables" => rich_variable(sequence, request, |name| repl.rich_variable(name)),
        "stackTrace" => sequence.response(request, json!({ "stackFrames": [], "totalFrames": 0 })),
        _ => dap::not_stopped(sequence, request),
    }
}

/// `richInspectVariables`: the variable's display (a figure's PNG, a run's table, text).
fn rich_variable(sequence: &Sequence, request: &Value, mut display: impl FnMut(&str) -> Option<crate::script::DisplayData>) -> Value {
    let name = request["arguments"]["variableName"].as_str().unwrap_or_default();
    match display(name) {
        Some(shown) => sequence.response(request, json!({ "data": mime_bundle(&shown), "metadata": {} })),
        None => sequence.response(request, json!({ "data": {}, "metadata": {} })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of ipykernel's `murmur2_x86(text, get_tmp_hash_seed())` (ipykernel 7.4.0), the
    /// names JupyterLab's debugger gives cells: every tail length and a multi-byte character.
    #[test]
    fn murmur2_matches_ipykernels() {
        for (text, expected) in [
            ("", 3990065800u32),
            ("a", 2167009006),
            ("ab", 2805137849),
            ("abc", 3350977461),
            ("abcd", 804720481),
            ("let x = 1;\nx", 1598947636),
            ("fn f() { 1 }", 2844704604),
            ("héllo", 3844570329),
        ] {
            assert_eq!(murmur2(text.as_bytes(), HASH_SEED), expected, "{text:?}");
        }
    }
}
