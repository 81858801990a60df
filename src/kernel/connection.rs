//! The connection file Jupyter writes for a kernel: where to bind and the signing key.
//!
//! Compiled into the library and into the front process `huelab-kernel` (see `serving.rs` on
//! why it names no `crate::`), so it reads the file with the standard library under the same
//! rules as `crate::input` (a regular file, opened without blocking, size bounded), not
//! through it.
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionInfo {
    pub ip: String,
    #[serde(default = "tcp")]
    pub transport: String,
    pub shell_port: u16,
    pub iopub_port: u16,
    pub stdin_port: u16,
    pub control_port: u16,
    pub hb_port: u16,
    #[serde(default)]
    pub key: String,
    #[serde(default = "hmac_sha256")]
    pub signature_scheme: String,
}

fn tcp() -> String {
    "tcp".into()
}

fn hmac_sha256() -> String {
    "hmac-sha256".into()
}

impl ConnectionInfo {
    /// Reads and checks a connection file; errors name the file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let named = |message: String| format!("connection file {}: {message}", path.display());
        let text = read_small_text(path).map_err(named)?;
        let info: ConnectionInfo = serde_json::from_str(&text).map_err(|e| named(e.to_string()))?;
        if info.transport != "tcp" {
            return Err(named(format!("transport '{}' is not supported (huelab's kernel speaks tcp)", info.transport)));
        }
        if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
            return Err(named(format!("signature_scheme '{}' is not supported (hmac-sha256 is)", info.signature_scheme)));
        }
        Ok(info)
    }

    pub fn endpoint(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.ip)
    }
}

/// A connection file is a few hundred bytes; 1 MiB is far above any.
const MAX_BYTES: u64 = 1 << 20;

/// The text of the regular file at `path`, at most [`MAX_BYTES`] long.
fn read_small_text(path: &Path) -> Result<String, String> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.file_type().is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("over {MAX_BYTES} bytes; a connection file has a few hundred"));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_file_is_read_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("kernel-1.json");
        std::fs::write(&good, r#"{"ip": "127.0.0.1", "transport": "tcp", "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": "k", "signature_scheme": "hmac-sha256", "kernel_name": "rhai"}"#).unwrap();
        let info = ConnectionInfo::read(&good).unwrap();
        assert_eq!(info.endpoint(info.hb_port), "tcp://127.0.0.1:5");
        let ipc = dir.path().join("ipc.json");
        std::fs::write(&ipc, r#"{"ip": "k", "transport": "ipc", "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}"#).unwrap();
        let err = ConnectionInfo::read(&ipc).unwrap_err();
        assert!(err.contains("ipc.json") && err.contains("'ipc'"), "{err}");
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, r#"{"ip": "#).unwrap();
        assert!(ConnectionInfo::read(&broken).unwrap_err().contains("broken.json"));
        assert!(ConnectionInfo::read(dir.path()).unwrap_err().contains("not a regular file"));
    }

    /// Seeded mutations of a real connection file: read or refused with the file's name, never
    /// a panic.
    #[test]
    fn mutated_connection_files_are_read_or_named_never_a_panic() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel-fuzz.json");
        let real = br#"{"shell_port": 45001, "iopub_port": 45002, "stdin_port": 45003, "control_port": 45004, "hb_port": 45005, "ip": "127.0.0.1", "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84", "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "huelab-rhai"}"#;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        for _ in 0..2000 {
            let mut bytes = real.to_vec();
            for _ in 0..rng.random_range(1..4) {
                match rng.random_range(0..3) {
                    0 => {
                        let at = rng.random_range(0..bytes.len());
                        bytes[at] ^= 1 << rng.random_range(0..8);
                    }
                    1 => bytes.truncate(rng.random_range(0..bytes.len())),
                    _ => {
                        let at = rng.random_range(0..=bytes.len());
                        let digit = b"0123456789-e"[rng.random_range(0..12)];
                        bytes.insert(at, digit);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = ConnectionInfo::read(&path) {
                assert!(e.contains("kernel-fuzz.json"), "{e}");
            }
        }
    }
}
