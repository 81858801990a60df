use serde::Serialize;

use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::models::Arch;
use crate::nn::{HueHeadConfig, HueLossConfig};

/// The training objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum LossKind {
    /// Softmax cross-entropy on the class logits.
    #[serde(rename = "onehot")]
    OneHot,
    /// `L_onehot + weight · L_hue` (METHOD.md §3).
    #[serde(rename = "onehot+hue")]
    OneHotHue { hue: HueLossConfig },
}

impl LossKind {
    pub const NAMES: &'static [&'static str] = &["onehot", "onehot+hue"];

    pub fn name(&self) -> &'static str {
        match self {
            LossKind::OneHot => "onehot",
            LossKind::OneHotHue { .. } => "onehot+hue",
        }
    }

    /// Builds a loss by name; `hue` is used by the hue loss only.
    pub fn from_name(name: &str, hue: HueLossConfig) -> Result<Self> {
        match name {
            "onehot" => Ok(LossKind::OneHot),
            "onehot+hue" => Ok(LossKind::OneHotHue { hue }),
            _ => Err(Error::invalid_option("loss", format!("unknown loss '{name}'; valid losses: {}", Self::NAMES.join(", ")))),
        }
    }

    pub fn hue_config(&self) -> Option<&HueLossConfig> {
        match self {
            LossKind::OneHot => None,
            LossKind::OneHotHue { hue } => Some(hue),
        }
    }
}

/// Everything that defines one training run. Optimiser: Adam with PyTorch's defaults
/// (betas 0.9/0.999, eps 1e-8, no weight decay) at a constant learning rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Names the run in tables, plots and CSV files (e.g. the arm: "onehot").
    pub name: String,
    pub arch: Arch,
    pub hue_head: HueHeadConfig,
    pub loss: LossKind,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Seeds the initial weights and the batch order. Two runs with the same seed, data and
    /// split start from identical weights and see identical batches, whatever their loss.
    pub seed: u64,
    pub device: DeviceChoice,
    /// Show a progress bar (a line per epoch when stderr is not a terminal).
    #[serde(skip)]
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "run".into(),
            arch: Arch::SmallCnn,
            hue_head: HueHeadConfig::default(),
            loss: LossKind::OneHot,
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            device: DeviceChoice::Auto,
            progress: true,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid_option("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid_option("batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid_option("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if let Some(h) = self.hue_head.hidden {
            if h < 1 {
                return Err(Error::invalid_option("hue_hidden", format!("must be at least 1, got {h}")));
            }
        }
        if let Some(hue) = self.loss.hue_config() {
            hue.validate()?;
        }
        Ok(())
    }
}
