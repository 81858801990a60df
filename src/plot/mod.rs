//! PNG figures drawn with plotters. Text uses the DejaVu Sans font compiled into huelab, so a
//! figure renders the same on every machine. Each figure exists twice: a function returning a
//! [`Figure`] (shown inline in notebooks, saved with `Figure::save`) and a `plot_*` function
//! that writes it, atomically, with its numbers as CSV where it has any.
mod comparison;
mod curves;
mod observations;
mod render;

pub use comparison::{comparison_figure, plot_comparison};
pub use curves::{plot_training_curves, training_curves};
pub use observations::{
    conditional_matches, energy_maps, grouped_bars, heatmaps, match_angles, match_positions, plot_conditional_matches, plot_energy_maps,
    plot_grouped_bars, plot_heatmaps, plot_match_angles, plot_match_positions, plot_polar, polar, HeatmapPanel,
};
pub use render::{plot_error, render as render_with, Figure, FONT};
