//! The session's connection to Jupyter, served by a small tokio runtime on a thread of its own:
//! control (interrupt, shutdown, kernel info, debug requests about breakpoints) is answered at
//! once even while a cell runs, shell requests go to the session's thread, and everything the
//! session sends goes out through one queue so messages keep their order. The connection is
//! either the five sockets bound here, or the pipe to the front process that binds them
//! ([`Transport`]).
use std::sync::mpsc;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use zeromq::{SocketRecv, SocketSend, XPubSocket};

use std::sync::Arc;

use super::connection::ConnectionInfo;
use super::debug::KernelDebugger;
use super::relay::{self, Channel};
use super::serving::{self, to_zmq};
use super::wire::{Message, Signer, WireError};
use super::log;

/// Where an outgoing message goes.
#[derive(Debug)]
pub enum Outgoing {
    Shell(Message),
    IoPub(Message),
    /// A reply on the control channel (`debug_reply`s the session's thread answers).
    Control(Message),
    /// Answered once everything queued before it has been sent.
    Flushed(mpsc::Sender<()>),
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

    /// Waits (at most `limit`) until everything sent so far has left, so that a process about
    /// to end does not lose its last replies (the shutdown reply).
    pub fn flush(&self, limit: std::time::Duration) {
        let (done, flushed) = mpsc::channel();
        self.send(Outgoing::Flushed(done));
        let _ = flushed.recv_timeout(limit);
    }
}

/// How the session reaches Jupyter.
#[derive(Debug)]
pub enum Transport {
    /// Bind the connection file's sockets in this process (`huelab kernel --connection-file`).
    Bind,
    /// Behind the front process `huelab-kernel`, which holds the sockets: records on this
    /// stream (see [`super::relay`]).
    Relay(std::os::unix::net::UnixStream),
}

/// Raw frames as they came from a client, one message each.
type Frames = Vec<Bytes>;

/// Serves `info`'s connection through `transport` until the process ends; returns the
/// session's side once requests can come in.
pub fn start(info: &ConnectionInfo, transport: Transport, debugger: Arc<KernelDebugger>) -> Result<(Sender, mpsc::Receiver<Incoming>), String> {
    let (to_session, incoming) = mpsc::channel();
    let (queue, outgoing) = unbounded_channel();
    let (started_tx, started_rx) = mpsc::channel();
    let signer = Signer::new(&info.key);
    let info = info.clone();
    let sender = Sender { queue };
    let control_sender = sender.clone();
    std::thread::Builder::new()
        .name("kernel-sockets".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = started_tx.send(Err(format!("cannot start the kernel's I/O runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let (shell_tx, shell_rx) = unbounded_channel();
                let (control_tx, control_rx) = unbounded_channel();
                let shell = read_shell(shell_rx, signer.clone(), to_session.clone());
                let control = serve_control(control_rx, signer.clone(), to_session.clone(), control_sender, debugger);
                let requests = async { tokio::join!(shell, control) };
                match transport {
                    Transport::Bind => {
                        let endpoints = match serving::bind(&info).await {
                            Ok(endpoints) => endpoints,
                            Err(e) => {
                                let _ = started_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = started_tx.send(Ok(()));
                        tokio::join!(requests, serve_sockets(endpoints, shell_tx, control_tx, outgoing, signer));
                    }
                    Transport::Relay(stream) => {
                        let stream = match stream.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(stream)) {
                            Ok(stream) => stream,
                            Err(e) => {
                                let _ = started_tx.send(Err(format!("cannot use the pipe to the kernel's front process: {e}")));
                                return;
                            }
                        };
                        let _ = started_tx.send(Ok(()));
                        let (from_front, to_front) = stream.into_split();
                        tokio::select! {
                            _ = requests => {}
                            () = read_relay(from_front, shell_tx, control_tx) => log("the kernel's front process closed the pipe; ending"),
                            () = write_relay(outgoing, to_front, signer) => {}
                        }
                        // The front is gone (its pipe ended or broke): so is every client.
                        let _ = to_session.send(Incoming::Shutdown);
                    }
                }
            });
        })
        .map_err(|e| format!("cannot start the kernel's I/O thread: {e}"))?;
    started_rx.recv().map_err(|_| "the kernel's I/O thread ended before it served its connection".to_owned())??;
    Ok((sender, incoming))
}

/// The connection file's sockets, bound here: heartbeats, requests in, everything out.
async fn serve_sockets(endpoints: serving::Endpoints, shell_tx: UnboundedSender<Frames>, control_tx: UnboundedSender<Frames>, outgoing: UnboundedReceiver<Outgoing>, signer: Signer) {
    let (shell_send, shell_recv) = endpoints.shell.split();
    // Control replies go out through the one queue too: the session's thread answers some
    // debug requests.
    let (control_send, control_recv) = endpoints.control.split();
    let _stdin = endpoints.stdin;
    tokio::join!(
        serving::echo_heartbeats(endpoints.heartbeat),
        pump(shell_recv, shell_tx),
        pump(control_recv, control_tx),
        write_out(outgoing, shell_send, control_send, endpoints.iopub, signer),
    );
}

/// Hands each message a socket receives to its reader.
async fn pump(mut socket: zeromq::RouterRecvHalf, to: UnboundedSender<Frames>) {
    while let Ok(raw) = socket.recv().await {
        if to.send(raw.into_vec()).is_err() {
            break;
        }
    }
}

/// Hands each request the front forwards to its reader; returns when the pipe ends or breaks.
async fn read_relay(mut from_front: tokio::net::unix::OwnedReadHalf, shell_tx: UnboundedSender<Frames>, control_tx: UnboundedSender<Frames>) {
    loop {
        match relay::read(&mut from_front).await {
            Ok(Some((Channel::Shell, frames))) => {
                let _ = shell_tx.send(frames);
            }
            Ok(Some((Channel::Control, frames))) => {
                let _ = control_tx.send(frames);
            }
            Ok(Some((other, _))) => log(&format!("the front process sent a record for {other:?}; ignored")),
            Ok(None) => return,
            Err(e) => {
                log(&format!("the pipe from the kernel's front process broke: {e}"));
                return;
            }
        }
    }
}

/// Sends everything the session says to the front, signed and addressed as on the wire, in
/// order; the first record says the session is ready.
async fn write_relay(mut outgoing: UnboundedReceiver<Outgoing>, mut to_front: tokio::net::unix::OwnedWriteHalf, signer: Signer) {
    if relay::write(&mut to_front, Channel::Ready, &[]).await.is_err() {
        return;
    }
    while let Some(message) = outgoing.recv().await {
        let (channel, message) = match message {
            Outgoing::Shell(m) => (Channel::Shell, m),
            Outgoing::Control(m) => (Channel::Control, m),
            Outgoing::IoPub(m) => (Channel::IoPub, serving::with_iopub_topic(m)),
            Outgoing::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = relay::write(&mut to_front, channel, &message.to_frames(&signer)).await {
            log(&format!("cannot send to the kernel's front process: {e}"));
            return;
        }
    }
}

/// Reads one request; logs and drops what cannot be answered (no header, bad signature).
fn read(raw: Frames, signer: &Signer, channel: &str) -> Option<Result<Message, (Message, String)>> {
    match Message::from_frames(raw, signer) {
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

async fn read_shell(mut shell: UnboundedReceiver<Frames>, signer: Signer, to_session: mpsc::Sender<Incoming>) {
    while let Some(raw) = shell.recv().await {
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
async fn serve_control(mut control: UnboundedReceiver<Frames>, signer: Signer, to_session: mpsc::Sender<Incoming>, out: Sender, debugger: Arc<KernelDebugger>) {
    while let Some(raw) = control.recv().await {
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
            "kernel_info_request" => (Some(Message::reply_to(&request, "kernel_info_reply", serving::kernel_info())), false),
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

async fn write_out(mut outgoing: UnboundedReceiver<Outgoing>, mut shell: zeromq::RouterSendHalf, mut control: zeromq::RouterSendHalf, mut iopub: XPubSocket, signer: Signer) {
    loop {
        let message = tokio::select! {
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => break,
            },
            subscription = iopub.recv() => match subscription {
                Ok(frames) => match serving::welcome(frames) {
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
            Outgoing::IoPub(m) => iopub.send(to_zmq(serving::with_iopub_topic(m).to_frames(&signer))).await,
            Outgoing::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = result {
            log(&format!("could not send a message: {e}"));
        }
    }
}
