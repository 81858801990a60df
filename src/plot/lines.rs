//! Line charts side by side: one panel per quantity (loss, accuracy, …), lines solid or dashed,
//! one colour per series index, each panel with its legend.
use plotters::prelude::*;

use super::render::{plot_error, render, Figure, FONT};
use crate::error::{Error, Result};

/// One line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    /// Index into the palette; lines of one series share it across panels.
    pub colour: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Where a panel's legend sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegendCorner {
    UpperRight,
    LowerRight,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    pub title: String,
    pub y_desc: String,
    /// The y axis runs from 0 to this.
    pub y_max: f64,
    pub legend: LegendCorner,
    pub lines: Vec<Line>,
}

/// Panels of 700 × 560 pixels side by side, sharing the x axis `1 … x_max` (`x_desc`, labels as
/// integers, e.g. epochs).
pub fn line_panels(panels: &[LinePanel], x_max: f64, x_desc: &str) -> Result<Figure> {
    if panels.is_empty() {
        return Err(Error::msg("a line chart needs at least one panel"));
    }
    for panel in panels {
        let finite = |(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        if !(panel.y_max.is_finite() && panel.y_max > 0.0) || panel.lines.iter().any(|l| !l.points.iter().all(finite)) {
            return Err(Error::msg(format!("line chart '{}': values must be finite numbers", panel.title)));
        }
    }
    if !(x_max.is_finite() && x_max > 1.0) {
        return Err(Error::msg(format!("line chart: the x axis must end above 1, got {x_max}")));
    }
    render((700 * panels.len() as u32, 560), |root| {
        for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 24))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(1.0..x_max, 0.0..panel.y_max)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                // At most one label per whole x (a 3-epoch run's axis would repeat "2 2 3 3").
                .x_labels(((x_max - 1.0).floor() as usize + 1).min(10))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .x_desc(x_desc)
                .y_desc(&panel.y_desc)
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 17))
                .draw()
                .map_err(plot_error)?;
            for line in &panel.lines {
                let colour = Palette99::pick(line.colour).to_rgba();
                let points = line.points.clone();
                let drawn = if line.dashed {
                    chart.draw_series(DashedLineSeries::new(points, 8, 5, colour.stroke_width(2))).map_err(plot_error)?
                } else {
                    chart.draw_series(LineSeries::new(points, colour.stroke_width(3))).map_err(plot_error)?
                };
                // The legend's sample is drawn as the line is: three dashes for a dashed line,
                // one unbroken stroke for a solid one (24 px, the room plotters leaves).
                let (width, dashes): (u32, [(i32, i32); 3]) = if line.dashed { (2, [(0, 6), (9, 15), (18, 24)]) } else { (3, [(0, 8), (8, 16), (16, 24)]) };
                drawn.label(line.label.clone()).legend(move |(x, y)| {
                    let style = colour.stroke_width(width);
                    let [a, b, c] = dashes.map(|(from, to)| PathElement::new([(x + from, y), (x + to, y)], style));
                    EmptyElement::at((0, 0)) + a + b + c
                });
            }
            let position = match panel.legend {
                LegendCorner::UpperRight => SeriesLabelPosition::UpperRight,
                LegendCorner::LowerRight => SeriesLabelPosition::LowerRight,
            };
            chart
                .configure_series_labels()
                .position(position)
                .label_font((FONT, 15))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
        Ok(())
    })
}
