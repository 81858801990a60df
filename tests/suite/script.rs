//! Rhai snippets through the same engine `huelab run` uses: bindings, options checking, and
//! errors that carry the script position.
use std::collections::BTreeMap;

use huelab::script::ScriptRunner;
use rhai::{Array, Dynamic};

fn eval(source: &str) -> Dynamic {
    ScriptRunner::from_source("test.rhai", source, BTreeMap::new()).eval().unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(source: &str) -> huelab::script::ScriptError {
    ScriptRunner::from_source("test.rhai", source, BTreeMap::new()).eval().expect_err("the script should fail")
}

#[test]
fn hue_labels_are_unit_circle_points() {
    let points = eval(r#"hue_labels(4, #{ assignment: "ordered" })"#).cast::<Array>();
    let xy: Vec<(f64, f64)> = points
        .into_iter()
        .map(|p| {
            let p = p.cast::<Array>();
            (p[0].as_float().unwrap(), p[1].as_float().unwrap())
        })
        .collect();
    let expected = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)];
    for ((x, y), (ex, ey)) in xy.iter().zip(expected) {
        assert!((x - ex).abs() < 1e-12 && (y - ey).abs() < 1e-12, "{xy:?}");
    }
}

#[test]
fn hue_loss_from_a_script_matches_the_hand_computed_value() {
    // hue((1, 0), 0, 4) from tests/hue_loss.rs; integers are accepted as coordinates.
    let loss = eval(r#"hue_loss([[1, 0.0]], [0], 4, #{ assignment: "ordered" })"#).as_float().unwrap();
    assert!((loss - 1.2397456248119247).abs() < 1e-9, "{loss}");
    let scaled = eval(r#"hue_loss([[1.0, 0.0]], [0], 4, #{ assignment: "ordered", scale: 1.0, weight: 2 })"#).as_float().unwrap();
    assert!((scaled - 2.0 * 0.48339404617783316).abs() < 1e-9, "{scaled}");
}

#[test]
fn data_split_and_report_getters() {
    let summary = eval(
        r#"
        let data = dataset("digits");
        let parts = data.split(#{ train: 0.8, val: 0.1, test: 0.1, seed: 3 });
        [data.len, data.num_classes, parts.train_size + parts.val_size + parts.test_size, data.image_shape]
        "#,
    )
    .cast::<Array>();
    assert_eq!(summary[0].as_int().unwrap(), 1797);
    assert_eq!(summary[1].as_int().unwrap(), 10);
    assert_eq!(summary[2].as_int().unwrap(), 1797);
    assert_eq!(summary[3].to_string(), "[1, 8, 8]");
}

#[test]
fn train_from_a_script_returns_a_report() {
    let result = eval(
        r#"
        let data = dataset("digits");
        let parts = data.split(#{});
        let run = train(data, parts, #{ loss: "onehot+hue", hue: #{ scale: 1.0 }, epochs: 1, device: "cpu", progress: false });
        [run.name, run.test_accuracy, run.epochs.len, run.epochs[0].train_hue_loss]
        "#,
    )
    .cast::<Array>();
    assert_eq!(result[0].to_string(), "onehot+hue");
    assert!(result[1].as_float().unwrap() > 0.3);
    assert_eq!(result[2].as_int().unwrap(), 1);
    assert!(result[3].as_float().unwrap() > 0.0);
}

#[test]
fn unknown_option_is_an_error_at_the_call_with_the_valid_names() {
    let e = error_of("let data = dataset(\"digits\");\nlet parts = data.split(#{ trian: 0.8 });");
    assert_eq!(e.position, Some((2, 18)), "{e}");
    assert!(e.message.contains("'trian'") && e.message.contains("train, val, test, seed"), "{e}");

    let e = error_of("let x = 1;\n  let y = hue_loss([[0.0, 0.0]], [0], 4, #{ schedual: 1 });");
    assert_eq!(e.position, Some((2, 11)), "{e}");
    assert!(e.message.contains("schedual"), "{e}");
}

#[test]
fn bad_values_name_the_option() {
    let data = "let data = dataset(\"digits\"); let parts = data.split(#{});\n";
    for (call, word) in [
        (r#"train(data, parts, #{ loss: "hue-only" })"#, "onehot+hue"),
        (r#"train(data, parts, #{ epochs: "ten" })"#, "'epochs'"),
        (r#"train(data, parts, #{ model: "vgg99" })"#, "small_cnn"),
        (r#"train(data, parts, #{ device: "tpu" })"#, "cuda:N"),
        (r#"train(data, parts, #{ loss: "onehot", hue: #{ scale: 1.0 } })"#, "onehot"),
        (r#"train(data, parts, #{ loss: "onehot+hue", hue: #{ assignment: "spiral" } })"#, "spiral"),
        (r#"hue_loss([[0.0]], [0], 4, #{})"#, "pred_xy"),
        (r#"hue_loss([[0.0, 0.0]], [7], 4, #{})"#, "out of range"),
        (r#"dataset("cifar")"#, "digits"),
    ] {
        let e = error_of(&format!("{data}{call}"));
        assert_eq!(e.position.map(|p| p.0), Some(2), "{call}: {e}");
        assert!(e.message.contains(word), "{call}: {e}");
    }
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = error_of("let a = 1;\nlet b = (2 + ;\n");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    assert!(e.to_string().starts_with("test.rhai:2:"), "{e}");
}

#[test]
fn errors_inside_script_functions_point_into_the_function() {
    let e = error_of("fn make() {\n    dataset(\"nope\")\n}\nmake();");
    assert_eq!(e.position, Some((2, 5)), "the failing call inside the function: {e}");
    assert!(e.message.contains("'nope'"), "{e}");
    assert!(e.message.contains("called from 'make' at test.rhai:4:1"), "{e}");
}

#[test]
fn arguments_are_typed_by_their_default() {
    let args = BTreeMap::from([("epochs".to_owned(), "7".to_owned()), ("lr".to_owned(), "0.5".to_owned())]);
    let runner = ScriptRunner::from_source(
        "args.rhai",
        r#"[arg("epochs", 1), arg("lr", 0.1), arg("name", "x"), arg("flag", false)]"#,
        args,
    );
    let values = runner.eval().unwrap().cast::<Array>();
    assert_eq!(values[0].as_int().unwrap(), 7);
    assert_eq!(values[1].as_float().unwrap(), 0.5);
    assert_eq!(values[2].to_string(), "x");
    assert!(!values[3].as_bool().unwrap());
    assert!(runner.unread_args().is_empty());

    let bad = ScriptRunner::from_source("args.rhai", r#"arg("epochs", 1)"#, BTreeMap::from([("epochs".into(), "ten".into())]));
    let e = bad.eval().unwrap_err();
    assert!(e.message.contains("epochs=ten") && e.message.contains("integer"), "{e}");

    let unread = ScriptRunner::from_source("args.rhai", "1", BTreeMap::from([("epohcs".into(), "3".into())]));
    unread.run().unwrap();
    assert_eq!(unread.unread_args(), vec!["epohcs".to_owned()]);
}

#[test]
fn missing_map_properties_are_errors() {
    let e = error_of("let m = #{ a: 1 };\nm.b");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
}

#[test]
fn builtin_sets_subsets_and_file_loaders_from_a_script() {
    let dir = tempfile::tempdir().unwrap();
    ndarray_npy::write_npy(dir.path().join("x.npy"), &ndarray::Array3::<u8>::zeros((4, 8, 8))).unwrap();
    ndarray_npy::write_npy(dir.path().join("y.npy"), &ndarray::Array1::from(vec![0i64, 1, 0, 1])).unwrap();
    // The folder is given as an argument, which is what lets the script read it.
    let source = r#"
        let dir = arg("data", "");
        let small = dataset("textures").subset(#{ per_class: 5, seed: 1 });
        let arrays = load_npy(`${dir}/x.npy`, `${dir}/y.npy`, #{ class_names: ["no", "yes"], name: "tiny" });
        [small.len, small.class_names, arrays.name, arrays.class_names, arrays.image_shape]
    "#;
    let args = BTreeMap::from([("data".to_owned(), dir.path().display().to_string())]);
    let values = ScriptRunner::from_source("files.rhai", source, args.clone()).eval().unwrap_or_else(|e| panic!("{e}")).cast::<Array>();
    assert_eq!(values[0].as_int().unwrap(), 15);
    assert_eq!(values[1].to_string(), r#"["brick", "grass", "gravel"]"#);
    assert_eq!(values[2].to_string(), "tiny");
    assert_eq!(values[3].to_string(), r#"["no", "yes"]"#);
    assert_eq!(values[4].to_string(), "[1, 8, 8]");

    let e = ScriptRunner::from_source("files.rhai", r#"load_image_folder(arg("data", ""), #{ size: [0, 4] })"#, args).eval().unwrap_err();
    assert!(e.message.contains("'size'"), "{e}");
    let e = error_of("dataset(\"digits\").subset(#{ seed: 1 })");
    assert!(e.message.contains("per_class") && e.message.contains("required"), "{e}");
}

#[test]
fn optimizer_and_schedule_options_are_checked_against_each_other() {
    let data = "let data = dataset(\"digits\"); let parts = data.split(#{});\n";
    for (call, words) in [
        (r#"train(data, parts, #{ optimizer: "adam", momentum: 0.9 })"#, ["'momentum'", "adam"]),
        (r#"train(data, parts, #{ optimizer: "rmsprop" })"#, ["rmsprop", "adamw"]),
        (r#"train(data, parts, #{ schedule: "cosine", step_every: 3 })"#, ["'step_every'", "cosine"]),
        (r#"train(data, parts, #{ schedule: "step" })"#, ["'step_every'", "needs"]),
        (r#"train(data, parts, #{ label_smoothing: 1.5 })"#, ["'label_smoothing'", "[0, 1)"]),
        (r#"train(data, parts, #{ model: "resnet18", stem: "huge" })"#, ["'stem'", "imagenet"]),
    ] {
        let e = error_of(&format!("{data}{call}"));
        assert!(words.iter().all(|w| e.message.contains(w)), "{call}: {e}");
    }
}

#[test]
fn file_access_is_confined_to_the_working_directory_and_argument_paths() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("m.csv");
    let source = format!("let d = dataset(\"digits\"); let r = train(d, d.split(#{{}}), #{{ epochs: 1, progress: false }}); write_metrics_csv(\"{}\", [r]);", target.display());
    let e = ScriptRunner::from_source("fs.rhai", source.clone(), BTreeMap::new()).eval().unwrap_err();
    assert!(e.message.contains("outside the working directory") && e.message.contains("--allow-fs"), "{e}");
    assert!(e.position.is_some(), "the error points at the call");
    assert!(!target.exists());
    // `..` cannot climb out of the working directory either.
    let e = error_of("load_npy(\"../../../../../../tmp/x.npy\", \"y.npy\", #{})");
    assert!(e.message.contains("outside the working directory"), "{e}");
    // Given as an argument, or with allow_fs, the same path is fine.
    let as_arg = BTreeMap::from([("out".to_owned(), outside.path().display().to_string())]);
    let _ = ScriptRunner::from_source("fs.rhai", source.clone(), as_arg).eval().unwrap_or_else(|e| panic!("{e}"));
    assert!(target.exists());
    std::fs::remove_file(&target).unwrap();
    let anywhere = huelab::script::ScriptOptions { allow_fs: true, ..Default::default() };
    let _ = ScriptRunner::from_source_with("fs.rhai", source, BTreeMap::new(), anywhere).eval().unwrap_or_else(|e| panic!("{e}"));
    assert!(target.exists());
}

#[test]
fn operation_and_call_depth_limits_say_how_to_raise_them() {
    let tight = huelab::script::ScriptOptions { max_operations: 10_000, ..Default::default() };
    let e = ScriptRunner::from_source_with("loop.rhai", "let x = 0; loop { x += 1; }", BTreeMap::new(), tight).eval().unwrap_err();
    assert!(e.message.contains("more than 10000 operations") && e.message.contains("--max-operations"), "{e}");
    let shallow = huelab::script::ScriptOptions { max_call_depth: 8, ..Default::default() };
    let e = ScriptRunner::from_source_with("deep.rhai", "fn f(n) { if n == 0 { 0 } else { f(n - 1) } }\nf(100)", BTreeMap::new(), shallow.clone())
        .eval()
        .unwrap_err();
    assert!(e.message.contains("--max-call-depth"), "{e}");
    let fine = ScriptRunner::from_source_with("deep.rhai", "fn f(n) { if n == 0 { 0 } else { f(n - 1) } }\nf(5)", BTreeMap::new(), shallow).eval();
    assert_eq!(fine.unwrap().as_int().unwrap(), 0);
}

#[test]
fn discovery_functions_and_knn_getters() {
    let values = eval(
        r#"
        let m = models();
        let d = datasets();
        let net = pretrained("efficientnet_lite0", #{ size: 32 });
        let data = dataset("textures").subset(#{ per_class: 4, seed: 0 });
        let acts = activations(net, data, #{});
        let parts = data.split(#{ train: 0.5, val: 0.0, test: 0.5, seed: 0 });
        let run = knn_classify(pixel_memory(acts.part(parts, "train"), #{}), acts.part(parts, "test"), #{ k: 3 });
        [m.trainable.contains("resnet18"), m.pretrained.len(), d.len(), acts.labels.len(), run.truth.len(), run.scores[0].len(), run.predicted.len()]
        "#,
    )
    .cast::<Array>();
    assert!(values[0].as_bool().unwrap());
    assert_eq!(values[1].as_int().unwrap(), huelab::models::ImageNetModel::names().len() as i64);
    assert_eq!(values[2].as_int().unwrap(), huelab::data::BUILTIN_DATASETS.len() as i64);
    assert_eq!(values[3].as_int().unwrap(), 12);
    assert_eq!(values[4].as_int().unwrap(), 6);
    assert_eq!(values[5].as_int().unwrap(), 3, "one score per class");
    assert_eq!(values[6].as_int().unwrap(), 6);
}

/// A call of each bound function that takes an options map, with `O` where the map goes.
const OPTIONS_CALLS: &[(&str, &str)] = &[
    ("train", r#"let d = dataset("digits"); train(d, d.split(#{}), O)"#),
    ("compare", r#"compare(dataset("digits"), [#{ epochs: 1 }], O)"#),
    ("load_idx", r#"load_idx("x.idx", "y.idx", O)"#),
    ("load_npy", r#"load_npy("x.npy", "y.npy", O)"#),
    ("load_image_folder", r#"load_image_folder("no-such-folder", O)"#),
    ("load_image_list", r#"load_image_list("no-such-folder", "list.txt", O)"#),
    ("subset", r#"dataset("digits").subset(O)"#),
    ("split", r#"dataset("digits").split(O)"#),
    ("hue_labels", "hue_labels(4, O)"),
    ("hue_loss", "hue_loss([[1.0, 0.0]], [0], 4, O)"),
    ("pretrained", r#"pretrained("efficientnet_lite0", O)"#),
    ("trained_model", r#"trained_model("no-such-run", O)"#),
    ("torchscript", r#"torchscript("no-such.pt", O)"#),
    ("load_memory", r#"load_memory("no-such-memory", O)"#),
    ("activations", r#"activations(pretrained("efficientnet_lite0", #{ size: 32 }), dataset("textures").subset(#{ per_class: 1 }), O)"#),
    ("pixel_memory", r#"pixel_memory(activations(pretrained("efficientnet_lite0", #{ size: 32 }), dataset("textures").subset(#{ per_class: 1 }), #{}), O)"#),
    ("pixel_memory_of", r#"pixel_memory_of(pretrained("efficientnet_lite0", #{ size: 32 }), dataset("textures").subset(#{ per_class: 1 }), O)"#),
    ("knn_classify", r#"let a = activations(pretrained("efficientnet_lite0", #{ size: 32 }), dataset("textures").subset(#{ per_class: 1 }), #{}); knn_classify(pixel_memory(a, #{}), a, O)"#),
    ("slurm", "slurm(O)"),
];

/// `huelab api` documents every options map, and each function accepts exactly the keys it
/// documents: called with a key nobody documented, its error lists the documented keys.
#[test]
fn every_options_map_is_documented_with_exactly_the_keys_it_accepts() {
    let api = huelab::script::api().unwrap();
    let mut with_options: Vec<&str> = api.iter().filter(|e| e.signature.contains("options: map")).map(|e| e.name()).collect();
    with_options.sort();
    with_options.dedup();
    let mut called: Vec<&str> = OPTIONS_CALLS.iter().map(|(f, _)| *f).collect();
    called.sort();
    assert_eq!(with_options, called, "every function with an options map has a call here");
    for (function, call) in OPTIONS_CALLS {
        let entry = api.iter().find(|e| e.name() == *function).unwrap();
        assert!(!entry.options.is_empty(), "{function} documents its options");
        let documented: std::collections::BTreeSet<&str> = huelab::script::function_options(function).unwrap().iter().map(|d| d.key).collect();
        let error = error_of(&call.replace('O', "#{ not_a_documented_key: 1 }")).message;
        let valid = error.split("valid options: ").nth(1).unwrap_or_else(|| panic!("{function}: {error}"));
        let accepted: std::collections::BTreeSet<&str> = valid.lines().next().unwrap().split(", ").map(str::trim).collect();
        assert_eq!(accepted, documented, "{function}: the keys it accepts are the keys it documents");
    }
}

/// Each documented default is the default: giving it changes nothing.
#[test]
fn documented_defaults_of_train_and_pixel_memory_are_the_defaults() {
    use huelab::knn::MemoryConfig;
    use huelab::train::TrainConfig;
    let literal = |default: &str| serde_json::from_str::<serde_json::Value>(default).ok().filter(|_| !default.starts_with('('));
    let empty = serde_json::Map::new();
    let mut checked = 0;
    for doc in TrainConfig::options() {
        // A loss's own map is checked by the loss registry's test (it is refused beside another loss).
        let Some(value) = literal(doc.default) else { continue };
        let given: serde_json::Map<_, _> = [(doc.key.to_owned(), value)].into_iter().collect();
        assert_eq!(format!("{:?}", TrainConfig::from_options(given).unwrap()), format!("{:?}", TrainConfig::from_options(empty.clone()).unwrap()), "train option {}", doc.key);
        checked += 1;
    }
    for doc in MemoryConfig::OPTIONS {
        let Some(value) = literal(doc.default) else { continue };
        let given: serde_json::Map<_, _> = [(doc.key.to_owned(), value)].into_iter().collect();
        assert_eq!(format!("{:?}", MemoryConfig::from_options(given).unwrap()), format!("{:?}", MemoryConfig::from_options(empty.clone()).unwrap()), "pixel_memory option {}", doc.key);
        checked += 1;
    }
    assert!(checked >= 25, "{checked} defaults checked");
}

/// While a cluster run plans (and in its tasks) every writer writes nothing: the gather job
/// writes the outputs. The kNN writers and plots included, not only training's.
#[test]
fn every_writer_defers_its_output_while_a_cluster_run_plans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = dir.path().join("writers.rhai");
    let source = format!(
        r#"
        let o = "{}";
        plot_bars(`${{o}}/bars.png`, "t", ["a"], ["x", "y"], [[0.5, 0.7]], (), "acc");
        let net = pretrained("efficientnet_lite0", #{{ size: 32 }});
        let acts = activations(net, dataset("textures").subset(#{{ per_class: 1 }}), #{{}});
        acts.save_npy(`${{o}}/maps.npy`, `${{o}}/labels.npy`);
        let memory = pixel_memory(acts, #{{}});
        memory.save(`${{o}}/memory`);
        let run = knn_classify(memory, acts, #{{ k: 2 }});
        write_predictions_csv(`${{o}}/predictions.csv`, run);
        write_knn_manifest(`${{o}}/manifest.json`, [run]);
        "#,
        out.display()
    );
    std::fs::write(&script, source).unwrap();
    let options = huelab::script::ScriptOptions { allow_fs: true, ..Default::default() };
    let written = |cluster| {
        std::fs::create_dir_all(&out).unwrap();
        ScriptRunner::open_cluster(&script, BTreeMap::new(), options.clone(), cluster).unwrap().run().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        std::fs::remove_dir_all(&out).unwrap();
        names
    };
    let plan = huelab::cluster::ClusterRun::new(huelab::cluster::Mode::Plan, &dir.path().join("slurm")).unwrap();
    assert_eq!(written(Some(plan)), Vec::<String>::new(), "nothing written while planning");
    assert_eq!(written(None), ["bars.csv", "bars.png", "labels.npy", "manifest.json", "maps.npy", "memory", "predictions.csv"], "all written by a plain run");
}
