//! Stop anywhere, deterministically: the test hook `HUELAB_STOP_AT` makes the request Ctrl-C
//! (`int`), a cluster's warning (`usr1`) or Slurm's preemption (`term`) makes, at a named point
//! of the run — after the first, a middle and the last batch of an epoch, after the last batch
//! of the last epoch, after validation before the epoch is recorded, before the test part and
//! while the model is saved. For each, the checkpoint left behind is accepted and the resumed
//! run ends with exactly the uninterrupted run's metrics (`--threads 1`).
//!
//! A checkpoint request after an epoch's last batch was once recorded as a partial epoch with
//! every batch done, which the resume refused (a fresh clone's CI failed on it, where a Slurm
//! preemption happened to land there): the cases `batch:E:<last>` keep it out.
use std::path::Path;
use std::process::{Command, Output};

const SCRIPT: &str = r#"
let data = dataset("digits").subset(#{ per_class: 7, seed: 0 });
let split = data.split(#{ seed: 1 });
print(`train images ${split.train_size}`);
let options = #{
    model: "small_cnn", epochs: 3, batch_size: 16, seed: 3, device: "cpu", progress: false,
    loss: "onehot+hue", schedule: "cosine", crop_padding: 1, flip: true,
    checkpoint: arg("checkpoint", "ckpt"), resume: true,
};
let run = train(data, split, options);
write_metrics_csv(arg("out", "metrics.csv"), [run]);
print(`test ${run.test_accuracy} ${run.test_hue_accuracy}`);
"#;

/// The same through a comparison's units: two arms, two folds; the stop lands in whichever
/// unit reaches the point first.
const COMPARISON: &str = r#"
let data = dataset("digits").subset(#{ per_class: 7, seed: 0 });
let base = #{ model: "small_cnn", epochs: 2, batch_size: 16, device: "cpu", progress: false, crop_padding: 1, checkpoint: "units", resume: true };
let arms = [base + #{ name: "onehot", loss: "onehot" }, base + #{ name: "hue", loss: "onehot+hue" }];
let c = compare(data, arms, #{ folds: 2, seeds: [0], val: 0.2 });
write_comparison(arg("out", "cmp"), c);
"#;

const EPOCHS: usize = 3;
const BATCH_SIZE: usize = 16;

fn huelab(dir: &Path, script: &str, args: &[&str], stop_at: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huelab"));
    command.args(["run", "--threads", "1", script]).args(args).current_dir(dir).env_remove(huelab::interrupt::STOP_AT_VARIABLE);
    if let Some(point) = stop_at {
        command.env(huelab::interrupt::STOP_AT_VARIABLE, point);
    }
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A CSV's lines without the `seconds` column (the last), the only one that may differ.
fn without_seconds(path: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    csv.lines().map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_owned()).collect()
}

/// The checkpoint's `(finished epochs, batches of the epoch in progress)`; `None` without one.
fn checkpoint_state(dir: &Path) -> Option<(u64, Option<u64>)> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("checkpoint.json")).ok()?).unwrap();
    Some((json["epoch"].as_u64().unwrap(), json["partial"]["sums"]["batches"].as_u64()))
}

/// What a stop at a point must leave behind.
#[derive(Debug, PartialEq)]
enum Expected {
    /// The run stops; its checkpoint holds this state (`None`: it had none yet).
    Stops(Option<(u64, Option<u64>)>),
    /// The request lands while the run finishes (the test part, the saved model): it finishes.
    Finishes,
}

fn expected(request: &str, point: &str, batches: usize) -> Expected {
    let numbers: Vec<u64> = point.split(':').skip(1).map(|n| n.parse().unwrap()).collect();
    let finished_before = |epoch: u64| (epoch > 1).then_some((epoch - 1, None));
    match (point.split(':').next().unwrap(), numbers.as_slice()) {
        // Ctrl-C after a batch keeps the last finished epoch's checkpoint.
        ("batch", &[epoch, _]) if request == "int" => Expected::Stops(finished_before(epoch)),
        // A warning inside an epoch checkpoints there; after its last batch, once the epoch is
        // validated and recorded.
        ("batch", &[epoch, batch]) if batch < batches as u64 => Expected::Stops(Some((epoch - 1, Some(batch)))),
        ("batch", &[epoch, _]) | ("validated", &[epoch]) => Expected::Stops(Some((epoch, None))),
        _ => Expected::Finishes,
    }
}

#[test]
fn a_stop_at_every_point_of_a_run_resumes_to_the_uninterrupted_result() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("stop.rhai"), SCRIPT).unwrap();
    let whole = huelab(root.path(), "stop.rhai", &["checkpoint=whole-ckpt", "out=whole.csv"], None);
    assert!(whole.status.success(), "{}", text(&whole));
    let whole_stdout = String::from_utf8_lossy(&whole.stdout).into_owned();
    let train_images: usize = whole_stdout.lines().find_map(|l| l.strip_prefix("train images ")).unwrap().parse().unwrap();
    let batches = train_images.div_ceil(BATCH_SIZE);
    assert!(batches >= 3 && train_images % BATCH_SIZE != 0, "first, middle and last batch differ, the last one short: {train_images} images");

    let (middle, last) = (batches / 2 + 1, batches);
    let points = [
        "batch:1:1".to_owned(),
        format!("batch:1:{middle}"),
        format!("batch:1:{last}"),
        format!("batch:2:{last}"),
        format!("batch:{EPOCHS}:{last}"),
        "validated:1".into(),
        format!("validated:{EPOCHS}"),
        "test".into(),
        "save".into(),
    ];
    for request in ["int", "usr1", "term"] {
        for point in &points {
            let case = format!("{request}@{point}");
            let dir = root.path().join(case.replace([':', '@'], "-"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::copy(root.path().join("stop.rhai"), dir.join("stop.rhai")).unwrap();
            let stopped = huelab(&dir, "stop.rhai", &[], Some(&case));
            let stopped_log = text(&stopped);
            let expect = expected(request, point, batches);
            match (request, &expect) {
                // Ctrl-C stops the run, or, once train has returned (test part, saved model),
                // the script at its next operation: exit 130 either way.
                ("int", _) => assert_eq!(stopped.status.code(), Some(130), "{case}: {stopped_log}"),
                (_, Expected::Stops(_)) => assert!(!stopped.status.success() && stopped_log.contains("stopped for preemption"), "{case}: {stopped_log}"),
                (_, Expected::Finishes) => assert!(stopped.status.success(), "{case}: a request while the run finishes lets it finish: {stopped_log}"),
            }
            if let Expected::Stops(state) = expect {
                assert_eq!(checkpoint_state(&dir.join("ckpt")), state, "{case}: the checkpoint's (epoch, partial batches): {stopped_log}");
            }
            let left = checkpoint_state(&dir.join("ckpt"));
            if !stopped.status.success() {
                let resumed = huelab(&dir, "stop.rhai", &[], None);
                let log = text(&resumed);
                assert!(resumed.status.success(), "{case}: the resume refused its own checkpoint: {log}");
                assert_eq!(log.contains("resuming after epoch"), left.is_some(), "{case}: {log}");
                assert_eq!(String::from_utf8_lossy(&resumed.stdout), whole_stdout, "{case}: the same test accuracy");
            }
            assert_eq!(without_seconds(&dir.join("metrics.csv")), without_seconds(&root.path().join("whole.csv")), "{case}: per-epoch metrics");
        }
    }
}

#[test]
fn a_comparison_unit_stopped_after_its_epochs_last_batch_resumes_to_the_uninterrupted_result() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("cmp.rhai"), COMPARISON).unwrap();
    let whole = huelab(root.path(), "cmp.rhai", &["out=whole"], None);
    assert!(whole.status.success(), "{}", text(&whole));
    let work = root.path().join("stopped");
    std::fs::create_dir(&work).unwrap();
    std::fs::copy(root.path().join("cmp.rhai"), work.join("cmp.rhai")).unwrap();
    // The first unit (onehot, fold 1) stopped after its first epoch is recorded: its optimiser
    // steps are the batches of one of its epochs.
    let probe = root.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    std::fs::copy(root.path().join("cmp.rhai"), probe.join("cmp.rhai")).unwrap();
    let probed = huelab(&probe, "cmp.rhai", &["out=out"], Some("usr1@validated:1"));
    assert!(!probed.status.success() && text(&probed).contains("stopped for preemption"), "{}", text(&probed));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(probe.join("units/onehot/fold1-seed0/checkpoint.json")).unwrap()).unwrap();
    assert_eq!((json["epoch"].as_u64(), json.get("partial")), (Some(1), None));
    let batches = json["optimizer_steps"].as_u64().unwrap();
    assert!(batches >= 2, "{json}");

    for (dir, case) in [(&probe, None), (&work, Some(format!("usr1@batch:1:{batches}")))] {
        if let Some(case) = case {
            let stopped = huelab(dir, "cmp.rhai", &["out=out"], Some(&case));
            assert!(!stopped.status.success() && text(&stopped).contains("stopped for preemption"), "{case}: {}", text(&stopped));
        }
        let resumed = huelab(dir, "cmp.rhai", &["out=out"], None);
        assert!(resumed.status.success(), "the unit's own checkpoint was refused: {}", text(&resumed));
        for file in ["runs.csv", "summary.csv"] {
            assert_eq!(crate::slurm::without_time(&dir.join("out").join(file)), crate::slurm::without_time(&root.path().join("whole").join(file)), "{file}");
        }
    }
}

/// kNN work stopped by Ctrl-C's request after a batch: the error says what was done (the
/// notebook test finds it in `last_run()`), and the exit status is Ctrl-C's.
#[test]
fn a_stopped_memory_build_or_classification_says_how_far_it_got() {
    const KNN: &str = r#"
let data = dataset("digits").subset(#{ per_class: 10, seed: 0 });
let run = train(data, data.split(#{ seed: 0 }), #{ model: "small_cnn", epochs: 1, seed: 0, device: "cpu", progress: false });
let net = trained_model(run, #{});
let memory = pixel_memory_of(net, data, #{ add_batch: 20 });
print(`memory ${memory.len}`);
let queries = activations(net, data, #{});
let knn = knn_classify(memory, queries, #{ k: 3, batch_images: 10 });
print(`knn ${knn.accuracy}`);
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("knn.rhai"), KNN).unwrap();
    let whole = huelab(dir.path(), "knn.rhai", &[], None);
    assert!(whole.status.success() && text(&whole).contains("memory 1600"), "{}", text(&whole));
    for (point, says) in [("int@add:2", "interrupted after adding 40 of 100 images"), ("int@query:3", "interrupted after 30 of 100 queries")] {
        let stopped = huelab(dir.path(), "knn.rhai", &[], Some(point));
        assert_eq!(stopped.status.code(), Some(130), "{point}: {}", text(&stopped));
        assert!(text(&stopped).contains(says) && text(&stopped).contains("last_run()"), "{point}: {}", text(&stopped));
    }
}
