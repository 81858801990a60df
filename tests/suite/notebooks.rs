//! Notebooks run headlessly with the real Jupyter machinery (nbclient) and fail on any error,
//! panic or stderr in any cell, or on a notebook without an inline PNG; see
//! notebooks/run_notebooks.py for the checks. The Rhai notebooks (notebooks/rhai/) run in the
//! huelab kernel of the binary under test; the evcxr ones need `bash setup.sh evcxr` and run
//! with `cargo test --release -- --ignored`.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The notebook venv setup.sh makes in huelab's home.
fn venv_python() -> PathBuf {
    huelab::cache::venv_program("notebook-venv", "python")
}

fn notebooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks")
}

/// Runs run_notebooks.py on `notebooks` with `jupyter_path`; asserts every one ran clean.
fn run_notebooks(notebooks: &[PathBuf], jupyter_path: &Path) {
    assert!(venv_python().exists(), "the notebook venv is missing: `bash setup.sh` makes it");
    assert!(notebooks.len() >= 3, "{notebooks:?}");
    let started = std::time::Instant::now();
    let executed_copies = tempfile::tempdir().unwrap();
    let out = Command::new(venv_python())
        .arg(notebooks_dir().join("run_notebooks.py"))
        .args(notebooks)
        .current_dir(notebooks_dir())
        .env("JUPYTER_PATH", jupyter_path)
        .env("HUELAB_NOTEBOOK_OUT", executed_copies.path())
        .output()
        .expect("the notebook venv's python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}notebooks took {:.0} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr).lines().rev().take(40).collect::<Vec<_>>().join("\n"));
    let executed = report.lines().filter(|l| l.contains(".ipynb: ok")).count();
    assert_eq!(executed, notebooks.len(), "{report}");
}

fn notebooks_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "ipynb")).collect();
    found.sort();
    found
}

#[test]
fn every_rhai_notebook_runs_in_the_huelab_kernel_and_shows_an_image() {
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["kernel", "install", "--prefix"]).arg(prefix.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run_notebooks(&notebooks_in(&notebooks_dir().join("rhai")), &prefix.path().join("share/jupyter"));
}

#[test]
#[ignore = "needs the evcxr kernel: `bash setup.sh evcxr`"]
fn every_evcxr_notebook_runs_without_errors_and_shows_an_image() {
    assert!(huelab::cache::home().join("jupyter/kernels/huelab-rust/kernel.json").exists(), "`bash setup.sh evcxr` installs evcxr_jupyter and its kernel spec");
    run_notebooks(&notebooks_in(&notebooks_dir()), &huelab::cache::home().join("jupyter"));
}
