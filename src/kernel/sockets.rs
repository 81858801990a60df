//! The kernel's five ZeroMQ sockets, served by a small tokio runtime on a thread of their own:
//! heartbeat echoes, control (interrupt, shutdown, kernel info, debug requests about breakpoints)
//! is answered at once even while a cell runs, shell requests go to the session's thread, and everything the session sends goes
//! out through one queue so messages keep their order.
use std::sync::mpsc;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use zeromq::{RepSocket, RouterSocket, Socket, SocketRecv, SocketSend, XPubSocket, ZmqMessage};

use std::sync::Arc;

use super::connection::ConnectionInfo;
use super::debug::KernelDebugger;
use super::wire::{Message, Signer, WireError};
use super::{log, kernel_info};

/// Where an outgoing message goes.
#[derive(Debug)]
pub enum Outgoing {
    Shell(Message),
    IoPub(Message),
    /// A reply on the control channel (`debug_reply`s the session's thread answers).
    Control(Message),
}

/// What the session's thread is asked to do.
#[derive(Debug)]
pub enum Incoming {
    /// A request from the shell channel.
    Shell(Message),
    /// A shell request that could not be read; answer `<kind>_reply` with an error.
    Malformed { request: Message, problem: String },
    /// A `debug_request` only the session's thread can answer (about a stopped cell or the
    /// session's variables); its reply goes out on the control channel.
    Debug(Message),
    /// End the session (a `shutdown_request` was answered on the control channel).
    Shutdown,
}

/// The sending side the session uses; cheap to clone into output and progress threads.
#[derive(Debug, Clone)]
pub struct Sender {
    queue: UnboundedSender<Outgoing>,
}

impl Sender {
    pub fn send(&self, message: Outgoing) {
        // The I/O thread only stops with the process.
        let _ = self.queue.send(message);
    }
}

/// Binds every socket and serves them until the process ends; returns the session's side.
pub fn start(info: &ConnectionInfo, debugger: Arc<KernelDebugger>) -> Result<(Sender, mpsc::Receiver<Incoming>), String> {
    let (to_session, incoming) = mpsc::channel();
    let (queue, outgoing) = unbounded_channel();
    let (bound_tx, bound_rx) = mpsc::channel();
    let info = info.clone();
    let sender = Sender { queue };
    let iopub_sender = sender.clone();
    std::thread::Builder::new()
        .name("kernel-sockets".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("cannot start the kernel's I/O runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(serve(info, to_session, outgoing, iopub_sender, bound_tx, debugger));
        })
        .map_err(|e| format!("cannot start the kernel's I/O thread: {e}"))?;
    bound_rx.recv().map_err(|_| "the kernel's I/O thread ended before binding its sockets".to_owned())??;
    Ok((sender, incoming))
}

async fn serve(info: ConnectionInfo, to_session: mpsc::Sender<Incoming>, outgoing: UnboundedReceiver<Outgoing>, sender: Sender, bound: mpsc::Sender<Result<(), String>>, debugger: Arc<KernelDebugger>) {
    let bind = async {
        let mut shell = RouterSocket::new();
        let mut control = RouterSocket::new();
        let mut stdin = RouterSocket::new();
        // XPUB, not PUB: the kernel sees each subscription and welcomes it (JEP 65), so a client
        // knows its IOPub is connected without probing with kernel_info requests.
        let mut iopub = XPubSocket::new();
        let mut heartbeat = RepSocket::new();
        bind(&mut shell, &info, info.shell_port, "shell").await?;
        bind(&mut control, &info, info.control_port, "control").await?;
        bind(&mut stdin, &info, info.stdin_port, "stdin").await?;
        bind(&mut iopub, &info, info.iopub_port, "iopub").await?;
        bind(&mut heartbeat, &info, info.hb_port, "heartbeat").await?;
        Ok::<_, String>((shell, control, stdin, iopub, heartbeat))
    };
    let (shell, control, stdin, iopub, heartbeat) = match bind.await {
        Ok(sockets) => {
            let _ = bound.send(Ok(()));
            sockets
        }
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    let signer = Signer::new(&info.key);
    let (shell_send, shell_recv) = shell.split();
    // Control replies go out through the one queue too: the session's thread answers some
    // debug requests.
    let (control_send, control_recv) = control.split();
    let _stdin = stdin; // bound so clients can connect; huelab never asks for input.
    tokio::join!(
        echo_heartbeats(heartbeat),
        serve_control(control_recv, signer.clone(), to_session.clone(), sender, debugger),
        read_shell(shell_recv, signer.clone(), to_session),
        write_out(outgoing, shell_send, control_send, iopub, signer),
    );
}

async fn bind<S: Socket>(socket: &mut S, info: &ConnectionInfo, port: u16, name: &str) -> Result<(), String> {
    let endpoint = info.endpoint(port);
    socket.bind(&endpoint).await.map(drop).map_err(|e| format!("cannot bind the {name} socket to {endpoint}: {e}"))
}

async fn echo_heartbeats(mut heartbeat: RepSocket) {
    while let Ok(ping) = heartbeat.recv().await {
        if heartbeat.send(ping).await.is_err() {
            break;
        }
    }
}

/// Reads one request; logs and drops what cannot be answered (no header, bad signature).
fn read(raw: ZmqMessage, signer: &Signer, channel: &str) -> Option<Result<Message, (Message, String)>> {
    match Message::from_frames(raw.into_vec(), signer) {
        Ok(message) => Some(Ok(message)),
        Err(WireError::BadSignature) => {
            log(&format!("{channel}: dropped a message with a bad signature (not executed)"));
            None
        }
        Err(WireError::Unreadable { part, problem, request }) => {
            // The header is readable: answer the request with an error.
            Some(Err((*request, format!("the {part} is not valid JSON: {problem}"))))
        }
        Err(e) => {
            log(&format!("{channel}: dropped a malformed message: {e}"));
            None
        }
    }
}

async fn read_shell(mut shell: zeromq::RouterRecvHalf, signer: Signer, to_session: mpsc::Sender<Incoming>) {
    while let Ok(raw) = shell.recv().await {
        let incoming = match read(raw, &signer, "shell") {
            None => continue,
            Some(Ok(message)) => Incoming::Shell(message),
            Some(Err((request, problem))) => Incoming::Malformed { request, problem },
        };
        if to_session.send(incoming).is_err() {
            break;
        }
    }
}

/// Control requests are answered here, on the I/O thread, so they work while a cell runs;
/// debug requests about a stopped cell or the session's variables go to the session's thread.
async fn serve_control(mut control: zeromq::RouterRecvHalf, signer: Signer, to_session: mpsc::Sender<Incoming>, out: Sender, debugger: Arc<KernelDebugger>) {
    while let Ok(raw) = control.recv().await {
        let request = match read(raw, &signer, "control") {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err((request, problem))) => {
                out.send(Outgoing::Control(super::error_reply(&request, "MalformedMessage", &problem)));
                continue;
            }
        };
        let busy = |state: &str| Message::reply_to(&request, "status", json!({ "execution_state": state }));
        out.send(Outgoing::IoPub(busy("busy")));
        let kind = request.header.msg_type.as_str();
        let (reply, shutdown) = match kind {
            "interrupt_request" => {
                crate::interrupt::request();
                (Some(Message::reply_to(&request, "interrupt_reply", json!({ "status": "ok" }))), false)
            }
            "shutdown_request" => {
                let restart = request.content.get("restart").and_then(|r| r.as_bool()).unwrap_or(false);
                // A running cell stops at its next batch or operation.
                crate::interrupt::request();
                (Some(Message::reply_to(&request, "shutdown_reply", json!({ "status": "ok", "restart": restart }))), true)
            }
            "kernel_info_request" => (Some(Message::reply_to(&request, "kernel_info_reply", kernel_info())), false),
            "debug_request" => match debugger.answer_on_control(&request.content) {
                Some(response) => (Some(Message::reply_to(&request, "debug_reply", response)), false),
                None => {
                    let _ = to_session.send(Incoming::Debug(request.clone()));
                    (None, false)
                }
            },
            other => {
                let problem = format!("the control channel does not answer '{other}'");
                log(&problem);
                (Some(super::error_reply(&request, "UnknownRequest", &problem)), false)
            }
        };
        if let Some(reply) = reply {
            out.send(Outgoing::Control(reply));
        }
        out.send(Outgoing::IoPub(busy("idle")));
        if shutdown {
            let _ = to_session.send(Incoming::Shutdown);
        }
    }
}

fn to_zmq(frames: Vec<Bytes>) -> ZmqMessage {
    ZmqMessage::try_from(frames).expect("a message has frames")
}

async fn write_out(mut outgoing: UnboundedReceiver<Outgoing>, mut shell: zeromq::RouterSendHalf, mut control: zeromq::RouterSendHalf, mut iopub: XPubSocket, signer: Signer) {
    loop {
        let message = tokio::select! {
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => break,
            },
            subscription = iopub.recv() => match subscription {
                Ok(frames) => match welcome(frames) {
                    Some(message) => Outgoing::IoPub(message),
                    None => continue,
                },
                Err(e) => {
                    log(&format!("iopub: a subscriber's connection failed: {e}"));
                    continue;
                }
            },
        };
        let result = match message {
            Outgoing::Shell(m) => shell.send(to_zmq(m.to_frames(&signer))).await,
            Outgoing::Control(m) => control.send(to_zmq(m.to_frames(&signer))).await,
            Outgoing::IoPub(mut m) => {
                // IOPub's first frame is its topic (a welcome's is the subscription itself).
                if m.header.msg_type != "iopub_welcome" {
                    m.identities = vec![Bytes::from(format!("kernel.{}", m.header.msg_type).into_bytes())];
                }
                iopub.send(to_zmq(m.to_frames(&signer))).await
            }
        };
        if let Err(e) = result {
            log(&format!("could not send a message: {e}"));
        }
    }
}

/// The `iopub_welcome` for a subscription frame (`\x01` + topic) an XPUB socket received;
/// `None` for an unsubscription or anything else.
fn welcome(frames: ZmqMessage) -> Option<Message> {
    let frames = frames.into_vec();
    let [frame] = frames.as_slice() else { return None };
    let topic = frame.strip_prefix(b"\x01")?;
    let subscription = std::str::from_utf8(topic).ok()?;
    let mut message = Message::new(&super::wire::new_id(), "iopub_welcome", json!({ "subscription": subscription }));
    // Sent under the subscribed topic, so that exactly that subscription receives it.
    message.identities = if topic.is_empty() { vec![] } else { vec![Bytes::copy_from_slice(topic)] };
    Some(message)
}
