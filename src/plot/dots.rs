//! A dot plot: every value of each group as a dot, with the group's mean ± 1 sd, and lines of
//! text below. No bars: the axis is zoomed on the data, and bars rising from a cut-off axis
//! would make small differences look large.
use plotters::prelude::*;

use super::render::{plot_error, render, Figure, FONT};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct DotGroup {
    pub name: String,
    pub values: Vec<f64>,
    pub mean: f64,
    pub sd: Option<f64>,
}

/// Groups side by side on a y axis zoomed on the values (kept within `[0, 1]`, as for
/// accuracies), `footer` lines under the chart.
pub fn dot_plot(caption: &str, y_desc: &str, groups: &[DotGroup], footer: &[String]) -> Result<Figure> {
    let values: Vec<f64> = groups.iter().flat_map(|g| g.values.iter().copied()).collect();
    if groups.is_empty() || values.iter().chain(groups.iter().map(|g| &g.mean)).any(|v| !v.is_finite()) {
        return Err(Error::msg(format!("dot plot '{caption}': every value and mean must be a finite number")));
    }
    let low = values.iter().copied().fold(1.0, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    // Zoom on the data, but keep a margin and stay within [0, 1].
    let margin = ((high - low) * 0.5).max(0.02);
    let (y_min, y_max) = ((low - margin).max(0.0), (high + margin).min(1.0));
    if y_min >= y_max {
        return Err(Error::msg(format!("dot plot '{caption}': values must lie in [0, 1]")));
    }
    let count = groups.len();
    let width = 300 + 180 * count as u32;
    render((width.max(900), 620), |root| {
        let (chart_area, footer_area) = root.split_vertically(620 - 30 * footer.len().max(1) as u32);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(caption, (FONT, 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(count as f64 - 0.5), y_min..y_max)
            .map_err(plot_error)?;
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(count)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_desc(y_desc)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(plot_error)?;
        for (i, group) in groups.iter().enumerate() {
            let x = i as f64;
            let colour = Palette99::pick(i).to_rgba();
            let mean = group.mean;
            chart.draw_series([PathElement::new([(x - 0.2, mean), (x + 0.2, mean)], BLACK.stroke_width(3))]).map_err(plot_error)?;
            if let Some(sd) = group.sd.filter(|sd| sd.is_finite()) {
                chart
                    .draw_series([ErrorBar::new_vertical(x, (mean - sd).max(y_min), mean, (mean + sd).min(y_max), BLACK.stroke_width(2), 16)])
                    .map_err(plot_error)?;
            }
            let dots = group.values.iter().enumerate().map(|(k, &v)| {
                // Spread the dots a little so equal values stay visible.
                let jitter = (k as f64 % 5.0 - 2.0) * 0.04;
                Circle::new((x + 0.08 + jitter, v), 5, colour.filled())
            });
            chart.draw_series(dots).map_err(plot_error)?;
        }
        for (k, line) in footer.iter().enumerate() {
            footer_area.draw(&Text::new(line.clone(), (20, 4 + 28 * k as i32), (FONT, 17).into_font())).map_err(plot_error)?;
        }
        Ok(())
    })
}
