//! PNG figures drawn with plotters. Text uses the DejaVu Sans font compiled into huelab, so a
//! figure renders the same on every machine; files are written atomically.
mod comparison;
mod curves;
mod render;

pub use comparison::plot_comparison;
pub use curves::plot_training_curves;
