//! Layers and losses shared by every model: the class-logit and hue heads that sit on a
//! backbone's bottleneck, the training objectives behind the [`Loss`] seam (the one-hot, the
//! one-hot + hue of METHOD.md §3, the focal and poly-1 losses), and the hue loss itself.
mod focal;
mod heads;
mod hue_loss;
mod loss;
mod onehot;
mod poly;

pub use focal::FocalLoss;
pub use heads::*;
pub use hue_loss::*;
pub use loss::{Loss, LossKind, LossName, LossPart};
pub use onehot::OneHotLoss;
pub use poly::Poly1Loss;
