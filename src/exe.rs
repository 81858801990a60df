//! The command that starts huelab again later — a cluster task, a notebook kernel: a
//! relocatable bundle's launcher (`$HUELAB_EXE`, which finds PyTorch's libraries before it
//! starts the binary, and which the binary cannot start without), else this binary itself.
use std::path::PathBuf;

pub fn huelab_command() -> std::io::Result<PathBuf> {
    match std::env::var_os("HUELAB_EXE").filter(|e| !e.is_empty()) {
        Some(launcher) => Ok(PathBuf::from(launcher)),
        None => std::env::current_exe(),
    }
}
