//! The one error type of the huelab core. Every variant names what the user can fix: the file,
//! the argument or the option. The scripting layer turns these into Rhai runtime errors so that
//! the script position is attached in one place.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },

    /// An option with a bad value, e.g. `epochs: -1`.
    #[error("option '{name}': {message}")]
    InvalidOption { name: String, message: String },

    /// An option name that does not exist (a typo like `schedual`).
    #[error("unknown option '{name}' in {context}; valid options: {valid}")]
    UnknownOption { name: String, context: String, valid: String },

    #[error("{op}: argument '{arg}' has shape {got:?}, expected {expected}")]
    Shape { op: &'static str, arg: &'static str, expected: String, got: Vec<i64> },

    #[error("{0}")]
    Msg(String),

    /// Ctrl-C: the run stopped between two batches.
    #[error("interrupted (Ctrl-C); outputs finished before it are intact")]
    Interrupted,

    /// A checkpoint-and-stop request (a cluster's warning signal): the run wrote a checkpoint
    /// at a batch boundary into `checkpoint` and stopped, to be resumed there.
    #[error("stopped for preemption after writing a checkpoint at a batch boundary in {}", checkpoint.display())]
    Preempted { checkpoint: PathBuf },

    #[error("libtorch: {}", first_line(&.0.to_string()))]
    Torch(#[from] tch::TchError),

    /// A failure huelab should have prevented (a panic caught by the firewall).
    /// libtorch refused a forward pass: a shape a network cannot take, a device out of memory.
    #[error("the forward pass of {model} up to '{layer}' failed in libtorch: {message}")]
    Forward { model: String, layer: String, message: String },

    #[error("{what} failed inside huelab or libtorch: {message}. This is a bug in huelab; please report it with the command that caused it")]
    Internal { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// libtorch's messages end with a C++ backtrace ("Exception raised from … frame #0 …"); users
/// need the message.
/// libtorch's message without the C++ backtrace that follows it.
pub fn torch_message(e: &tch::TchError) -> String {
    first_line(&e.to_string())
}

pub(crate) fn first_line(message: &str) -> String {
    let cut = ["Exception raised from", "frame #"].iter().filter_map(|marker| message.find(marker)).min().unwrap_or(message.len());
    let text = message[..cut].lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    // libtorch quotes the record it failed on, which for a damaged file can be any bytes.
    let printable: String = text.chars().map(|c| if c.is_control() || c == '\u{FFFD}' { '?' } else { c }).collect();
    match printable.char_indices().nth(500) {
        Some((at, _)) => format!("{}…", &printable[..at]),
        None => printable,
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn invalid_option(name: &str, message: impl Into<String>) -> Self {
        Error::InvalidOption { name: name.to_owned(), message: message.into() }
    }

    pub fn msg(message: impl Into<String>) -> Self {
        Error::Msg(message.into())
    }
}
