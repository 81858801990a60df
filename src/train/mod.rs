//! Training a [`HueNet`](crate::models::HueNet) on an image data set with the one-hot or the
//! one-hot + hue loss, and the one shared `evaluate`.
pub mod checkpoint;
mod config;
mod evaluate;
mod metrics;
mod optim;
mod recalibrate;
mod saved_model;
mod step;
mod trainer;

pub use config::*;
pub use evaluate::*;
pub use metrics::*;
pub use optim::Optimizer;
pub use saved_model::{save_model, SavedModelInfo, TrainedModel};
pub use step::{EpochSums, HostSums, TrainStep};
pub use trainer::*;
