//! Link-time setup that lets huelab binaries, tests and doctests run with no LD_LIBRARY_PATH:
//! an rpath to libtorch (whose location torch-sys reports) and to the FAISS shared libraries
//! that setup.sh builds once per machine. It also records the libtorch version for manifests.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=HUELAB_FAISS_LIB");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=HUELAB_GLIBC_FLOOR");

    let torch_lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB; is LIBTORCH set (see setup.sh)?");
    add_rpath(Path::new(&torch_lib));
    build_torch_shims(Path::new(&torch_lib));
    if std::env::var("HUELAB_GLIBC_FLOOR").is_ok() {
        build_libstdcxx_compat();
    }
    let torch_version = std::fs::read_to_string(Path::new(&torch_lib).join("../build-version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=HUELAB_TORCH_VERSION={torch_version}");
    println!("cargo:rustc-env=HUELAB_GIT_COMMIT={}", git_commit());

    match std::env::var("HUELAB_FAISS_LIB") {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            let shared = dir.join("libfaiss_c.so").exists();
            if !shared && !dir.join("libfaiss_c.a").exists() {
                panic!(
                    "{} has no libfaiss_c.so (or libfaiss_c.a): run `bash setup.sh deps` to build FAISS, \
                     or point HUELAB_FAISS_LIB at a directory that has it",
                    dir.display()
                );
            }
            println!("cargo:rustc-link-search=native={}", dir.display());
            // A rebuilt FAISS (another BLAS, say) relinks.
            println!("cargo:rerun-if-changed={}", dir.join("../.complete").display());
            // FAISS's OpenBLAS (scripts/build-faiss.sh), which src/knn/search/threads.rs calls
            // too; the shipped build's FAISS is an archive and needs it named here.
            if !dir.join("libscipy_openblas.so").exists() {
                panic!("{} has no libscipy_openblas.so: a FAISS build older than scripts/build-faiss.sh; run `bash setup.sh deps`", dir.display());
            }
            add_rpath(&dir);
        }
        Err(_) => println!(
            "cargo:warning=HUELAB_FAISS_LIB is not set; relying on the system linker path for libfaiss_c"
        ),
    }
}

/// The C++ shims over libtorch functions that tch does not bind: src/precision/autocast.cpp
/// (autocast's switches: plain ints cross the boundary) and src/train/fused_adam.cpp (fused
/// Adam: tch's tensor handles, `torch::Tensor*`, cross it). Neither passes a std::string, so the
/// C++ ABI flags of libtorch's std::string don't matter.
fn build_torch_shims(torch_lib: &Path) {
    const SHIMS: [&str; 2] = ["src/precision/autocast.cpp", "src/train/fused_adam.cpp"];
    let include = torch_lib.join("../include");
    let mut build = cc::Build::new();
    build.cpp(true).pic(true).warnings(false).include(&include).include(include.join("torch/csrc/api/include")).flag("-std=c++17");
    for shim in SHIMS {
        println!("cargo:rerun-if-changed={shim}");
        build.file(shim);
    }
    build.compile("huelab_torch_shims");
}

/// src/floor/libstdcxx_compat.cpp, for the shipped build only (scripts/make-bundle.sh sets
/// HUELAB_GLIBC_FLOOR): the few libstdc++ and glibc symbols that g++ 12's headers make C++ code
/// call and that the floor's libstdc++ (GCC 8) and glibc (2.28) lack, defined inside the binary.
fn build_libstdcxx_compat() {
    const COMPAT: &str = "src/floor/libstdcxx_compat.cpp";
    println!("cargo:rerun-if-changed={COMPAT}");
    cc::Build::new().cpp(true).pic(true).flag("-std=c++17").file(COMPAT).compile("huelab_libstdcxx_compat");
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
