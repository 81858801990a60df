//! The plot module on its own: a heatmap with its colour bar, grouped bars and a polar plot
//! from plain numbers, each as a `Figure` saved to PNG (the same values show inline in notebooks).
//!
//!     cargo run --release --example plot_figures
use huelab::plot::{grouped_bars, heatmaps, polar, HeatmapPanel};

fn main() -> anyhow::Result<()> {
    let dir = std::path::Path::new("runs/example");
    // A 7×7 bump centred on the grid, like Fig. 3's energy maps.
    let values: Vec<f64> = (0..49).map(|i| {
        let (x, y) = ((i % 7) as f64 - 3.0, (i / 7) as f64 - 3.0);
        (-(x * x + y * y) / 6.0).exp()
    }).collect();
    let panel = HeatmapPanel { title: "a centred bump".into(), grid: (7, 7), values, marker: Some((3, 3)) };
    heatmaps("heatmap", &[panel], 1)?.save(&dir.join("heatmap.png"))?;
    let groups = ["net A".to_owned(), "net B".to_owned()];
    let series = ["pixel".to_owned(), "gap".to_owned()];
    grouped_bars("grouped bars", (&groups, &series), &[vec![0.8, 0.7], vec![0.9, 0.85]], Some(&[vec![0.02, 0.03], vec![0.01, 0.02]]), "accuracy")?
        .save(&dir.join("bars.png"))?;
    let classes = ["a".to_owned(), "b".to_owned()];
    polar("polar", &classes, &[vec![4.0, 1.0, 1.0, 1.0], vec![1.0, 1.0, 4.0, 1.0]], None)?.save(&dir.join("polar.png"))?;
    println!("wrote {}/heatmap.png, bars.png, polar.png", dir.display());
    Ok(())
}
