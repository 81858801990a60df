//! `huelab debug script.rhai`: the Debug Adapter Protocol over stdio, driven by a small DAP
//! client here as an editor's would (initialize, launch, setBreakpoints, configurationDone,
//! stopped, stackTrace, scopes, variables, stepping, evaluate, continue, terminated).
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

/// A guard against a hung adapter, not a measurement.
const HANG: Duration = Duration::from_secs(120);

struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    seq: u64,
    /// Output events seen so far.
    output: String,
}

impl Client {
    fn start(dir: &Path, script: &str) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["debug", script]).current_dir(dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        Client { child, stdin, messages, seq: 0, output: String::new() }
    }

    fn send(&mut self, command: &str, arguments: Value) -> u64 {
        self.seq += 1;
        let body = json!({ "seq": self.seq, "type": "request", "command": command, "arguments": arguments }).to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
        self.seq
    }

    /// The next message for which `wanted` holds (output events are collected on the way).
    fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = self.messages.recv_timeout(HANG).expect("the adapter answered");
            if message["event"] == "output" {
                self.output.push_str(message["body"]["output"].as_str().unwrap_or_default());
            }
            if wanted(&message) {
                return message;
            }
        }
    }

    /// Sends a request and returns its successful response's body.
    fn ok(&mut self, command: &str, arguments: Value) -> Value {
        let seq = self.send(command, arguments);
        let response = self.until(|m| m["type"] == "response" && m["request_seq"] == seq);
        assert_eq!(response["success"], true, "{command}: {response}");
        response["body"].clone()
    }

    fn stopped(&mut self) -> String {
        self.until(|m| m["event"] == "stopped")["body"]["reason"].as_str().unwrap().to_owned()
    }

    /// (file name, line, function) of each frame, innermost first.
    fn frames(&mut self) -> Vec<(String, u64, String)> {
        let body = self.ok("stackTrace", json!({ "threadId": 1 }));
        body["stackFrames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let path = f["source"]["path"].as_str().unwrap_or_default();
                let file = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (file, f["line"].as_u64().unwrap(), f["name"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// The innermost frame's variables, name → value.
    fn locals(&mut self) -> Vec<(String, String)> {
        let scopes = self.ok("scopes", json!({ "frameId": 0 }));
        let reference = scopes["scopes"][0]["variablesReference"].clone();
        let body = self.ok("variables", json!({ "variablesReference": reference }));
        body["variables"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap().to_owned())).collect()
    }

    fn local(&mut self, name: &str) -> String {
        self.locals().into_iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap_or_else(|| panic!("no variable {name}"))
    }

    /// Waits for the end and the adapter's exit status.
    fn finish(mut self) -> (i32, String) {
        let exited = self.until(|m| m["event"] == "exited");
        self.until(|m| m["event"] == "terminated");
        self.ok("disconnect", json!({}));
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), exited["body"]["exitCode"].as_i64().map(|c| c as i32));
        (status.code().unwrap_or(-1), self.output)
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() && length.is_some() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length:") {
            length = n.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A script with a function, a loop and an imported module, in a fresh folder.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("helpers.rhai"), "fn double(x) {\n    let y = x * 2;\n    y\n}\n").unwrap();
    std::fs::write(
        dir.path().join("main.rhai"),
        "import \"helpers\" as h;\nfn square(v) {\n    let s = v * v;\n    s\n}\nlet total = 0;\nfor i in 0..3 {\n    total += square(i);\n}\nlet config = #{ epochs: 3, sizes: [8, 16] };\nlet d = h::double(total);\nprint(`total ${total} doubled ${d}`);\n",
    )
    .unwrap();
    dir
}

#[test]
fn an_editor_sets_breakpoints_in_a_script_and_its_module_and_steps_through() {
    let dir = project();
    let main = dir.path().join("main.rhai").canonicalize().unwrap();
    let helpers = dir.path().join("helpers.rhai").canonicalize().unwrap();
    let mut client = Client::start(dir.path(), "main.rhai");
    let capabilities = client.ok("initialize", json!({ "adapterID": "huelab", "linesStartAt1": true }));
    assert_eq!(capabilities["supportsConfigurationDoneRequest"], true);
    client.until(|m| m["event"] == "initialized");
    client.ok("launch", json!({ "program": "main.rhai" }));
    // A breakpoint on a lone `}` moves to the next line with code; past the end it cannot stop.
    let placed = client.ok("setBreakpoints", json!({ "source": { "path": main }, "breakpoints": [{ "line": 9 }, { "line": 99 }] }));
    assert_eq!((placed["breakpoints"][0]["line"].as_u64(), placed["breakpoints"][0]["verified"].as_bool()), (Some(10), Some(true)), "{placed}");
    assert_eq!(placed["breakpoints"][1]["verified"], false, "{placed}");
    client.ok("setBreakpoints", json!({ "source": { "path": main }, "breakpoints": [{ "line": 8 }] }));
    client.ok("setBreakpoints", json!({ "source": { "path": helpers }, "breakpoints": [{ "line": 3 }] }));
    client.ok("configurationDone", json!({}));

    assert_eq!(client.stopped(), "breakpoint");
    assert_eq!(client.frames(), vec![("main.rhai".into(), 8, "<script>".into())]);
    assert_eq!((client.local("i"), client.local("total")), ("0".into(), "0".into()));

    client.ok("stepIn", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "step");
    assert_eq!(client.frames(), vec![("main.rhai".into(), 3, "square".into()), ("main.rhai".into(), 8, "<script>".into())]);
    client.ok("next", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "step");
    assert_eq!(client.frames()[0].1, 4, "next goes to the function's next line");
    assert_eq!(client.local("s"), "0");
    let arguments = client.ok("scopes", json!({ "frameId": 1 }));
    assert_eq!(arguments["scopes"][0]["name"], "Arguments");

    client.ok("stepOut", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "step");
    // Out of square, the caller's next node is the loop's second turn, before its addition.
    assert_eq!(client.frames().len(), 1, "out of square");
    assert_eq!(client.local("i"), "1");
    let evaluated = client.ok("evaluate", json!({ "expression": "total + 100", "frameId": 0 }));
    assert_eq!(evaluated["result"], "100");

    // The breakpoint line again at the loop's next turn.
    client.ok("continue", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "breakpoint");
    assert_eq!(client.local("i"), "2");

    // No breakpoint left in main.rhai: the next stop is inside the module.
    client.ok("setBreakpoints", json!({ "source": { "path": main }, "breakpoints": [] }));
    client.ok("continue", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "breakpoint");
    assert_eq!(client.frames(), vec![("helpers.rhai".into(), 3, "double".into()), ("main.rhai".into(), 11, "<script>".into())]);
    assert_eq!(client.local("y"), "10");
    let source = client.ok("source", json!({ "source": { "path": helpers } }));
    assert!(source["content"].as_str().unwrap().starts_with("fn double(x)"));

    client.ok("continue", json!({ "threadId": 1 }));
    let (status, output) = client.finish();
    assert_eq!(status, 0);
    assert_eq!(output, "total 5 doubled 10\n", "the script's print arrives as an output event");
}

#[test]
fn stop_on_entry_nested_values_and_a_failing_script() {
    let dir = project();
    std::fs::write(dir.path().join("fails.rhai"), "let config = #{ epochs: 3, sizes: [8, 16] };\nlet x = config.missing;\n").unwrap();
    let mut client = Client::start(dir.path(), "fails.rhai");
    client.ok("initialize", json!({}));
    client.ok("launch", json!({ "stopOnEntry": true }));
    client.ok("configurationDone", json!({}));
    assert_eq!(client.stopped(), "entry");
    assert_eq!(client.frames()[0].1, 1);
    client.ok("next", json!({ "threadId": 1 }));
    assert_eq!(client.stopped(), "step");
    let scopes = client.ok("scopes", json!({ "frameId": 0 }));
    let body = client.ok("variables", json!({ "variablesReference": scopes["scopes"][0]["variablesReference"] }));
    let config = body["variables"].as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap().clone();
    assert_eq!(config["value"], "map of 2 keys");
    let children = client.ok("variables", json!({ "variablesReference": config["variablesReference"] }));
    let names: Vec<&str> = children["variables"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["epochs", "sizes"]);
    let sizes = children["variables"][1]["variablesReference"].clone();
    let elements = client.ok("variables", json!({ "variablesReference": sizes }));
    assert_eq!(elements["variables"][1]["value"], "16");
    // A bad expression is a failed response, not an end of the session.
    let seq = client.send("evaluate", json!({ "expression": "config.", "frameId": 0 }));
    let failed = client.until(|m| m["request_seq"] == seq);
    assert_eq!(failed["success"], false);
    client.ok("continue", json!({ "threadId": 1 }));
    let (status, output) = client.finish();
    assert_eq!(status, 1);
    assert!(output.contains("fails.rhai:2") && output.contains("missing"), "{output}");
}

#[test]
fn garbage_on_stdin_ends_the_adapter_with_a_message_not_a_panic() {
    let dir = project();
    for garbage in ["Content-Length: nope\r\n\r\n", "Content-Length: 5\r\n\r\n{oops", "Content-Length: 99999999999\r\n\r\n"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["debug", "main.rhai"]).current_dir(dir.path()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(garbage.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{garbage:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("huelab debug: "), "{garbage:?}: the problem is told as an output event: {stdout}");
    }
}
