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
            LossKind::OneHotHue { .. } => {
                let hue = last.train_part("hue").unwrap();
                assert!((last.train_loss - (last.train_part("onehot").unwrap() + hue)).abs() < 1e-5, "total = one-hot + hue (float32 batch sums)");
                assert!(test.hue_accuracy > 0.3, "the trained hue head beats chance (0.1): {}", test.hue_accuracy);
            }
            _ => assert_eq!(last.train_part("hue"), None),
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
    let gap = (onehot.epochs[0].train_part("onehot").unwrap() - a.epochs[0].train_part("onehot").unwrap()).abs();
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

#[test]
fn schedules_follow_their_formulas() {
    use huelab::train::Schedule;
    let cosine = Schedule::Cosine { min_lr: 0.0 };
    assert_eq!(cosine.lr(1.0, 0, 10), 1.0);
    assert!((cosine.lr(1.0, 5, 10) - 0.5).abs() < 1e-12);
    assert!((cosine.lr(1.0, 9, 10) - (1.0 + (0.9 * std::f64::consts::PI).cos()) / 2.0).abs() < 1e-12);
    let step = Schedule::Step { every: 3, gamma: 0.1 };
    assert_eq!([0, 2, 3, 6].map(|e| step.lr(1.0, e, 10)), [1.0, 1.0, 0.1, 0.1f64.powi(2)]);
}

#[test]
fn optimizers_schedules_smoothing_and_augmentation_train_and_are_recorded() {
    use huelab::data::Augment;
    use huelab::train::{OptimizerKind, Schedule};
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let base = config(hue(), 3);
    for variant in [
        TrainConfig { optimizer: OptimizerKind::Sgd { momentum: 0.9, weight_decay: 5e-4, nesterov: true }, lr: 0.05, ..base.clone() },
        TrainConfig { optimizer: OptimizerKind::AdamW { weight_decay: 0.01 }, schedule: Schedule::Cosine { min_lr: 0.0 }, ..base.clone() },
        TrainConfig { label_smoothing: 0.1, schedule: Schedule::Step { every: 2, gamma: 0.5 }, ..base.clone() },
        TrainConfig { augment: Augment { flip: false, crop_padding: 1 }, ..base.clone() },
    ] {
        let report = train(&data, &split, &variant).unwrap();
        assert!(report.test.unwrap().accuracy > 0.6, "{variant:?}: {:?}", report.test);
        let lrs: Vec<f64> = report.epochs.iter().map(|e| e.lr).collect();
        let expected: Vec<f64> = (0..3).map(|e| variant.schedule.lr(variant.lr, e, 3)).collect();
        assert_eq!(lrs, expected, "the schedule's rates are used and recorded");
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["config"]["optimizer"]["kind"].is_string() && json["config"]["schedule"]["kind"].is_string());
    }
}

#[test]
fn augmentation_is_seeded_and_shared_by_both_arms() {
    use huelab::data::Augment;
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let augmented = |loss| TrainConfig { augment: Augment { flip: true, crop_padding: 2 }, ..config(loss, 1) };
    let a = train(&data, &split, &augmented(LossKind::OneHot)).unwrap();
    let b = train(&data, &split, &augmented(LossKind::OneHot)).unwrap();
    assert_eq!(a.epochs[0].train_loss, b.epochs[0].train_loss, "same seed, same augmented batches");
    let plain = train(&data, &split, &config(LossKind::OneHot, 1)).unwrap();
    assert_ne!(a.epochs[0].train_loss, plain.epochs[0].train_loss, "augmentation changes what is trained on");
}

#[test]
fn normalisation_uses_training_statistics_only_and_is_recorded() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let report = train(&data, &split, &TrainConfig { normalize: true, ..config(LossKind::OneHot, 2) }).unwrap();
    let (train_images, _) = data.select(&split.train).unwrap();
    let expected_mean = train_images.to_kind(tch::Kind::Double).mean(tch::Kind::Double).double_value(&[]);
    let expected_sd = train_images.to_kind(tch::Kind::Double).std(true).double_value(&[]);
    let recorded = report.normalization.expect("recorded");
    assert_eq!(recorded.len(), 1, "one channel");
    assert!((recorded[0].0 - expected_mean).abs() < 1e-6 && (recorded[0].1 - expected_sd).abs() < 1e-6, "{recorded:?}");
    assert!(report.test.unwrap().accuracy > 0.8);
    assert_eq!(train(&data, &split, &config(LossKind::OneHot, 1)).unwrap().normalization, None);
}

/// The small CNN trains channels-last on the CPU by default (measured faster); asked for
/// contiguous, it trains to the same losses within float rounding, and the report says which.
#[test]
fn channels_last_and_contiguous_training_agree_and_the_layout_is_recorded() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let plain = train(&data, &split, &config(hue(), 3)).unwrap();
    let nhwc = train(&data, &split, &TrainConfig { channels_last: Some(true), ..config(hue(), 3) }).unwrap();
    let nchw = train(&data, &split, &TrainConfig { channels_last: Some(false), ..config(hue(), 3) }).unwrap();
    assert!(plain.channels_last && nhwc.channels_last && !nchw.channels_last, "the layout used is reported");
    let losses = |r: &huelab::train::TrainReport| r.epochs.iter().map(|e| (e.train_loss, e.val_accuracy)).collect::<Vec<_>>();
    assert_eq!(losses(&plain), losses(&nhwc), "the default is channels-last: the same run");
    for (a, b) in nchw.epochs.iter().zip(&nhwc.epochs) {
        // Other kernels may sum in another order: close, not necessarily bit-equal.
        assert!((a.train_loss - b.train_loss).abs() < 1e-3 * a.train_loss, "epoch {}: {} vs {}", a.epoch, a.train_loss, b.train_loss);
    }
    assert!((nchw.test.unwrap().accuracy - nhwc.test.unwrap().accuracy).abs() <= 2.0 / split.test.len() as f64);
    let json = |c: &TrainConfig| serde_json::to_value(c).unwrap();
    assert_eq!(json(&nhwc.config)["channels_last"], true);
    assert!(json(&plain.config).get("channels_last").is_none(), "unset is left out, so older checkpoints still resume");
}

/// A ResNet trains channels-last in bf16 on the CPU unless told otherwise (the measured
/// default; in fp32 it depends on the CPU: `Arch::channels_last_on`); its checkpoint and saved model are written from contiguous
/// copies, and the finished checkpoint resumes in the other layout (a layout, like a device,
/// is not part of a run's identity).
#[test]
fn a_resnet_trains_channels_last_by_default_in_bf16_and_its_checkpoint_resumes_in_the_other_layout() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fp32 = TrainConfig { arch: huelab::models::Arch::ResNet18, ..config(LossKind::OneHot, 1) };
    let fp32_layout = huelab::models::Arch::ResNet18.channels_last_on(&huelab::models::CpuKind::this_machine(), huelab::precision::Precision::Fp32);
    assert_eq!(train(&data, &split, &fp32).unwrap().channels_last, fp32_layout, "fp32's layout is the one chosen for this CPU");
    let run = TrainConfig { precision: huelab::precision::Precision::Bf16, checkpoint: Some(dir.path().join("run")), ..fp32 };
    let first = train(&data, &split, &run).unwrap();
    assert!(first.channels_last, "ResNet-18 in bf16 on the CPU trains channels-last by default");
    assert!(serde_json::to_value(&first.config).unwrap().get("channels_last").is_none(), "the default is not an option the user set");
    let contiguous = train(&data, &split, &TrainConfig { resume: true, channels_last: Some(false), ..run.clone() }).unwrap();
    assert!(!contiguous.channels_last);
    assert_eq!(contiguous.resumed_after_epoch, Some(1));
    let (a, b) = (first.test.unwrap().accuracy, contiguous.test.unwrap().accuracy);
    assert!((a - b).abs() <= 1.0 / split.test.len() as f64, "test accuracy {a} channels-last vs {b} contiguous");
}
