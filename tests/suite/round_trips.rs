//! Writer ⇄ reader agreement: every artefact huelab writes, over the states its writer can
//! reach (one item, one class, many classes, boundary shapes, a short last batch, every index
//! and descriptor kind), is read back by its own validating reader, accepted and equal. A
//! validator may refuse only what no writer makes. (Checkpoints stopped at every boundary a
//! run can stop at are `stop_anywhere.rs`'s; the saved model reproducing its run's accuracy is
//! `activations.rs`'s.)
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use huelab::activations::Activations;
use huelab::cluster::plan::{Plan, PlannedUnit, Submission};
use huelab::cluster::slurm::SlurmOptions;
use huelab::data::{digits, SplitConfig};
use huelab::knn::{classify, ClassifyConfig, MemoryConfig, PixelMemory};
use huelab::results::{write_manifest, write_metrics_csv};
use huelab::train::{train, TrainConfig};
use tch::{Device, Kind, Tensor};

fn activations(n: usize, channels: i64, grid: (i64, i64), classes: usize, seed: i64) -> Activations {
    let maps = huelab::rng::seeded(seed, || Tensor::rand([n as i64, channels, grid.0, grid.1], (Kind::Float, Device::Cpu)));
    let labels = (0..n).map(|i| (i % classes) as i64).collect();
    let names = (0..classes).map(|c| format!("class {c} — ü")).collect();
    Activations::new(maps, labels, names, "round trip").unwrap()
}

/// The activation shapes a run can write: one image, one channel, a 1×1 grid, one class,
/// non-square grids, hundreds of classes.
const SHAPES: &[(usize, i64, (i64, i64), usize)] = &[(1, 1, (1, 1), 1), (2, 3, (1, 5), 2), (7, 4, (3, 3), 7), (300, 2, (2, 2), 300), (5, 1, (4, 1), 1)];

#[test]
fn activations_read_back_equal_over_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    for (i, &(n, channels, grid, classes)) in SHAPES.iter().enumerate() {
        let written = activations(n, channels, grid, classes, i as i64);
        let (maps, labels) = (dir.path().join(format!("maps{i}.npy")), dir.path().join(format!("labels{i}.npy")));
        written.save_npy(&maps, &labels).unwrap();
        let read = Activations::load_npy(&maps, &labels, Some(written.class_names().to_vec())).unwrap_or_else(|e| panic!("{:?}: {e}", SHAPES[i]));
        assert!(read.maps().equal(written.maps()), "{:?}", SHAPES[i]);
        assert_eq!(read.labels(), written.labels());
        assert_eq!(read.class_names(), written.class_names());
    }
}

/// The memory kinds a user can ask for, each with the descriptor and backend it allows.
fn memory_options() -> Vec<serde_json::Value> {
    let mut all = vec![];
    for descriptor in ["pixel", "gap", "gmp", "gem:3", "flatten"] {
        for backend in ["faiss", "torch", "faiss_ip", "torch_cosine"] {
            all.push(serde_json::json!({ "descriptor": descriptor, "backend": backend, "device": "cpu" }));
        }
    }
    for index in ["HNSW8", "IVF2,Flat", "PQ2", "SQ8", "IVF2,PQ2"] {
        all.push(serde_json::json!({ "index": index, "device": "cpu" }));
    }
    all.push(serde_json::json!({ "index": "Flat", "pca": 2, "device": "cpu" }));
    all.push(serde_json::json!({ "index": "HNSW8", "backend": "faiss_ip", "device": "cpu" }));
    all
}

#[test]
fn memories_read_back_classifying_as_written_over_every_kind_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let queries_for = |channels: i64, grid: (i64, i64), classes: usize| activations(6, channels, grid, classes, 99);
    // One neighbour: a memory of one image's GAP vector holds one vector.
    let (_, classify_config) = ClassifyConfig::from_options(serde_json::json!({ "k": 1 }).as_object().unwrap().clone()).unwrap();
    let mut checked = 0;
    for (s, &(n, channels, grid, classes)) in SHAPES.iter().enumerate() {
        let acts = activations(n, channels, grid, classes, s as i64);
        let queries = queries_for(channels, grid, classes);
        for (m, options) in memory_options().into_iter().enumerate() {
            let (config, device) = MemoryConfig::from_options(options.as_object().unwrap().clone()).unwrap();
            // A kind the data cannot make (PQ2 of 1-dimensional vectors, IVF2 of one vector,
            // PCA to more dimensions than there are) is refused when built: no writer makes it,
            // so there is nothing to read back.
            let Ok(mut memory) = PixelMemory::build(&acts, &config, device) else { continue };
            let (before, _) = classify(&mut memory, &queries, &classify_config).unwrap();
            let path = dir.path().join(format!("m{s}-{m}"));
            memory.save(&path).unwrap();
            let mut read = PixelMemory::load(&path, Device::Cpu).unwrap_or_else(|e| panic!("{:?} {options}: {e}", SHAPES[s]));
            let (after, _) = classify(&mut read, &queries, &classify_config).unwrap();
            assert_eq!((before.predicted, before.scores, before.class_names), (after.predicted, after.scores, after.class_names), "{:?} {options}", SHAPES[s]);
            assert_eq!(read.describe(), memory.describe());
            checked += 1;
        }
    }
    // Most kinds apply to most shapes; a refusal of all of them would make this test empty.
    assert!(checked >= 80, "only {checked} memories built");
}

fn unit(index: usize, arm: Option<&str>, fold: Option<usize>) -> PlannedUnit {
    PlannedUnit {
        index,
        name: format!("unit {index} — ü"),
        call: format!("compare#{index}"),
        arm: arm.map(str::to_owned),
        fold,
        seed: u64::MAX - index as u64,
        epochs: index + 1,
        checkpoint: PathBuf::from(format!("runs/x/units/{index}")),
        fingerprint: format!("{index:064x}"),
    }
}

#[test]
fn plans_read_back_equal_from_planned_to_resubmitted() {
    let dir = tempfile::tempdir().unwrap();
    let full = SlurmOptions {
        partition: Some("gpu".into()),
        time: Some("02:00:00".into()),
        cpus_per_task: Some(16),
        mem: Some("64G".into()),
        gres: Some("gpu:1".into()),
        account: Some("lab".into()),
        qos: Some("high".into()),
        parallel: Some(4),
        signal_seconds: Some(300),
        extra: vec!["--constraint=a100".into(), "--hold".into()],
    };
    let args: BTreeMap<String, String> = [("epochs".to_owned(), "3".to_owned()), ("name".to_owned(), "a b".to_owned())].into();
    for (slurm, units, submissions) in [
        (SlurmOptions::default(), vec![], vec![]),
        (SlurmOptions::default(), vec![unit(0, None, None)], vec![]),
        (full.clone(), (0..40).map(|i| unit(i, Some(["onehot", "hue"][i % 2]), Some(i / 2 % 5))).collect(), vec![]),
        (
            full.clone(),
            (0..3).map(|i| unit(i, Some("hue"), Some(i))).collect(),
            vec![
                Submission { array_job: "101".into(), gather_job: "102".into(), units: vec![0, 1, 2], submitted_unix: 1 },
                Submission { array_job: "103".into(), gather_job: "104".into(), units: vec![1], submitted_unix: 2 },
            ],
        ),
    ] {
        let mut plan = Plan::new(PathBuf::from("scripts/x.rhai"), "ab".repeat(32), args.clone(), slurm).unwrap();
        plan.units = units;
        plan.submissions = submissions;
        let run_dir = dir.path().join(format!("run{}", plan.units.len()));
        std::fs::create_dir_all(&run_dir).unwrap();
        plan.save(&run_dir).unwrap();
        let read = Plan::load(&run_dir).unwrap();
        assert_eq!(read, plan);
        read.check_same_units(&plan).unwrap();
        assert!(!read.gathered(&run_dir));
        plan.mark_gathered(&run_dir).unwrap();
        assert!(Plan::load(&run_dir).unwrap().gathered(&run_dir));
    }
}

/// metrics.csv and manifest.json hold every value of the runs they record, exactly: parsed
/// back (as a researcher's pandas or serde would) they equal the reports.
fn check_results_files(dir: &Path, reports: &[&huelab::train::TrainReport]) {
    let (csv_path, manifest_path) = (dir.join("metrics.csv"), dir.join("manifest.json"));
    write_metrics_csv(&csv_path, reports).unwrap();
    write_manifest(&manifest_path, None, reports).unwrap();
    let mut rows = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), reports.iter().map(|r| r.epochs.len()).sum::<usize>());
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    let number = |record: &csv::StringRecord, name: &str| -> Option<f64> { Some(record[column(name)].parse::<f64>().unwrap()).filter(|_| !record[column(name)].is_empty()) };
    let mut records = records.iter();
    for report in reports {
        for e in &report.epochs {
            let record = records.next().unwrap();
            assert_eq!(&record[column("run")], report.name());
            assert_eq!(record[column("epoch")].parse::<usize>().unwrap(), e.epoch);
            assert_eq!(number(record, "train_loss"), Some(e.train_loss));
            for (part, value) in &e.train_parts {
                assert_eq!(number(record, &format!("train_{part}_loss")), Some(*value));
            }
            assert_eq!(number(record, "train_accuracy"), Some(e.train_accuracy));
            assert_eq!(record[column("val_accuracy")].parse::<f64>().ok(), e.val_accuracy);
            assert_eq!(record[column("val_hue_accuracy")].parse::<f64>().ok(), e.val_hue_accuracy);
            assert_eq!(number(record, "lr"), Some(e.lr));
            assert_eq!(number(record, "seconds"), Some(e.seconds));
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let runs = manifest["runs"].as_array().unwrap();
    assert_eq!(runs.len(), reports.len());
    for (run, report) in runs.iter().zip(reports) {
        assert_eq!(run, &serde_json::to_value(report).unwrap());
    }
}

#[test]
fn metrics_and_manifests_read_back_equal_for_short_batches_one_epoch_and_both_losses() {
    let dir = tempfile::tempdir().unwrap();
    // 49 training images in batches of 16: a short last batch of 1.
    let data = digits().subset("digits-70", &(0..70).collect::<Vec<_>>()).unwrap();
    let split = data.split(SplitConfig::default()).unwrap();
    let config = |loss: &str, epochs: u64| {
        let options = serde_json::json!({ "epochs": epochs, "progress": false, "device": "cpu", "loss": loss, "batch_size": 16, "seed": 3 });
        TrainConfig::from_options(options.as_object().unwrap().clone()).unwrap()
    };
    let one_epoch = train(&data, &split, &config("onehot", 1)).unwrap();
    let hue = train(&data, &split, &config("onehot+hue", 3)).unwrap();
    for (name, reports) in [("one", vec![&one_epoch]), ("both", vec![&one_epoch, &hue]), ("none", vec![])] {
        let out = dir.path().join(name);
        std::fs::create_dir_all(&out).unwrap();
        check_results_files(&out, &reports);
    }
}
