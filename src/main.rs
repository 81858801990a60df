//! The `huelab` command: runs and checks `.rhai` experiment scripts. The commands themselves are
//! in src/main/cli.rs, which the shipped program library (src/main/shared.rs) compiles too.
use std::ffi::{c_char, c_int};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: huelab::heap::Counted<mimalloc::MiMalloc> = huelab::heap::Counted(mimalloc::MiMalloc);

#[path = "main/cli.rs"]
mod cli;
// This binary uses the pre-initialisation restart and `restore_environment`.
#[allow(dead_code)]
#[path = "main/openmp_wait.rs"]
mod openmp_wait;

/// libgomp comes with libtorch, before `main`: see openmp_wait.rs.
#[used]
#[link_section = ".preinit_array"]
static SHORT_OPENMP_SPIN: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = openmp_wait::short_openmp_spin;

fn main() -> ExitCode {
    openmp_wait::restore_environment();
    ExitCode::from(cli::run())
}
