//! CUDA at run time. huelab links the slim CPU libtorch; where a machine has a PyTorch with CUDA
//! of the same version, its `libtorch_cuda.so` is loaded with `dlopen(RTLD_NOW | RTLD_GLOBAL)`
//! before tch is used, so that libtorch registers its CUDA backend. (A plain link drops it:
//! nothing in tch refers to a symbol of libtorch_cuda, so the linker omits it.)
//!
//! Where to look, in order: `$HUELAB_TORCH_LIB`; the directory of the `libtorch_cpu.so` this
//! process loaded (from `/proc/self/maps`); the `torch/lib` of `python3`'s own PyTorch. The last
//! two only where the machine has an NVIDIA driver (`/proc/driver/nvidia`, or WSL's `/dev/dxg`):
//! PyPI's default torch is a CUDA build, and on a machine without a GPU its CUDA libraries cost
//! every huelab process about 350 MB of resident memory for nothing (measured: a one-line
//! script 490 MB vs 135 MB; the image pipeline's peak 1 047 vs about 500 MB).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CUDA_LIBRARY: &str = "libtorch_cuda.so";

/// What happened when huelab looked for libtorch's CUDA backend.
#[derive(Debug, Clone, PartialEq)]
pub enum CudaBackend {
    Loaded { path: PathBuf },
    /// No `libtorch_cuda.so` in any of the directories searched.
    NotFound { searched: Vec<PathBuf> },
    /// Not looked for: no NVIDIA driver on this machine, and `HUELAB_TORCH_LIB` names no library.
    NoDriver,
    /// Found but not loadable: another torch version, or missing CUDA libraries.
    Failed { path: PathBuf, reason: String },
}

impl std::fmt::Display for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CudaBackend::Loaded { path } => write!(f, "CUDA backend loaded from {}", path.display()),
            CudaBackend::NotFound { searched } => {
                let dirs: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                write!(f, "no {CUDA_LIBRARY} found (searched: {}); set HUELAB_TORCH_LIB to PyTorch's torch/lib", if dirs.is_empty() { "nothing".into() } else { dirs.join(", ") })
            }
            CudaBackend::NoDriver => write!(f, "no NVIDIA driver on this machine (/proc/driver/nvidia): {CUDA_LIBRARY} not loaded; set HUELAB_TORCH_LIB to load it anyway"),
            CudaBackend::Failed { path, reason } => write!(f, "cannot load {}: {reason}; running on the CPU", path.display()),
        }
    }
}

static BACKEND: OnceLock<CudaBackend> = OnceLock::new();

/// Looks for and loads libtorch's CUDA backend, once per process; later calls return the
/// first outcome. A failure to load is printed once to stderr.
pub fn load_cuda_backend() -> &'static CudaBackend {
    BACKEND.get_or_init(|| {
        let outcome = find_and_load();
        if let CudaBackend::Failed { .. } = &outcome {
            eprintln!("huelab: {outcome}");
        }
        outcome
    })
}


/// The directory of the `libtorch_cpu.so` mapped into this process.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with("/libtorch_cpu.so")).and_then(|p| Path::new(p).parent().map(Path::to_owned))
}

/// `torch/lib` of python3's PyTorch, located without importing torch (which takes seconds).
fn python_torch_lib() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!dir.is_empty()).then(|| Path::new(&dir).join("lib"))
}

/// The torch version next to a `torch/lib` directory (`torch/version.py`), without the local
/// part: `2.11.0+cu130` → `2.11.0`.
fn torch_version_of(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    let line = text.lines().find(|l| l.starts_with("__version__"))?;
    let version = line.split(['\'', '"']).nth(1)?;
    Some(version.split('+').next().unwrap_or(version).to_owned())
}

/// Whether this machine has an NVIDIA driver: the kernel module's `/proc/driver/nvidia` (also
/// inside containers given GPUs), or WSL's GPU device. Without it CUDA cannot run.
pub fn has_nvidia_driver() -> bool {
    Path::new("/proc/driver/nvidia").exists() || Path::new("/dev/dxg").exists()
}

fn find_and_load() -> CudaBackend {
    let explicit = std::env::var_os("HUELAB_TORCH_LIB").map(PathBuf::from);
    let asked_for = explicit.as_ref().is_some_and(|dir| dir.join(CUDA_LIBRARY).exists());
    if !asked_for && !has_nvidia_driver() {
        return CudaBackend::NoDriver;
    }
    // In order, and lazily: asking python3 (about 0.1 s) only when the others have no library.
    let candidates: [&dyn Fn() -> Option<PathBuf>; 3] = [&|| explicit.clone(), &loaded_libtorch_dir, &python_torch_lib];
    let mut searched: Vec<PathBuf> = vec![];
    let mut found = None;
    for candidate in candidates {
        let Some(dir) = candidate().filter(|d| !searched.contains(d)) else { continue };
        let path = dir.join(CUDA_LIBRARY);
        searched.push(dir);
        if path.exists() {
            found = Some(path);
            break;
        }
    }
    let Some(path) = found else {
        return CudaBackend::NotFound { searched };
    };
    let ours = env!("HUELAB_TORCH_VERSION");
    if let Some(theirs) = path.parent().and_then(torch_version_of).filter(|v| v != ours) {
        return CudaBackend::Failed { path, reason: format!("it is torch {theirs}, huelab is built with torch {ours}") };
    }
    match dlopen_global(&path) {
        Ok(()) => CudaBackend::Loaded { path },
        Err(reason) => CudaBackend::Failed { path, reason },
    }
}

fn dlopen_global(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path holds a NUL byte".to_owned())?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process on
    // purpose (libtorch's CUDA backend must stay registered), so it is never closed.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or NULL.
        let message = unsafe {
            let e = libc::dlerror();
            if e.is_null() { "unknown dlopen error".to_owned() } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        return Err(message);
    }
    Ok(())
}

/// What `huelab info` prints: versions, the CUDA backend, devices.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    pub huelab: &'static str,
    pub torch: &'static str,
    /// The folder of the `libtorch_cpu.so` this process runs on (a bundle or a wheel takes the
    /// machine's PyTorch), where /proc/self/maps tells.
    pub libtorch_dir: Option<PathBuf>,
    pub cuda_backend: String,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    /// `name, memory` per GPU from nvidia-smi, where it exists.
    pub gpus: Vec<String>,
    pub cpu_threads: i32,
}

pub fn device_info() -> DeviceInfo {
    let backend = load_cuda_backend();
    let gpus = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
        .unwrap_or_default();
    DeviceInfo {
        huelab: env!("CARGO_PKG_VERSION"),
        torch: env!("HUELAB_TORCH_VERSION"),
        libtorch_dir: loaded_libtorch_dir(),
        cuda_backend: backend.to_string(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        gpus,
        cpu_threads: tch::get_num_threads(),
    }
}
