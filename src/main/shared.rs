//! The `huelab` command as a shared library: `lib/libhuelab.so` of the wheel and of the
//! relocatable bundle, which their `libexec/huelab` (src/bin/huelab-loader.rs) loads after
//! PyTorch's own libraries, then calls `huelab_main`. The same commands as the `huelab` binary
//! (src/main/cli.rs), the same allocator.
//!
//! Why a library: a wheel's ELFs may only ask the dynamic loader by name for the libraries every
//! manylinux system has (PyPA's policy, which `auditwheel` checks) or ones inside the wheel.
//! libtorch is neither: the torch wheel this one requires brings it. So the shipped build drops
//! libtorch's, c10's and libgomp's names from this library's needed list (make-bundle.sh, after
//! linking against them, so that a missing symbol is still a link error), and the loader puts
//! the torch package's libraries in the process's global scope first, where this library's
//! references find them.
//!
//! Built as an example target (`cargo build --example huelab_shared`): Cargo's one way to have a
//! second library target (a `cdylib`) in a package whose library is the `huelab` crate.
use std::ffi::c_int;
use std::io::Write;

#[global_allocator]
static ALLOCATOR: huelab::heap::Counted<mimalloc::MiMalloc> = huelab::heap::Counted(mimalloc::MiMalloc);

#[path = "cli.rs"]
mod cli;
// This library uses `restore_environment` (its loader set the spin count: a shared library may
// not have pre-initialisation functions, and needs none, as libgomp is loaded after `main`).
#[allow(dead_code)]
#[path = "openmp_wait.rs"]
mod openmp_wait;

/// The `huelab` command, run in the loader's process: its exit status. The command line is the
/// process's (Rust's standard library reads it from glibc as this library loads).
#[no_mangle]
pub extern "C" fn huelab_main() -> c_int {
    openmp_wait::restore_environment();
    // A panic must not unwind into the loader's frames (a C call): it ends here with the status
    // a Rust program's panic in `main` gives, its message printed by the panic hook.
    let status = std::panic::catch_unwind(cli::run).map_or(101, c_int::from);
    // The binary's runtime flushes standard output after `main`; this library's own standard
    // output buffer is flushed here, as the loader's runtime does not know it.
    let _ = std::io::stdout().flush();
    status
}
