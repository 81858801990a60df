//! `huelab debug script.rhai [key=value…]`: a debug adapter on stdin/stdout (DAP's framing,
//! `Content-Length` headers), so an editor's generic DAP client can set breakpoints in a
//! `.rhai` file and step through it. The script runs on the main thread once the client sent
//! `configurationDone`; a reader thread answers breakpoint and session requests at once and
//! hands the rest to the script's thread. What the script prints arrives as `output` events:
//! standard output belongs to the protocol.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::{answer_any_time, answer_stopped, command, not_stopped, Sequence};
use crate::script::{DebugControl, DebugHook, Resume, ScriptOptions, ScriptRunner, Stop, StopHandler};

/// The largest message a client may send (a `setBreakpoints` of a huge file is a few KB).
const MAX_MESSAGE: usize = 16 << 20;

/// What the reader thread hands the script's thread.
enum FromClient {
    /// `configurationDone`: breakpoints are set, the script may start.
    Start,
    /// A request only the script's thread answers.
    Request(Value),
    /// `disconnect`, or the client's end of stdin closed.
    Gone,
}

/// Writes DAP messages on the descriptor that was standard output.
#[derive(Clone)]
struct Client {
    out: Arc<Mutex<std::fs::File>>,
    sequence: Arc<Sequence>,
}

impl Client {
    fn send(&self, message: &Value) {
        let body = message.to_string();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A client that went away: nothing left to tell it.
        let _ = write!(out, "Content-Length: {}\r\n\r\n{body}", body.len()).and_then(|_| out.flush());
    }

    fn output(&self, category: &str, text: &str) {
        self.send(&self.sequence.event("output", json!({ "category": category, "output": text })));
    }
}

/// Runs `script` under a DAP client on stdio; the script's exit status (0 when it succeeded).
pub fn run(script: &Path, args: BTreeMap<String, String>, options: ScriptOptions) -> Result<i32, String> {
    let (protocol, printed) = take_stdout()?;
    let client = Client { out: Arc::new(Mutex::new(protocol)), sequence: Arc::new(Sequence::default()) };
    let forwarder = {
        let client = client.clone();
        std::thread::Builder::new().name("dap-output".into()).spawn(move || forward_output(printed, client)).map_err(|e| format!("cannot start the output thread: {e}"))?
    };
    let output = Output { forwarder };
    let control = DebugControl::default();
    let stop_on_entry = Arc::new(AtomicBool::new(false));
    let (to_script, from_client) = mpsc::channel();
    {
        let (client, control, stop_on_entry) = (client.clone(), control.clone(), stop_on_entry.clone());
        std::thread::Builder::new().name("dap-reader".into()).spawn(move || read_requests(client, control, stop_on_entry, to_script)).map_err(|e| format!("cannot start the reader thread: {e}"))?;
    }
    let from_client = Rc::new(from_client);
    // Wait for the client's configuration (breakpoints) before the first statement.
    loop {
        match from_client.recv() {
            Ok(FromClient::Start) => break,
            Ok(FromClient::Request(request)) => client.send(&not_stopped(&client.sequence, &request)),
            Ok(FromClient::Gone) | Err(_) => return Ok(0),
        }
    }
    let mut runner = match ScriptRunner::open_with(script, args, options) {
        Ok(runner) => runner,
        Err(e) => return Ok(finish(&client, &from_client, output, Err(e.to_string()))),
    };
    let hook = DebugHook::new(control.clone(), Box::new(ClientStops { client: client.clone(), control, from_client: from_client.clone() }), runner.module_files());
    hook.stop_on_entry(stop_on_entry.load(Ordering::Relaxed));
    runner.attach_debugger(hook);
    let outcome = runner.run().map_err(|e| e.to_string());
    Ok(finish(&client, &from_client, output, outcome))
}

/// The thread that turns what the process prints into output events.
struct Output {
    forwarder: std::thread::JoinHandle<()>,
}

impl Output {
    /// Everything printed so far has reached the client: standard output is closed (pointed
    /// at /dev/null), so the forwarder sees the pipe's end after its last line.
    fn drain(self) {
        let _ = std::io::stdout().flush();
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: replaces descriptor 1 with an open descriptor of /dev/null.
            if unsafe { libc::dup2(null.as_raw_fd(), 1) } >= 0 {
                let _ = self.forwarder.join();
            }
        }
    }
}

/// Tells the client how the script ended (`exited`, `terminated`) and answers it until it
/// disconnects; the exit status.
fn finish(client: &Client, from_client: &Receiver<FromClient>, output: Output, outcome: Result<(), String>) -> i32 {
    output.drain();
    let status = match outcome {
        Ok(()) => 0,
        Err(e) => {
            client.output("stderr", &format!("error: {e}\n"));
            1
        }
    };
    client.send(&client.sequence.event("exited", json!({ "exitCode": status })));
    client.send(&client.sequence.event("terminated", json!({})));
    // A client that never disconnects is not waited on for ever.
    while let Ok(message) = from_client.recv_timeout(Duration::from_secs(30)) {
        match message {
            FromClient::Request(request) => client.send(&not_stopped(&client.sequence, &request)),
            FromClient::Start => {}
            FromClient::Gone => break,
        }
    }
    status
}

/// The script's side of a stop: requests answered until the client says how to go on.
struct ClientStops {
    client: Client,
    control: DebugControl,
    from_client: Rc<Receiver<FromClient>>,
}

impl StopHandler for ClientStops {
    fn stopped(&self, stop: &mut Stop<'_>) -> Resume {
        let _ = std::io::stdout().flush();
        self.client.send(&self.client.sequence.stopped(stop.reason.as_str()));
        loop {
            // Gone or interrupted (Ctrl-C): run on; the interrupt ends the script at its next
            // operation.
            if !self.control.is_attached() || crate::interrupt::requested() {
                return Resume::Continue;
            }
            match self.from_client.recv_timeout(Duration::from_millis(100)) {
                Ok(FromClient::Request(request)) => {
                    let (response, resume) = answer_stopped(&self.client.sequence, stop, &request);
                    self.client.send(&response);
                    if let Some(resume) = resume {
                        self.client.send(&self.client.sequence.continued());
                        return resume;
                    }
                }
                Ok(FromClient::Start) | Err(RecvTimeoutError::Timeout) => {}
                Ok(FromClient::Gone) | Err(RecvTimeoutError::Disconnected) => return Resume::Continue,
            }
        }
    }
}

/// The reader thread: answers what it can, hands the rest on.
fn read_requests(client: Client, control: DebugControl, stop_on_entry: Arc<AtomicBool>, to_script: mpsc::Sender<FromClient>) {
    let mut input = BufReader::new(std::io::stdin());
    loop {
        let request = match read_message(&mut input) {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(problem) => {
                client.output("stderr", &format!("huelab debug: {problem}\n"));
                break;
            }
        };
        if command(&request) == "launch" {
            stop_on_entry.store(request["arguments"]["stopOnEntry"].as_bool().unwrap_or(false), Ordering::Relaxed);
        }
        match answer_any_time(&client.sequence, &control, &request) {
            Some(response) => {
                client.send(&response);
                match command(&request) {
                    // The client sends its breakpoints once it sees this.
                    "initialize" => client.send(&client.sequence.event("initialized", json!({}))),
                    "configurationDone" => {
                        let _ = to_script.send(FromClient::Start);
                    }
                    "disconnect" => break,
                    _ => {}
                }
            }
            None => {
                if to_script.send(FromClient::Request(request)).is_err() {
                    break;
                }
            }
        }
    }
    control.detach();
    let _ = to_script.send(FromClient::Gone);
}

/// One DAP message: `Content-Length: N` (other headers ignored), a blank line, N bytes of JSON.
/// `None` at the end of input.
fn read_message(input: &mut impl BufRead) -> Result<Option<Value>, String> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).map_err(|e| format!("cannot read a message header: {e}"))? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = Some(value.trim().parse::<usize>().map_err(|_| format!("a Content-Length that is not a number: {line:?}"))?);
        }
    }
    let length = length.unwrap_or(0);
    if length > MAX_MESSAGE {
        return Err(format!("a message of {length} bytes (at most {MAX_MESSAGE})"));
    }
    let mut body = vec![0; length];
    input.read_exact(&mut body).map_err(|e| format!("a message shorter than its Content-Length: {e}"))?;
    serde_json::from_slice(&body).map(Some).map_err(|e| format!("a message that is not JSON: {e}"))
}

/// Moves standard output to a new descriptor for the protocol and points descriptor 1 at a
/// pipe whose lines become `output` events (libtorch's and the script's prints alike): the
/// protocol's descriptor and the pipe's reading end.
fn take_stdout() -> Result<(std::fs::File, std::fs::File), String> {
    // SAFETY: plain descriptor calls; each result is checked before use.
    unsafe {
        let protocol = libc::dup(1);
        let mut pipe = [0; 2];
        if protocol < 0 || libc::pipe(pipe.as_mut_ptr()) != 0 || libc::dup2(pipe[1], 1) < 0 {
            return Err(format!("cannot set standard output aside for the protocol: {}", std::io::Error::last_os_error()));
        }
        libc::close(pipe[1]);
        Ok((std::fs::File::from_raw_fd(protocol), std::fs::File::from_raw_fd(pipe[0])))
    }
}

fn forward_output(printed: std::fs::File, client: Client) {
    let mut lines = BufReader::new(printed);
    let mut line = Vec::new();
    while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        client.output("stdout", &String::from_utf8_lossy(&line));
        line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_by_their_length() {
        let text = "Content-Length: 13\r\n\r\n{\"seq\": 1}   Content-Length: 2\r\nX-Other: 1\r\n\r\n{}";
        let mut input = BufReader::new(text.as_bytes());
        assert_eq!(read_message(&mut input).unwrap(), Some(json!({ "seq": 1 })));
        assert_eq!(read_message(&mut input).unwrap(), Some(json!({})));
        assert_eq!(read_message(&mut input).unwrap(), None);
        let mut bad = BufReader::new("Content-Length: x\r\n\r\n".as_bytes());
        assert!(read_message(&mut bad).unwrap_err().contains("not a number"));
        let mut huge = BufReader::new("Content-Length: 999999999999\r\n\r\n".as_bytes());
        assert!(read_message(&mut huge).unwrap_err().contains("at most"));
    }
}
