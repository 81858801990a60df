//! Where huelab keeps what it fetches and builds: one home, `$HUELAB_HOME`. Its default is
//! setup.sh's `/var/cache/huelab` where that exists and this user may write to it, else the
//! user's cache folder (`$XDG_CACHE_HOME/huelab`, `~/.cache/huelab`), so that a user without root
//! (a cluster's login node) has one too. Inside it: `data/` (built-in data sets, pretrained
//! weights, ImageNet class names; `$HUELAB_DATA` overrides it, and a relocatable bundle points
//! it at its own copy), `notebook-venv/`, `bench-venv/`, `bench-data/` and `evcxr/`. Everything
//! else asks here instead of knowing the layout.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// setup.sh's home on a machine it prepared.
const SETUP_HOME: &str = "/var/cache/huelab";

/// The home: `$HUELAB_HOME`, else setup.sh's where writable, else the user's cache folder.
pub fn home() -> PathBuf {
    if let Some(home) = std::env::var_os("HUELAB_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    if writable_dir(Path::new(SETUP_HOME)) {
        return PathBuf::from(SETUP_HOME);
    }
    user_cache_dir().join("huelab")
}

/// `$XDG_CACHE_HOME`, else `~/.cache` (the XDG base directory default).
fn user_cache_dir() -> PathBuf {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

fn writable_dir(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: access(2) reads a NUL-terminated path and nothing else.
    path.is_dir() && unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } == 0
}

/// The data directory: `$HUELAB_DATA`, else the home's `data/`; a user whose home is elsewhere
/// still reads setup.sh's data on a machine it prepared.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUELAB_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let own = home().join("data");
    let setup = Path::new(SETUP_HOME).join("data");
    if !own.is_dir() && setup.is_dir() {
        return setup;
    }
    own
}

/// A Python of one of the home's venvs: `notebook-venv` (Jupyter, jupyter_client) or
/// `bench-venv` (PyTorch, torchvision, faiss-cpu for the benchmarks' references).
pub fn venv_program(venv: &str, program: &str) -> PathBuf {
    home().join(venv).join("bin").join(program)
}

/// Made-up inputs the benchmarks create once and reuse.
pub fn bench_data() -> PathBuf {
    home().join("bench-data")
}

/// `relative` inside the data directory, which must exist.
pub fn cached(relative: &str) -> Result<PathBuf> {
    require(data_dir().join(relative))
}

/// `path` if it exists, else an error saying that setup fetches it.
pub fn require(path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Data { path, message: "missing; `bash setup.sh deps` fetches the built-in data sets (or set HUELAB_DATA to a folder that has them)".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_or_missing_folder_is_not_a_home() {
        let dir = tempfile::tempdir().unwrap();
        assert!(writable_dir(dir.path()));
        assert!(!writable_dir(&dir.path().join("missing")));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(!writable_dir(&file));
    }
}
