//! Every notebook in notebooks/ runs headlessly with the real Jupyter machinery (nbclient and
//! the evcxr kernel setup.sh installs) and fails on any error, panic or stderr in any cell, or
//! on a notebook without an inline PNG; see notebooks/run_notebooks.py for the checks.
use std::path::Path;
use std::process::Command;

const VENV_PYTHON: &str = "/var/cache/huelab/notebook-venv/bin/python";
const JUPYTER_PATH: &str = "/var/cache/huelab/jupyter";

#[test]
fn every_notebook_runs_without_errors_and_shows_an_image() {
    let notebooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks");
    assert!(
        Path::new(VENV_PYTHON).exists() && Path::new(JUPYTER_PATH).join("kernels/huelab-rust/kernel.json").exists(),
        "the notebook machinery is missing: `bash setup.sh deps` installs evcxr_jupyter, the nbclient venv and the kernel"
    );
    let started = std::time::Instant::now();
    let out = Command::new(VENV_PYTHON)
        .arg(notebooks.join("run_notebooks.py"))
        .current_dir(&notebooks)
        .env("JUPYTER_PATH", JUPYTER_PATH)
        .output()
        .expect("the notebook venv's python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}notebooks took {:.0} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr).lines().rev().take(40).collect::<Vec<_>>().join("\n"));
    let executed = report.lines().filter(|l| l.contains(".ipynb: ok")).count();
    let expected = std::fs::read_dir(&notebooks).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "ipynb")).count();
    assert!(expected >= 3 && executed == expected, "{executed} of {expected} notebooks ran:\n{report}");
}
