//! The quickstart comparison from Rust, without a script: a small CNN on the built-in digits,
//! one-hot vs one-hot + hue from the same seed and split, with the same files as
//! scripts/quickstart.rhai writes (metrics.csv, curves.png, manifest.json), in runs/example/.
//! `huelab bench script` times the two against each other.
//!
//!     cargo run --release --example train_digits [epochs] [device]
use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::nn::HueLossConfig;
use huelab::results::{plot_training_curves, write_manifest, write_metrics_csv};
use huelab::train::{train, LossKind, TrainConfig};

fn main() -> anyhow::Result<()> {
    let epochs = match std::env::args().nth(1) {
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("epochs must be a positive integer, got '{text}'"))?,
        None => 15,
    };
    let device = std::env::args().nth(2).unwrap_or_else(|| "auto".into()).parse()?;
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig::default())?;
    let base = TrainConfig { epochs, device, ..Default::default() };
    let onehot = train(&data, &split, &TrainConfig { name: "onehot".into(), loss: LossKind::OneHot, ..base.clone() })?;
    let hue = train(
        &data,
        &split,
        &TrainConfig { name: "onehot+hue".into(), loss: LossKind::OneHotHue { hue: HueLossConfig::default() }, ..base },
    )?;
    for report in [&onehot, &hue] {
        let test = report.test.expect("the default split has a test part");
        println!("{:<12} test accuracy {:.4}  hue-head accuracy {:.4}", report.name(), test.accuracy, test.hue_accuracy);
    }
    let dir = std::path::Path::new("runs/example");
    std::fs::create_dir_all(dir)?;
    write_metrics_csv(&dir.join("metrics.csv"), &[&onehot, &hue])?;
    plot_training_curves(&dir.join("curves.png"), &[&onehot, &hue])?;
    write_manifest(&dir.join("manifest.json"), None, &[&onehot, &hue])?;
    println!("wrote {}/metrics.csv, curves.png and manifest.json", dir.display());
    Ok(())
}
