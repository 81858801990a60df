//! `huelab kernel`: a Jupyter kernel for Rhai scripts inside the huelab binary. One script
//! session per kernel ([`crate::script::Repl`]) runs cells on the main thread; the sockets are
//! served on a thread of their own ([`sockets`]), so interrupt and shutdown are answered while a
//! cell runs. The wire format is in [`wire`], the connection file in [`connection`], captured
//! output and progress displays in [`output`], the kernel spec in [`spec`], and `huelab bench
//! kernel` in [`bench`].
pub mod bench;
mod connection;
mod output;
mod sockets;
pub mod spec;
mod wire;

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::script::{Completeness, Repl, ScriptOptions};
use connection::ConnectionInfo;
use output::{CapturedOutput, CurrentRequest, NotebookTerm};
use sockets::{Incoming, Outgoing, Sender};
use wire::Message;

/// The kernel's own log: the stderr it was started with (its stderr proper is captured into the
/// notebook). Jupyter shows it in the terminal that started the server.
static LOG: OnceLock<std::sync::Mutex<std::fs::File>> = OnceLock::new();

pub(crate) fn log(line: &str) {
    match LOG.get() {
        Some(file) => {
            let _ = writeln!(file.lock().unwrap_or_else(|p| p.into_inner()), "huelab kernel: {line}");
        }
        None => eprintln!("huelab kernel: {line}"),
    }
}

/// `kernel_info_reply`'s content.
pub(crate) fn kernel_info() -> Value {
    json!({
        "status": "ok",
        "protocol_version": wire::PROTOCOL_VERSION,
        "implementation": "huelab",
        "implementation_version": env!("CARGO_PKG_VERSION"),
        "language_info": {
            "name": "rhai",
            "version": "1",
            "mimetype": "text/x-rhai",
            "file_extension": ".rhai",
            // Rhai's `fn`, `let`, strings and comments read as Rust's.
            "codemirror_mode": "rust",
            "pygments_lexer": "rust",
        },
        "banner": format!("huelab {}: Rhai scripts over libtorch and FAISS. `huelab api` lists every function.", env!("CARGO_PKG_VERSION")),
        "help_links": [],
    })
}

/// `<kind>_reply` with status `error`, for a request that could not be answered.
pub(crate) fn error_reply(request: &Message, ename: &str, evalue: &str) -> Message {
    let kind = request.header.msg_type.strip_suffix("_request").unwrap_or(&request.header.msg_type);
    Message::reply_to(request, &format!("{kind}_reply"), json!({ "status": "error", "ename": ename, "evalue": evalue, "traceback": [format!("{ename}: {evalue}")] }))
}

/// Runs the kernel described by `connection_file` until a shutdown request.
pub fn run(connection_file: &Path, options: ScriptOptions) -> Result<(), String> {
    let info = ConnectionInfo::read(connection_file)?;
    // SAFETY: dup of this process's stderr, kept as the kernel's log.
    let log_fd = unsafe { libc::dup(2) };
    if log_fd >= 0 {
        use std::os::fd::FromRawFd;
        // SAFETY: a fresh descriptor owned by this File only.
        let _ = LOG.set(std::sync::Mutex::new(unsafe { std::fs::File::from_raw_fd(log_fd) }));
    }
    exit_with_parent();
    let (sender, incoming) = sockets::start(&info)?;
    let current = CurrentRequest::default();
    let captured = CapturedOutput::start(sender.clone(), current.clone()).map_err(|e| format!("cannot capture the kernel's output: {e}"))?;
    {
        let (sender, current) = (sender.clone(), current.clone());
        crate::progress::draw_into(move || Box::new(NotebookTerm::new(sender.clone(), current.clone())));
    }
    let notebook = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    let mut kernel = Kernel { repl: Repl::new(&format!("notebook in {notebook}"), options), sender, current, captured, history: vec![], session: wire::new_id() };
    kernel.publish_starting();
    log(&format!("ready ({})", connection_file.display()));
    for request in incoming {
        match request {
            Incoming::Shutdown => break,
            Incoming::Malformed { request, problem } => {
                log(&format!("answered a malformed {}: {problem}", request.header.msg_type));
                kernel.sender.send(Outgoing::Shell(error_reply(&request, "MalformedMessage", &problem)));
            }
            Incoming::Shell(request) => {
                if request.header.msg_type == "shutdown_request" {
                    // Old clients send it on the shell channel.
                    let restart = request.content.get("restart").and_then(Value::as_bool).unwrap_or(false);
                    kernel.sender.send(Outgoing::Shell(Message::reply_to(&request, "shutdown_reply", json!({ "status": "ok", "restart": restart }))));
                    break;
                }
                kernel.handle(request);
            }
        }
    }
    kernel.captured.flush();
    log("shut down");
    Ok(())
}

/// Ends the kernel when the Jupyter process that started it is gone (this process is
/// reparented), as ipykernel's parent poller does: a server killed with -9 sends no shutdown
/// request, and its kernels must not go on holding memory. Only under Jupyter (which sets
/// `JPY_PARENT_PID`), so a kernel started by hand in the background stays.
fn exit_with_parent() {
    if std::env::var_os("JPY_PARENT_PID").is_none() {
        return;
    }
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    let _ = std::thread::Builder::new().name("kernel-parent".into()).spawn(move || loop {
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            log(&format!("the Jupyter process {parent} that started this kernel is gone; ending"));
            std::process::exit(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    });
}

struct Kernel {
    repl: Repl,
    sender: Sender,
    current: CurrentRequest,
    captured: CapturedOutput,
    /// Every executed cell's code, in order (history_request).
    history: Vec<String>,
    session: String,
}

impl Kernel {
    fn iopub(&self, request: &Message, msg_type: &str, content: Value) {
        self.sender.send(Outgoing::IoPub(Message::reply_to(request, msg_type, content)));
    }

    fn publish_starting(&self) {
        self.sender.send(Outgoing::IoPub(Message::new(&self.session, "status", json!({ "execution_state": "starting" }))));
    }

    /// One shell request: busy, the work and its reply, idle.
    fn handle(&mut self, request: Message) {
        if !request.header.msg_type.ends_with("_request") {
            // comm_open and the like (widgets): nothing here answers them, and no reply exists.
            log(&format!("ignored a '{}' message", request.header.msg_type));
            return;
        }
        self.iopub(&request, "status", json!({ "execution_state": "busy" }));
        let reply = crate::firewall::catch_any("the kernel's request", || match request.header.msg_type.as_str() {
            "execute_request" => self.execute(&request),
            "kernel_info_request" => Message::reply_to(&request, "kernel_info_reply", kernel_info()),
            "complete_request" => self.complete(&request),
            "inspect_request" => self.inspect(&request),
            "is_complete_request" => self.is_complete(&request),
            "history_request" => self.history(&request),
            "comm_info_request" => Message::reply_to(&request, "comm_info_reply", json!({ "status": "ok", "comms": {} })),
            other => {
                log(&format!("no handler for '{other}'"));
                error_reply(&request, "UnknownRequest", &format!("huelab's kernel does not answer '{other}'"))
            }
        })
        .unwrap_or_else(|e| error_reply(&request, "InternalError", &e.to_string()));
        self.sender.send(Outgoing::Shell(reply));
        self.iopub(&request, "status", json!({ "execution_state": "idle" }));
    }

    fn execute(&mut self, request: &Message) -> Message {
        let Some(code) = request.str_field("code").map(str::to_owned) else {
            return error_reply(request, "MalformedMessage", "execute_request without a 'code' string");
        };
        let silent = request.content.get("silent").and_then(Value::as_bool).unwrap_or(false);
        let store = request.content.get("store_history").and_then(Value::as_bool).unwrap_or(!silent) && !silent;
        if store {
            self.history.push(code.clone());
        }
        let count = self.history.len();
        if !silent {
            self.iopub(request, "execute_input", json!({ "code": code, "execution_count": count }));
        }
        self.current.set(Some(request.clone()));
        let outcome = crate::firewall::catch_any("the cell", || self.repl.execute(&code));
        // Everything the cell printed goes out before its result and its reply.
        self.captured.flush();
        self.current.set(None);
        let interrupted = crate::interrupt::requested();
        crate::interrupt::clear();
        let error = match outcome {
            Ok(Ok(value)) => {
                if let (false, Some(shown)) = (silent, crate::script::display(&value)) {
                    let mut data = json!({ "text/plain": shown.plain });
                    if let Some(html) = shown.html {
                        data["text/html"] = json!(html);
                    }
                    if let Some(png) = shown.png {
                        data["image/png"] = json!(crate::notebook::base64(&png));
                    }
                    self.iopub(request, "execute_result", json!({ "execution_count": count, "data": data, "metadata": {} }));
                }
                return Message::reply_to(request, "execute_reply", json!({ "status": "ok", "execution_count": count, "user_expressions": {}, "payload": [] }));
            }
            Ok(Err(script_error)) => script_error.to_string(),
            Err(panic) => panic.to_string(),
        };
        let ename = if interrupted { "Interrupted" } else { "ScriptError" };
        let failure = json!({ "ename": ename, "evalue": error, "traceback": [format!("{ename}: {error}")] });
        if !silent {
            self.iopub(request, "error", failure.clone());
        }
        let mut content = failure;
        content["status"] = json!("error");
        content["execution_count"] = json!(count);
        Message::reply_to(request, "execute_reply", content)
    }

    fn complete(&self, request: &Message) -> Message {
        let (Some(code), Some(cursor)) = (request.str_field("code"), request.content.get("cursor_pos").and_then(Value::as_u64)) else {
            return error_reply(request, "MalformedMessage", "complete_request needs 'code' and 'cursor_pos'");
        };
        let (start, end, prefix, after_dot) = word_at(code, cursor as usize);
        let mut matches: Vec<String> = crate::script::completions(&prefix, after_dot, &self.repl);
        matches.dedup();
        Message::reply_to(request, "complete_reply", json!({ "status": "ok", "matches": matches, "cursor_start": start, "cursor_end": end, "metadata": {} }))
    }

    fn inspect(&self, request: &Message) -> Message {
        let (Some(code), Some(cursor)) = (request.str_field("code"), request.content.get("cursor_pos").and_then(Value::as_u64)) else {
            return error_reply(request, "MalformedMessage", "inspect_request needs 'code' and 'cursor_pos'");
        };
        let (_, _, word, _) = word_around(code, cursor as usize);
        let docs = crate::script::describe(&word);
        let found = !docs.is_empty();
        let data = if found { json!({ "text/plain": docs }) } else { json!({}) };
        Message::reply_to(request, "inspect_reply", json!({ "status": "ok", "found": found, "data": data, "metadata": {} }))
    }

    fn is_complete(&self, request: &Message) -> Message {
        let Some(code) = request.str_field("code") else {
            return error_reply(request, "MalformedMessage", "is_complete_request without a 'code' string");
        };
        let content = match self.repl.completeness(code) {
            Completeness::Complete => json!({ "status": "complete" }),
            Completeness::Incomplete => json!({ "status": "incomplete", "indent": "    " }),
            Completeness::Invalid => json!({ "status": "invalid" }),
        };
        Message::reply_to(request, "is_complete_reply", content)
    }

    fn history(&self, request: &Message) -> Message {
        let n = request.content.get("n").and_then(Value::as_u64).map_or(self.history.len(), |n| n as usize);
        let entries: Vec<Value> = self.history.iter().enumerate().skip(self.history.len().saturating_sub(n)).map(|(i, code)| json!([0, i + 1, code])).collect();
        Message::reply_to(request, "history_reply", json!({ "status": "ok", "history": entries }))
    }
}

/// Byte offsets of the identifier that ends at the cursor (a character offset, as Jupyter
/// counts), the identifier, and whether a `.` comes right before it (a method or property).
fn word_at(code: &str, cursor: usize) -> (usize, usize, String, bool) {
    let chars: Vec<char> = code.chars().collect();
    let end = cursor.min(chars.len());
    let mut start = end;
    while start > 0 && (chars[start - 1].is_alphanumeric() || chars[start - 1] == '_') {
        start -= 1;
    }
    let after_dot = start > 0 && chars[start - 1] == '.';
    (start, end, chars[start..end].iter().collect(), after_dot)
}

/// The whole identifier the cursor is in or just after (for inspection).
fn word_around(code: &str, cursor: usize) -> (usize, usize, String, bool) {
    let chars: Vec<char> = code.chars().collect();
    let (start, mut end, _, after_dot) = word_at(code, cursor);
    while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
        end += 1;
    }
    // `train(|` inspects `train`: step back over an opening bracket.
    if start == end && cursor > 0 {
        let before: String = chars[..cursor.min(chars.len())].iter().collect();
        let trimmed = before.trim_end().trim_end_matches('(');
        if trimmed.len() < before.len() {
            return word_at(trimmed, trimmed.chars().count());
        }
    }
    (start, end, chars[start..end].iter().collect(), after_dot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_at_the_cursor_is_found() {
        assert_eq!(word_at("let d = data", 12), (8, 12, "data".into(), false));
        assert_eq!(word_at("d.spl", 5), (2, 5, "spl".into(), true));
        assert_eq!(word_at("", 0), (0, 0, String::new(), false));
        assert_eq!(word_around("train(data", 2).2, "train");
        assert_eq!(word_around("train(", 6).2, "train");
    }
}
