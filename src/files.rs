//! The bottom of every writer: durable atomic file writes, CSV tables and directory locks.
//!
//! A result file is either absent, its previous version or complete: each is written to a
//! uniquely named temporary file beside its target, flushed to disk (`fsync`), renamed into
//! place, and the directory is flushed too, so a crash or a power loss at any moment leaves
//! one of the two versions. Nothing here knows what it writes.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory a file lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory's entries (a rename into it, a new file) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// A uniquely named temporary file beside `path` (`.<name>.<random>.partial`), world-readable
/// like any result file; removed on drop unless persisted.
fn temporary_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        // tempfile makes private (0600) files; a result file is for sharing.
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))
}

/// Renames a flushed temporary file onto `path` and flushes the directory.
fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(&parent_dir(path))
}

/// Writes `bytes` to `path` atomically and durably, creating missing parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temporary_beside(path)?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

/// For writers that only take a path (libtorch's safetensors, FAISS's `write_index`, `.npy`):
/// `write` fills a uniquely named temporary file beside `path`, which is flushed and renamed
/// into place, so `path` is either absent, the previous version or complete. A failed write
/// (a full disk) leaves no temporary file behind. Creates missing parent directories.
pub fn write_then_rename(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_beside(path)?;
    // libtorch's and FAISS's writers say what failed ("File too large") but not where.
    write(tmp.path()).map_err(|e| match e {
        Error::Data { .. } | Error::Io { .. } => e,
        other => Error::Data { path: path.to_owned(), message: format!("cannot write: {other}") },
    })?;
    // The writer closed its own handle; flush what it wrote through a fresh one.
    File::open(tmp.path()).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

/// Writes `rows` (the first one the header) as a CSV file, atomically.
pub fn write_csv(path: &Path, rows: Vec<Vec<String>>) -> Result<()> {
    let csv_error = |e: &dyn std::fmt::Display| Error::msg(format!("{}: {e}", path.display()));
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(row).map_err(|e| csv_error(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| csv_error(&e))?;
    write_atomic(path, &bytes)
}

/// A CSV cell for a value a row may not have: empty when absent.
pub fn cell(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// An exclusive lock on a directory that one run writes (a checkpoint or run directory), held
/// until dropped, so a second run writing into the same directory gets a clear error instead
/// of interleaved files. It is `flock` on the directory itself (no lock file to leave behind),
/// released by the kernel when the process ends, however it ends.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<Self> {
        use std::os::unix::io::AsRawFd;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let handle = File::open(dir).map_err(|e| Error::io(dir, e))?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::Data { path: dir.to_owned(), message: "another huelab run is writing into this directory; wait for it or use another directory".into() });
        }
        Ok(DirLock { _dir: handle })
    }
}

/// A file's length and SHA-256 (hex): what a manifest records so that a truncated, replaced or
/// bit-flipped file is an error when it is read back.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    // Streamed: a file is hashed without holding it in memory.
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok((bytes, format!("{:x}", hasher.finalize())))
}

/// An error unless the file at `path` has the SHA-256 `expected` (from its manifest).
pub fn check_digest(path: &Path, expected: &str) -> Result<()> {
    let (bytes, sha) = file_digest(path)?;
    if sha != expected {
        return Err(Error::Data { path: path.to_owned(), message: format!("{bytes} bytes whose SHA-256 differs from the one its manifest recorded: corrupted or replaced") });
    }
    Ok(())
}
