//! Pixel-wise kNN memory classification from Rust: bottleneck activations of the pretrained
//! EfficientNet-Lite0 on the texture patches, a Flat pixel memory of half of them, Eq. 1–3 on
//! the other half, and the match-position figure (Fig. 5).
//!
//!     cargo run --release --example pixel_knn [input-size]
use huelab::extract::Extractor;
use huelab::data::{builtin, stratified_split, SplitConfig};
use huelab::knn::{run_knn, ClassifyConfig, MemoryConfig, ObserveConfig, PixelMemory};

fn main() -> anyhow::Result<()> {
    let size: i64 = match std::env::args().nth(1) {
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("input size must be an integer, got '{text}'"))?,
        None => 128,
    };
    let data = builtin("textures")?;
    let net = Extractor::pretrained("efficientnet_lite0", None, "bottleneck", Some(size), tch::Device::Cpu)?;
    let acts = net.extract(&data, 32)?;
    let split = stratified_split(acts.labels(), acts.class_names().len(), SplitConfig { train: 0.5, val: 0.0, test: 0.5, seed: 0 })?;
    let mut memory = PixelMemory::build(&acts.select(&split.train)?, &MemoryConfig::default(), tch::Device::Cpu)?;
    let config = ClassifyConfig { observe: Some(ObserveConfig { query_cells: vec![], angle_bins: 16 }), ..Default::default() };
    let run = run_knn("pixel kNN", &mut memory, &acts.select(&split.test)?, &config)?;
    println!("{}: accuracy {:.4} on {} query images in {:.2} s", memory.describe(), run.accuracy, run.query_images, run.seconds);
    let path = std::path::Path::new("runs/example/match_positions.png");
    huelab::results::plot_match_positions(path, "match positions", run.stats.as_ref().expect("observed"))?;
    println!("wrote {}", path.display());
    Ok(())
}
