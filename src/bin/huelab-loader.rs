//! `huelab-loader`: the `libexec/huelab` of the wheel and of the relocatable bundle. It loads
//! PyTorch's libraries from the torch package the launcher found, then the huelab program
//! (`lib/libhuelab.so` beside it, src/main/shared.rs), and runs it with this process's command
//! line. Why the program is a library that names no PyTorch library: src/main/shared.rs.
//!
//! PyTorch: `$HUELAB_TORCH/lib` (the launchers set HUELAB_TORCH: scripts/wheel_launcher.py,
//! scripts/bundle-launcher.sh), else the loader's search path (`LD_LIBRARY_PATH`).
//! `libtorch_cpu.so` is loaded into the global scope with what it needs itself (c10, the torch
//! wheel's libgomp), which is everything the program's dropped names stood for.
//!
//! It must not link the huelab library or libtorch: it shares only openmp_wait.rs with the
//! binary, from its file.
use std::ffi::{c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

// The loader uses `set_before_libgomp_loads` alone.
#[allow(dead_code)]
#[path = "../main/openmp_wait.rs"]
mod openmp_wait;

const TORCH_LIBRARY: &str = "libtorch_cpu.so";
const PROGRAM_LIBRARY: &str = "libhuelab.so";
const ENTRY: &CStr = c"huelab_main";

fn main() {
    // Before libtorch brings libgomp, which reads it as it loads.
    openmp_wait::set_before_libgomp_loads();
    match load_program() {
        Ok(entry) => {
            // SAFETY: `huelab_main` is src/main/shared.rs's `extern "C" fn() -> c_int`, in a
            // library that stays loaded for the life of the process.
            let status = unsafe { entry() };
            std::process::exit(status);
        }
        Err(message) => {
            eprintln!("huelab: {message}");
            std::process::exit(127);
        }
    }
}

/// PyTorch's libraries, then the program: its entry point.
fn load_program() -> Result<unsafe extern "C" fn() -> c_int, String> {
    let torch = match std::env::var_os("HUELAB_TORCH").filter(|t| !t.is_empty()) {
        Some(torch) => Path::new(&torch).join("lib").join(TORCH_LIBRARY),
        None => PathBuf::from(TORCH_LIBRARY),
    };
    dlopen(&torch, libc::RTLD_NOW | libc::RTLD_GLOBAL).map_err(|e| {
        format!("cannot load PyTorch's {} ({e}): start huelab with bin/huelab of the bundle or the `huelab` command pip installed, which find the torch package, or set HUELAB_TORCH to a torch {} package's folder", torch.display(), env!("HUELAB_TORCH_VERSION"))
    })?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this program is (/proc/self/exe: {e})"))?;
    let program = exe.parent().unwrap_or(Path::new("/")).join("../lib").join(PROGRAM_LIBRARY);
    let handle = dlopen(&program, libc::RTLD_NOW).map_err(|e| format!("cannot load the huelab program {} ({e})", program.display()))?;
    // SAFETY: a handle dlopen returned and a NUL-terminated name.
    let entry = unsafe { libc::dlsym(handle, ENTRY.as_ptr()) };
    if entry.is_null() {
        return Err(format!("{} has no {} entry point: it is not this huelab's program library", program.display(), ENTRY.to_string_lossy()));
    }
    // SAFETY: the symbol is src/main/shared.rs's `huelab_main`, an `extern "C" fn() -> c_int`.
    Ok(unsafe { std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn() -> c_int>(entry) })
}

/// A library loaded (never closed: the program runs on it to the end), or dlerror's message.
fn dlopen(path: &Path, flags: c_int) -> Result<*mut libc::c_void, String> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path holds a NUL byte".to_owned())?;
    // SAFETY: a NUL-terminated path; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), flags) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or NULL.
        let message = unsafe {
            let e = libc::dlerror();
            if e.is_null() { "unknown dlopen error".to_owned() } else { CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        return Err(message);
    }
    Ok(handle)
}
