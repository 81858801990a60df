use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::data::{DatasetSummary, Split};
use crate::models::ModelSpec;

/// One epoch of training. Losses are means over the epoch's training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// The optimised loss: `onehot_loss + hue_loss`.
    pub train_loss: f64,
    pub train_onehot_loss: f64,
    /// The weighted hue term; `None` when the run does not optimise it.
    pub train_hue_loss: Option<f64>,
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub val_hue_accuracy: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// Accuracy of the class head, accuracy of the hue head (the class whose angle is nearest to
/// `θ'` is the true class) and the mean one-hot loss, over `count` images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalMetrics {
    pub count: usize,
    pub accuracy: f64,
    pub hue_accuracy: f64,
    pub onehot_loss: f64,
}

/// The sizes of the three parts of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitSizes {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

impl From<&Split> for SplitSizes {
    fn from(s: &Split) -> Self {
        SplitSizes { train: s.train.len(), val: s.val.len(), test: s.test.len() }
    }
}

/// Everything a finished run produced, and everything needed to say how.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub config: TrainConfig,
    pub model: ModelSpec,
    /// The distance scale in force (the paper's `1/(2M)` unless set); `None` for one-hot runs.
    pub hue_scale: Option<f64>,
    pub data: DatasetSummary,
    pub split_seed: u64,
    pub split_sizes: SplitSizes,
    pub device: String,
    /// Per channel `(mean, sd)` of the training part, when `normalize` is on.
    pub normalization: Option<Vec<(f64, f64)>>,
    pub epochs: Vec<EpochMetrics>,
    pub test: Option<EvalMetrics>,
    /// Training time, summed over the sessions of a resumed run.
    pub wall_seconds: f64,
    /// The epoch of the checkpoint this run resumed from, if it did.
    pub resumed_after_epoch: Option<usize>,
}

impl TrainReport {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}
