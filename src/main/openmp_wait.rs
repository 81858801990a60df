//! libgomp, libtorch's (and FAISS's) OpenMP runtime, lets a thread that waits at a barrier spin
//! 300 000 times before it sleeps. When the process gets less than a core per thread — another
//! session's work on the machine (a Jupyter kernel always runs in a session of its own, and
//! Linux's autogroup scheduling shares the CPUs per session, whatever the niceness), a cgroup
//! quota — both threads of a two-thread team end up on one CPU and each spins away the time
//! slice the other needs: the digits training of `huelab bench kernel` took 8–54 s instead of
//! about 2 s beside two busy loops of another session on a 2-core machine. A spin of 10 000
//! costs nothing on a quiet machine (0.74 s either way) and brought those to 1.6–2.4 s;
//! `OMP_WAIT_POLICY=PASSIVE` (no spin) costs a third more when quiet.
//!
//! libgomp reads `GOMP_SPINCOUNT` once, in its constructor. In the `huelab` binary, which links
//! libtorch, that runs before `main`, and the environment cannot be changed before it in the
//! same process (glibc sets `environ` from the stack after the executable's pre-initialisation
//! functions run). So a pre-initialisation function (`short_openmp_spin`, registered by
//! src/main.rs), which runs before any library's constructor (libtorch's operator registrations
//! included), starts the binary again with the variable set, unless the user set it or
//! `OMP_WAIT_POLICY`. The shipped loader (src/bin/huelab-loader.rs) loads libtorch itself, after
//! its `main` has started, and sets the variable before that (`set_before_libgomp_loads`).
//! Either way the command takes it out of the environment again (`restore_environment`), so that
//! the programs huelab starts (Python for benchmarks, Jupyter) get the user's environment.
//!
//! Each program compiles this file and uses its part of it.
use std::ffi::{c_char, c_int, CStr};

/// The spin count huelab gives libgomp.
pub const SPIN_COUNT: &str = "10000";
/// Marks the variable as huelab's in the process it started again.
const MARK: &CStr = c"HUELAB_SET_GOMP_SPINCOUNT=1";
const SPIN: &CStr = c"GOMP_SPINCOUNT=10000";

/// Whether an entry of `envp` starts with `prefix` (`NAME=`).
///
/// # Safety
/// `envp` is the NULL-terminated environment the loader passes.
unsafe fn has(envp: *const *const c_char, prefix: &[u8]) -> bool {
    let mut at = envp;
    // SAFETY: the loader's environment is a NULL-terminated array of C strings.
    unsafe {
        while !(*at).is_null() {
            if CStr::from_ptr(*at).to_bytes().starts_with(prefix) {
                return true;
            }
            at = at.add(1);
        }
    }
    false
}

/// A pre-initialisation function (`.preinit_array`): runs before every library's constructor, so
/// no Rust runtime, no allocation but libc's.
pub extern "C" fn short_openmp_spin(_argc: c_int, argv: *const *const c_char, envp: *const *const c_char) {
    // SAFETY: argv and envp are the loader's NULL-terminated arrays; execve either replaces
    // this process image or returns, leaving everything as it was.
    unsafe {
        if argv.is_null() || envp.is_null() || has(envp, b"GOMP_SPINCOUNT=") || has(envp, b"OMP_WAIT_POLICY=") || has(envp, b"HUELAB_SET_GOMP_SPINCOUNT=") {
            return;
        }
        let mut count = 0;
        while !(*envp.add(count)).is_null() {
            count += 1;
        }
        let grown = libc::malloc((count + 3) * std::mem::size_of::<*const c_char>()) as *mut *const c_char;
        if grown.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(envp, grown, count);
        *grown.add(count) = SPIN.as_ptr();
        *grown.add(count + 1) = MARK.as_ptr();
        *grown.add(count + 2) = std::ptr::null();
        libc::execve(c"/proc/self/exe".as_ptr(), argv, grown);
        // Not started again (no /proc): go on with libgomp's default.
        libc::free(grown.cast());
    }
}

/// For a program that loads libgomp (with libtorch) after its `main` has started: sets huelab's
/// spin count unless the user chose how OpenMP waits. Call before any thread starts.
pub fn set_before_libgomp_loads() {
    let chosen = ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "HUELAB_SET_GOMP_SPINCOUNT"].iter().any(|name| std::env::var_os(name).is_some());
    if !chosen {
        std::env::set_var("GOMP_SPINCOUNT", SPIN_COUNT);
        std::env::set_var("HUELAB_SET_GOMP_SPINCOUNT", "1");
    }
}

/// Whether huelab set the spin count (it started itself again with it, or its loader set it).
fn set_by_huelab() -> bool {
    std::env::var_os("HUELAB_SET_GOMP_SPINCOUNT").is_some()
}

/// Takes huelab's `GOMP_SPINCOUNT` out of the environment (libgomp has read it); call first
/// in `main`, before any thread starts.
pub fn restore_environment() {
    if set_by_huelab() {
        std::env::remove_var("GOMP_SPINCOUNT");
        std::env::remove_var("HUELAB_SET_GOMP_SPINCOUNT");
        SET.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

static SET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How OpenMP threads wait, for `huelab info`.
pub fn describe() -> String {
    if SET.load(std::sync::atomic::Ordering::Relaxed) {
        return format!("OpenMP waits: spin {SPIN_COUNT} (huelab's default; GOMP_SPINCOUNT or OMP_WAIT_POLICY set it otherwise)");
    }
    let yours: Vec<String> = ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY"].iter().filter_map(|n| std::env::var(n).ok().map(|v| format!("{n}={v}"))).collect();
    if yours.is_empty() {
        return "OpenMP waits: libgomp's default (huelab could not start itself again with a shorter spin)".to_owned();
    }
    format!("OpenMP waits: as you set them ({})", yours.join(", "))
}
