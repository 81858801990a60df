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

/// The kernel's front process (`huelab-kernel`, src/bin/huelab-kernel.rs), which every build
/// puts beside the huelab binary; `None` where it is missing (a binary copied alone).
pub fn kernel_front() -> Option<PathBuf> {
    let front = std::env::current_exe().ok()?.with_file_name("huelab-kernel");
    front.is_file().then_some(front)
}
