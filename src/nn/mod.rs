//! Layers and losses shared by every model: the class-logit and hue heads that sit on a
//! backbone's bottleneck, and the hue loss (METHOD.md §3).
mod heads;
mod hue_loss;

pub use heads::*;
pub use hue_loss::*;
