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

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
