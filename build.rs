//! Link-time setup that lets huelab binaries, tests and doctests run with no LD_LIBRARY_PATH:
//! an rpath to libtorch (whose location torch-sys reports) and to the FAISS shared libraries
//! that setup.sh builds once per machine. It also records the libtorch version for manifests.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=HUELAB_FAISS_LIB");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");

    let torch_lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB; is LIBTORCH set (see setup.sh)?");
    add_rpath(Path::new(&torch_lib));
    build_autocast_shim(Path::new(&torch_lib));
    let torch_version = std::fs::read_to_string(Path::new(&torch_lib).join("../build-version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=HUELAB_TORCH_VERSION={torch_version}");
    println!("cargo:rustc-env=HUELAB_GIT_COMMIT={}", git_commit());

    match std::env::var("HUELAB_FAISS_LIB") {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            if !dir.join("libfaiss_c.so").exists() {
                panic!(
                    "{} has no libfaiss_c.so: run `bash setup.sh deps` to build FAISS, \
                     or point HUELAB_FAISS_LIB at a directory that has it",
                    dir.display()
                );
            }
            println!("cargo:rustc-link-search=native={}", dir.display());
            add_rpath(&dir);
        }
        Err(_) => println!(
            "cargo:warning=HUELAB_FAISS_LIB is not set; relying on the system linker path for libfaiss_c"
        ),
    }
}

/// src/precision/autocast.cpp: libtorch's autocast switches, which tch does not bind. Only
/// plain ints cross the boundary, so the C++ ABI flags of libtorch's std::string don't matter.
fn build_autocast_shim(torch_lib: &Path) {
    const SHIM: &str = "src/precision/autocast.cpp";
    println!("cargo:rerun-if-changed={SHIM}");
    let include = torch_lib.join("../include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .file(SHIM)
        .compile("huelab_autocast");
}

/// An rpath applies to every binary, test and example of this package.
fn add_rpath(dir: &Path) {
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}

/// The commit huelab was built from, with "-dirty" when the work tree had changes, for
/// manifests; "unknown" outside a git checkout.
fn git_commit() -> String {
    for watched in [".git/HEAD", ".git/index", "src", "scripts"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git").args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match (git(&["rev-parse", "--short=12", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=no"])) {
        (Some(commit), Some(changes)) if changes.is_empty() => commit,
        (Some(commit), Some(_)) => format!("{commit}-dirty"),
        _ => "unknown".to_owned(),
    }
}
