//! A comparison as a dot plot: every run's test accuracy as a dot and each arm's mean ± 1 sd,
//! with the paired tests below. No bars: the axis is zoomed on the data, and bars rising from a
//! cut-off axis would make small differences look large.
use std::path::Path;

use plotters::prelude::*;

use super::render::{plot_error, render, Figure, FONT};
use crate::compare::Comparison;
use crate::error::Result;

pub fn plot_comparison(path: &Path, comparison: &Comparison) -> Result<()> {
    comparison_figure(comparison)?.save(path)
}

/// The figure of [`plot_comparison`].
pub fn comparison_figure(comparison: &Comparison) -> Result<Figure> {
    let accuracies: Vec<f64> = comparison.runs.iter().map(|r| r.test_accuracy()).collect();
    let low = accuracies.iter().copied().fold(1.0, f64::min);
    let high = accuracies.iter().copied().fold(0.0, f64::max);
    // Zoom on the data, but keep a margin and stay within [0, 1].
    let margin = ((high - low) * 0.5).max(0.02);
    let (y_min, y_max) = ((low - margin).max(0.0), (high + margin).min(1.0));
    let arms = comparison.summary.len();
    let caption = format!(
        "{} — {} folds × {} seeds (dots: runs; bars: mean ± 1 sd)",
        comparison.data.name,
        comparison.config.folds,
        comparison.config.seeds.len()
    );
    let tests: Vec<String> = comparison
        .paired
        .iter()
        .map(|p| {
            let t = p.t_test.map_or("t: n/a".into(), |t| format!("paired t p = {:.3}", t.p));
            let w = p.wilcoxon.map_or("Wilcoxon: n/a".into(), |w| format!("Wilcoxon p = {:.3}", w.p));
            format!("{} − {}: {:+.4}, {t}, {w}", p.arm, p.baseline, p.mean_difference)
        })
        .collect();
    let width = 300 + 180 * arms as u32;
    render((width.max(900), 620), |root| {
        let (chart_area, footer) = root.split_vertically(620 - 30 * tests.len().max(1) as u32);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(caption, (FONT, 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(arms as f64 - 0.5), y_min..y_max)
            .map_err(plot_error)?;
        let names: Vec<String> = comparison.summary.iter().map(|s| s.arm.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(arms)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_desc("test accuracy")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(plot_error)?;
        for (i, s) in comparison.summary.iter().enumerate() {
            let x = i as f64;
            let colour = Palette99::pick(i).to_rgba();
            let mean = s.test_accuracy.mean;
            chart.draw_series([PathElement::new([(x - 0.2, mean), (x + 0.2, mean)], BLACK.stroke_width(3))]).map_err(plot_error)?;
            if let Some(sd) = s.test_accuracy.sd {
                chart
                    .draw_series([ErrorBar::new_vertical(x, (mean - sd).max(y_min), mean, (mean + sd).min(y_max), BLACK.stroke_width(2), 16)])
                    .map_err(plot_error)?;
            }
            let dots = comparison.runs.iter().filter(|r| r.arm == s.arm).enumerate().map(|(k, r)| {
                // Spread the dots a little so equal values stay visible.
                let jitter = (k as f64 % 5.0 - 2.0) * 0.04;
                Circle::new((x + 0.08 + jitter, r.test_accuracy()), 5, colour.filled())
            });
            chart.draw_series(dots).map_err(plot_error)?;
        }
        for (k, line) in tests.iter().enumerate() {
            footer
                .draw(&Text::new(line.clone(), (20, 4 + 28 * k as i32), (FONT, 17).into_font()))
                .map_err(plot_error)?;
        }
        Ok(())
    })
}
