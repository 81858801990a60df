//! Issue 22's classes of hostile input, one test each: inputs well-formed byte by byte that lie
//! about their structure or meaning, special files, links out of the readable places, and
//! hostile environments. Each must end in an error naming the file, line, tensor or option,
//! never a hang, an abort, a panic or a result.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use huelab::activations::Activations;
use huelab::data::{load_idx, load_image_folder, load_image_list, load_npy, ImageFolderConfig, NpyLayout};
use huelab::input::{confined, resolve, Access};
use huelab::knn::{MemoryConfig, PixelMemory};
use huelab::train::{train, TrainConfig};
use tch::{Device, Kind, Tensor};

use super::reliability::{checkpointed_run, tamper_tensors};

fn huelab(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huelab"));
    command.args(args).current_dir(dir);
    command
}

/// The write end of a pipe whose read end is already closed: every write to it fails with EPIPE.
fn pipe_without_reader() -> Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2) failed");
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    Stdio::from(write_end)
}

/// Runs `command` to its end, failing the test if it has not ended after `seconds` (a reader
/// blocked on a FIFO would never end).
fn finishes(mut command: Command, seconds: u64) -> Output {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(seconds) {
            let _ = child.kill();
            panic!("{command:?} did not end within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs a library call on its own thread, failing the test if it blocks.
fn within<T: Send + 'static>(seconds: u64, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(work()));
    receive.recv_timeout(Duration::from_secs(seconds)).expect("the read blocked")
}

fn stderr(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked") && !err.contains("This is a bug") && !err.contains("Exception raised from"), "{err}");
    err
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

fn write_png(path: &Path, width: u32, height: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, 40])).save(path).unwrap();
}

fn folder_config() -> ImageFolderConfig {
    ImageFolderConfig { size: (8, 8), workers: 1, ..Default::default() }
}

#[test]
fn special_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("fifo.rhai"));
    for command in ["run", "check"] {
        let out = finishes(huelab(dir.path(), &[command, "fifo.rhai"]), 60);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains("fifo.rhai") && err.contains("FIFO"), "{command}: {err}");
    }
    // A device reads forever.
    let out = finishes(huelab(dir.path(), &["run", "/dev/zero"]), 60);
    assert!(!out.status.success() && stderr(&out).contains("/dev/zero: is a device"), "{}", stderr(&out));
    // A FIFO where data, a list file, a memory's sidecar or a checkpoint's manifest belongs.
    let root = dir.path().to_owned();
    mkfifo(&root.join("images.npy"));
    mkfifo(&root.join("list.txt"));
    std::fs::create_dir(root.join("memory")).unwrap();
    mkfifo(&root.join("memory/memory.json"));
    let errors = within(60, move || {
        vec![
            load_npy("x", &root.join("images.npy"), &root.join("labels.npy"), NpyLayout::Auto, None).unwrap_err().to_string(),
            load_image_list("x", &root, &root.join("list.txt"), folder_config()).unwrap_err().to_string(),
            PixelMemory::load(&root.join("memory"), Device::Cpu).unwrap_err().to_string(),
        ]
    });
    for (error, name) in errors.iter().zip(["images.npy", "list.txt", "memory.json"]) {
        assert!(error.contains(name) && error.contains("FIFO"), "{error}");
    }
    // An image file that is a FIFO is an error, not silently left out of a folder.
    write_png(&dir.path().join("folder/cat/a.png"), 9, 9);
    write_png(&dir.path().join("folder/dog/b.png"), 9, 9);
    mkfifo(&dir.path().join("folder/dog/c.png"));
    let folder = dir.path().join("folder");
    let error = within(60, move || load_image_folder("x", &folder, folder_config()).unwrap_err().to_string());
    assert!(error.contains("c.png") && error.contains("FIFO"), "{error}");
}

#[test]
fn a_checkpoint_manifest_that_is_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (data, split, config) = checkpointed_run(&run);
    std::fs::remove_file(run.join("checkpoint.json")).unwrap();
    mkfifo(&run.join("checkpoint.json"));
    let error = within(120, move || train(&data, &split, &config).unwrap_err().to_string());
    assert!(error.contains("checkpoint.json") && error.contains("FIFO"), "{error}");
}

#[test]
fn npy_headers_that_repeat_a_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maps.npy");
    let labels = dir.path().join("labels.npy");
    ndarray_npy::write_npy(&labels, &ndarray::Array1::from_vec(vec![0i64, 1])).unwrap();
    for header in [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 1, 1), 'shape': (35184372088832, 1, 1, 1), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 1, 1), \"shape\": (2, 2, 1, 1), }",
        "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 1, 1, 1), }",
    ] {
        let mut text = header.to_owned();
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((text.len() as u16).to_le_bytes());
        bytes.extend(text.as_bytes());
        bytes.extend([0u8; 8]);
        std::fs::write(&path, &bytes).unwrap();
        let error = Activations::load_npy(&path, &labels, None).unwrap_err().to_string();
        assert!(error.contains("maps.npy") && error.contains("times"), "{header}: {error}");
    }
}

#[test]
fn a_memory_whose_parts_disagree_and_empty_activations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(3);
    let acts = Activations::new(Tensor::rand([6, 4, 3, 3], (Kind::Float, Device::Cpu)), vec![0, 1, 0, 1, 0, 1], vec!["a".into(), "b".into()], "test").unwrap();
    let (config, _) = MemoryConfig::from_options(serde_json::Map::new()).unwrap();
    let memory_dir = dir.path().join("memory");
    PixelMemory::build(&acts, &config, Device::Cpu).unwrap().save(&memory_dir).unwrap();
    let meta_path = memory_dir.join("memory.json");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    // memory.json claiming 8 channels (dim 8) over an index of 4-dimensional vectors.
    let mut meta = original.clone();
    meta["channels"] = 8.into();
    meta["dim"] = 8.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let error = PixelMemory::load(&memory_dir, Device::Cpu).unwrap_err().to_string();
    assert!(error.contains("index.faiss") && error.contains("4-dimensional") && error.contains("8"), "{error}");
    // Activations with zero channels never reach libtorch.
    let error = Activations::new(Tensor::zeros([2, 0, 3, 3], (Kind::Float, Device::Cpu)), vec![0, 1], vec!["a".into(), "b".into()], "t").unwrap_err().to_string();
    assert!(error.contains("channels ≥ 1"), "{error}");
}

/// A memory.json whose configuration names another index than index.faiss holds (its
/// checksums intact) is refused; each memory loads with its own.
#[test]
fn a_memory_json_describing_another_index_than_index_faiss_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let maps = huelab::rng::seeded(5, || Tensor::rand([64, 8, 4, 4], (Kind::Float, Device::Cpu)));
    let acts = Activations::new(maps, (0..64).map(|i| i % 2).collect(), vec!["a".into(), "b".into()], "test").unwrap();
    let kinds: &[(&str, Option<u64>)] = &[("Flat", None), ("HNSW16", None), ("HNSW32", None), ("IVF4,Flat", None), ("IVF8,Flat", None), ("PQ4", None), ("PQ2", None), ("SQ8", None), ("IVF4,PQ2", None), ("Flat", Some(4)), ("Flat", Some(6))];
    let configs: Vec<serde_json::Value> = kinds
        .iter()
        .enumerate()
        .map(|(i, (index, pca))| {
            let mut options = serde_json::Map::new();
            options.insert("index".into(), (*index).into());
            if let Some(pca) = pca {
                options.insert("pca".into(), (*pca).into());
            }
            let (config, _) = MemoryConfig::from_options(options).unwrap();
            let memory_dir = dir.path().join(format!("m{i}"));
            PixelMemory::build(&acts, &config, Device::Cpu).unwrap().save(&memory_dir).unwrap();
            // Writer → reader: each memory loads as written.
            PixelMemory::load(&memory_dir, Device::Cpu).unwrap_or_else(|e| panic!("{index} {pca:?}: {e}"));
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(memory_dir.join("memory.json")).unwrap()).unwrap()["config"].clone()
        })
        .collect();
    for (i, _) in kinds.iter().enumerate() {
        let meta_path = dir.path().join(format!("m{i}/memory.json"));
        let original = std::fs::read(&meta_path).unwrap();
        for (j, other) in configs.iter().enumerate() {
            if j == i {
                continue;
            }
            let mut meta: serde_json::Value = serde_json::from_slice(&original).unwrap();
            meta["config"] = other.clone();
            std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
            let error = PixelMemory::load(&dir.path().join(format!("m{i}")), Device::Cpu).err().unwrap_or_else(|| panic!("{:?} read as {:?}", kinds[i], kinds[j])).to_string();
            assert!(error.contains("index.faiss") && (error.contains("another index than memory.json describes") || error.contains("dimensional")), "{:?} as {:?}: {error}", kinds[i], kinds[j]);
        }
        std::fs::write(&meta_path, &original).unwrap();
    }
}

#[test]
fn links_out_of_the_readable_places_are_refused_and_links_inside_are_read() {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("inside");
    let outside = root.path().join("outside");
    write_png(&outside.join("secret.png"), 9, 9);
    write_png(&outside.join("dogs/d.png"), 9, 9);
    write_png(&inside.join("data/cat/a.png"), 9, 9);
    write_png(&inside.join("data/cat/b.png"), 9, 9);
    std::os::unix::fs::symlink(outside.join("dogs"), inside.join("data/dog")).unwrap();
    let access = Access::Within(vec![resolve(&inside)]);
    let data = inside.join("data");
    let error = confined(access.clone(), || load_image_folder("x", &data, folder_config()).unwrap_err().to_string());
    assert!(error.contains("d.png") && error.contains("--allow-fs"), "{error}");
    // A list file naming an absolute path or a `../` path outside.
    for entry in [outside.join("secret.png").display().to_string(), "../outside/secret.png".to_owned()] {
        let list = inside.join("list.txt");
        std::fs::write(&list, format!("data/cat/a.png 0\n{entry} 1\n")).unwrap();
        let error = confined(access.clone(), || load_image_list("x", &inside, &list, folder_config()).unwrap_err().to_string());
        assert!(error.contains("secret.png") && error.contains("outside"), "{entry}: {error}");
    }
    // Unconfined (a Rust program, or `--allow-fs`) the same folder is read.
    assert_eq!(load_image_folder("x", &data, folder_config()).unwrap().len(), 3);
    // A link to a file inside is as good as the file.
    std::fs::remove_file(inside.join("data/dog")).unwrap();
    write_png(&inside.join("elsewhere/e.png"), 9, 9);
    std::fs::create_dir(inside.join("data/dog")).unwrap();
    std::os::unix::fs::symlink(inside.join("elsewhere/e.png"), inside.join("data/dog/e.png")).unwrap();
    assert_eq!(confined(access, || load_image_folder("x", &data, folder_config()).unwrap().len()), 3);
    // Through a script: a checkpoint tensor file linking out is named with the way out.
    let script_dir = root.path().join("script");
    std::fs::create_dir(&script_dir).unwrap();
    std::fs::write(
        script_dir.join("resume.rhai"),
        "let d = dataset(\"digits\").subset(#{ per_class: 8, seed: 0 });\ntrain(d, d.split(#{}), #{ epochs: 1, progress: false, device: \"cpu\", checkpoint: \"run\", resume: true });\n",
    )
    .unwrap();
    let out = finishes(huelab(&script_dir, &["run", "resume.rhai"]), 300);
    assert!(out.status.success(), "{}", stderr(&out));
    let tensors = script_dir.join("run/checkpoint-epoch-1.safetensors");
    std::fs::rename(&tensors, outside.join("tensors.safetensors")).unwrap();
    std::os::unix::fs::symlink(outside.join("tensors.safetensors"), &tensors).unwrap();
    let out = finishes(huelab(&script_dir, &["run", "resume.rhai"]), 300);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("checkpoint-epoch-1.safetensors") && err.contains("--allow-fs"), "{err}");
    // With --allow-fs the user vouches for the link.
    let out = finishes(huelab(&script_dir, &["run", "--allow-fs", "resume.rhai"]), 300);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn impossible_checkpoint_values_and_nan_weights_are_refused_at_resume() {
    let root = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/epochs/0/train_accuracy", 7.5.into(), "train_accuracy is 7.5"),
        ("/epochs/0/lr", (-0.01).into(), "lr -0.01"),
        ("/optimizer_steps", (1u64 << 62).into(), "optimizer_steps is 4611686018427387904"),
        ("/optimizer_steps", 0.into(), "optimizer_steps is 0"),
        ("/wall_seconds", (-1.0).into(), "wall_seconds"),
    ];
    for (i, (pointer, value, expected)) in cases.into_iter().enumerate() {
        let dir = root.path().join(i.to_string());
        let (data, split, config) = checkpointed_run(&dir);
        let json_path = dir.join("checkpoint.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        *manifest.pointer_mut(pointer).unwrap() = value;
        std::fs::write(&json_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let error = train(&data, &split, &config).unwrap_err().to_string();
        assert!(error.contains("checkpoint.json") && error.contains(expected), "{pointer}: {error}");
    }
    // NaN in a weight, with the digest recomputed so only the values can tell.
    let dir = root.path().join("nan");
    let (data, split, config) = checkpointed_run(&dir);
    tamper_tensors(&dir, |name, t| Some(if name.ends_with("conv1.weight") || name.contains("heads") && name.ends_with("weight") { t.fill(f64::NAN) } else { t }));
    let error = train(&data, &split, &config).unwrap_err().to_string();
    assert!(error.contains("checkpoint-epoch-1.safetensors") && error.contains("NaN"), "{error}");
    // A resumed partial epoch that claims more batches than an epoch has.
    let dir = root.path().join("partial");
    let (data, split, config) = checkpointed_run(&dir);
    let json_path = dir.join("checkpoint.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert!(manifest.get("partial").is_none());
    manifest["epochs"] = serde_json::json!([]);
    manifest["epoch"] = 0.into();
    manifest["partial"] = serde_json::json!({ "epoch": 1, "seconds": 1.0, "sums": { "images": 16, "batches": 1_000_000_000_000_000_000u64, "loss": 1.0, "parts": [0.5, 0.5], "correct": 3.0, "nonfinite": 0, "first_nonfinite": 0 } });
    std::fs::write(&json_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let error = train(&data, &split, &config).unwrap_err().to_string();
    assert!(error.contains("checkpoint.json") && error.contains("partial epoch"), "{error}");
}

#[test]
fn a_write_error_on_stdout_is_a_plain_error_and_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("print.rhai"), "print(\"hello\");\nlet x = 1;\nx + 1\n").unwrap();
    // A `print` or `debug` that is the script's last operation: no later operation stops the
    // script, and the run once ended with status 0 and its output lost.
    std::fs::write(dir.path().join("last.rhai"), "let x = 1;\nprint(\"hello\")\n").unwrap();
    std::fs::write(dir.path().join("in_fn.rhai"), "fn f() { print(\"a\"); }\nf();\n").unwrap();
    std::fs::write(dir.path().join("debug.rhai"), "debug(\"x\");\n").unwrap();
    for args in [&["api"][..], &["info"], &["check", "print.rhai"], &["run", "print.rhai"], &["run", "last.rhai"], &["run", "in_fn.rhai"], &["run", "debug.rhai"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = huelab(dir.path(), args).stdout(full).stderr(Stdio::piped()).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} exited 0 having written nothing: {err}");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
    }
    // `huelab api | head -0`: the reader has gone before huelab writes. The read end is closed
    // before the spawn, so the first write fails whatever the timing (a reader that closes after
    // reading a few bytes races with a program whose whole output fits in the pipe's buffer).
    let out = huelab(dir.path(), &["api"]).stdout(pipe_without_reader()).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "a closed pipe is not an error to report");
    assert_eq!(out.status.code(), Some(141));
}

#[test]
fn faiss_factory_strings_and_search_breadths_are_checked_before_faiss_builds() {
    tch::manual_seed(5);
    let acts = Activations::new(Tensor::rand([8, 16, 2, 2], (Kind::Float, Device::Cpu)), (0..8).map(|i| i % 2).collect(), vec!["a".into(), "b".into()], "t").unwrap();
    for (options, key) in [
        (serde_json::json!({ "index": "IVF0,Flat" }), "index"),
        (serde_json::json!({ "index": "HNSW0" }), "index"),
        (serde_json::json!({ "index": "IVF4,PQ0" }), "index"),
        (serde_json::json!({ "index": "PQ4x40" }), "index"),
        (serde_json::json!({ "index": "Flat", "ef_search": 1u64 << 40 }), "ef_search"),
        (serde_json::json!({ "index": "Flat", "pca": 0 }), "pca"),
    ] {
        let error = MemoryConfig::from_options(options.as_object().unwrap().clone())
            .and_then(|(config, device)| PixelMemory::build(&acts, &config, device))
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("option '{key}'")), "{options}: {error}");
    }
}

#[test]
fn unbounded_reads_and_thread_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.rhai");
    let mut file = std::fs::File::create(&big).unwrap();
    for _ in 0..(5 << 20) / 16 {
        file.write_all(b"let x = 1; // .\n").unwrap();
    }
    drop(file);
    let out = finishes(huelab(dir.path(), &["check", "big.rhai"]), 60);
    assert!(!out.status.success() && stderr(&out).contains("big.rhai") && stderr(&out).contains("more than"), "{}", stderr(&out));
    std::fs::write(dir.path().join("ok.rhai"), "1").unwrap();
    let out = finishes(huelab(dir.path(), &["run", "--threads", "1024", "ok.rhai"]), 60);
    assert!(!out.status.success() && stderr(&out).contains("--threads") && stderr(&out).contains("cores"), "{}", stderr(&out));
}

#[test]
fn a_gzipped_idx_bomb_is_refused_by_its_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let (count, side) = (65_536u32, 32u32);
    let mut header = vec![0, 0, 0x08, 3];
    for d in [count, side, side] {
        header.extend(d.to_be_bytes());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&header).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(count * side * side) as usize / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let images = dir.path().join("images.idx.gz");
    std::fs::write(&images, encoder.finish().unwrap()).unwrap();
    let mut labels = vec![0, 0, 0x08, 1];
    labels.extend(count.to_be_bytes());
    labels.extend((0..count).map(|i| (i % 2) as u8));
    std::fs::write(dir.path().join("labels.idx"), labels).unwrap();
    let error = load_idx("bomb", &images, &dir.path().join("labels.idx"), None).unwrap_err().to_string();
    assert!(error.contains("images.idx.gz") && error.contains("more values than the file can hold"), "{error}");
}

#[test]
fn labels_and_layouts_that_cannot_be_right_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        write_png(&dir.path().join(name), 9, 9);
    }
    let list = dir.path().join("list.txt");
    for (text, line, label) in [
        ("a.png 0\nb.png -1\nc.png 1\n", 2, "-1"),
        ("a.png 0\nb.png 4294967296\n", 2, "4294967296"),
        ("a.png 0\nb.png 0.5\n", 2, "0.5"),
        ("a.png cat\nb.png 1\nc.png dog\n", 2, "1"),
    ] {
        std::fs::write(&list, text).unwrap();
        let error = load_image_list("x", dir.path(), &list, folder_config()).unwrap_err().to_string();
        assert!(error.contains("list.txt") && error.contains(&format!("line {line}")) && error.contains(&format!("'{label}'")), "{text:?}: {error}");
    }
    // train/ and test/ with different classes.
    let split = dir.path().join("split");
    for part in ["train/cat/a.png", "train/dog/b.png", "test/bird/c.png", "test/cat/d.png"] {
        write_png(&split.join(part), 9, 9);
    }
    let error = load_image_folder("x", &split, folder_config()).unwrap_err().to_string();
    assert!(error.contains("test") && error.contains("bird") && error.contains("dog"), "{error}");
}

#[test]
fn script_limits_stop_recursion_through_eval_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("eval.rhai", "let s = \"1\";\nfor i in 0..50 { s = \"eval(\\\"\" + s + \"\\\")\"; }\neval(s)\n", "eval"),
        ("selfish.rhai", "import \"selfish\" as me;\n1\n", "import cycle"),
        ("a.rhai", "import \"b\" as b;\n1\n", "import cycle"),
        ("loop.rhai", "let n = 0;\nloop { n += 1; }\n", "--max-operations"),
    ];
    std::fs::write(dir.path().join("b.rhai"), "import \"a\" as a;\n2\n").unwrap();
    for (name, source, expected) in cases {
        std::fs::write(dir.path().join(name), source).unwrap();
        let out = finishes(huelab(dir.path(), &["run", name]), 120);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains(name.trim_end_matches(".rhai")) && err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn numeric_options_that_overflow_are_refused_with_their_range() {
    for (key, value) in [("epochs", serde_json::json!(i64::MAX)), ("crop_padding", serde_json::json!(100_000)), ("crop_padding", serde_json::json!(1u64 << 40)), ("batch_size", serde_json::json!(1u64 << 40))] {
        let options = serde_json::json!({ key: value, "progress": false });
        let error = TrainConfig::from_options(options.as_object().unwrap().clone()).and_then(|c| c.validate().map(|_| c)).unwrap_err().to_string();
        assert!(error.contains(&format!("option '{key}'")), "{key} = {value}: {error}");
    }
    let options = serde_json::json!({ "size": 4000 });
    let error = huelab::extract::ExtractorOptions::from_options(options.as_object().unwrap().clone(), "pretrained options", huelab::extract::ExtractorOptions::PRETRAINED_OPTIONS).unwrap_err().to_string();
    assert!(error.contains("option 'size'") && error.contains("1024"), "{error}");
}

#[test]
fn weights_that_load_but_cannot_be_trained_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let good = Tensor::ones([4, 3], (Kind::Float, Device::Cpu));
    for (name, tensor, expected) in [
        ("fc.weight", good.fill(f64::NAN), "NaN"),
        ("bn.running_var", Tensor::from_slice(&[1.0f32, -0.5]), "negative running variance"),
    ] {
        Tensor::write_safetensors(&[(name, &tensor)], &path).unwrap();
        let error = huelab::models::load_state_dict(&path).unwrap_err().to_string();
        assert!(error.contains("state.safetensors") && error.contains(name) && error.contains(expected), "{error}");
    }
    // A saved model whose tensors file was padded into a huge sparse file.
    let run = dir.path().join("run");
    checkpointed_run(&run);
    let tensors = run.join("model.safetensors");
    let len = std::fs::metadata(&tensors).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&tensors).unwrap().set_len(len + (5 << 30)).unwrap();
    let error = huelab::extract::Extractor::trained(&run, "bottleneck", Device::Cpu).unwrap_err().to_string();
    assert!(error.contains("model.safetensors") && error.contains("sparse"), "{error}");
}

// --- Issue 32's held-out classes -----------------------------------------------------------

/// A zip `torch.save` file of one float tensor `w` whose pickle gives `size` and `stride`, over
/// a storage of `storage_floats` floats; `extra` entries are added as they are.
fn zip_state_dict(path: &Path, size: u32, stride: u8, storage_floats: usize, extra: &[(&str, &[u8])]) {
    let mut pickle = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00J".to_vec();
    pickle.extend(size.to_le_bytes());
    pickle.extend(b"\x85K");
    pickle.push(stride);
    pickle.extend(b"\x85\x89NtRu.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("t/data.pkl", stored).unwrap();
    zip.write_all(&pickle).unwrap();
    zip.start_file("t/data/0", stored).unwrap();
    zip.write_all(&vec![0u8; 4 * storage_floats]).unwrap();
    for (name, bytes) in extra {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn zip_state_dicts_with_a_repeated_entry_name_or_views_beyond_their_storage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pth");
    zip_state_dict(&good, 4, 1, 4, &[]);
    let tensors = huelab::models::load_state_dict(&good).unwrap();
    assert_eq!((tensors.len(), tensors[0].1.size()), (1, vec![4]), "the hand-made file is a state dict");

    // Two entries named t/data/0 (the second written as t/data/9, then renamed in place): which
    // one a reader takes is up to it.
    let twice = dir.path().join("twice.pth");
    zip_state_dict(&twice, 4, 1, 4, &[("t/data/9", &[1u8; 16])]);
    let bytes = std::fs::read(&twice).unwrap();
    let mut patched = bytes.clone();
    let at: Vec<usize> = bytes.windows(8).enumerate().filter(|(_, w)| *w == b"t/data/9").map(|(at, _)| at).collect();
    assert_eq!(at.len(), 2, "the name in its local header and in the central directory");
    for at in at {
        patched[at..at + 8].copy_from_slice(b"t/data/0");
    }
    std::fs::write(&twice, &patched).unwrap();
    let error = huelab::models::load_state_dict(&twice).unwrap_err().to_string();
    assert!(error.contains("twice.pth") && error.contains("share a name"), "{error}");

    // A view of one float repeated a billion times (stride 0): 4 GB asked of libtorch before.
    for (name, size, stride, floats) in [("stride0.pth", 1_000_000_000u32, 0u8, 1usize), ("overlap.pth", 500_000_000, 1, 600)] {
        let path = dir.path().join(name);
        zip_state_dict(&path, size, stride, floats, &[]);
        let error = within(60, move || huelab::models::load_state_dict(&path).map(|_| ()).unwrap_err().to_string());
        assert!(error.contains(name) && (error.contains("storage bytes") || error.contains("does not fit")), "{error}");
    }
}

#[test]
fn pickles_whose_memo_or_marks_grow_without_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A million and more tiny values, each memoised under its own key: a table that grew past a
    // gigabyte, aborting under a memory limit, before any bound on values was reached.
    let memo = dir.path().join("memo.pth");
    let mut body = b"\x80\x02".to_vec();
    for key in 0..1_100_000u32 {
        body.push(b'N');
        body.push(b'r');
        body.extend(key.to_le_bytes());
    }
    body.push(b'.');
    std::fs::write(&memo, body).unwrap();
    let error = huelab::models::load_state_dict(&memo).unwrap_err().to_string();
    assert!(error.contains("memo.pth") && error.contains("memoises more than"), "{error}");

    let marks = dir.path().join("marks.pth");
    let mut body = b"\x80\x02".to_vec();
    body.extend(vec![b'('; 10_000_000]);
    body.push(b'.');
    std::fs::write(&marks, body).unwrap();
    let error = huelab::models::load_state_dict(&marks).unwrap_err().to_string();
    assert!(error.contains("marks.pth") && error.contains("MARKs open"), "{error}");
}

#[test]
fn a_gzip_file_with_a_second_member_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gz = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let mut labels = vec![0, 0, 0x08, 1];
    labels.extend(4u32.to_be_bytes());
    labels.extend([0, 1, 0, 1]);
    let mut images = vec![0, 0, 0x08, 3];
    for d in [4u32, 2, 2] {
        images.extend(d.to_be_bytes());
    }
    images.extend([7u8; 16]);
    std::fs::write(dir.path().join("labels.idx.gz"), gz(&labels)).unwrap();
    std::fs::write(dir.path().join("images.idx.gz"), gz(&images)).unwrap();
    let one = load_idx("one", &dir.path().join("images.idx.gz"), &dir.path().join("labels.idx.gz"), None).unwrap();
    assert_eq!(one.len(), 4, "one member reads");
    // `cat images.gz more.gz`: the second member was ignored, so the data read was not the file's.
    let mut two = gz(&images);
    two.extend(gz(&[9u8; 16]));
    std::fs::write(dir.path().join("two.idx.gz"), two).unwrap();
    let error = load_idx("two", &dir.path().join("two.idx.gz"), &dir.path().join("labels.idx.gz"), None).unwrap_err().to_string();
    assert!(error.contains("two.idx.gz") && error.contains("second gzip member"), "{error}");
    let mut trailing = gz(&labels);
    trailing.extend(b"junk");
    std::fs::write(dir.path().join("trailing.idx.gz"), trailing).unwrap();
    let error = load_idx("t", &dir.path().join("images.idx.gz"), &dir.path().join("trailing.idx.gz"), None).unwrap_err().to_string();
    assert!(error.contains("trailing.idx.gz") && error.contains("follow the end of the gzip data"), "{error}");
}

#[test]
fn nan_names_duplicate_classes_and_subsets_beyond_the_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |script: &str| {
        std::fs::write(dir.path().join("s.rhai"), script).unwrap();
        let out = huelab(dir.path(), &["run", "s.rhai"]).output().unwrap();
        assert!(!out.status.success(), "{script}: accepted");
        stderr(&out)
    };
    let error = run(r#"let d = dataset("digits").subset(#{ per_class: 20 }); train(d, d.split(#{}), #{ name: 0.0 / 0.0, epochs: 1, progress: false });"#);
    assert!(error.contains("option 'name'") && error.contains("NaN") && error.contains("s.rhai"), "{error}");
    let error = run(r#"dataset("digits").subset(#{ per_class: 100000 });"#);
    assert!(error.contains("option 'per_class'") && error.contains("has only") && error.contains("s.rhai"), "{error}");
    let duplicate = huelab::data::ImageDataset::new("twice", Tensor::zeros([2, 1, 4, 4], (Kind::Float, Device::Cpu)), vec![0, 1], vec!["cat".into(), "cat".into()]);
    let error = duplicate.unwrap_err().to_string();
    assert!(error.contains("'cat'") && error.contains("two classes"), "{error}");
}
