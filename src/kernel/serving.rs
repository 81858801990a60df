//! What both processes that can face Jupyter share: binding the connection file's five sockets,
//! echoing heartbeats, welcoming IOPub subscriptions (JEP 65), the `kernel_info_reply`, and the
//! watch on the Jupyter process that started the kernel.
//!
//! This file is compiled into the library (`huelab kernel` serving the sockets itself) and into
//! the front process `huelab-kernel` (src/bin/huelab-kernel.rs), which must not link the library:
//! that would load libtorch, the very start-up cost the front exists to hide. So it names only
//! its sibling modules (`super::wire`, `super::connection`), never `crate::`.
use bytes::Bytes;
use serde_json::{json, Value};
use zeromq::{RepSocket, RouterSocket, Socket, SocketRecv, SocketSend, XPubSocket, ZmqMessage};

use super::connection::ConnectionInfo;
use super::wire::{self, Message};

/// The five sockets of a connection file, bound.
pub struct Endpoints {
    pub shell: RouterSocket,
    pub control: RouterSocket,
    /// Bound so that clients can connect; huelab never asks for input.
    pub stdin: RouterSocket,
    /// XPUB, not PUB: the kernel sees each subscription and welcomes it (JEP 65), so a client
    /// knows its IOPub is connected without probing with kernel_info requests.
    pub iopub: XPubSocket,
    pub heartbeat: RepSocket,
}

/// Binds every socket of `info`; the error names the socket and its endpoint.
pub async fn bind(info: &ConnectionInfo) -> Result<Endpoints, String> {
    let mut endpoints = Endpoints { shell: RouterSocket::new(), control: RouterSocket::new(), stdin: RouterSocket::new(), iopub: XPubSocket::new(), heartbeat: RepSocket::new() };
    bind_one(&mut endpoints.shell, info, info.shell_port, "shell").await?;
    bind_one(&mut endpoints.control, info, info.control_port, "control").await?;
    bind_one(&mut endpoints.stdin, info, info.stdin_port, "stdin").await?;
    bind_one(&mut endpoints.iopub, info, info.iopub_port, "iopub").await?;
    bind_one(&mut endpoints.heartbeat, info, info.hb_port, "heartbeat").await?;
    Ok(endpoints)
}

async fn bind_one<S: Socket>(socket: &mut S, info: &ConnectionInfo, port: u16, name: &str) -> Result<(), String> {
    let endpoint = info.endpoint(port);
    socket.bind(&endpoint).await.map(drop).map_err(|e| format!("cannot bind the {name} socket to {endpoint}: {e}"))
}

/// Answers every heartbeat with itself, for as long as the process lives.
pub async fn echo_heartbeats(mut heartbeat: RepSocket) {
    while let Ok(ping) = heartbeat.recv().await {
        if heartbeat.send(ping).await.is_err() {
            break;
        }
    }
}

pub fn to_zmq(frames: Vec<Bytes>) -> ZmqMessage {
    ZmqMessage::try_from(frames).expect("a message has frames")
}

/// Gives an IOPub message its topic frame, `kernel.<msg_type>` (a welcome keeps the
/// subscription it answers as its topic).
pub fn with_iopub_topic(mut message: Message) -> Message {
    if message.header.msg_type != "iopub_welcome" {
        message.identities = vec![Bytes::from(format!("kernel.{}", message.header.msg_type).into_bytes())];
    }
    message
}

/// The `iopub_welcome` for a subscription frame (`\x01` + topic) an XPUB socket received;
/// `None` for an unsubscription or anything else.
pub fn welcome(frames: ZmqMessage) -> Option<Message> {
    let frames = frames.into_vec();
    let [frame] = frames.as_slice() else { return None };
    let topic = frame.strip_prefix(b"\x01")?;
    let subscription = std::str::from_utf8(topic).ok()?;
    let mut message = Message::new(&wire::new_id(), "iopub_welcome", json!({ "subscription": subscription }));
    // Sent under the subscribed topic, so that exactly that subscription receives it.
    message.identities = if topic.is_empty() { vec![] } else { vec![Bytes::copy_from_slice(topic)] };
    Some(message)
}

/// `kernel_info_reply`'s content.
pub fn kernel_info() -> Value {
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
        // JupyterLab's debugger (breakpoints in cells, the variables panel): `debug`.
        "debugger": true,
        "banner": format!("huelab {}: Rhai scripts over libtorch and FAISS. `huelab api` lists every function.", env!("CARGO_PKG_VERSION")),
        "help_links": [],
    })
}

/// Ends this process when the process that started it is gone (this one is reparented), as
/// ipykernel's parent poller does: a Jupyter server killed with -9 sends no shutdown request,
/// and its kernels must not go on holding memory. Only under Jupyter (which sets
/// `JPY_PARENT_PID`), so a kernel started by hand in the background stays. Behind the front
/// process, the parent watched is the front.
pub fn exit_with_parent(log: fn(&str)) {
    if std::env::var_os("JPY_PARENT_PID").is_none() {
        return;
    }
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    let _ = std::thread::Builder::new().name("kernel-parent".into()).spawn(move || loop {
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            log(&format!("the process {parent} that started this kernel is gone; ending"));
            std::process::exit(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    });
}
