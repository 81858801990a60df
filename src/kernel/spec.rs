//! The kernel spec (`kernel.json`) that tells Jupyter how to start `huelab kernel`.
use std::path::{Path, PathBuf};

use serde_json::json;

/// The spec's folder name, which notebooks record as their kernel.
pub const KERNEL_NAME: &str = "huelab-rhai";

/// Where a spec goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// The user's Jupyter data folder (`$JUPYTER_DATA_DIR`, else `$XDG_DATA_HOME/jupyter`,
    /// else `~/.local/share/jupyter`).
    User,
    /// `PREFIX/share/jupyter`, as `jupyter kernelspec install --prefix` (e.g. a venv).
    Prefix(PathBuf),
    /// A Jupyter data folder itself (one entry of `JUPYTER_PATH`).
    DataDir(PathBuf),
}

impl Place {
    fn data_dir(&self) -> Result<PathBuf, String> {
        match self {
            Place::Prefix(prefix) => Ok(prefix.join("share/jupyter")),
            Place::DataDir(dir) => Ok(dir.clone()),
            Place::User => {
                if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR") {
                    return Ok(PathBuf::from(dir));
                }
                if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
                    return Ok(PathBuf::from(dir).join("jupyter"));
                }
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/jupyter")).ok_or_else(|| "HOME is not set: pass --prefix DIR".to_owned())
            }
        }
    }
}

/// How Jupyter starts the kernel: the huelab command that runs the session, behind the front
/// process when there is one (it binds the sockets at once while the session loads libtorch).
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The huelab command (a bundle's or wheel's launcher, else the binary).
    pub command: PathBuf,
    /// `huelab-kernel`, beside the huelab binary.
    pub front: Option<PathBuf>,
}

impl Launch {
    /// This huelab: its command, and the front beside its binary if there is one.
    pub fn of_this_huelab() -> Result<Self, String> {
        let command = crate::exe::huelab_command().map_err(|e| format!("cannot find the huelab command: {e}"))?;
        Ok(Launch { command, front: crate::exe::kernel_front() })
    }

    fn canonical(&self) -> Result<Self, String> {
        let absolute = |path: &Path| path.canonicalize().map_err(|e| format!("{}: {e}", path.display()));
        Ok(Launch { command: absolute(&self.command)?, front: self.front.as_deref().map(absolute).transpose()? })
    }
}

/// `kernel.json` for `launch` (absolute paths: Jupyter starts it from anywhere), with
/// `session_args` (`--allow-dir DIR`, …) after the connection file.
pub fn kernel_json(launch: &Launch, session_args: &[String]) -> serde_json::Value {
    let mut env = serde_json::Map::new();
    // Data, weights and home where this machine keeps them, if not the default; and the
    // PyTorch a bundle's launcher found (Jupyter's own Python may have none).
    for key in ["HUELAB_HOME", "HUELAB_DATA", "HUELAB_TORCH"] {
        if let Some(value) = std::env::var_os(key).filter(|v| !v.is_empty()) {
            env.insert(key.into(), json!(value.to_string_lossy()));
        }
    }
    let mut argv = vec![];
    if let Some(front) = &launch.front {
        argv.extend([front.display().to_string(), "--connection-file".into(), "{connection_file}".into(), "--".into()]);
    }
    argv.extend([launch.command.display().to_string(), "kernel".into(), "--connection-file".into(), "{connection_file}".into()]);
    if launch.front.is_some() {
        argv.push("--relay-stdin".into());
    }
    argv.extend(session_args.iter().cloned());
    json!({
        "argv": argv,
        "display_name": "Rhai (huelab)",
        "language": "rhai",
        // interrupt_request on the control channel: training stops at its next batch and the
        // session keeps its variables.
        "interrupt_mode": "message",
        "env": env,
        "metadata": { "debugger": true },
        // The protocol the kernel speaks (JupyterLab reads it from the spec since 4.4).
        "kernel_protocol_version": crate::kernel::wire::PROTOCOL_VERSION,
    })
}

/// Writes the spec for `launch` at `place`; returns the spec's folder.
pub fn install(place: &Place, launch: &Launch, session_args: &[String]) -> Result<PathBuf, String> {
    let launch = launch.canonical()?;
    let dir = place.data_dir()?.join("kernels").join(KERNEL_NAME);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(&kernel_json(&launch, session_args)).expect("a spec serialises");
    crate::files::write_atomic(&dir.join("kernel.json"), text.as_bytes()).map_err(|e| e.to_string())?;
    // JupyterLab's launcher shows these instead of the language's first letter.
    for size in [32, 64] {
        crate::files::write_atomic(&dir.join(format!("logo-{size}x{size}.png")), &logo_png(size)).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// The kernel's logo: a ring of hues around the angle, as activation hue reads a pixel's
/// activations (transparent outside the ring).
fn logo_png(size: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let centre = (size as f64 - 1.0) / 2.0;
    let (outer, inner) = (size as f64 / 2.0, size as f64 * 0.22);
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let (dx, dy) = (x as f64 - centre, centre - y as f64);
            let radius = dx.hypot(dy);
            // Anti-aliased edges: coverage of the ring over one pixel's width.
            let coverage = (outer - radius).clamp(0.0, 1.0) * (radius - inner).clamp(0.0, 1.0);
            let hue = dy.atan2(dx).to_degrees().rem_euclid(360.0);
            let [r, g, b] = hue_to_rgb(hue);
            rgba.extend_from_slice(&[r, g, b, (coverage * 255.0).round() as u8]);
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(&rgba, size, size, image::ExtendedColorType::Rgba8).expect("encoding a small in-memory PNG cannot fail");
    png
}

/// A fully saturated colour of `hue` degrees.
fn hue_to_rgb(hue: f64) -> [u8; 3] {
    let sector = hue / 60.0;
    let rising = sector.fract();
    let (r, g, b) = match sector as u32 {
        0 => (1.0, rising, 0.0),
        1 => (1.0 - rising, 1.0, 0.0),
        2 => (0.0, 1.0, rising),
        3 => (0.0, 1.0 - rising, 1.0),
        4 => (rising, 0.0, 1.0),
        _ => (1.0, 0.0, 1.0 - rising),
    };
    [r, g, b].map(|c: f64| (c * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_the_binary_and_the_message_interrupt() {
        let dir = tempfile::tempdir().unwrap();
        let binary = std::env::current_exe().unwrap();
        let launch = Launch { command: binary.clone(), front: None };
        let spec_dir = install(&Place::Prefix(dir.path().to_owned()), &launch, &["--allow-dir".into(), "/data".into()]).unwrap();
        assert_eq!(spec_dir, dir.path().join("share/jupyter/kernels/huelab-rhai"));
        let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(spec_dir.join("kernel.json")).unwrap()).unwrap();
        assert_eq!(spec["argv"][0], binary.canonicalize().unwrap().display().to_string());
        assert_eq!(spec["argv"][3], "{connection_file}");
        assert_eq!((spec["argv"][4].as_str(), spec["argv"][5].as_str()), (Some("--allow-dir"), Some("/data")));
        assert_eq!(spec["interrupt_mode"], "message");
        assert_eq!(spec["language"], "rhai");
        for size in [32u32, 64] {
            let logo = image::load_from_memory(&std::fs::read(spec_dir.join(format!("logo-{size}x{size}.png"))).unwrap()).unwrap();
            assert_eq!((logo.width(), logo.height()), (size, size));
        }
        let err = install(&Place::DataDir(dir.path().to_owned()), &Launch { command: "/no/such/huelab".into(), front: None }, &[]).unwrap_err();
        assert!(err.contains("/no/such/huelab"), "{err}");
        let err = install(&Place::DataDir(dir.path().to_owned()), &Launch { command: binary.clone(), front: Some("/no/such/huelab-kernel".into()) }, &[]).unwrap_err();
        assert!(err.contains("/no/such/huelab-kernel"), "{err}");
    }

    /// Behind the front, the session is the command after `--`, told to use the front's pipe,
    /// with the session's flags last.
    #[test]
    fn a_spec_with_the_front_starts_the_session_behind_it() {
        let launch = Launch { command: "/opt/h/bin/huelab".into(), front: Some("/opt/h/libexec/huelab-kernel".into()) };
        let spec = kernel_json(&launch, &["--allow-fs".into()]);
        let argv: Vec<&str> = spec["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(argv, ["/opt/h/libexec/huelab-kernel", "--connection-file", "{connection_file}", "--", "/opt/h/bin/huelab", "kernel", "--connection-file", "{connection_file}", "--relay-stdin", "--allow-fs"]);
    }
}
