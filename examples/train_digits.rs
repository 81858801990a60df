//! The quickstart comparison from Rust, without a script: a small CNN on the built-in digits,
//! one-hot vs one-hot + hue from the same seed and split, with a PNG of the curves.
//!
//!     cargo run --release --example train_digits [epochs]
use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::nn::HueLossConfig;
use huelab::results::plot_training_curves;
use huelab::train::{train, LossKind, TrainConfig};

fn main() -> anyhow::Result<()> {
    let epochs = match std::env::args().nth(1) {
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("epochs must be a positive integer, got '{text}'"))?,
        None => 10,
    };
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig::default())?;
    let base = TrainConfig { epochs, ..Default::default() };
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
    let path = std::path::Path::new("runs/example/curves.png");
    plot_training_curves(path, &[&onehot, &hue])?;
    println!("wrote {}", path.display());
    Ok(())
}
