//! Comparisons: pairing, statistics consistent with the runs, outputs, and misuse.
use huelab::compare::{compare, Arm, CompareConfig};
use huelab::results::write_comparison;
use huelab::data::digits;
use huelab::device::DeviceChoice;
use huelab::nn::HueLossConfig;
use huelab::train::{LossKind, TrainConfig};

fn arm(name: &str, loss: LossKind) -> Arm {
    let config = TrainConfig { name: name.into(), loss, epochs: 1, device: DeviceChoice::Cpu, progress: false, ..Default::default() };
    Arm { name: name.into(), config }
}

fn arms() -> Vec<Arm> {
    vec![arm("onehot", LossKind::OneHot), arm("hue", LossKind::OneHotHue { hue: HueLossConfig::default() })]
}

#[test]
fn every_arm_runs_every_fold_and_seed_and_the_statistics_follow_the_runs() {
    let data = digits().subset("digits 60/class", &huelab::data::stratified_subset(digits().labels(), digits().class_names(), 60, 0).unwrap()).unwrap();
    let config = CompareConfig { seeds: vec![3, 4], folds: 2, val: 0.1, split_seed: 9, ..Default::default() };
    let c = compare(&data, &arms(), &config).unwrap();
    assert_eq!(c.runs.len(), 2 * 2 * 2);
    // The two runs of a pair share fold, seed and split.
    for pair in c.runs.chunks(2) {
        assert_eq!((pair[0].fold, pair[0].seed), (pair[1].fold, pair[1].seed));
        assert_eq!((&pair[0].arm[..], &pair[1].arm[..]), ("onehot", "hue"));
        assert_eq!(pair[0].report.split_sizes, pair[1].report.split_sizes);
        assert_eq!(pair[0].report.config.seed, pair[1].report.config.seed);
    }
    let differences: Vec<f64> = c.runs.chunks(2).map(|p| p[1].test_accuracy() - p[0].test_accuracy()).collect();
    assert_eq!(c.paired[0].differences, differences);
    let onehot: Vec<f64> = c.runs.iter().filter(|r| r.arm == "onehot").map(|r| r.test_accuracy()).collect();
    assert!((c.summary[0].test_accuracy.mean.unwrap() - onehot.iter().sum::<f64>() / 4.0).abs() < 1e-12);
    assert_eq!(c.summary[0].test_accuracy.n, 4);
    let table = c.table();
    assert!(table.contains("hue − onehot") && table.contains("over 4 pairs"), "{table}");

    let dir = tempfile::tempdir().unwrap();
    write_comparison(dir.path(), &c, None).unwrap();
    let runs_csv = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap();
    assert_eq!(runs_csv.lines().count(), 1 + 8);
    let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 3, "{summary}");
    assert!(summary.lines().nth(2).unwrap().contains(",onehot,"), "the second arm names its baseline: {summary}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["comparison"]["runs"].as_array().unwrap().len(), 8);
    assert_eq!(manifest["comparison"]["config"]["split_seed"], 9);
    assert!(image::open(dir.path().join("comparison.png")).is_ok());

    // An arm with no finished run (a cluster gather's): missing everywhere, never "n = 0, -0".
    let finished: Vec<_> = c.runs.iter().filter(|r| r.arm == "onehot").cloned().collect();
    let partial = huelab::compare::summarise(c.data.clone(), c.config.clone(), c.arms.clone(), finished);
    assert_eq!((partial.summary[1].test_accuracy.n, partial.summary[1].test_accuracy.mean), (0, None));
    assert_eq!(partial.paired[0].mean_difference, None);
    let table = partial.table();
    assert!(table.contains("MISSING (no finished run)") && table.contains("hue − onehot: MISSING") && !table.contains("-0"), "{table}");
    let dir = tempfile::tempdir().unwrap();
    write_comparison(dir.path(), &partial, None).unwrap();
    let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    let hue_row: Vec<&str> = summary.lines().nth(2).unwrap().split(',').collect();
    assert_eq!((hue_row[4], hue_row[5], hue_row[10]), ("0", "", ""), "n, mean and mean_difference of the missing arm: {summary}");
    assert!(image::open(dir.path().join("comparison.png")).is_ok());
}

#[test]
fn misuse_is_an_error() {
    let data = digits();
    let config = CompareConfig::default();
    assert!(compare(&data, &arms()[..1], &config).unwrap_err().to_string().contains("at least 2 arms"));
    let twins = vec![arm("a", LossKind::OneHot), arm("a", LossKind::OneHot)];
    assert!(compare(&data, &twins, &config).unwrap_err().to_string().contains("'a'"));
    let no_seeds = CompareConfig { seeds: vec![], ..config.clone() };
    assert!(compare(&data, &arms(), &no_seeds).unwrap_err().to_string().contains("seed"));
    let mut bad = arms();
    bad[1].config.epochs = 0;
    assert!(compare(&data, &bad, &config).unwrap_err().to_string().contains("arm 'hue'"));
}
