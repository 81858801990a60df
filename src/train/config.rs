use std::path::PathBuf;

use serde::Serialize;

use crate::data::Augment;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::models::{Arch, Stem};
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

/// The optimiser; each uses PyTorch's defaults for what is not set here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam: betas 0.9/0.999, eps 1e-8, no weight decay.
    Adam,
    /// AdamW: betas 0.9/0.999, eps 1e-8, decoupled weight decay.
    AdamW { weight_decay: f64 },
    /// SGD with momentum (dampening 0).
    Sgd { momentum: f64, weight_decay: f64, nesterov: bool },
}

impl OptimizerKind {
    pub const NAMES: &'static [&'static str] = &["adam", "adamw", "sgd"];
}

/// The learning rate over the run, set at the start of every epoch (as PyTorch's schedulers
/// stepped once per epoch do).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// CosineAnnealingLR over the whole run: `min_lr + (lr − min_lr)(1 + cos(π e / E)) / 2`
    /// for epoch `e = 0 … E−1`.
    Cosine { min_lr: f64 },
    /// StepLR: `lr · gamma^⌊e / every⌋`.
    Step { every: usize, gamma: f64 },
}

impl Schedule {
    pub const NAMES: &'static [&'static str] = &["constant", "cosine", "step"];

    /// The learning rate of epoch `epoch` (counted from 0) of `epochs`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine { min_lr } => {
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0
            }
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
        }
    }
}

/// Everything that defines one training run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Names the run in tables, plots and CSV files (e.g. the arm: "onehot").
    pub name: String,
    pub arch: Arch,
    pub stem: Stem,
    pub hue_head: HueHeadConfig,
    pub loss: LossKind,
    pub epochs: usize,
    pub batch_size: usize,
    /// The base learning rate, before the schedule.
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    /// Label smoothing of the one-hot term (PyTorch's `label_smoothing`; 0: none).
    pub label_smoothing: f64,
    /// Augmentation of training batches (validation and test images are never augmented).
    pub augment: Augment,
    /// Standardise each channel with the mean and sd of the training part (never of the
    /// validation or test images), applied to every image the model sees.
    pub normalize: bool,
    /// Seeds the initial weights and the batch order. Two runs with the same seed, data and
    /// split start from identical weights and see identical batches, whatever their loss.
    pub seed: u64,
    pub device: DeviceChoice,
    /// Feed batches in channels-last memory layout (NHWC strides), which lets cuDNN and oneDNN
    /// pick their faster kernels; convolutions pass the layout on. Off by default; left out of
    /// the JSON when off, so checkpoints made before the option existed still resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub channels_last: bool,
    /// Show a progress bar (a line per epoch when stderr is not a terminal).
    #[serde(skip)]
    pub progress: bool,
    /// Write a checkpoint into this directory after every epoch.
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint` if there is one. Without it, an existing
    /// checkpoint there is an error rather than something to overwrite.
    #[serde(skip)]
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "run".into(),
            arch: Arch::SmallCnn,
            stem: Stem::Auto,
            hue_head: HueHeadConfig::default(),
            loss: LossKind::OneHot,
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            augment: Augment::default(),
            normalize: false,
            seed: 0,
            device: DeviceChoice::Auto,
            progress: true,
            checkpoint: None,
            resume: false,
            channels_last: false,
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
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid_option("label_smoothing", format!("must be in [0, 1), got {}", self.label_smoothing)));
        }
        if self.augment.crop_padding < 0 {
            return Err(Error::invalid_option("crop_padding", format!("must be >= 0, got {}", self.augment.crop_padding)));
        }
        match self.optimizer {
            OptimizerKind::Adam => {}
            OptimizerKind::AdamW { weight_decay } | OptimizerKind::Sgd { weight_decay, .. } if !(weight_decay >= 0.0) => {
                return Err(Error::invalid_option("weight_decay", format!("must be >= 0, got {weight_decay}")));
            }
            OptimizerKind::Sgd { momentum, .. } if !(0.0..1.0).contains(&momentum) => {
                return Err(Error::invalid_option("momentum", format!("must be in [0, 1), got {momentum}")));
            }
            _ => {}
        }
        match self.schedule {
            Schedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr <= self.lr) => {
                return Err(Error::invalid_option("min_lr", format!("must be in [0, lr], got {min_lr}")));
            }
            Schedule::Step { every: 0, .. } => return Err(Error::invalid_option("step_every", "must be at least 1")),
            Schedule::Step { gamma, .. } if !(gamma > 0.0) => {
                return Err(Error::invalid_option("step_gamma", format!("must be > 0, got {gamma}")));
            }
            _ => {}
        }
        if self.resume && self.checkpoint.is_none() {
            return Err(Error::invalid_option("resume", "needs a checkpoint directory"));
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
