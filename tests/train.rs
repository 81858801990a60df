//! Training end to end on the digits: it learns, it is deterministic, both arms start equal.
use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::device::DeviceChoice;
use huelab::nn::HueLossConfig;
use huelab::train::{train, LossKind, TrainConfig};

fn config(loss: LossKind, epochs: usize) -> TrainConfig {
    TrainConfig { epochs, batch_size: 64, device: DeviceChoice::Cpu, progress: false, loss, ..Default::default() }
}

fn hue() -> LossKind {
    LossKind::OneHotHue { hue: HueLossConfig::default() }
}

#[test]
fn both_arms_learn_the_digits_far_above_chance() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    for loss in [LossKind::OneHot, hue()] {
        let report = train(&data, &split, &config(loss.clone(), 4)).unwrap();
        let test = report.test.unwrap();
        assert!(test.accuracy > 0.8, "{}: test accuracy {}", loss.name(), test.accuracy);
        assert_eq!(test.count, split.test.len());
        assert_eq!(report.epochs.len(), 4);
        let first = &report.epochs[0];
        let last = &report.epochs[3];
        assert!(last.train_loss < first.train_loss, "{}: loss fell", loss.name());
        match loss {
            LossKind::OneHot => assert_eq!(last.train_hue_loss, None),
            LossKind::OneHotHue { .. } => {
                let hue = last.train_hue_loss.unwrap();
                assert!((last.train_loss - (last.train_onehot_loss + hue)).abs() < 1e-5, "total = one-hot + hue (float32 batch sums)");
                assert!(test.hue_accuracy > 0.3, "the trained hue head beats chance (0.1): {}", test.hue_accuracy);
            }
        }
    }
}

#[test]
fn same_seed_same_metrics_and_both_arms_start_from_the_same_weights() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let a = train(&data, &split, &config(hue(), 1)).unwrap();
    let b = train(&data, &split, &config(hue(), 1)).unwrap();
    assert_eq!(a.epochs[0].train_loss, b.epochs[0].train_loss);
    assert_eq!(a.test, b.test);

    // Evaluated before any step, the two arms would agree exactly; after one epoch they differ
    // only through the hue term's gradients, so their one-hot losses are close but not equal.
    let onehot = train(&data, &split, &config(LossKind::OneHot, 1)).unwrap();
    let gap = (onehot.epochs[0].train_onehot_loss - a.epochs[0].train_onehot_loss).abs();
    assert!(gap < 0.05, "one-hot losses of the first epoch differ by {gap}");

    let other_seed = train(&data, &split, &TrainConfig { seed: 1, ..config(hue(), 1) }).unwrap();
    assert_ne!(a.epochs[0].train_loss, other_seed.epochs[0].train_loss);
}

#[test]
fn invalid_configs_and_diverging_runs_are_errors() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    for (bad, word) in [
        (TrainConfig { epochs: 0, ..config(LossKind::OneHot, 1) }, "epochs"),
        (TrainConfig { batch_size: 0, ..config(LossKind::OneHot, 1) }, "batch_size"),
        (TrainConfig { lr: -1.0, ..config(LossKind::OneHot, 1) }, "lr"),
    ] {
        let err = train(&data, &split, &bad).unwrap_err().to_string();
        assert!(err.contains(word), "{err}");
    }
    let err = train(&data, &split, &TrainConfig { lr: f64::INFINITY, ..config(LossKind::OneHot, 1) }).unwrap_err().to_string();
    assert!(err.contains("lr"), "{err}");
    let err = train(&data, &split, &TrainConfig { lr: 1e30, ..config(hue(), 2) }).unwrap_err().to_string();
    assert!(err.contains("loss became") && err.contains("epoch"), "{err}");
}
