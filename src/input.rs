//! The one way huelab opens a user's file or artefact (a script, data, weights, a checkpoint, a
//! saved model, a memory, activations, a list file): the path must be a regular file (a FIFO, a
//! device or a directory would block or read forever), its resolved target must lie where the
//! running script may read, and its size must fit the bound its format allows. Every refusal is
//! an error naming the path.
//!
//! Where a script may read is the [`Access`] of the thread that opens the file: the script
//! layer sets it for the time a script runs ([`confined`]), so that a symbolic link inside a
//! checkpoint, a memory or an image folder cannot lead out of the places the script was given.
//! Rust programs that use the library directly read anywhere. Work handed to other threads
//! (an image folder's decoding) carries the [`Access`] it was made under ([`current`]).
use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Where files may be read: anywhere, or inside some directory trees (and single files).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Access {
    #[default]
    Anywhere,
    Within(Vec<PathBuf>),
}

impl Access {
    /// Whether `path`, resolved (links followed, `..` removed), lies in one of the roots.
    pub fn allows(&self, path: &Path) -> bool {
        match self {
            Access::Anywhere => true,
            Access::Within(roots) => {
                let path = resolve(path);
                roots.iter().any(|root| path.starts_with(root))
            }
        }
    }
}

thread_local! {
    static ACCESS: RefCell<Access> = RefCell::new(Access::Anywhere);
}

/// The access of this thread (to hand to worker threads with the work).
pub fn current() -> Access {
    ACCESS.with(|a| a.borrow().clone())
}

/// Runs `work` with `access` as this thread's access, restoring the previous one afterwards
/// (also when `work` panics).
pub fn confined<T>(access: Access, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Access>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                ACCESS.with(|a| *a.borrow_mut() = previous);
            }
        }
    }
    let previous = ACCESS.with(|a| std::mem::replace(&mut *a.borrow_mut(), access));
    let _restore = Restore(Some(previous));
    work()
}

/// `path` made absolute against the working directory, with `.` and `..` removed and symbolic
/// links of its longest existing prefix resolved, so `a/../../etc` cannot slip out.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() { path.to_owned() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut normal = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    // Resolve links on the part that exists; keep the rest as written.
    let mut existing = normal.clone();
    let mut rest = vec![];
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_owned()), existing.parent().map(Path::to_owned)) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}

fn refused(path: &Path, message: impl Into<String>) -> Error {
    Error::Data { path: path.to_owned(), message: message.into() }
}

/// What a path that is not a regular file is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn check_access(path: &Path, access: &Access) -> Result<()> {
    if access.allows(path) {
        Ok(())
    } else {
        Err(refused(
            path,
            format!(
                "resolves to {}, outside the working directory and the paths given as arguments; \
                 pass that place as an argument or run with --allow-fs",
                resolve(path).display()
            ),
        ))
    }
}

/// The size of the regular file at `path` (links followed), checked against this thread's
/// access and against `max_bytes`. For readers that hand the path on (libtorch, FAISS).
pub fn regular_file(path: &Path, max_bytes: u64) -> Result<u64> {
    regular_file_with(path, max_bytes, &current())
}

/// [`regular_file`] under an explicit access (on a worker thread).
pub fn regular_file_with(path: &Path, max_bytes: u64, access: &Access) -> Result<u64> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !metadata.file_type().is_file() {
        return Err(refused(path, format!("is {}, not a regular file", kind_of(metadata.file_type()))));
    }
    check_access(path, access)?;
    check_size(path, metadata.len(), max_bytes)?;
    Ok(metadata.len())
}

fn check_size(path: &Path, len: u64, max_bytes: u64) -> Result<()> {
    if len > max_bytes {
        return Err(refused(path, format!("is {len} bytes, more than the {max_bytes} bytes such a file can be")));
    }
    Ok(())
}

/// A directory a reader lists (an image folder, a memory, a checkpoint), checked against this
/// thread's access.
pub fn directory(path: &Path) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !metadata.is_dir() {
        return Err(refused(path, format!("is {}, not a directory", if metadata.is_file() { "a file" } else { kind_of(metadata.file_type()) })));
    }
    check_access(path, &current())
}

/// Opens the regular file at `path` for reading: it is opened without blocking (a FIFO would
/// wait for a writer), then checked by its handle, so a file swapped in between is seen.
/// Returns the file and its length.
pub fn open(path: &Path, max_bytes: u64) -> Result<(File, u64)> {
    open_with(path, max_bytes, &current())
}

/// [`open`] under an explicit access (on a worker thread).
pub fn open_with(path: &Path, max_bytes: u64, access: &Access) -> Result<(File, u64)> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| Error::io(path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if !metadata.file_type().is_file() {
        return Err(refused(path, format!("is {}, not a regular file", kind_of(metadata.file_type()))));
    }
    check_access(path, access)?;
    check_size(path, metadata.len(), max_bytes)?;
    // O_NONBLOCK means nothing for a regular file's reads; it only kept the open from waiting.
    Ok((file, metadata.len()))
}

/// The bytes of the regular file at `path`, at most `max_bytes` of them (a file that grows
/// while it is read is cut there and refused).
pub fn read(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    read_with(path, max_bytes, &current())
}

/// [`read`] under an explicit access (on a worker thread).
pub fn read_with(path: &Path, max_bytes: u64, access: &Access) -> Result<Vec<u8>> {
    let (file, len) = open_with(path, max_bytes, access)?;
    let mut bytes = Vec::new();
    // A refused allocation is an error naming the file, not an abort of the process.
    bytes.try_reserve_exact(len as usize).map_err(|_| refused(path, format!("cannot allocate {len} bytes to read it")))?;
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    check_size(path, bytes.len() as u64, max_bytes)?;
    Ok(bytes)
}

/// The text of the regular file at `path` (UTF-8), at most `max_bytes` long.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String> {
    let bytes = read(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| refused(path, format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// Checks a safetensors file before libtorch reads it (which loads the whole file): a regular
/// file under this thread's access whose header is JSON of at most 100 MB and whose tensors'
/// byte ranges end exactly at the end of the file and total at most `max_data_bytes` (what the
/// caller expects, e.g. from the model it loads into). A sparse or padded file, or a header
/// claiming more than that, is refused before anything is allocated.
pub fn safetensors(path: &Path, max_data_bytes: u64) -> Result<()> {
    let (mut file, len) = open(path, limits::array())?;
    let bad = |message: String| refused(path, format!("not a valid safetensors file: {message}"));
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| bad(format!("{len} bytes, shorter than its 8-byte header length")))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > (100 << 20) || 8 + header_len > len {
        return Err(bad(format!("its header claims {header_len} bytes, the file holds {len}")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).map_err(|e| bad(format!("its header is not a JSON object ({e})")))?;
    let mut end = 0u64;
    for (name, entry) in header.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let offsets = entry.get("data_offsets").and_then(|o| o.as_array()).filter(|o| o.len() == 2);
        let range: Option<Vec<u64>> = offsets.map(|o| o.iter().filter_map(|v| v.as_u64()).collect());
        match range.as_deref() {
            Some(&[start, stop]) if start <= stop => end = end.max(stop),
            _ => return Err(bad(format!("tensor '{name}' has no valid data_offsets"))),
        }
    }
    let data = len - 8 - header_len;
    if end != data {
        return Err(bad(format!("its tensors end at byte {end} of the data, but the file holds {data} bytes of data (truncated, padded or sparse)")));
    }
    if data > max_data_bytes {
        return Err(bad(format!("it holds {data} bytes of tensors, more than the {max_data_bytes} expected here")));
    }
    Ok(())
}

/// Size bounds of the files huelab reads, by what they are.
pub mod limits {
    /// A `.rhai` script: far above any script a person writes.
    pub const SCRIPT: u64 = 4 << 20;
    /// JSON sidecars (`checkpoint.json`, `model.json`, `memory.json`, `plan.json`).
    pub const JSON: u64 = 64 << 20;
    /// A list file of `path label` lines (tens of millions of lines).
    pub const LIST: u64 = 1 << 30;
    /// One image file (a photo is a few MB).
    pub const IMAGE: u64 = 256 << 20;
    /// Arrays, weights, checkpoints and indexes: what fits the machine's memory, not more.
    pub fn array() -> u64 {
        // Half the physical memory: a file larger than that cannot be loaded next to anything.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if pages > 0 && page > 0 {
            (pages as u64).saturating_mul(page as u64) / 2
        } else {
            8 << 30
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        for result in [read(&fifo, 100).map(drop), regular_file(&fifo, 100).map(drop)] {
            let message = result.unwrap_err().to_string();
            assert!(message.contains("pipe") && message.contains("FIFO"), "{message}");
        }
        let message = read(dir.path(), 100).unwrap_err().to_string();
        assert!(message.contains("directory"), "{message}");
        let message = read(Path::new("/dev/zero"), 100).unwrap_err().to_string();
        assert!(message.contains("/dev/zero: is a device"), "{message}");
    }

    #[test]
    fn a_link_out_of_the_confinement_is_refused_and_one_inside_is_read() {
        let inside = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::fs::write(inside.path().join("mine"), "y").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), inside.path().join("link-out")).unwrap();
        std::os::unix::fs::symlink(inside.path().join("mine"), inside.path().join("link-in")).unwrap();
        let access = Access::Within(vec![resolve(inside.path())]);
        confined(access.clone(), || {
            let message = read(&inside.path().join("link-out"), 100).unwrap_err().to_string();
            assert!(message.contains("link-out") && message.contains("--allow-fs"), "{message}");
            assert_eq!(read(&inside.path().join("link-in"), 100).unwrap(), b"y");
            assert!(regular_file(&inside.path().join("link-out"), 100).is_err());
        });
        // Outside `confined` the thread reads anywhere again.
        assert_eq!(read(&inside.path().join("link-out"), 100).unwrap(), b"x");
    }

    #[test]
    fn sizes_beyond_the_bound_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse");
        File::create(&sparse).unwrap().set_len(5 << 30).unwrap();
        let message = read(&sparse, 1 << 20).unwrap_err().to_string();
        assert!(message.contains("sparse") && message.contains("more than"), "{message}");
        assert!(regular_file(&sparse, 1 << 20).is_err());
    }
}
