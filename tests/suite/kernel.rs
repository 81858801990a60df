//! `huelab kernel` driven by jupyter_client (tests/kernel_client.py) from the notebook venv
//! that setup.sh makes: state across cells, inline figures, errors with positions, interrupt
//! during training, completion and inspection, hostile messages, shutdown, a killed server.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The notebook venv setup.sh makes in huelab's home.
fn venv_python() -> PathBuf {
    huelab::cache::venv_program("notebook-venv", "python")
}

/// A notebook folder with the kernel spec of the binary under test beside it.
struct Notebook {
    dir: tempfile::TempDir,
    jupyter_path: PathBuf,
}

fn notebook() -> Notebook {
    notebook_with(&[])
}

/// A notebook folder whose kernel spec was installed with `install_args` added.
fn notebook_with(install_args: &[&std::ffi::OsStr]) -> Notebook {
    assert!(venv_python().exists(), "the notebook venv is missing: `bash setup.sh` makes it");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["kernel", "install", "--prefix"]).arg(&prefix).args(install_args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir(dir.path().join("work")).unwrap();
    Notebook { jupyter_path: prefix.join("share/jupyter"), dir }
}

/// A notebook folder whose kernel spec starts `argv` (with `{connection_file}`), as a spec
/// written by hand or by an earlier huelab would.
fn notebook_with_argv(argv: &[String]) -> Notebook {
    let notebook = notebook();
    let spec = notebook.jupyter_path.join("kernels/huelab-rhai/kernel.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
    json["argv"] = serde_json::json!(argv);
    std::fs::write(&spec, json.to_string()).unwrap();
    notebook
}

/// Runs one scenario of kernel_client.py; returns its report.
fn scenario(name: &str) -> String {
    scenario_in(&notebook(), name, &[])
}

fn scenario_in(notebook: &Notebook, name: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel_client.py");
    let out = Command::new(venv_python())
        .arg(client)
        .arg(name)
        .current_dir(notebook.dir.path().join("work"))
        .env("JUPYTER_PATH", &notebook.jupyter_path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scenario {name} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn cells_share_one_session_and_show_figures_tables_and_errors() {
    let report = scenario("session");
    assert_eq!(report.matches("ok: ").count(), 8, "{report}");
}

#[test]
fn an_interrupt_stops_training_and_the_session_goes_on() {
    let report = scenario("interrupt");
    assert_eq!(report.matches("ok: ").count(), 6, "{report}");
}

#[test]
fn an_interrupted_comparison_or_memory_build_keeps_what_it_did_and_a_classification_shows_live() {
    let report = scenario("partial");
    assert_eq!(report.matches("ok: ").count(), 3, "{report}");
}

#[test]
fn completion_inspection_and_is_complete_answer() {
    let report = scenario("completion");
    assert_eq!(report.matches("ok: ").count(), 5, "{report}");
}

#[test]
fn bad_signatures_are_ignored_and_malformed_messages_answered() {
    let report = scenario("hostile");
    assert_eq!(report.matches("ok: ").count(), 2, "{report}");
}

#[test]
fn shutdown_leaves_no_process_behind() {
    let report = scenario("shutdown");
    let pid: u32 = report.split_whitespace().skip_while(|w| *w != "pid").nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{report}"));
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "kernel process {pid} is still there");
}

/// The spec `huelab kernel install` writes starts the front process, which links no libtorch,
/// with the session behind it.
#[test]
fn the_kernel_starts_behind_its_front_which_needs_no_libtorch() {
    let notebook = notebook();
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(notebook.jupyter_path.join("kernels/huelab-rhai/kernel.json")).unwrap()).unwrap();
    let front = Path::new(env!("CARGO_BIN_EXE_huelab-kernel"));
    assert_eq!(spec["argv"][0], front.canonicalize().unwrap().display().to_string(), "{spec}");
    assert!(spec["argv"].as_array().unwrap().iter().any(|a| a == "--relay-stdin"), "{spec}");
    let dynamic = Command::new("readelf").arg("-d").arg(front).output().unwrap();
    let needed: Vec<String> = String::from_utf8_lossy(&dynamic.stdout).lines().filter(|l| l.contains("(NEEDED)")).map(str::to_owned).collect();
    assert!(!needed.is_empty() && needed.iter().all(|l| !l.contains("torch") && !l.contains("c10") && !l.contains("faiss") && !l.contains("stdc++")), "{needed:?}");
}

/// Ready (kernel_info answered) while the session process is held back by a gate file, a cell
/// sent then run once it is up, both processes gone after shutdown.
#[test]
fn the_front_answers_at_once_and_runs_cells_once_the_session_is_up() {
    let gate = tempfile::tempdir().unwrap();
    let gate = gate.path().join("open");
    let front = env!("CARGO_BIN_EXE_huelab-kernel").to_owned();
    let held_back = r#"while [ ! -e "$HUELAB_TEST_GATE" ]; do sleep 0.05; done; exec "$0" kernel --connection-file "$1" --relay-stdin"#;
    let argv = [&front, "--connection-file", "{connection_file}", "--", "sh", "-c", held_back, env!("CARGO_BIN_EXE_huelab"), "{connection_file}"].map(str::to_owned);
    let notebook = notebook_with_argv(&argv);
    let report = scenario_in(&notebook, "front", &[("HUELAB_TEST_GATE", gate.as_os_str())]);
    assert_eq!(report.matches("ok: ").count(), 3, "{report}");
}

/// A spec written by an earlier huelab (no front: `huelab kernel` binds the sockets itself)
/// still starts a kernel that runs cells and shuts down.
#[test]
fn a_spec_without_the_front_still_works() {
    let argv = [env!("CARGO_BIN_EXE_huelab"), "kernel", "--connection-file", "{connection_file}"].map(str::to_owned);
    let report = scenario_in(&notebook_with_argv(&argv), "shutdown", &[]);
    assert!(report.contains("sessions []"), "{report}");
}

/// The front's own failures: each names what failed, and the session's exit status is the
/// front's.
#[test]
fn the_front_names_what_failed_and_exits_as_its_session_did() {
    let front = env!("CARGO_BIN_EXE_huelab-kernel");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("kernel-missing.json");
    let out = Command::new(front).arg("--connection-file").arg(&missing).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kernel-missing.json"), "{out:?}");

    let ports = free_ports(5);
    let connection = dir.path().join("kernel-1.json");
    let write = |path: &Path| std::fs::write(path, serde_json::json!({ "ip": "127.0.0.1", "transport": "tcp", "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2], "control_port": ports[3], "hb_port": ports[4], "key": "k", "signature_scheme": "hmac-sha256" }).to_string()).unwrap();
    write(&connection);
    let out = Command::new(front).arg("--connection-file").arg(&connection).args(["--", "/no/such/session"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start the session process /no/such/session"), "{out:?}");

    let out = Command::new(front).arg("--connection-file").arg(&connection).args(["--", "sh", "-c", "exit 3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // The session itself refuses a standard input that is not the front's socket.
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).arg("kernel").arg("--connection-file").arg(&connection).arg("--relay-stdin").stdin(std::process::Stdio::null()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("standard input is not the front process's socket"), "{out:?}");
}

/// Loopback ports free now (bound, then released), for a connection file.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

#[test]
fn a_kernel_ends_when_its_jupyter_process_is_killed() {
    let report = scenario("orphan");
    assert_eq!(report.matches("ok: ").count(), 1, "{report}");
}

#[test]
fn a_cell_shows_several_outputs_in_the_order_it_made_them() {
    let report = scenario("outputs");
    assert_eq!(report.matches("ok: ").count(), 6, "{report}");
}

#[test]
fn cells_queued_behind_a_failing_cell_are_aborted() {
    let report = scenario("stop_on_error");
    assert_eq!(report.matches("ok: ").count(), 2, "{report}");
}

#[test]
fn a_kernel_spec_allows_folders_and_a_cell_sets_the_operation_limit() {
    let allowed = tempfile::tempdir().unwrap();
    let notebook = notebook_with(&["--allow-dir".as_ref(), allowed.path().as_os_str()]);
    let report = scenario_in(&notebook, "limits", &[("HUELAB_TEST_ALLOWED_DIR", allowed.path().as_os_str())]);
    assert_eq!(report.matches("ok: ").count(), 2, "{report}");
}

/// Jupyter's own conformance suite (jupyter_kernel_test 0.7.0) with every sample the kernel
/// can serve: all 13 tests run (none skipped) and pass.
#[test]
fn jupyters_kernel_conformance_suite_passes() {
    let notebook = notebook();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let out = Command::new(venv_python())
        .args(["-m", "unittest", "-v", "kernel_conformance"])
        .current_dir(notebook.dir.path().join("work"))
        .env("PYTHONPATH", &tests)
        .env("JUPYTER_PATH", &notebook.jupyter_path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jupyter_kernel_test failed:\n{report}");
    assert!(report.contains("Ran 13 tests") && !report.contains("skipped"), "{report}");
}

/// JupyterLab's debugger: the debug messages in the order JupyterLab sends them, breakpoints
/// in a cell and in a function of an earlier cell, stepping, the variables panel with rich
/// views, an interrupt while stopped, a disconnect that resumes.
#[test]
fn jupyterlabs_debugger_stops_steps_and_shows_variables() {
    let report = scenario("debugger");
    assert_eq!(report.matches("ok: ").count(), 9, "{report}");
}
