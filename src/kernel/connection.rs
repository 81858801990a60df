//! The connection file Jupyter writes for a kernel: where to bind and the signing key.
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
        let metadata = std::fs::metadata(path).map_err(|e| named(e.to_string()))?;
        if !metadata.is_file() {
            return Err(named("not a regular file".into()));
        }
        if metadata.len() > 1 << 20 {
            return Err(named(format!("{} bytes; a connection file is a few hundred", metadata.len())));
        }
        let text = std::fs::read_to_string(path).map_err(|e| named(e.to_string()))?;
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
}
