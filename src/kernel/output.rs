//! What a cell prints and shows while it runs: the process's stdout and stderr (Rhai's `print`,
//! epoch lines, libtorch's warnings) become `stream` messages, each progress bar becomes one
//! display updated in place, and a script's `display`, `update_display` and `clear_output`
//! become display messages. All go to the request being executed, in the order they were made.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::json;

use super::sockets::{Outgoing, Sender};
use super::wire::{new_id, Message};

/// The request whose output is being produced (none between cells).
#[derive(Debug, Clone, Default)]
pub struct CurrentRequest(Arc<Mutex<Option<Message>>>);

impl CurrentRequest {
    pub fn set(&self, request: Option<Message>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = request;
    }

    /// The current request's message id, if a cell runs.
    pub fn id(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|r| r.header.msg_id.clone())
    }

    /// A message of `msg_type` answering the current request, if there is one.
    pub fn message(&self, msg_type: &str, content: serde_json::Value) -> Option<Message> {
        let current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().map(|request| Message::reply_to(request, msg_type, content))
    }
}

/// Written into a captured stream after a cell; seeing it proves that everything before it
/// was forwarded.
const MARKER: &[u8] = b"\x00\x1bhuelab-flush\x00";

/// stdout and stderr redirected into pipes that threads forward as `stream` messages; clones
/// share the same pipes (the script's display sink flushes them before each display).
#[derive(Clone)]
pub struct CapturedOutput {
    streams: Arc<Mutex<Vec<(RawFd, mpsc::Receiver<()>)>>>,
}

impl CapturedOutput {
    /// Redirects file descriptors 1 and 2. Call once, before any other thread writes.
    pub fn start(sender: Sender, current: CurrentRequest) -> std::io::Result<Self> {
        let mut streams = vec![];
        for (fd, name) in [(1, "stdout"), (2, "stderr")] {
            let mut ends = [0 as RawFd; 2];
            // SAFETY: pipe() fills the two descriptors of the array it is given.
            if unsafe { libc::pipe(ends.as_mut_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: dup2 onto a standard descriptor this process owns; the pipe's write end
            // is then reachable as `fd` and its own descriptor is closed.
            unsafe {
                if libc::dup2(ends[1], fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(ends[1]);
            }
            // SAFETY: the read end is a fresh descriptor that only this File owns.
            let reader = unsafe { File::from_raw_fd(ends[0]) };
            let (ack, flushed) = mpsc::channel();
            let (sender, current) = (sender.clone(), current.clone());
            std::thread::Builder::new().name(format!("kernel-{name}")).spawn(move || forward(reader, name, sender, current, ack))?;
            streams.push((fd, flushed));
        }
        Ok(CapturedOutput { streams: Arc::new(Mutex::new(streams)) })
    }

    /// Returns once everything written to stdout and stderr so far has been sent.
    pub fn flush(&self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        for (fd, flushed) in streams.iter() {
            // SAFETY: a write of a constant buffer to a descriptor this process owns.
            let written = unsafe { libc::write(*fd, MARKER.as_ptr().cast(), MARKER.len()) };
            if written == MARKER.len() as isize {
                // The forwarding thread answers when it reads the marker; if it has ended,
                // the channel is closed and this returns at once.
                let _ = flushed.recv();
            }
        }
    }
}

/// What one `stream` message carries at most; a flood of small writes waits up to
/// [`COALESCE`] to fill one, so a loop of prints is a few messages a second, not thousands
/// (jupyter_server drops a kernel's output above 1 000 messages a second).
const MAX_MESSAGE_BYTES: usize = 64 << 10;
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

/// Reads a captured stream and sends it on as `stream` messages of the current request.
fn forward(mut reader: File, name: &'static str, sender: Sender, current: CurrentRequest, ack: mpsc::Sender<()>) {
    use std::os::fd::AsRawFd;
    let mut pending: Vec<u8> = vec![];
    let mut chunk = [0u8; 8192];
    let mut budget = StreamBudget::default();
    let send = |text: String| {
        if let Some(message) = current.message("stream", json!({ "name": name, "text": text })) {
            sender.send(Outgoing::IoPub(message));
        }
    };
    let forward_bytes = |bytes: &[u8], budget: &mut StreamBudget| {
        let admitted = budget.admit(current.id().as_deref(), bytes);
        if !admitted.is_empty() {
            send(String::from_utf8_lossy(admitted).into_owned());
        }
    };
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        // More is on its way: gather it for a moment, unless a flush is waiting on a marker.
        let gathering = std::time::Instant::now();
        while find(&pending, MARKER).is_none() && pending.len() < MAX_MESSAGE_BYTES {
            let left = COALESCE.saturating_sub(gathering.elapsed());
            if left.is_zero() || !readable_within(reader.as_raw_fd(), left) {
                break;
            }
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
        while let Some(at) = find(&pending, MARKER) {
            forward_bytes(&pending[..at], &mut budget);
            pending.drain(..at + MARKER.len());
            if let Some(note) = budget.note(name) {
                send(note);
            }
            let _ = ack.send(());
        }
        // Keep a possible start of the marker and an unfinished UTF-8 character for later.
        let keep = partial_marker_suffix(&pending).max(unfinished_utf8(&pending));
        let ready = pending.len() - keep;
        forward_bytes(&pending[..ready], &mut budget);
        pending.drain(..ready);
    }
}

/// Whether `fd` has something to read within `wait`.
fn readable_within(fd: RawFd, wait: std::time::Duration) -> bool {
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let millis = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, millis) > 0 }
}

/// The most of one stream a cell shows; the rest is counted and named in a note. jupyter_server
/// stops forwarding a kernel's output above 1 MB/s (with a warning in place of the output), and
/// a browser tab crawls long before a cell holds hundreds of megabytes of text.
const CELL_STREAM_LIMIT: usize = 1 << 20;

/// What of a stream the current cell has shown and left out.
#[derive(Debug, Default)]
struct StreamBudget {
    request: Option<String>,
    sent: usize,
    dropped: usize,
}

impl StreamBudget {
    /// The part of `bytes` to send for `request`: everything until the cell reaches
    /// [`CELL_STREAM_LIMIT`], cut at a line's end where one is near.
    fn admit<'a>(&mut self, request: Option<&str>, bytes: &'a [u8]) -> &'a [u8] {
        if self.request.as_deref() != request {
            *self = StreamBudget { request: request.map(str::to_owned), ..StreamBudget::default() };
        }
        let room = CELL_STREAM_LIMIT - self.sent;
        // Over the limit: up to the last line's end that fits (a cell whose first output is one
        // line longer than the limit shows its start).
        let take = if bytes.len() <= room { bytes.len() } else { bytes[..room].iter().rposition(|&b| b == b'\n').map_or(if self.sent == 0 { room } else { 0 }, |i| i + 1) };
        self.sent += take;
        // Once full, nothing more from this cell: the rest of a cut line is left out too.
        if take < bytes.len() {
            self.sent = CELL_STREAM_LIMIT;
        }
        self.dropped += bytes.len() - take;
        &bytes[..take]
    }

    /// A note for what was left out since the last one, if anything was.
    fn note(&mut self, name: &str) -> Option<String> {
        let dropped = std::mem::take(&mut self.dropped);
        (dropped > 0).then(|| format!("\n[huelab: {dropped} more bytes of {name} left out: a cell shows at most {} MiB of each stream, as Jupyter's IOPub data-rate limit allows; write long output to a file]\n", CELL_STREAM_LIMIT >> 20))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest end of `bytes` that begins the marker.
fn partial_marker_suffix(bytes: &[u8]) -> usize {
    (1..MARKER.len().min(bytes.len() + 1)).rev().find(|&n| bytes.ends_with(&MARKER[..n])).unwrap_or(0)
}

/// Bytes at the end of `bytes` that start a UTF-8 character not yet complete.
fn unfinished_utf8(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        _ => 0,
    }
}

/// A value's MIME bundle: text always, HTML and a base64 PNG where it has them.
pub fn mime_bundle(shown: &crate::script::DisplayData) -> serde_json::Value {
    let mut data = json!({ "text/plain": shown.plain });
    if let Some(html) = &shown.html {
        data["text/html"] = json!(html);
    }
    if let Some(png) = &shown.png {
        data["image/png"] = json!(crate::notebook::base64(png));
    }
    data
}

/// Where a script's displays go in the kernel: display messages of the current request, sent
/// after everything the cell printed before them (the captured streams are flushed first).
pub fn show_sink(sender: Sender, current: CurrentRequest, captured: CapturedOutput) -> crate::script::ShowSink {
    use crate::script::Shown;
    Box::new(move |shown: Shown| {
        captured.flush();
        let (kind, content) = match shown {
            Shown::Display { data, id } => {
                let transient = id.map_or_else(|| json!({}), |id| json!({ "display_id": id }));
                ("display_data", json!({ "data": mime_bundle(&data), "metadata": {}, "transient": transient }))
            }
            Shown::Update { data, id } => ("update_display_data", json!({ "data": mime_bundle(&data), "metadata": {}, "transient": { "display_id": id } })),
            Shown::Clear { wait } => ("clear_output", json!({ "wait": wait })),
        };
        if let Some(message) = current.message(kind, content) {
            sender.send(Outgoing::IoPub(message));
        }
    })
}

/// A progress bar's terminal: indicatif draws into a small screen of lines, and each flush
/// sends the screen as one display (`display_data` first, then `update_display_data`).
#[derive(Debug)]
pub struct NotebookTerm {
    sender: Sender,
    current: CurrentRequest,
    display_id: String,
    screen: Mutex<Screen>,
}

/// Columns of a progress display; indicatif pads lines to this and relies on wrapping.
const SCREEN_WIDTH: usize = 512;

#[derive(Debug, Default)]
struct Screen {
    lines: Vec<Vec<char>>,
    row: usize,
    column: usize,
    shown: bool,
}

impl Screen {
    /// Writes at the cursor as a terminal would: `\r` returns to the line's start, `\n` starts
    /// the next line, text overwrites and wraps at [`SCREEN_WIDTH`].
    fn write(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '\r' => self.column = 0,
                '\n' => {
                    self.row += 1;
                    self.column = 0;
                }
                c => {
                    if self.column >= SCREEN_WIDTH {
                        self.row += 1;
                        self.column = 0;
                    }
                    while self.lines.len() <= self.row {
                        self.lines.push(vec![]);
                    }
                    let line = &mut self.lines[self.row];
                    if line.len() <= self.column {
                        line.resize(self.column, ' ');
                        line.push(c);
                    } else {
                        line[self.column] = c;
                    }
                    self.column += 1;
                }
            }
        }
    }

    fn clear_line(&mut self) {
        if let Some(line) = self.lines.get_mut(self.row) {
            line.clear();
        }
        self.column = 0;
    }

    fn text(&self) -> String {
        let lines: Vec<String> = self.lines.iter().map(|l| l.iter().collect::<String>().trim_end().to_owned()).collect();
        let end = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
        lines[..end].join("\n")
    }
}

impl NotebookTerm {
    pub fn new(sender: Sender, current: CurrentRequest) -> Self {
        NotebookTerm { sender, current, display_id: new_id(), screen: Mutex::default() }
    }

    fn screen(&self) -> std::sync::MutexGuard<'_, Screen> {
        self.screen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl indicatif::TermLike for NotebookTerm {
    fn width(&self) -> u16 {
        SCREEN_WIDTH as u16
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        let mut screen = self.screen();
        screen.row = screen.row.saturating_sub(n);
        Ok(())
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.screen().row += n;
        Ok(())
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.screen().column += n;
        Ok(())
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        let mut screen = self.screen();
        screen.column = screen.column.saturating_sub(n);
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut screen = self.screen();
        screen.write(s);
        screen.row += 1;
        screen.column = 0;
        Ok(())
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.screen().write(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.screen().clear_line();
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut screen = self.screen();
        let kind = if screen.shown { "update_display_data" } else { "display_data" };
        let content = json!({ "data": { "text/plain": screen.text() }, "metadata": {}, "transient": { "display_id": self.display_id } });
        if let Some(message) = self.current.message(kind, content) {
            screen.shown = true;
            self.sender.send(Outgoing::IoPub(message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_and_utf8_tails_are_held_back() {
        assert_eq!(partial_marker_suffix(b"abc\x00\x1bhue"), 5);
        assert_eq!(partial_marker_suffix(b"abc"), 0);
        assert_eq!(unfinished_utf8("é".as_bytes()), 0);
        assert_eq!(unfinished_utf8(&"é".as_bytes()[..1]), 1);
    }

    #[test]
    fn a_cells_stream_is_cut_at_its_budget_with_a_note() {
        let mut budget = StreamBudget::default();
        let line = [b'x'; 99].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        let mut shown = 0;
        for _ in 0..(CELL_STREAM_LIMIT / line.len() + 50) {
            shown += budget.admit(Some("cell-1"), &line).len();
        }
        assert_eq!(shown % line.len(), 0, "cut at a line's end");
        assert!(shown <= CELL_STREAM_LIMIT && shown > CELL_STREAM_LIMIT - line.len(), "{shown}");
        let note = budget.note("stdout").unwrap();
        assert!(note.contains(&format!("{} more bytes of stdout", (CELL_STREAM_LIMIT / line.len() + 50) * line.len() - shown)), "{note}");
        assert_eq!(budget.note("stdout"), None);
        // The next cell starts with the whole budget.
        assert_eq!(budget.admit(Some("cell-2"), &line).len(), line.len());
    }

    #[test]
    fn the_screen_keeps_lines_above_a_redrawn_bar() {
        let mut screen = Screen::default();
        // indicatif pads a printed line to the width and lets it wrap.
        screen.write(&format!("{:<width$}", "epoch 1", width = SCREEN_WIDTH));
        screen.write("[===   ] 3/6");
        // indicatif's redraw of a one-line bar: back to the line's start, then the new bar.
        screen.write("\r");
        screen.write("[====  ] 4/6");
        assert_eq!(screen.text(), "epoch 1\n[====  ] 4/6");
        // Text overwrites what is under it, as on a terminal; a cleared line starts afresh.
        screen.write("\rdone");
        assert_eq!(screen.text(), "epoch 1\ndone=  ] 4/6");
        screen.clear_line();
        screen.write("done\nnext");
        assert_eq!(screen.text(), "epoch 1\ndone\nnext");
        screen.clear_line();
        screen.row -= 1;
        screen.clear_line();
        assert_eq!(screen.text(), "epoch 1");
    }
}
