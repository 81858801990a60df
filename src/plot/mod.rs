//! PNG figures drawn with plotters. Text uses the DejaVu Sans font compiled into huelab, so a
//! figure renders the same on every machine; files are written atomically.
mod comparison;
mod curves;
mod render;

pub use comparison::plot_comparison;
pub use curves::plot_training_curves;
mod observations;
pub use observations::{
    plot_conditional_matches, plot_energy_maps, plot_grouped_bars, plot_heatmaps, plot_match_angles, plot_match_positions, plot_polar, HeatmapPanel,
};
