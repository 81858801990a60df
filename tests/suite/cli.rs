//! The `huelab` binary end to end: the quickstart writes its CSV, PNG and manifest; failures
//! exit non-zero with `file:line:column: message` and never a Rust panic.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn huelab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huelab")).args(args).current_dir(dir).output().expect("huelab runs")
}

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/quickstart.rhai")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean_failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    err
}

#[test]
fn quickstart_writes_metrics_curves_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["run", quickstart().to_str().unwrap(), "epochs=2", "name=ci", "device=cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test accuracy") && stdout.contains("one-hot + hue"), "{stdout}");

    let run = dir.path().join("runs/ci");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 2 * 2, "header + 2 arms × 2 epochs:\n{csv}");
    assert!(rows[0].starts_with("run,epoch,train_loss,train_onehot_loss,train_hue_loss"));
    assert!(rows[1].starts_with("onehot,1,") && rows[3].starts_with("onehot+hue,1,"), "{csv}");

    let png = image::open(run.join("curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1400, 560));

    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["script"]["args"]["epochs"], "2");
    assert_eq!(manifest["versions"]["torch"], "2.11.0");
    let runs = manifest["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["config"]["loss"]["kind"], "onehot+hue");
    assert_eq!(runs[1]["config"]["loss"]["hue"]["project"], false);
    assert_eq!(runs[1]["hue_scale"], 0.05);
    assert_eq!(runs[0]["data"]["sha256"], runs[1]["data"]["sha256"]);
    assert_eq!(runs[0]["device"], "cpu");

    let leftovers: Vec<_> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no temporary files remain: {leftovers:?}");
}

#[test]
fn runtime_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.rhai"), "let data = dataset(\"digits\");\nlet parts = data.split(#{ trian: 0.8 });\n").unwrap();
    let err = assert_clean_failure(&huelab(dir.path(), &["run", "bad.rhai"]));
    assert!(err.starts_with("error: bad.rhai:2:18: "), "{err}");
    assert!(err.contains("trian"), "{err}");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.rhai"), "let a = 1;\nlet b = (2 + ;\n").unwrap();
    let err = assert_clean_failure(&huelab(dir.path(), &["check", "broken.rhai"]));
    assert!(err.starts_with("error: broken.rhai:2:"), "{err}");
    let err = assert_clean_failure(&huelab(dir.path(), &["run", "broken.rhai"]));
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn check_accepts_the_shipped_scripts() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for entry in std::fs::read_dir(scripts).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let out = huelab(Path::new(env!("CARGO_MANIFEST_DIR")), &["check", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
        }
    }
}

#[test]
fn bad_command_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = assert_clean_failure(&huelab(dir.path(), &["run", "missing.rhai"]));
    assert!(err.contains("missing.rhai") && err.contains("cannot read"), "{err}");
    let err = assert_clean_failure(&huelab(dir.path(), &["run", quickstart().to_str().unwrap(), "epochs"]));
    assert!(err.contains("'epochs'") && err.contains("key=value"), "{err}");
    let err = assert_clean_failure(&huelab(dir.path(), &["run", quickstart().to_str().unwrap(), "epochs=ten"]));
    assert!(err.contains("epochs=ten") && err.contains("quickstart.rhai:"), "{err}");
}

#[test]
fn unread_arguments_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("args.rhai"), "let e = arg(\"epochs\", 1);").unwrap();
    let out = huelab(dir.path(), &["run", "args.rhai", "epochs=2", "epohcs=3"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("epohcs"), "{}", stderr(&out));
}

#[test]
fn the_readme_script_snippets_run() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let snippets: Vec<&str> = readme.split("```rhai\n").skip(1).map(|rest| &rest[..rest.find("```").unwrap()]).collect();
    assert_eq!(snippets.len(), 2, "the training and the pixel-kNN snippets");
    let dir = tempfile::tempdir().unwrap();
    for (i, snippet) in snippets.iter().enumerate() {
        std::fs::write(dir.path().join(format!("readme{i}.rhai")), snippet).unwrap();
        let out = huelab(dir.path(), &["run", &format!("readme{i}.rhai"), "epochs=1"]);
        assert!(out.status.success(), "snippet {i}: {}", stderr(&out));
    }
    for file in ["runs/mine/metrics.csv", "runs/mine/curves.png", "runs/mine/manifest.json", "runs/mine/compare/summary.csv", "runs/mine/compare/comparison.png", "fig5.png", "fig6.png", "angles.png", "runs/mem/memory.json"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
}

#[test]
fn scripts_import_scripts_beside_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("helpers.rhai"), "fn double(x) { 2 * x }").unwrap();
    std::fs::write(dir.path().join("main.rhai"), "import \"helpers\" as h;\nprint(h::double(21));").unwrap();
    let out = huelab(dir.path(), &["run", "main.rhai"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    std::fs::write(dir.path().join("bad.rhai"), "import \"nope\" as n;").unwrap();
    let err = assert_clean_failure(&huelab(dir.path(), &["run", "bad.rhai"]));
    assert!(err.contains("bad.rhai:1") && err.contains("nope"), "{err}");
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let script = "let d = dataset(\"digits\"); let r = train(d, d.split(#{}), #{ epochs: 1, progress: false });\n\
                  write_metrics_csv(\"done.csv\", [r]);\nprint(\"written\");\n\
                  train(d, d.split(#{}), #{ epochs: 100000, progress: false });";
    std::fs::write(dir.path().join("long.rhai"), script).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["run", "long.rhai"]).current_dir(dir.path())
        .stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Synchronised on the script's own word, not on the clock: once "written" is out, the
    // first run's CSV is complete and the script has gone on to line 4.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "written");
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("interrupted") && err.contains("long.rhai:4"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(std::fs::read_to_string(dir.path().join("done.csv")).unwrap().lines().count() > 1);
}

#[test]
fn api_lists_every_function_with_a_description() {
    let out = huelab(Path::new(env!("CARGO_MANIFEST_DIR")), &["api"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for expected in ["train(data: Dataset, split: Split, options: map) -> TrainReport", "compare(data: Dataset, arms: array, options: map) -> Comparison", "hue_loss(pred_xy: array, targets: array, num_classes: int, options: map) -> float", "Dataset.len -> int"] {
        assert!(lines.contains(&expected), "{expected} missing from:\n{text}");
    }
    // Functions (not properties) must say what they do; overloads of `arg` share one doc.
    for (i, line) in lines.iter().enumerate() {
        let is_function = !line.starts_with(' ') && line.contains('(') && !line.starts_with("arg(");
        if is_function {
            assert!(lines.get(i + 1).is_some_and(|next| next.starts_with("    ")), "{line} has no description");
        }
    }
}

#[test]
fn bench_without_its_python_says_how_to_make_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["bench", "train", "--python", "/nonexistent/python", "--models", "small_cnn", "--steps", "1", "--rounds", "1"]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("/nonexistent/python") && err.contains("benches/setup-venv.sh"), "{err}");
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name).to_string_lossy().into_owned()
}

#[test]
fn predict_prints_the_top_classes_of_each_photo() {
    let photos = huelab::data::data_dir().join("skimage");
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["predict", photos.join("coffee.png").to_str().unwrap(), photos.join("chelsea.png").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * 6, "{text}");
    assert!(lines[1].contains("espresso"), "{text}");
    let err = assert_clean_failure(&huelab(dir.path(), &["predict", "--model", "efficientnet_lite9", "x.png"]));
    assert!(err.contains("efficientnet_lite4"), "{err}");
    let err = assert_clean_failure(&huelab(dir.path(), &["predict", "missing.png"]));
    assert!(err.contains("missing.png"), "{err}");
}

#[test]
fn the_observations_script_writes_every_figure_with_its_numbers() {
    // 64 px inputs give a 2×2 bottleneck: the whole pipeline, a fraction of the time. A user's
    // ImageFolder (two classes of four crops of two photographs) goes through it too.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("my-photos");
    for (class, photo) in [("cat", "chelsea"), ("coffee", "coffee")] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        let image = image::open(huelab::data::data_dir().join("skimage").join(format!("{photo}.png"))).unwrap();
        for k in 0..4u32 {
            image.crop_imm(20 * k, 10 * k, 200, 200).save(folder.join(class).join(format!("{k}.png"))).unwrap();
        }
    }
    let out = huelab(dir.path(), &["run", &script("observations.rhai"), "name=obs", "size=64", "k=3", "folder=my-photos", "folder_size=64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = dir.path().join("runs/obs");
    for file in [
        "fig3_energy.png", "fig3_energy.csv", "fig5_match_positions_textures.png", "fig5_match_positions_textures.csv",
        "fig5_match_positions_textures_summary.csv", "fig6_conditional_textures.png", "fig6_conditional_textures.csv",
        "match_angles_textures.png", "match_angles_textures.csv", "predictions_textures.csv", "manifest.json",
        "fig5_match_positions_folder.png", "fig6_conditional_folder.png", "predictions_folder.csv",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let energy = std::fs::read_to_string(run.join("fig3_energy.csv")).unwrap();
    assert_eq!(energy.lines().count(), 1 + 3 * 4, "three panels (textures, photos, the folder) of 2×2 cells:\n{energy}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let knn = &manifest["knn"][0];
    assert_eq!(knn["config"]["k"], 3);
    assert_eq!(knn["query_images"], 384);
    assert!(knn["accuracy"].as_f64().unwrap() > 0.5, "{knn}");
}

#[test]
fn the_descriptor_script_compares_every_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["run", &script("descriptors.rhai"), "name=desc", "per_class=12", "epochs=1", "seeds=1", "models=small_cnn", "pretrained=false", "progress=false"];
    let out = huelab(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("runs/desc/fig4_descriptors.csv")).unwrap();
    // 2 data sets × 6 series.
    assert_eq!(csv.lines().count(), 1 + 2 * 6, "{csv}");
    assert!(csv.contains("small_cnn / textures,gem,"), "{csv}");
    assert!(dir.path().join("runs/desc/models/small_cnn-textures-seed0/model.json").exists());
}

#[test]
fn bench_knn_without_faiss_python_says_how_to_make_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["bench", "knn", "--python", "/nonexistent/python", "--memory-images", "20", "--query-images", "4", "--dim", "8"]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("/nonexistent/python") && err.contains("benches/setup-venv.sh"), "{err}");
}

/// `base/torch/lib` with a "libtorch_cuda.so" that is not a shared library; the lib folder.
fn unloadable_cuda_torch(base: &std::path::Path) -> std::path::PathBuf {
    let lib = base.join("torch/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libtorch_cuda.so"), b"not an ELF file").unwrap();
    lib
}

#[test]
fn info_reports_a_cuda_backend_that_cannot_load_and_stays_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let lib = unloadable_cuda_torch(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).arg("info").env("HUELAB_TORCH_LIB", &lib).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot load") && text.contains("libtorch_cuda.so") && text.contains("CUDA available: false"), "{text}");
    // Said once (stderr), not per use.
    assert_eq!(stderr(&out).matches("cannot load").count(), 1, "{}", stderr(&out));
    // Another torch version is refused before dlopen.
    std::fs::write(dir.path().join("torch/version.py"), "__version__ = '2.10.0+cu128'\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).arg("info").env("HUELAB_TORCH_LIB", &lib).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("torch 2.10.0, huelab is built with torch 2.11.0"), "{text}");
    // Training asked for CUDA says why there is none.
    std::fs::write(dir.path().join("cuda.rhai"), "let d = dataset(\"digits\"); train(d, d.split(#{}), #{ epochs: 1, device: \"cuda\" });").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["run", "cuda.rhai"]).current_dir(dir.path()).env("HUELAB_TORCH_LIB", &lib).output().unwrap();
    let err = assert_clean_failure(&out);
    assert!(err.contains("cuda:0 asked for") && err.contains("torch 2.10.0"), "{err}");
}

/// A CUDA PyTorch found on its own (here: python3's, a stand-in that names a folder with a
/// `libtorch_cuda.so`) is loaded only where the machine has an NVIDIA driver; without one, its
/// CUDA libraries would cost every process hundreds of MB for nothing.
#[test]
fn a_cuda_pytorch_found_by_search_is_not_loaded_without_an_nvidia_driver() {
    let dir = tempfile::tempdir().unwrap();
    let lib = unloadable_cuda_torch(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let python = bin.join("python3");
    std::fs::write(&python, format!("#!/bin/sh\necho '{}'\n", dir.path().join("torch").display())).unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).arg("info").env("PATH", path).env_remove("HUELAB_TORCH_LIB").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    if huelab::cuda::has_nvidia_driver() {
        assert!(text.contains("cannot load") && text.contains(&lib.join("libtorch_cuda.so").display().to_string()), "{text}");
    } else {
        assert!(text.contains("no NVIDIA driver") && !text.contains("cannot load"), "{text}");
        assert!(stderr(&out).is_empty(), "nothing to warn about: {}", stderr(&out));
    }
}

#[test]
fn bench_knn_reports_its_anchors_and_the_busy_core_rounds() {
    // No Python here: the references are skipped; the GEMM anchor and the busy-core rounds are
    // huelab's own and always run.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("knn.json");
    let out = huelab(
        dir.path(),
        &["bench", "knn", "--no-reference", "--memory-images", "40", "--query-images", "16", "--dim", "8", "--rounds", "1", "--approximate", "IVF4,Flat", "--nprobe", "2", "--out", json.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("GEMM anchor") && stdout.contains("with one core busy"), "{stdout}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let result = &r["result"];
    for key in ["gemm_gflops_median", "huelab_gflops", "huelab_fraction_of_gemm_peak", "busy_fraction_of_quiet"] {
        let v = result[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    assert_eq!(result["search_flops"].as_f64().unwrap(), 2.0 * (16.0 * 49.0) * (40.0 * 49.0) * 8.0);
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    // The bench's own busy-core process is gone when it ends (other processes spinning on the
    // machine, such as a contended test run's, are not its business).
    let pid = r["result"]["busy_core_pid"].as_u64().expect("the busy rounds ran");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the busy-core process {pid} was left running");
}

#[test]
fn bench_script_without_the_built_example_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["bench", "script", "--example", "/nonexistent/train_digits", "--rounds", "1"]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("/nonexistent/train_digits") && err.contains("cargo build --release --example train_digits"), "{err}");
}

#[test]
fn notebook_without_jupyterlab_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = huelab(dir.path(), &["notebook", "--jupyter", "/nonexistent/jupyter"]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("/nonexistent/jupyter") && err.contains("setup.sh"), "{err}");
}

/// Where the home has no notebook venv (a cluster with the relocatable bundle), the `jupyter`
/// on PATH is the one started.
#[test]
fn notebook_without_the_setup_venv_starts_the_jupyter_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("jupyter");
    std::fs::write(&fake, "#!/bin/sh\necho \"jupyter started with: $*\"\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["notebook", "."]).current_dir(dir.path()).env("HUELAB_HOME", dir.path().join("home")).env("PATH", path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("jupyter started with: lab"), "{said}{}", stderr(&out));
}

#[test]
fn kernel_without_a_connection_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = assert_clean_failure(&huelab(dir.path(), &["kernel"]));
    assert!(err.contains("--connection-file") && err.contains("huelab kernel install"), "{err}");
    let missing = dir.path().join("nope.json");
    let err = assert_clean_failure(&huelab(dir.path(), &["kernel", "-f", missing.to_str().unwrap()]));
    assert!(err.contains("nope.json"), "{err}");
}

#[test]
fn a_second_slurm_submission_into_a_run_directory_being_submitted_is_refused() {
    // The first submission holds the run directory's lock while it plans and submits; the test
    // holds the same lock, so the refusal does not depend on timing (and needs no Slurm).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.rhai"), "let d = dataset(\"digits\");\ntrain(d, d.split(#{}), #{ epochs: 1, progress: false });\n").unwrap();
    let _first = huelab::files::DirLock::acquire(&dir.path().join("cluster")).unwrap();
    let out = huelab(dir.path(), &["run", "--slurm", "--run-dir", "cluster", "one.rhai"]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("cluster") && err.contains("another `huelab run --slurm` is submitting into it"), "{err}");
    assert!(!dir.path().join("cluster/plan.json").exists());
}

/// huelab starts itself again with a short OpenMP spin (see src/main/openmp_wait.rs) unless the
/// user chose how OpenMP threads wait; `huelab info` says which applies.
#[test]
fn openmp_threads_spin_briefly_unless_the_user_chose_how_they_wait() {
    let info = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_huelab"));
        command.arg("info").env_remove("GOMP_SPINCOUNT").env_remove("OMP_WAIT_POLICY").env_remove("HUELAB_SET_GOMP_SPINCOUNT");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with("OpenMP waits")).unwrap_or_default().to_owned()
    };
    assert!(info(&[]).contains("spin 10000 (huelab's default"), "{}", info(&[]));
    assert!(info(&[("GOMP_SPINCOUNT", "5")]).contains("as you set them (GOMP_SPINCOUNT=5)"));
    assert!(info(&[("OMP_WAIT_POLICY", "PASSIVE")]).contains("as you set them (OMP_WAIT_POLICY=PASSIVE)"));
}
