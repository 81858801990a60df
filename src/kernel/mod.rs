//! `huelab kernel`: a Jupyter kernel for Rhai scripts inside the huelab binary. One script
//! session per kernel ([`crate::script::Repl`]) runs cells on the main thread; the sockets are
//! served on a thread of their own ([`sockets`]), so interrupt and shutdown are answered while a
//! cell runs. The wire format is in [`wire`], the connection file in [`connection`], captured
//! output and progress displays in [`output`], the kernel spec in [`spec`], and `huelab bench
//! kernel` in [`bench`].
pub mod bench;
mod connection;
pub mod debug;
mod output;
mod relay;
mod serving;
mod sockets;
pub mod spec;
pub(crate) mod wire;

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

/// `<kind>_reply` with status `error`, for a request that could not be answered.
pub(crate) fn error_reply(request: &Message, ename: &str, evalue: &str) -> Message {
    let kind = request.header.msg_type.strip_suffix("_request").unwrap_or(&request.header.msg_type);
    Message::reply_to(request, &format!("{kind}_reply"), json!({ "status": "error", "ename": ename, "evalue": evalue, "traceback": [format!("{ename}: {evalue}")] }))
}

/// Where the session's messages go: the connection file's sockets bound by this process, or the
/// front process `huelab-kernel` on this process's standard input (`--relay-stdin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facing {
    Jupyter,
    Front,
}

/// Runs the kernel described by `connection_file` until a shutdown request.
pub fn run(connection_file: &Path, facing: Facing, options: ScriptOptions) -> Result<(), String> {
    let info = ConnectionInfo::read(connection_file)?;
    let transport = match facing {
        Facing::Jupyter => sockets::Transport::Bind,
        Facing::Front => sockets::Transport::Relay(take_stdin_pipe()?),
    };
    // SAFETY: dup of this process's stderr, kept as the kernel's log.
    let log_fd = unsafe { libc::dup(2) };
    if log_fd >= 0 {
        use std::os::fd::FromRawFd;
        // SAFETY: a fresh descriptor owned by this File only.
        let _ = LOG.set(std::sync::Mutex::new(unsafe { std::fs::File::from_raw_fd(log_fd) }));
    }
    serving::exit_with_parent(log);
    let debugger = debug::KernelDebugger::new();
    let (sender, incoming) = sockets::start(&info, transport, debugger.clone())?;
    let inbox = debug::Inbox::new(incoming);
    let current = CurrentRequest::default();
    let captured = CapturedOutput::start(sender.clone(), current.clone()).map_err(|e| format!("cannot capture the kernel's output: {e}"))?;
    {
        let (sender, current) = (sender.clone(), current.clone());
        crate::progress::draw_into(move || Box::new(NotebookTerm::new(sender.clone(), current.clone())));
    }
    let notebook = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    let mut repl = Repl::new(&format!("notebook in {notebook}"), options);
    repl.on_show(output::show_sink(sender.clone(), current.clone(), captured.clone()));
    let stops = debug::KernelStops { debugger: debugger.clone(), inbox: inbox.clone(), sender: sender.clone(), current: current.clone(), captured: captured.clone() };
    repl.enable_debugging(debugger.control.clone(), Box::new(stops));
    let mut kernel = Kernel { repl, sender, current, captured, history: vec![], session: wire::new_id(), inbox, to_abort: vec![], debugger };
    // Behind the front, the front said "starting" when it bound the sockets; saying it again
    // now would only make clients wait for IOPub to go quiet once more.
    if facing == Facing::Jupyter {
        kernel.publish_starting();
    }
    log(&format!("ready ({})", connection_file.display()));
    while let Some(request) = kernel.inbox.next() {
        if !kernel.serve(request, false) {
            break;
        }
        if !kernel.serve_aborted() {
            break;
        }
    }
    kernel.captured.flush();
    kernel.debugger.remove_dumped_cells();
    kernel.sender.flush(std::time::Duration::from_secs(2));
    log("shut down");
    Ok(())
}

/// The pipe to the front process, which the front passes as this process's standard input:
/// taken to a descriptor of its own that the processes a cell starts do not inherit, with
/// /dev/null as standard input in its place.
fn take_stdin_pipe() -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::fd::FromRawFd;
    // SAFETY: duplicates descriptor 0 to a new close-on-exec descriptor this process owns.
    let pipe = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if pipe < 0 {
        return Err(format!("--relay-stdin: cannot take standard input: {}", std::io::Error::last_os_error()));
    }
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("--relay-stdin: cannot open /dev/null: {e}"))?;
    // SAFETY: dup2 onto descriptor 0, which this process owns; `null` stays open until then.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) } < 0 {
        return Err(format!("--relay-stdin: cannot replace standard input: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `pipe` is a fresh descriptor owned by this stream only.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(pipe) };
    // Not a socket (standard input redirected from a file, say): refused now rather than at
    // the first read.
    stream.peer_addr().map_err(|e| format!("--relay-stdin: standard input is not the front process's socket: {e}"))?;
    Ok(stream)
}

struct Kernel {
    repl: Repl,
    sender: Sender,
    current: CurrentRequest,
    captured: CapturedOutput,
    /// Every cell run with `store_history`, in order: its code and its result's text.
    history: Vec<HistoryEntry>,
    session: String,
    /// The requests for the session's thread, in the order they came (debug requests first).
    inbox: std::rc::Rc<debug::Inbox>,
    /// The requests that were queued when a cell failed with `stop_on_error`.
    to_abort: Vec<Incoming>,
    debugger: std::sync::Arc<debug::KernelDebugger>,
}

/// One line of the session's history (`history_request`), numbered from 1 like the cells.
#[derive(Debug, Clone, PartialEq)]
struct HistoryEntry {
    input: String,
    /// The text of the cell's value, if it had one.
    output: Option<String>,
}

/// The session number history replies carry: this kernel keeps only its own session.
const HISTORY_SESSION: u64 = 1;

impl Kernel {
    fn iopub(&self, request: &Message, msg_type: &str, content: Value) {
        self.sender.send(Outgoing::IoPub(Message::reply_to(request, msg_type, content)));
    }

    fn publish_starting(&self) {
        self.sender.send(Outgoing::IoPub(Message::new(&self.session, "status", json!({ "execution_state": "starting" }))));
    }

    /// The requests queued behind a cell that failed with `stop_on_error`, its execute requests
    /// answered `aborted`, the others served; `false` when the kernel is to shut down.
    fn serve_aborted(&mut self) -> bool {
        for request in std::mem::take(&mut self.to_abort) {
            if !self.serve(request, true) {
                return false;
            }
        }
        true
    }

    /// One message from the session's queue; `false` when the kernel is to shut down. With
    /// `abort_execution`, an execute request is answered `aborted` instead of run.
    fn serve(&mut self, request: Incoming, abort_execution: bool) -> bool {
        match request {
            Incoming::Shutdown => return false,
            Incoming::Malformed { request, problem } => {
                log(&format!("answered a malformed {}: {problem}", request.header.msg_type));
                self.sender.send(Outgoing::Shell(error_reply(&request, "MalformedMessage", &problem)));
            }
            Incoming::Shell(request) if request.header.msg_type == "shutdown_request" => {
                // Old clients send it on the shell channel.
                let restart = request.content.get("restart").and_then(Value::as_bool).unwrap_or(false);
                self.sender.send(Outgoing::Shell(Message::reply_to(&request, "shutdown_reply", json!({ "status": "ok", "restart": restart }))));
                return false;
            }
            Incoming::Debug(request) => {
                let response = debug::answer_idle(&self.debugger, &mut self.repl, &request.content);
                self.sender.send(Outgoing::Control(Message::reply_to(&request, "debug_reply", response)));
            }
            Incoming::Shell(request) => self.handle(request, abort_execution),
        }
        true
    }

    /// One shell message: busy, the work and its reply (requests have one), idle. With
    /// `abort_execution`, an execute request's reply is `aborted`, the cell not run.
    fn handle(&mut self, request: Message, abort_execution: bool) {
        self.iopub(&request, "status", json!({ "execution_state": "busy" }));
        let kind = request.header.msg_type.clone();
        let reply = crate::firewall::catch_any("the kernel's request", || match kind.as_str() {
            "execute_request" if abort_execution => {
                let mut reply = Message::reply_to(&request, "execute_reply", json!({ "status": "aborted" }));
                reply.metadata = json!({ "status": "aborted" });
                Some(reply)
            }
            "execute_request" => Some(self.execute(&request)),
            "kernel_info_request" => Some(Message::reply_to(&request, "kernel_info_reply", serving::kernel_info())),
            "complete_request" => Some(self.complete(&request)),
            "inspect_request" => Some(self.inspect(&request)),
            "is_complete_request" => Some(self.is_complete(&request)),
            "history_request" => Some(self.history(&request)),
            "comm_info_request" => Some(Message::reply_to(&request, "comm_info_reply", json!({ "status": "ok", "comms": {} }))),
            "comm_open" => {
                // No comm targets (widgets) here: closing the comm at once tells the frontend
                // so, where silence would leave it waiting.
                let comm_id = request.content.get("comm_id").cloned().unwrap_or(Value::Null);
                log(&format!("closed a comm for the unknown target {}", request.content.get("target_name").unwrap_or(&Value::Null)));
                self.iopub(&request, "comm_close", json!({ "comm_id": comm_id, "data": {} }));
                None
            }
            other if !other.ends_with("_request") => {
                // comm_msg, comm_close and the like: no reply exists.
                log(&format!("ignored a '{other}' message"));
                None
            }
            other => {
                log(&format!("no handler for '{other}'"));
                Some(error_reply(&request, "UnknownRequest", &format!("huelab's kernel does not answer '{other}'")))
            }
        })
        .unwrap_or_else(|e| Some(error_reply(&request, "InternalError", &e.to_string())));
        if let Some(reply) = reply {
            self.sender.send(Outgoing::Shell(reply));
        }
        self.iopub(&request, "status", json!({ "execution_state": "idle" }));
    }

    fn execute(&mut self, request: &Message) -> Message {
        let Some(code) = request.str_field("code").map(str::to_owned) else {
            return error_reply(request, "MalformedMessage", "execute_request without a 'code' string");
        };
        let flag = |name: &str, default: bool| request.content.get(name).and_then(Value::as_bool).unwrap_or(default);
        let silent = flag("silent", false);
        let store = flag("store_history", !silent) && !silent;
        let stop_on_error = flag("stop_on_error", true);
        if store {
            self.history.push(HistoryEntry { input: code.clone(), output: None });
        }
        let count = self.history.len();
        if !silent {
            self.iopub(request, "execute_input", json!({ "code": code, "execution_count": count }));
        }
        if let Some(name) = help_request(&code) {
            return self.page_help(request, &name, count);
        }
        self.current.set(Some(request.clone()));
        // The file JupyterLab's debugger knows this cell by (its breakpoints name it).
        let path = self.debugger.cell_path(&code);
        for event in self.debugger.place_for_cell(&path, &code) {
            self.iopub(request, "debug_event", event);
        }
        let outcome = crate::firewall::catch_any("the cell", || self.repl.execute_as(&code, Some(path)));
        // Everything the cell printed goes out before its result and its reply.
        self.captured.flush();
        self.current.set(None);
        let interrupted = crate::interrupt::requested();
        crate::interrupt::clear();
        let error = match outcome {
            Ok(Ok(value)) => {
                let mut shown = crate::script::displays(&value);
                if let (false, Some(last)) = (silent, shown.pop()) {
                    // A cell ending in several figures shows each; the last is its result.
                    for data in &shown {
                        self.iopub(request, "display_data", json!({ "data": output::mime_bundle(data), "metadata": {} }));
                    }
                    if store {
                        self.history[count - 1].output = Some(last.plain.clone());
                    }
                    self.iopub(request, "execute_result", json!({ "execution_count": count, "data": output::mime_bundle(&last), "metadata": {} }));
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
        if !silent && stop_on_error {
            // ipykernel's rule: execute requests already queued when a cell fails are answered
            // `aborted`, not run (JupyterLab's "Run All" sends every cell at once). Taken before
            // this cell's reply is sent, so no request sent after seeing the reply is among them.
            self.to_abort.extend(self.inbox.take_queued());
        }
        let mut content = failure;
        content["status"] = json!("error");
        content["execution_count"] = json!(count);
        Message::reply_to(request, "execute_reply", content)
    }

    /// `?name` (or `name?`): what `huelab api` says about `name`, in the pager, as IPython's
    /// `?` does.
    fn page_help(&mut self, request: &Message, name: &str, count: usize) -> Message {
        let docs = crate::script::describe(name);
        if docs.is_empty() {
            let evalue = format!("huelab has no function or property named '{name}' (`huelab api` lists them all)");
            self.iopub(request, "error", json!({ "ename": "NameError", "evalue": evalue, "traceback": [format!("NameError: {evalue}")] }));
            return Message::reply_to(request, "execute_reply", json!({ "status": "error", "execution_count": count, "ename": "NameError", "evalue": evalue, "traceback": [] }));
        }
        let page = json!({ "source": "page", "data": { "text/plain": docs }, "start": 0 });
        Message::reply_to(request, "execute_reply", json!({ "status": "ok", "execution_count": count, "user_expressions": {}, "payload": [page] }))
    }

    fn complete(&self, request: &Message) -> Message {
        let (Some(code), Some(cursor)) = (request.str_field("code"), request.content.get("cursor_pos").and_then(Value::as_u64)) else {
            return error_reply(request, "MalformedMessage", "complete_request needs 'code' and 'cursor_pos'");
        };
        let (start, end, prefix, after_dot) = word_at(code, cursor as usize);
        let context = completion_context(code, start, after_dot);
        let matches = crate::script::completions(&prefix, &context, &self.repl);
        // JupyterLab shows each match's kind and signature beside it.
        let types: Vec<Value> = matches.iter().map(|m| json!({ "start": start, "end": end, "text": m.text, "type": m.kind, "signature": m.signature })).collect();
        let texts: Vec<&str> = matches.iter().map(|m| m.text.as_str()).collect();
        Message::reply_to(request, "complete_reply", json!({ "status": "ok", "matches": texts, "cursor_start": start, "cursor_end": end, "metadata": { "_jupyter_types_experimental": types } }))
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
        let content = &request.content;
        let number = |name: &str| content.get(name).and_then(Value::as_i64);
        let output = content.get("output").and_then(Value::as_bool).unwrap_or(false);
        let lines = history_lines(
            &self.history,
            content.get("hist_access_type").and_then(Value::as_str).unwrap_or("tail"),
            HistoryQuery {
                n: number("n"),
                session: number("session"),
                start: number("start"),
                stop: number("stop"),
                pattern: content.get("pattern").and_then(Value::as_str).unwrap_or("*"),
                unique: content.get("unique").and_then(Value::as_bool).unwrap_or(false),
            },
        );
        let entries: Vec<Value> = lines
            .into_iter()
            .map(|line| {
                let entry = &self.history[line - 1];
                let item = if output { json!([entry.input, entry.output]) } else { json!(entry.input) };
                json!([HISTORY_SESSION, line, item])
            })
            .collect();
        Message::reply_to(request, "history_reply", json!({ "status": "ok", "history": entries }))
    }
}

/// What a `history_request` asks for besides its access type.
#[derive(Debug, Clone, Default)]
struct HistoryQuery<'a> {
    n: Option<i64>,
    session: Option<i64>,
    start: Option<i64>,
    stop: Option<i64>,
    pattern: &'a str,
    unique: bool,
}

/// The line numbers (from 1, ascending) a history request selects, as IPython's history
/// answers: `tail` the last `n` (all when absent), `range` lines `start..stop` of this session
/// (0 and this session's number both mean this one), `search` the lines whose code matches the
/// glob `pattern`, the last `n` of them, with `unique` only the latest of equal codes.
fn history_lines(history: &[HistoryEntry], access: &str, query: HistoryQuery) -> Vec<usize> {
    let all = 1..=history.len();
    let last_n = |lines: Vec<usize>| match query.n {
        Some(n) if n >= 0 => lines[lines.len().saturating_sub(n as usize)..].to_vec(),
        _ => lines,
    };
    match access {
        "range" => {
            if !matches!(query.session, None | Some(0)) && query.session != Some(HISTORY_SESSION as i64) {
                return vec![];
            }
            let start = query.start.unwrap_or(1).max(1) as usize;
            let stop = query.stop.filter(|&s| s > 0).map_or(history.len() + 1, |s| s as usize);
            all.filter(|&line| line >= start && line < stop).collect()
        }
        "search" => {
            let mut lines: Vec<usize> = all.filter(|&line| glob_matches(query.pattern, &history[line - 1].input)).collect();
            if query.unique {
                // Keep each code's latest line.
                let mut seen = std::collections::HashSet::new();
                lines = lines.into_iter().rev().filter(|&line| seen.insert(history[line - 1].input.as_str())).collect();
                lines.reverse();
            }
            last_n(lines)
        }
        _ => last_n(all.collect()),
    }
}

/// Whether `text` matches the glob `pattern` as a whole (sqlite's GLOB, which IPython's history
/// search uses): `*` any run of characters, `?` one character, `[abc]`/`[a-z]`/`[^a]` one of a
/// set; case-sensitive.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative with one backtrack point for the last `*`: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if let Some(next) = (pi < p.len()).then(|| one_char_matches(&p, pi, t[ti])).flatten() {
            pi = next;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// If the pattern element at `at` (`?`, a `[…]` set or a literal) matches `c`, where the next
/// element starts.
fn one_char_matches(p: &[char], at: usize, c: char) -> Option<usize> {
    match p[at] {
        '?' => Some(at + 1),
        '[' => {
            let close = (at + 2..p.len()).find(|&i| p[i] == ']')?;
            let (negated, body) = match p[at + 1] {
                '^' => (true, &p[at + 2..close]),
                _ => (false, &p[at + 1..close]),
            };
            let mut inside = false;
            let mut i = 0;
            while i < body.len() {
                if i + 2 < body.len() && body[i + 1] == '-' {
                    inside |= body[i] <= c && c <= body[i + 2];
                    i += 3;
                } else {
                    inside |= body[i] == c;
                    i += 1;
                }
            }
            (inside != negated).then_some(close + 1)
        }
        literal => (literal == c).then_some(at + 1),
    }
}

/// The name a cell of the form `?name`, `name?` (or with `??`) asks help for.
fn help_request(code: &str) -> Option<String> {
    let code = code.trim();
    let name = code.trim_start_matches('?').trim_end_matches('?').trim();
    let asked = code.starts_with('?') || code.ends_with('?');
    let identifier = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    (asked && identifier).then(|| name.to_owned())
}

/// Where a completion is asked: after `value.` (with the value's name, for its type), inside
/// the options map of a call (`train(d, #{ ep|`), or anywhere else.
fn completion_context(code: &str, word_start: usize, after_dot: bool) -> crate::script::CompletionContext {
    use crate::script::CompletionContext;
    let before: Vec<char> = code.chars().take(word_start).collect();
    if after_dot {
        let receiver_end = before.len() - 1;
        let mut receiver_start = receiver_end;
        while receiver_start > 0 && (before[receiver_start - 1].is_alphanumeric() || before[receiver_start - 1] == '_') {
            receiver_start -= 1;
        }
        return CompletionContext::AfterDot { receiver: before[receiver_start..receiver_end].iter().collect() };
    }
    match enclosing_options_map(&before) {
        Some(function) => CompletionContext::OptionKey { function },
        None => CompletionContext::Anywhere,
    }
}

/// The function whose options map `#{ … }` the end of `before` is in, at key position (right
/// after `#{` or a `,`), if any: `train(d, #{ epochs: 3, ` → `train`.
fn enclosing_options_map(before: &[char]) -> Option<String> {
    // The last non-space character before the word opens the map or separates its entries.
    let last = before.iter().rposition(|c| !c.is_whitespace())?;
    if !(before[last] == ',' || (before[last] == '{' && last > 0 && before[last - 1] == '#')) {
        return None;
    }
    // Walk back over balanced brackets to the `#{` that is still open, then to its call.
    let mut depth = 0i32;
    let mut i = last + 1;
    while i > 0 {
        i -= 1;
        match before[i] {
            '}' | ')' | ']' => depth += 1,
            '(' | '[' if depth == 0 => return None,
            '(' | '[' => depth -= 1,
            '{' if depth == 0 => {
                if i == 0 || before[i - 1] != '#' {
                    return None;
                }
                return function_before_paren(before, i - 1);
            }
            '{' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The name of the call whose `(` is the nearest unclosed one before `map_start` (the `#` of
/// the options map), looking back from `map_start`.
fn function_before_paren(before: &[char], map_start: usize) -> Option<String> {
    let mut depth = 0i32;
    let mut i = map_start;
    while i > 0 {
        i -= 1;
        match before[i] {
            ')' | ']' | '}' => depth += 1,
            '(' if depth == 0 => {
                let end = i;
                let mut start = end;
                while start > 0 && (before[start - 1].is_alphanumeric() || before[start - 1] == '_') {
                    start -= 1;
                }
                return (start < end).then(|| before[start..end].iter().collect());
            }
            '(' | '[' | '{' => depth -= 1,
            _ => {}
        }
    }
    None
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

    #[test]
    fn globs_match_as_sqlite_glob_does() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("6 ?*", "6 * 7", true),
            ("6 ?*", "16 * 7", false),
            ("*train(*", "let r = train(d, #{});", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[", "[", false),
            ("Train", "train", false),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} vs {text}");
        }
        // Many stars against a long miss stays fast (no exponential backtracking).
        assert!(!glob_matches(&"*a".repeat(30), &"a".repeat(29)));
    }

    #[test]
    fn history_answers_tail_range_and_search_as_ipython_does() {
        let history: Vec<HistoryEntry> = ["1 + 1", "let x = 2;", "1 + 1", "x * 3"].iter().map(|c| HistoryEntry { input: c.to_string(), output: None }).collect();
        let query = |pattern| HistoryQuery { pattern, ..HistoryQuery::default() };
        assert_eq!(history_lines(&history, "tail", HistoryQuery { n: Some(2), ..query("*") }), vec![3, 4]);
        assert_eq!(history_lines(&history, "tail", query("*")), vec![1, 2, 3, 4]);
        assert_eq!(history_lines(&history, "range", HistoryQuery { session: Some(1), start: Some(2), stop: Some(3), ..query("*") }), vec![2]);
        assert_eq!(history_lines(&history, "range", HistoryQuery { session: Some(0), start: Some(3), ..query("*") }), vec![3, 4]);
        assert_eq!(history_lines(&history, "range", HistoryQuery { session: Some(7), ..query("*") }), Vec::<usize>::new());
        assert_eq!(history_lines(&history, "search", query("1 *")), vec![1, 3]);
        assert_eq!(history_lines(&history, "search", HistoryQuery { unique: true, ..query("*") }), vec![2, 3, 4]);
        assert_eq!(history_lines(&history, "search", HistoryQuery { n: Some(1), ..query("*1") }), vec![3]);
    }

    #[test]
    fn help_cells_and_option_map_positions_are_recognised() {
        assert_eq!(help_request("?train"), Some("train".into()));
        assert_eq!(help_request("  split?? "), Some("split".into()));
        assert_eq!(help_request("let x = a ? b : c"), None);
        assert_eq!(help_request("?"), None);
        let at = |code: &str| enclosing_options_map(&code.chars().collect::<Vec<_>>());
        assert_eq!(at("train(d, #{ "), Some("train".into()));
        assert_eq!(at("let r = train(d, #{ epochs: 3, "), Some("train".into()));
        assert_eq!(at("train(d, #{ optimizer: #{ lr: 1, "), None, "a nested map's keys are not train's");
        assert_eq!(at("compare([a, b], #{ folds: [1, 2], "), Some("compare".into()));
        assert_eq!(at("train(d, #{ epochs: "), None, "a value, not a key");
        assert_eq!(at("let m = #{ "), None);
        assert_eq!(at("f(g(1), "), None);
    }
}
