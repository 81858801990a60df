//! PNG figures drawn with plotters, from plain numbers: line panels, dot plots, heatmaps with
//! colour bars, grouped bars and polar histograms. Nothing here knows what the numbers are
//! (runs, comparisons, memories); `results` turns those into these charts. Text uses the
//! DejaVu Sans font compiled into huelab, so a figure renders the same on every machine. Each
//! chart is a [`Figure`] (saved with `Figure::save`, shown inline in notebooks); the `plot_*`
//! functions save it together with its numbers as CSV.
mod dots;
mod lines;
mod observations;
mod render;

pub use dots::{dot_plot, DotGroup};
pub use lines::{line_panels, LegendCorner, Line, LinePanel};
pub use observations::{grouped_bars, heatmaps, plot_grouped_bars, plot_heatmaps, plot_polar, polar, HeatmapPanel};
pub use render::{plot_error, render as render_with, Figure, FONT};
