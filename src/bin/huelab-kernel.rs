//! `huelab-kernel`: the front of huelab's Jupyter kernel, the process Jupyter starts.
//!
//! The huelab binary links libtorch, whose loading and static initialisation take about 0.2 s
//! before `main` runs; a client that connects in that time is refused and retries only after
//! libzmq's 100 ms reconnect interval. This small process binds the connection file's sockets at
//! once, says "starting", answers heartbeats and the `kernel_info_request`s clients send while
//! they wait, and starts the session process (`huelab kernel --relay-stdin …`, given after
//! `--`) beside it, so that libtorch loads while the client connects. Everything else passes
//! through unread: requests to the session and its replies back, on a socket pair that is the
//! session's standard input (src/kernel/relay.rs). The front ends when the session does, with
//! its exit status.
//!
//!     huelab-kernel --connection-file FILE -- /path/to/huelab kernel --connection-file FILE --relay-stdin [SESSION FLAGS]
//!
//! It must not link the huelab library (that would load libtorch): it compiles the few kernel
//! modules it shares with the library from their files.
use std::cell::Cell;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use zeromq::{SocketRecv, SocketSend};

// Shared with the library, which compiles them as `huelab::kernel::*`; not every item is used here.
#[allow(dead_code)]
#[path = "../kernel/connection.rs"]
mod connection;
#[allow(dead_code)]
#[path = "../kernel/relay.rs"]
mod relay;
#[allow(dead_code)]
#[path = "../kernel/serving.rs"]
mod serving;
#[allow(dead_code)]
#[path = "../kernel/wire.rs"]
mod wire;

use relay::Channel;
use wire::{Message, Signer};

#[derive(Parser)]
#[command(name = "huelab-kernel", version, about = "The front of huelab's Jupyter kernel: binds the connection file's sockets at once and relays them to the session process given after --")]
struct Args {
    /// The connection file Jupyter wrote for this kernel.
    #[arg(long, short = 'f', value_name = "FILE")]
    connection_file: PathBuf,
    /// The session process and its arguments (`huelab kernel --connection-file FILE --relay-stdin …`).
    #[arg(last = true, required = true, value_name = "SESSION")]
    session: Vec<OsString>,
}

fn log(line: &str) {
    eprintln!("huelab kernel (front): {line}");
}

fn main() {
    let args = Args::parse();
    // Ctrl-C in a terminal that started this by hand reaches the session too (same process
    // group), which treats it as an interrupt of the running cell; the front goes on.
    // SAFETY: setting a signal's disposition before any thread starts.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    match run(&args) {
        Ok(status) => std::process::exit(exit_code(status)),
        Err(e) => {
            log(&e);
            std::process::exit(1);
        }
    }
}

/// The session's exit status as this process's own (a signal as 128 + its number, as shells do).
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn run(args: &Args) -> Result<ExitStatus, String> {
    let info = connection::ConnectionInfo::read(&args.connection_file)?;
    let (front_end, session_end) = std::os::unix::net::UnixStream::pair().map_err(|e| format!("cannot make the pipe to the session: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    // Bound before the session starts, so that a client's first connection is taken.
    let endpoints = runtime.block_on(serving::bind(&info))?;
    let mut session = Command::new(&args.session[0])
        .args(&args.session[1..])
        .stdin(Stdio::from(OwnedFd::from(session_end)))
        .spawn()
        .map_err(|e| format!("cannot start the session process {}: {e}", args.session[0].to_string_lossy()))?;
    serving::exit_with_parent(log);
    front_end.set_nonblocking(true).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let pipe = tokio::net::UnixStream::from_std(front_end).map_err(|e| e.to_string())?;
        relay_until_the_session_ends(endpoints, pipe, Signer::new(&info.key)).await;
        Ok::<_, String>(())
    })?;
    session.wait().map_err(|e| format!("cannot wait for the session process: {e}"))
}

/// What goes out to clients, in the order it is queued: the session's records as they came,
/// and the front's own messages (signed when sent).
enum ToClients {
    Raw(Channel, Vec<Bytes>),
    Own(Channel, Message),
    /// The session's pipe ended: everything before this has been queued.
    End,
}

async fn relay_until_the_session_ends(endpoints: serving::Endpoints, pipe: tokio::net::UnixStream, signer: Signer) {
    let (from_session, to_session_pipe) = pipe.into_split();
    let (to_clients, outgoing) = unbounded_channel();
    let (to_session, requests) = unbounded_channel();
    // Whether the session has said it reads requests; until then the front answers
    // kernel_info requests itself. One thread runs every task here.
    let session_ready = Cell::new(false);
    let (shell_send, shell_recv) = endpoints.shell.split();
    let (control_send, control_recv) = endpoints.control.split();
    let _stdin = endpoints.stdin;
    let session_id = wire::new_id();
    to_clients.send(ToClients::Own(Channel::IoPub, Message::new(&session_id, "status", json!({ "execution_state": "starting" })))).ok();
    let from_clients = async {
        tokio::join!(
            serving::echo_heartbeats(endpoints.heartbeat),
            take_requests(shell_recv, Channel::Shell, &signer, &session_ready, &to_session, &to_clients),
            take_requests(control_recv, Channel::Control, &signer, &session_ready, &to_session, &to_clients),
            forward_to_session(requests, to_session_pipe),
        )
    };
    let to_clients_until_end = async {
        tokio::join!(read_session(from_session, &session_ready, to_clients.clone()), send_to_clients(outgoing, shell_send, control_send, endpoints.iopub, &signer))
    };
    // Requests are taken until the session's last message has gone out.
    tokio::select! {
        _ = from_clients => {}
        _ = to_clients_until_end => {}
    }
}

/// Takes each request a client sends on shell or control: a `kernel_info_request` before the
/// session is ready is answered here (busy, reply, idle); everything else goes to the session
/// as it came.
async fn take_requests(mut socket: zeromq::RouterRecvHalf, channel: Channel, signer: &Signer, session_ready: &Cell<bool>, to_session: &UnboundedSender<(Channel, Vec<Bytes>)>, to_clients: &UnboundedSender<ToClients>) {
    while let Ok(raw) = socket.recv().await {
        let frames = raw.into_vec();
        if !session_ready.get() {
            // Unsigned, unreadable or other requests are the session's to refuse or answer.
            if let Ok(request) = Message::from_frames(frames.clone(), signer) {
                if request.header.msg_type == "kernel_info_request" {
                    let status = |state: &str| ToClients::Own(Channel::IoPub, Message::reply_to(&request, "status", json!({ "execution_state": state })));
                    let _ = to_clients.send(status("busy"));
                    let _ = to_clients.send(ToClients::Own(channel, Message::reply_to(&request, "kernel_info_reply", serving::kernel_info())));
                    let _ = to_clients.send(status("idle"));
                    continue;
                }
            }
        }
        let _ = to_session.send((channel, frames));
    }
}

/// Writes the requests to the session's pipe, in order.
async fn forward_to_session(mut requests: UnboundedReceiver<(Channel, Vec<Bytes>)>, mut pipe: tokio::net::unix::OwnedWriteHalf) {
    while let Some((channel, frames)) = requests.recv().await {
        if let Err(e) = relay::write(&mut pipe, channel, &frames).await {
            log(&format!("cannot pass a request to the session: {e}"));
            return;
        }
    }
}

/// Queues everything the session sends for the clients, until its pipe ends.
async fn read_session(mut pipe: tokio::net::unix::OwnedReadHalf, session_ready: &Cell<bool>, to_clients: UnboundedSender<ToClients>) {
    loop {
        match relay::read(&mut pipe).await {
            Ok(Some((Channel::Ready, _))) => session_ready.set(true),
            Ok(Some((channel, frames))) => {
                let _ = to_clients.send(ToClients::Raw(channel, frames));
            }
            Ok(None) => break,
            Err(e) => {
                log(&format!("the pipe from the session broke: {e}"));
                break;
            }
        }
    }
    let _ = to_clients.send(ToClients::End);
}

/// Sends what is queued, in order, and welcomes IOPub subscriptions; returns at the end of the
/// session's messages.
async fn send_to_clients(mut outgoing: UnboundedReceiver<ToClients>, mut shell: zeromq::RouterSendHalf, mut control: zeromq::RouterSendHalf, mut iopub: zeromq::XPubSocket, signer: &Signer) {
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next.unwrap_or(ToClients::End),
            subscription = iopub.recv() => match subscription {
                Ok(frames) => match serving::welcome(frames) {
                    Some(welcome) => ToClients::Own(Channel::IoPub, welcome),
                    None => continue,
                },
                Err(e) => {
                    log(&format!("iopub: a subscriber's connection failed: {e}"));
                    continue;
                }
            },
        };
        let (channel, frames) = match next {
            // A message has frames; an empty record is nothing to send.
            ToClients::Raw(_, frames) if frames.is_empty() => continue,
            ToClients::Raw(channel, frames) => (channel, frames),
            ToClients::Own(Channel::IoPub, message) => (Channel::IoPub, serving::with_iopub_topic(message).to_frames(signer)),
            ToClients::Own(channel, message) => (channel, message.to_frames(signer)),
            ToClients::End => return,
        };
        let sent = match channel {
            Channel::Shell => shell.send(serving::to_zmq(frames)).await,
            Channel::Control => control.send(serving::to_zmq(frames)).await,
            Channel::IoPub => iopub.send(serving::to_zmq(frames)).await,
            Channel::Ready => continue,
        };
        if let Err(e) = sent {
            log(&format!("could not send a message: {e}"));
        }
    }
}
