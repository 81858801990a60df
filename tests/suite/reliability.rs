//! The cases of issue 12's "Why", one test each: bad input is an error that names the file or
//! argument, never a panic, a hang, a huge allocation or a silently wrong result.
use std::path::Path;
use std::process::{Command, Output};

use huelab::activations::Activations;
use huelab::data::{digits, load_image_folder, load_npy, ImageFolderConfig, NpyLayout, SplitConfig};
use huelab::knn::{MemoryConfig, PixelMemory};
use huelab::nn::{AngleAssignment, HueLabels};
use huelab::plot::{grouped_bars, heatmaps, polar, HeatmapPanel};
use huelab::train::{train, TrainConfig};
use ndarray::{Array1, Array2, Array4};
use tch::{Device, Kind, Tensor};

fn huelab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huelab")).args(args).current_dir(dir).output().unwrap()
}

/// The command failed with a message and without a Rust panic or a C++ backtrace.
fn clean_failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE") && !err.contains("Exception raised from"), "{err}");
    err
}

#[test]
fn out_of_range_command_line_values_are_named_by_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    for (args, name) in [
        (vec!["predict", "--top=-1", "x.png"], "--top"),
        (vec!["predict", "--top=0", "x.png"], "--top"),
        (vec!["bench", "knn", "--classes", "0", "--no-reference"], "--classes"),
        (vec!["bench", "knn", "--dim", "0", "--no-reference"], "--dim"),
        (vec!["bench", "train", "--threads", "0"], "--threads"),
        (vec!["run", "--max-call-depth", "100000000", "x.rhai"], "--max-call-depth"),
    ] {
        let out = huelab(dir.path(), &args);
        let err = clean_failure(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
    }
}

#[test]
fn a_split_of_another_data_set_is_refused_whatever_the_sizes() {
    let all = digits();
    let small = all.subset("small", &(0..200).collect::<Vec<_>>()).unwrap();
    let large = all.subset("large", &(0..400).collect::<Vec<_>>()).unwrap();
    let options = serde_json::json!({ "epochs": 1, "progress": false, "device": "cpu" });
    let config = TrainConfig::from_options(options.as_object().unwrap().clone()).unwrap();
    for (made_on, used_with) in [(&small, &large), (&large, &small)] {
        let split = made_on.split(SplitConfig::default()).unwrap();
        let err = train(used_with, &split, &config).unwrap_err().to_string();
        assert!(err.contains("another data set"), "{err}");
    }
}

#[test]
fn channels_last_npy_with_height_equal_to_channels_is_permuted() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    // [N, H=3, W=4, C=3]: the sizes cannot tell the layout, the option must.
    let mut nhwc = Array4::<u8>::zeros((2, 3, 4, 3));
    nhwc[[1, 2, 1, 0]] = 255; // red at row 2, column 1 of image 1
    ndarray_npy::write_npy(&x, &nhwc).unwrap();
    ndarray_npy::write_npy(&y, &Array1::from(vec![0i64, 1])).unwrap();
    let data = load_npy("hc", &x, &y, NpyLayout::ChannelsLast, None).unwrap();
    assert_eq!(data.image_shape(), [3, 3, 4]);
    let images = data.images().unwrap();
    assert_eq!(images.double_value(&[1, 0, 2, 1]), 1.0);
    assert_eq!(images.sum(Kind::Double).double_value(&[]), 1.0);
}

#[test]
fn a_memory_whose_entries_or_counts_lie_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let acts = Activations::new(huelab::rng::seeded(3, || Tensor::rand([6, 4, 2, 2], (Kind::Float, Device::Cpu))), vec![0, 1, 0, 1, 0, 1], vec!["a".into(), "b".into()], "test").unwrap();
    let path = dir.path().join("memory");
    PixelMemory::build(&acts, &MemoryConfig::default(), Device::Cpu).unwrap().save(&path).unwrap();
    let entries_path = path.join("entries.npy");
    let entries: Array2<i64> = ndarray_npy::read_npy(&entries_path).unwrap();
    for (row, column, value, expected) in [(5, 0, 7, "class 7"), (5, 1, 9, "expected image 1"), (3, 2, -1, "cell -1"), (0, 0, 1, "different classes")] {
        let mut damaged = entries.clone();
        damaged[[row, column]] = value;
        ndarray_npy::write_npy(&entries_path, &damaged).unwrap();
        let err = PixelMemory::load(&path, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("entries.npy") && err.contains(expected), "{err}");
    }
    ndarray_npy::write_npy(&entries_path, &entries).unwrap();
    assert!(PixelMemory::load(&path, Device::Cpu).is_ok());
    let meta_path = path.join("memory.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    let lying = meta.replacen("\"images\": 6", "\"images\": 7", 1);
    assert_ne!(lying, meta);
    std::fs::write(&meta_path, lying).unwrap();
    let err = PixelMemory::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("memory.json") && err.contains("7 images"), "{err}");
}

#[test]
fn plots_refuse_nan_and_infinite_values_instead_of_hanging() {
    let names = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
    let err = grouped_bars("t", (&names(1), &names(2)), &[vec![0.5, f64::NAN]], None, "y").unwrap_err().to_string();
    assert!(err.contains("finite"), "{err}");
    let err = grouped_bars("t", (&names(1), &names(1)), &[vec![f64::INFINITY]], None, "y").unwrap_err().to_string();
    assert!(err.contains("finite"), "{err}");
    let panel = HeatmapPanel { title: "e".into(), grid: (1, 2), values: vec![1.0, f64::NAN], marker: None };
    assert!(heatmaps("t", &[panel], 1).unwrap_err().to_string().contains("finite"));
    let err = polar("t", &names(1), &[vec![1.0, f64::NEG_INFINITY]], None).unwrap_err().to_string();
    assert!(err.contains("finite"), "{err}");
    // A figure sized by a million groups is an error, not a multi-gigabyte canvas.
    let many = names(1_000_000);
    let err = grouped_bars("t", (&many, &names(1)), &vec![vec![0.5]; many.len()], None, "y").unwrap_err().to_string();
    assert!(err.contains("pixels"), "{err}");
}

#[test]
fn an_image_size_beyond_the_decoder_bound_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = ImageFolderConfig { size: (1, 200_000_000), ..Default::default() };
    let err = load_image_folder("f", dir.path(), config).unwrap_err().to_string();
    assert!(err.contains("size"), "{err}");
}

#[test]
fn class_counts_that_would_size_tables_are_bounded() {
    let err = HueLabels::new(2_000_000_000, AngleAssignment::Ordered).unwrap_err().to_string();
    assert!(err.contains("at most"), "{err}");
    // One corrupt label must not make a 4-million-class list.
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    ndarray_npy::write_npy(&x, &Array4::<u8>::zeros((2, 1, 5, 6))).unwrap();
    ndarray_npy::write_npy(&y, &Array1::from(vec![0i32, 4_390_920])).unwrap();
    let err = load_npy("big", &x, &y, NpyLayout::Auto, None).unwrap_err().to_string();
    assert!(err.contains("y.npy") && err.contains("4390921 classes"), "{err}");
    let err = Activations::load_npy(&x, &y, None).unwrap_err().to_string();
    assert!(err.contains("float32"), "{err}");
}

/// An `.npy` file whose header declares `shape` over a few bytes of data.
fn lying_npy(path: &Path, descr: &str, shape: &str) {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    // magic (6) + version (2) + length (2) + header = 128 bytes, as numpy aligns it.
    let padded = format!("{header:<117}\n");
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    bytes.extend([0u8; 64]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npy_headers_cannot_declare_more_than_the_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    lying_npy(&x, "|u1", "(100000000000, 28, 28)");
    ndarray_npy::write_npy(&y, &Array1::from(vec![0i64, 1])).unwrap();
    let err = load_npy("n", &x, &y, NpyLayout::Auto, None).unwrap_err().to_string();
    assert!(err.contains("x.npy"), "{err}");
    lying_npy(&x, "<f4", "(100000000000, 8, 2, 2)");
    let err = Activations::load_npy(&x, &y, None).unwrap_err().to_string();
    assert!(err.contains("x.npy"), "{err}");
}

#[test]
fn nan_activations_are_an_error_not_chance_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("maps.npy"), dir.path().join("labels.npy"));
    let mut maps = Array4::<f32>::zeros((2, 3, 2, 2));
    maps[[1, 2, 0, 1]] = f32::NAN;
    ndarray_npy::write_npy(&x, &maps).unwrap();
    ndarray_npy::write_npy(&y, &Array1::from(vec![0i64, 1])).unwrap();
    let err = Activations::load_npy(&x, &y, None).unwrap_err().to_string();
    assert!(err.contains("maps.npy") && err.contains("finite"), "{err}");
}

/// A legacy `torch.save` file: the magic-number pickle is replaced by `body`.
fn pickle_file(path: &Path, body: &[u8]) {
    let mut bytes = b"\x80\x02".to_vec();
    bytes.extend(body);
    bytes.push(b'.');
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn pickles_nested_deep_or_doubling_through_the_memo_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.pth");
    let n = 1_000_000;
    let mut body = vec![b']'; n + 1];
    body.extend(vec![b'a'; n]);
    pickle_file(&deep, &body);
    let err = huelab::models::load_state_dict(&deep).unwrap_err().to_string();
    assert!(err.contains("deep.pth") && err.contains("deeper than"), "{err}");

    // [] then 40 times: L = [L, L] through the memo: 2^40 nodes from 360 bytes.
    let doubling = dir.path().join("doubling.pth");
    let mut body = b"]q\x00".to_vec();
    for _ in 0..40 {
        body.extend(b"](h\x00h\x00eq\x00");
    }
    pickle_file(&doubling, &body);
    let err = huelab::models::load_state_dict(&doubling).unwrap_err().to_string();
    assert!(err.contains("doubling.pth") && err.contains("more than"), "{err}");
}

#[test]
fn a_truncated_jpeg_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])).save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = huelab::data::decode(&path).unwrap_err().to_string();
    assert!(err.contains("photo.jpg"), "{err}");
}

/// `huelab run` of `script` (written into a fresh directory) under a heap budget of `mib`.
fn run_with_budget(script: &str, mib: usize) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("grow.rhai"), script).unwrap();
    Command::new(env!("CARGO_BIN_EXE_huelab")).args(["run", "grow.rhai"]).current_dir(dir.path()).env(huelab::heap::BUDGET_VARIABLE, mib.to_string()).output().unwrap()
}

#[test]
fn a_script_value_that_doubles_itself_stops_at_the_heap_budget() {
    for (script, line) in [
        ("let a = [1];\nfor i in 0..100 { a.push(a); }\nprint(a.len());\n", "grow.rhai:2"),
        ("let s = \"x\";\nloop { s += s; }\n", "grow.rhai:2"),
        ("let m = #{ a: [1] };\nfor i in 0..100 { m[`k${i}`] = m; }\n", "grow.rhai:2"),
    ] {
        let err = clean_failure(&run_with_budget(script, 64));
        assert!(err.contains(line) && err.contains("over its budget of 64 MiB") && err.contains(huelab::heap::BUDGET_VARIABLE), "{script}: {err}");
    }
}

#[test]
fn counts_that_would_allocate_beyond_the_budget_are_refused_before_allocating() {
    for (script, function) in [
        ("let b = blob(9223372036854775807);\n", "blob"),
        ("let b = blob(4000000000, 7);\n", "blob"),
        ("let a = [];\na.pad(4000000000, [1, 2, 3]);\n", "pad"),
        ("let b = blob(1);\nb.pad(9223372036854775807, 1);\n", "pad"),
        ("let s = \"x\";\ns.pad(4000000000000, \"é\");\n", "pad"),
        ("let s = \"x\";\ns.pad(4000000000000, 'y');\n", "pad"),
    ] {
        let err = clean_failure(&run_with_budget(script, 64));
        assert!(err.contains(&format!("{function}: the script's values would grow to")) && err.contains("budget"), "{script}: {err}");
    }
}

/// Rhai's own `blob` and `pad`, registered again with the budget check, behave as Rhai's.
#[test]
fn the_budgeted_blob_and_pad_behave_as_rhais_own() {
    let script = r#"
        let b = blob(3, 0x142); b.pad(5, 9); b.pad(2, 1);
        let a = [1]; a.pad(3, [0]); a.pad(-1, 5);
        let s = "ab"; s.pad(7, "xyz"); let t = "é"; t.pad(3, 'ü'); let u = "q"; u.pad(4, "");
        print(`${b.to_array()} ${blob(-2).len()} ${blob(2).to_array()} ${a} ${s} ${t} ${u}`);
    "#;
    let out = run_with_budget(script, 64);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[66, 66, 66, 9, 9] 0 [0, 0] [1, [0], [0]] abxyzxy éüü q");
}

/// A list of a million pairs builds in about the time of its pushes (Rhai's size limits made
/// each push re-measure the whole list: 36 s for 10⁵ pairs, over 300 s for 10⁶). Timing is
/// `huelab bench script`'s; this checks that such a list fits the default budget (the unit
/// test `script::tests::the_engine_sets_no_size_limits` that nothing re-measures it).
#[test]
fn a_script_builds_a_million_pairs_and_takes_their_hue_loss() {
    let dir = tempfile::tempdir().unwrap();
    let script = "let p = [];\nlet t = [];\nfor i in 0..1000000 { p.push([1.0, 0.0]); t.push(0); }\nprint(`${p.len()} ${hue_loss(p, t, 4, #{ assignment: \"ordered\" })}`);\n";
    std::fs::write(dir.path().join("pairs.rhai"), script).unwrap();
    let out = huelab(dir.path(), &["run", "pairs.rhai"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1000000 "), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn imports_and_run_dirs_stay_inside_the_confinement() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(dir.path().join("outside.rhai"), "fn secret() { 42 }").unwrap();
    std::fs::write(work.join("up.rhai"), "import \"../outside\" as o;\nprint(o::secret());\n").unwrap();
    let err = clean_failure(&huelab(&work, &["run", "up.rhai"]));
    assert!(err.contains("../outside") && err.contains("--allow-fs"), "{err}");
    // A link beside the script that leads out.
    std::os::unix::fs::symlink(dir.path().join("outside.rhai"), work.join("link.rhai")).unwrap();
    std::fs::write(work.join("linked.rhai"), "import \"link\" as o;\nprint(o::secret());\n").unwrap();
    let err = clean_failure(&huelab(&work, &["run", "linked.rhai"]));
    assert!(err.contains("symbolic link"), "{err}");
    // `runs` as a link out of the working directory.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, work.join("runs")).unwrap();
    std::fs::write(work.join("out.rhai"), "let d = run_dir(\"x\");\n").unwrap();
    let err = clean_failure(&huelab(&work, &["run", "out.rhai"]));
    assert!(err.contains("run_dir") && err.contains("outside"), "{err}");
    assert!(!elsewhere.join("x").exists());
}

#[test]
fn two_runs_writing_into_one_run_dir_do_not_interleave() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // The first run says when it holds runs/shared, then holds it until it is interrupted: the
    // test waits on those events, never on the clock.
    std::fs::write(dir.path().join("hold.rhai"), "let d = run_dir(\"shared\");\nprint(\"locked\");\nloop { }\n").unwrap();
    std::fs::write(dir.path().join("second.rhai"), "let d = run_dir(\"shared\");\nprint(\"got it\");\n").unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_huelab"))
        .args(["run", "--max-operations", "0", "hold.rhai"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().map(|l| l.unwrap()), Some("locked".to_owned()), "the first run never took its run dir");
    let second = huelab(dir.path(), &["run", "second.rhai"]);
    let err = clean_failure(&second);
    assert!(err.contains("runs/shared") && err.contains("another huelab run"), "{err}");
    // SAFETY: a signal to our own child, which is still running (it loops until stopped).
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGINT) }, 0);
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the first run stops on Ctrl-C: {status}");
    assert!(huelab(dir.path(), &["run", "second.rhai"]).status.success(), "the lock ends with the first run");
}

/// A finished one-epoch run of the small CNN on 80 digits, checkpointed in `dir`.
pub(crate) fn checkpointed_run(dir: &Path) -> (huelab::data::ImageDataset, huelab::data::Split, TrainConfig) {
    let data = digits().subset("digits-80", &(0..80).collect::<Vec<_>>()).unwrap();
    let split = data.split(SplitConfig::default()).unwrap();
    let options = serde_json::json!({ "epochs": 1, "progress": false, "device": "cpu", "checkpoint": dir.display().to_string(), "resume": true });
    let config = TrainConfig::from_options(options.as_object().unwrap().clone()).unwrap();
    train(&data, &split, &config).unwrap();
    (data, split, config)
}

/// Rewrites the checkpoint's tensors with `change` and records their new digest, so that only
/// the check under test stands between them and the model.
pub(crate) fn tamper_tensors(dir: &Path, change: impl Fn(&str, Tensor) -> Option<Tensor>) {
    let json_path = dir.join("checkpoint.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let tensors_path = dir.join(manifest["tensors"].as_str().unwrap());
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&tensors_path).unwrap().into_iter().filter_map(|(n, t)| change(&n, t).map(|t| (n, t))).collect();
    Tensor::write_safetensors(&tensors, &tensors_path).unwrap();
    let bytes = std::fs::read(&tensors_path).unwrap();
    use sha2::Digest;
    manifest["tensors_sha256"] = format!("{:x}", sha2::Sha256::digest(&bytes)).into();
    std::fs::write(&json_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn checkpoint_tensors_of_another_shape_dtype_or_place_are_named() {
    let root = tempfile::tempdir().unwrap();
    let first_conv = |n: &str| n.starts_with("model/") && n.ends_with("weight") && n.contains("conv");
    let cases: Vec<(&str, Box<dyn Fn(&str, Tensor) -> Option<Tensor>>)> = vec![
        ("shape", Box::new(move |n: &str, t: Tensor| Some(if first_conv(n) { Tensor::zeros([1, 1, 1, 1], (Kind::Float, Device::Cpu)) } else { t }))),
        ("dtype", Box::new(move |n: &str, t: Tensor| Some(if first_conv(n) { t.to_kind(Kind::Double) } else { t }))),
        ("missing", Box::new(move |n: &str, t: Tensor| if first_conv(n) { None } else { Some(t) })),
        ("optimiser state", Box::new(|n: &str, t: Tensor| if n.starts_with("optim/") && n.contains("conv") { None } else { Some(t) })),
    ];
    for (what, change) in cases {
        let dir = root.path().join(what.replace(' ', "-"));
        let (data, split, config) = checkpointed_run(&dir);
        tamper_tensors(&dir, change);
        let err = train(&data, &split, &config).unwrap_err().to_string();
        assert!(err.contains("checkpoint-epoch-1.safetensors") && err.contains("conv"), "{what}: {err}");
    }
    // A bit flipped in the tensors without updating the digest.
    let dir = root.path().join("flipped");
    let (data, split, config) = checkpointed_run(&dir);
    let tensors = dir.join("checkpoint-epoch-1.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 4;
    std::fs::write(&tensors, bytes).unwrap();
    let err = train(&data, &split, &config).unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    // checkpoint.json pointing outside its directory (a file under /etc was read once).
    let dir = root.path().join("outside");
    let (data, split, config) = checkpointed_run(&dir);
    let json_path = dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&json_path).unwrap().replace("\"checkpoint-epoch-1.safetensors\"", "\"/etc/hostname\"");
    std::fs::write(&json_path, text).unwrap();
    let err = train(&data, &split, &config).unwrap_err().to_string();
    assert!(err.contains("inside the checkpoint directory"), "{err}");
}
