//! The charts behind the paper's observation figures, on plain numbers: heatmaps on a grid with
//! colour bars (Fig. 3 energy, Fig. 5 match positions, Fig. 6 conditional match positions),
//! grouped bars (Fig. 4) and a polar plot of per-class histograms over angles. Each `plot_*`
//! writes its numbers beside the PNG as CSV (same name, `.csv`).
use std::path::Path;

use plotters::prelude::*;

use super::render::{plot_error, render, require_finite, Figure, FONT};
use crate::error::{Error, Result};
use crate::files::write_csv;

/// One heatmap: `values` row-major on a `(h, w)` grid, top row first.
#[derive(Debug, Clone)]
pub struct HeatmapPanel {
    pub title: String,
    pub grid: (i64, i64),
    pub values: Vec<f64>,
    /// A cell `(x, y)` to outline (Fig. 6's query position).
    pub marker: Option<(i64, i64)>,
}

const PANEL: u32 = 340;
const BAR: u32 = 90;

fn colour(v: f64, lo: f64, hi: f64) -> RGBColor {
    let t = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
    ViridisRGB::get_color_normalized(t as f32, 0.0, 1.0)
}

/// Panels in rows of `columns`, each with its own colour bar; centred axis coordinates. The
/// values go to a CSV beside the PNG.
pub fn plot_heatmaps(path: &Path, title: &str, panels: &[HeatmapPanel], columns: usize) -> Result<()> {
    heatmaps(title, panels, columns)?.save(path)?;
    write_csv(&path.with_extension("csv"), heatmap_table(panels))
}

/// The figure of [`plot_heatmaps`].
pub fn heatmaps(title: &str, panels: &[HeatmapPanel], columns: usize) -> Result<Figure> {
    if panels.is_empty() || columns == 0 {
        return Err(Error::msg("no heatmap to draw"));
    }
    for p in panels {
        if p.grid.0 < 1 || p.grid.1 < 1 || p.values.len() as i64 != p.grid.0 * p.grid.1 {
            return Err(Error::msg(format!("heatmap '{}': {} values for a {}×{} grid", p.title, p.values.len(), p.grid.0, p.grid.1)));
        }
        require_finite(&format!("heatmap '{}'", p.title), &p.values)?;
    }
    let rows = panels.len().div_ceil(columns);
    let width = columns as u32 * (PANEL + BAR) + 20;
    let height = rows as u32 * (PANEL + 20) + 50;
    render((width, height), |root| {
        let (header, body) = root.split_vertically(50);
        header.draw(&Text::new(title.to_owned(), (16, 14), (FONT, 20).into_font())).map_err(plot_error)?;
        let cells = body.split_evenly((rows, columns));
        for (area, panel) in cells.iter().zip(panels) {
            draw_heatmap(area, panel)?;
        }
        Ok(())
    })
}

fn heatmap_table(panels: &[HeatmapPanel]) -> Vec<Vec<String>> {
    let mut table = vec![vec!["panel".to_owned(), "x".into(), "y".into(), "value".into()]];
    for p in panels {
        let (h, w) = p.grid;
        for (i, v) in p.values.iter().enumerate() {
            let (row, col) = (i as i64 / w, i as i64 % w);
            let x = col as f64 - (w - 1) as f64 / 2.0;
            let y = (h - 1) as f64 / 2.0 - row as f64;
            table.push(vec![p.title.clone(), x.to_string(), y.to_string(), v.to_string()]);
        }
    }
    table
}

fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, panel: &HeatmapPanel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (h, w) = panel.grid;
    let lo = panel.values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = panel.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (map_area, bar_area) = area.split_horizontally(PANEL);
    let (hx, hy) = ((w as f64) / 2.0, (h as f64) / 2.0);
    let mut chart = ChartBuilder::on(&map_area)
        .caption(&panel.title, (FONT, 15))
        .margin(6)
        .x_label_area_size(34)
        .y_label_area_size(34)
        .build_cartesian_2d(-hx..hx, -hy..hy)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_labels(w.min(9) as usize)
        .y_labels(h.min(9) as usize)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(plot_error)?;
    let rects = panel.values.iter().enumerate().map(|(i, &v)| {
        let (row, col) = (i as i64 / w, i as i64 % w);
        let x0 = col as f64 - hx;
        let y1 = hy - row as f64;
        Rectangle::new([(x0, y1), (x0 + 1.0, y1 - 1.0)], colour(v, lo, hi).filled())
    });
    chart.draw_series(rects).map_err(plot_error)?;
    if let Some((x, y)) = panel.marker {
        let x0 = x as f64 - hx;
        let y1 = hy - y as f64;
        chart.draw_series([Rectangle::new([(x0, y1), (x0 + 1.0, y1 - 1.0)], RED.stroke_width(3))]).map_err(plot_error)?;
    }
    // Colour bar: the value range bottom to top.
    let (lo_bar, hi_bar) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(30)
        .margin_bottom(40)
        .margin_right(4)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, lo_bar..hi_bar)
        .map_err(plot_error)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v| format_value(*v))
        .label_style((FONT, 11))
        .draw()
        .map_err(plot_error)?;
    let steps = 64;
    let stripes = (0..steps).map(|s| {
        let a = lo_bar + (hi_bar - lo_bar) * s as f64 / steps as f64;
        let b = lo_bar + (hi_bar - lo_bar) * (s + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], colour((a + b) / 2.0, lo, hi).filled())
    });
    bar.draw_series(stripes).map_err(plot_error)?;
    Ok(())
}

fn format_value(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Fig. 4: `values[group][series]` (e.g. network × descriptor) as grouped bars from 0, with an
/// optional ± spread per bar; the numbers go to a CSV beside the PNG.
pub fn plot_grouped_bars(
    path: &Path,
    title: &str,
    (groups, series): (&[String], &[String]),
    values: &[Vec<f64>],
    spread: Option<&[Vec<f64>]>,
    y_desc: &str,
) -> Result<()> {
    grouped_bars(title, (groups, series), values, spread, y_desc)?.save(path)?;
    let mut table = vec![vec!["group".to_owned(), "series".into(), "value".into(), "spread".into()]];
    for (g, group) in groups.iter().enumerate() {
        for (s, name) in series.iter().enumerate() {
            let e = spread.map_or(String::new(), |sp| sp[g][s].to_string());
            table.push(vec![group.clone(), name.clone(), values[g][s].to_string(), e]);
        }
    }
    write_csv(&path.with_extension("csv"), table)
}

/// The figure of [`plot_grouped_bars`].
pub fn grouped_bars(
    title: &str,
    (groups, series): (&[String], &[String]),
    values: &[Vec<f64>],
    spread: Option<&[Vec<f64>]>,
    y_desc: &str,
) -> Result<Figure> {
    if values.len() != groups.len() || values.iter().any(|v| v.len() != series.len()) || spread.is_some_and(|sp| sp.len() != groups.len() || sp.iter().any(|v| v.len() != series.len())) {
        return Err(Error::msg(format!("grouped bars: values (and spread) must be {} groups × {} series", groups.len(), series.len())));
    }
    if groups.is_empty() || series.is_empty() {
        return Err(Error::msg("grouped bars: at least one group and one series are needed"));
    }
    require_finite("grouped bars", values.iter().flatten())?;
    if let Some(spread) = spread {
        require_finite("grouped bars' spread", spread.iter().flatten())?;
    }
    let top = values.iter().flatten().copied().fold(0.0, f64::max).max(1e-9);
    let y_max = if top <= 1.0 { 1.0 } else { top * 1.1 };
    // The legend gets its own column right of the chart, so it never covers bars.
    let legend_width = 40 + 9 * series.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
    let width = (200 + groups.len() * (series.len() * 40 + 40)).max(700) as u32 + legend_width;
    render((width, 520), |root| {
        let (chart_area, legend_area) = root.split_horizontally(width - legend_width);
        for (s, name) in series.iter().enumerate() {
            let y = 60 + 26 * s as i32;
            legend_area.draw(&Rectangle::new([(4, y - 7), (20, y + 7)], Palette99::pick(s).to_rgba().filled())).map_err(plot_error)?;
            legend_area.draw(&Text::new(name.clone(), (26, y - 8), (FONT, 14).into_font())).map_err(plot_error)?;
        }
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(title, (FONT, 19))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..groups.len() as f64, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 { groups.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_desc(y_desc)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(plot_error)?;
        let slot = 0.8 / series.len() as f64;
        for s in 0..series.len() {
            let colour = Palette99::pick(s).to_rgba();
            let bars = values.iter().enumerate().map(|(g, v)| {
                let x0 = g as f64 + 0.1 + slot * s as f64;
                Rectangle::new([(x0, 0.0), (x0 + slot * 0.9, v[s])], colour.filled())
            });
            chart.draw_series(bars).map_err(plot_error)?;
            if let Some(spread) = spread {
                let bars = values.iter().zip(spread).enumerate().map(|(g, (v, e))| {
                    let x = g as f64 + 0.1 + slot * (s as f64 + 0.45);
                    ErrorBar::new_vertical(x, (v[s] - e[s]).max(0.0), v[s], (v[s] + e[s]).min(y_max), BLACK.stroke_width(1), 8)
                });
                chart.draw_series(bars).map_err(plot_error)?;
            }
        }
        Ok(())
    })
}

/// The distribution of matched angles per class: each class's histogram over `[−π, π)`,
/// normalised to fractions, as a closed curve around the origin (0° to the right, y up).
///
/// With `baseline` (the share each bin would get by chance), each curve is the ratio of the
/// class's share to it: 1 is the chance circle.
pub fn plot_polar(path: &Path, title: &str, class_names: &[String], histograms: &[Vec<f64>], baseline: Option<&[f64]>) -> Result<()> {
    let (figure, table) = polar_with_table(title, class_names, histograms, baseline)?;
    figure.save(path)?;
    write_csv(&path.with_extension("csv"), table)
}

/// The figure of [`plot_polar`].
pub fn polar(title: &str, class_names: &[String], histograms: &[Vec<f64>], baseline: Option<&[f64]>) -> Result<Figure> {
    Ok(polar_with_table(title, class_names, histograms, baseline)?.0)
}

fn polar_with_table(title: &str, class_names: &[String], histograms: &[Vec<f64>], baseline: Option<&[f64]>) -> Result<(Figure, Vec<Vec<String>>)> {
    let bins = histograms.first().map_or(0, |h| h.len());
    if bins == 0 || histograms.len() != class_names.len() || baseline.is_some_and(|b| b.len() != bins) {
        return Err(Error::msg("polar plot: one non-empty histogram per class (and a baseline of the same bins) is needed"));
    }
    if histograms.iter().any(|h| h.len() != bins) {
        return Err(Error::msg(format!("polar plot: every histogram needs the same {bins} bins")));
    }
    require_finite("polar plot", histograms.iter().flatten().chain(baseline.into_iter().flatten()))?;
    if histograms.iter().flatten().chain(baseline.into_iter().flatten()).any(|&v| v < 0.0) {
        return Err(Error::msg("polar plot: histogram counts cannot be negative"));
    }
    let share = |h: &[f64]| {
        let total: f64 = h.iter().sum();
        h.iter().map(|v| if total > 0.0 { v / total } else { 0.0 }).collect::<Vec<f64>>()
    };
    let base = baseline.map(share);
    let fractions: Vec<Vec<f64>> = histograms
        .iter()
        .map(|h| {
            let s = share(h);
            match &base {
                Some(b) => s.iter().zip(b).map(|(v, b)| if *b > 0.0 { v / b } else { 0.0 }).collect(),
                None => s,
            }
        })
        .collect();
    let r_max = fractions.iter().flatten().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let angle = |b: usize| -std::f64::consts::PI + (b as f64 + 0.5) * std::f64::consts::TAU / bins as f64;
    let figure = render((720, 720), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(20)
            .build_cartesian_2d(-r_max..r_max, -r_max..r_max)
            .map_err(plot_error)?;
        // Rings at quarters of the radius, labelled with the fraction they stand for.
        for q in 1..=4 {
            let r = r_max / 1.1 * q as f64 / 4.0;
            let ring: Vec<(f64, f64)> = (0..=96).map(|i| {
                let a = i as f64 * std::f64::consts::TAU / 96.0;
                (r * a.cos(), r * a.sin())
            }).collect();
            chart.draw_series([PathElement::new(ring, BLACK.mix(0.25))]).map_err(plot_error)?;
            chart.draw_series([Text::new(format!("{r:.2}"), (r * 0.72, r * 0.72), (FONT, 12).into_font())]).map_err(plot_error)?;
        }
        for deg in [0, 90, 180, 270] {
            let a = (deg as f64).to_radians();
            chart.draw_series([PathElement::new([(0.0, 0.0), (r_max * a.cos(), r_max * a.sin())], BLACK.mix(0.25))]).map_err(plot_error)?;
            chart
                .draw_series([Text::new(format!("{deg}°"), (r_max * 0.93 * a.cos(), r_max * 0.93 * a.sin()), (FONT, 13).into_font())])
                .map_err(plot_error)?;
        }
        for (c, (name, f)) in class_names.iter().zip(&fractions).enumerate() {
            let colour = Palette99::pick(c).to_rgba();
            let mut points: Vec<(f64, f64)> = f.iter().enumerate().map(|(b, &r)| (r * angle(b).cos(), r * angle(b).sin())).collect();
            points.push(points[0]);
            chart
                .draw_series([PathElement::new(points, colour.stroke_width(3))])
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })?;
    let value_name = if baseline.is_some() { "share_over_chance" } else { "share" };
    let mut table = vec![vec!["class".to_owned(), "bin_centre_degrees".into(), "count".into(), value_name.into()]];
    for (name, (h, f)) in class_names.iter().zip(histograms.iter().zip(&fractions)) {
        for b in 0..bins {
            table.push(vec![name.clone(), format!("{:.2}", angle(b).to_degrees()), h[b].to_string(), f[b].to_string()]);
        }
    }
    Ok((figure, table))
}
