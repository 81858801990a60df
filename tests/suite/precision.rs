//! bf16 mixed precision (`precision: "bf16"`): training follows fp32 on the digits, the option
//! reaches manifests and checkpoints, and a bf16 comparison runs end to end from a script.
use std::collections::BTreeMap;

use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::nn::HueLossConfig;
use huelab::precision::Precision;
use huelab::script::ScriptRunner;
use huelab::device::DeviceChoice;
use huelab::train::{train, LossKind, TrainConfig};

fn config(precision: Precision) -> TrainConfig {
    TrainConfig {
        name: precision.name().into(),
        epochs: 4,
        loss: LossKind::OneHotHue { hue: HueLossConfig::default() },
        device: DeviceChoice::Cpu,
        progress: false,
        precision,
        ..Default::default()
    }
}

/// Relative tolerance of the per-epoch training loss of bf16 against fp32 from the same seed and
/// batches. bf16 keeps 8 bits of mantissa (relative rounding 2⁻⁹ ≈ 0.2 % per operation), and
/// the two runs' weights drift apart over the epochs; 5 % says "the same training curve", while
/// a broken autocast (wrong weights, a stale cast cache, a loss in bf16) moves it far more.
const LOSS_TOLERANCE: f64 = 0.05;

#[test]
fn bf16_training_follows_fp32_on_the_digits() {
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig::default()).unwrap();
    let fp32 = train(&data, &split, &config(Precision::Fp32)).unwrap();
    let bf16 = train(&data, &split, &config(Precision::Bf16)).unwrap();
    let mut differs = false;
    for (a, b) in fp32.epochs.iter().zip(&bf16.epochs) {
        let relative = (a.train_loss - b.train_loss).abs() / a.train_loss;
        assert!(relative < LOSS_TOLERANCE, "epoch {}: fp32 loss {} vs bf16 {} ({:.1} %)", a.epoch, a.train_loss, b.train_loss, 100.0 * relative);
        differs |= a.train_loss != b.train_loss;
    }
    // Bit-identical losses would mean autocast never ran.
    assert!(differs, "bf16 gave exactly the fp32 losses: autocast was not in force");
    let (a, b) = (fp32.test.unwrap().accuracy, bf16.test.unwrap().accuracy);
    assert!((a - b).abs() < 0.05, "test accuracy fp32 {a} vs bf16 {b}");
    let json = serde_json::to_value(&bf16).unwrap();
    assert_eq!(json["precision"], "bf16");
    assert_eq!(json["config"]["precision"], "bf16");
    assert_eq!(serde_json::to_value(&fp32).unwrap()["precision"], "fp32");
}

#[test]
fn a_checkpoint_does_not_resume_in_another_precision() {
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let bf16 = TrainConfig { epochs: 1, checkpoint: Some(ckpt.clone()), ..config(Precision::Bf16) };
    let first = train(&data, &split, &bf16).unwrap();
    let fp32 = TrainConfig { resume: true, precision: Precision::Fp32, ..bf16.clone() };
    let e = train(&data, &split, &fp32).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("differs in: precision"), "{e}");
    // The same precision resumes (here: finds the run complete, with the same metrics), also
    // with another device option: where a run trains is not what it is.
    let again = train(&data, &split, &TrainConfig { resume: true, ..bf16.clone() }).unwrap();
    assert_eq!(again.epochs[0].train_loss, first.epochs[0].train_loss);
    let elsewhere = TrainConfig { resume: true, device: huelab::device::DeviceChoice::Auto, ..bf16.clone() };
    assert_ne!(serde_json::to_value(&elsewhere).unwrap()["device"], serde_json::to_value(&bf16).unwrap()["device"]);
    assert_eq!(train(&data, &split, &elsewhere).unwrap().epochs[0].train_loss, first.epochs[0].train_loss);
    let other_lr = TrainConfig { resume: true, lr: bf16.lr * 2.0, ..bf16 };
    assert!(train(&data, &split, &other_lr).unwrap_err().to_string().contains("differs in: lr"));
}

#[test]
fn a_bf16_comparison_runs_end_to_end_from_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
        let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
        let common = #{ epochs: 2, precision: "bf16", device: "cpu", progress: false };
        let arms = [common + #{ name: "onehot", loss: "onehot" }, common + #{ name: "hue", loss: "onehot+hue" }];
        let c = compare(data, arms, #{ seeds: [0], folds: 2, val: 0.1, split_seed: 0 });
        write_comparison(run_dir("bf16"), c);
        c.table
    "#;
    std::fs::write(dir.path().join("bf16.rhai"), source.replace("        c.table\n", "        print(c.table);\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huelab")).args(["run", "bf16.rhai"]).current_dir(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "huelab run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hue"), "{stdout}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("runs/bf16/manifest.json")).unwrap()).unwrap();
    let text = manifest.to_string();
    assert!(text.matches("\"precision\":\"bf16\"").count() >= 4, "every run of the manifest records bf16: {text:.2000}");

    let bad = ScriptRunner::from_source("bad.rhai", r#"train(dataset("digits"), dataset("digits").split(#{}), #{ precision: "fp16" })"#, BTreeMap::new())
        .eval()
        .unwrap_err()
        .to_string();
    assert!(bad.contains("precision") && bad.contains("fp16") && bad.contains("bad.rhai:1:"), "{bad}");
}
