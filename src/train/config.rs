use std::path::PathBuf;

use serde::Serialize;

use serde_json::{Map, Value};

use crate::data::Augment;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::models::{Arch, Stem};
pub use crate::nn::LossKind;
use crate::nn::{HueHeadConfig, LossName};
use crate::options::{OptionDoc, Options};
use crate::registry::Registry;
pub use crate::precision::Precision;

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
    /// Standardise with these fixed per-channel `(mean, sd)` instead (e.g. ImageNet's, for a
    /// pretrained network's protocol); left out of the JSON when unset, so checkpoints made
    /// before the option existed still resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize_stats: Option<Vec<(f64, f64)>>,
    /// Seeds the initial weights and the batch order. Two runs with the same seed, data and
    /// split start from identical weights and see identical batches, whatever their loss.
    pub seed: u64,
    pub device: DeviceChoice,
    /// Lay out the convolution kernels and the batches channels-last (NHWC strides), which lets
    /// oneDNN and cuDNN pick other kernels. `None`: the architecture's measured default
    /// ([`crate::models::Arch::trains_channels_last`]); the layout used is in the report. Like
    /// the device, a layout is not part of a run's identity: a checkpoint resumes in either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels_last: Option<bool>,
    /// Recompute every batch norm's statistics as the average over the training images (training
    /// mode, no stochastic depth) before each evaluation, instead of the running average of the
    /// last training batches. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bn_recalibrate: bool,
    /// `bf16`: the training forward pass under bf16 autocast (convolutions and matrix
    /// multiplies in bfloat16; weights, gradients, optimiser and loss in float32). Evaluation
    /// stays in float32. Left out of the JSON when `fp32`, so older checkpoints still resume.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Show a progress bar (a line per epoch when stderr is not a terminal).
    #[serde(skip)]
    pub progress: bool,
    /// In a notebook, the running curves as one figure updated after every epoch.
    #[serde(skip)]
    pub live: bool,
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
            normalize_stats: None,
            seed: 0,
            device: DeviceChoice::Auto,
            progress: true,
            live: true,
            checkpoint: None,
            resume: false,
            channels_last: None,
            bn_recalibrate: false,
            precision: Precision::Fp32,
        }
    }
}

/// Options that say where a run trains, not what it is: a checkpoint resumes, and a cluster
/// unit is the same unit, when only these changed (a failed unit is rerun with `device`
/// corrected; numbers of a run resumed on another device differ from an uninterrupted one).
pub const ENVIRONMENT_KEYS: &[&str] = &["device", "channels_last"];

/// A run's options as JSON without its [`ENVIRONMENT_KEYS`]: what makes two runs the same run.
pub fn identity_of(config: &serde_json::Value) -> serde_json::Value {
    let mut identity = config.clone();
    if let Some(map) = identity.as_object_mut() {
        for key in ENVIRONMENT_KEYS {
            map.remove(*key);
        }
    }
    identity
}

impl TrainConfig {
    /// This run's identity (see [`identity_of`]).
    pub fn identity(&self) -> crate::error::Result<serde_json::Value> {
        let json = serde_json::to_value(self).map_err(|e| Error::msg(format!("cannot serialise the config: {e}")))?;
        Ok(identity_of(&json))
    }

    pub const MAX_EPOCHS: usize = 100_000;
    pub const MAX_BATCH_SIZE: usize = 1 << 20;
    /// Pixels of zero padding on each side before a random crop (an image is padded to
    /// `side + 2·padding`, so padding is at most a large image's side).
    pub const MAX_CROP_PADDING: i64 = 1024;

    pub fn validate(&self) -> Result<()> {
        // Upper bounds far above any run, below what overflows a count or an allocation.
        if !(1..=Self::MAX_EPOCHS).contains(&self.epochs) {
            return Err(Error::invalid_option("epochs", format!("must be in 1..={}, got {}", Self::MAX_EPOCHS, self.epochs)));
        }
        if !(1..=Self::MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(Error::invalid_option("batch_size", format!("must be in 1..={}, got {}", Self::MAX_BATCH_SIZE, self.batch_size)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid_option("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid_option("label_smoothing", format!("must be in [0, 1), got {}", self.label_smoothing)));
        }
        if !(0..=Self::MAX_CROP_PADDING).contains(&self.augment.crop_padding) {
            return Err(Error::invalid_option("crop_padding", format!("must be in 0..={}, got {}", Self::MAX_CROP_PADDING, self.augment.crop_padding)));
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
        if let Some(stats) = &self.normalize_stats {
            if self.normalize {
                return Err(Error::invalid_option("normalize", "choose the training part's statistics or fixed ones, not both"));
            }
            if let Some((m, sd)) = stats.iter().find(|(m, sd)| !(m.is_finite() && sd.is_finite() && *sd > 0.0)) {
                return Err(Error::invalid_option("normalize", format!("a channel's mean and sd must be finite with sd > 0, got ({m}, {sd})")));
            }
        }
        if let Some(h) = self.hue_head.hidden {
            if h < 1 {
                return Err(Error::invalid_option("hue_hidden", format!("must be at least 1, got {h}")));
            }
        }
        self.loss.validate()?;
        Ok(())
    }

    /// The options [`Self::from_options`] reads: [`TRAIN_OPTIONS`], then one map per loss that
    /// has options of its own (`hue: #{ … }`), from the loss registry.
    pub fn options() -> Vec<OptionDoc> {
        let mut docs = TRAIN_OPTIONS.to_vec();
        docs.extend(LossName::all().into_iter().filter_map(|loss| {
            let key = loss.option_key()?;
            Some(OptionDoc::new(key, "map", "#{}", loss.doc()).with_fields(loss.options()))
        }));
        docs
    }

    /// A config from an options map ([`Self::options`]); what is not given takes the default.
    pub fn from_options(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "train options", &Self::options())?;
        let d = TrainConfig::default();
        let loss_name = o.string("loss")?.unwrap_or_else(|| d.loss.name().to_owned());
        let mut loss_options = Map::new();
        for key in LossKind::option_keys() {
            if let Some(m) = o.map(key)? {
                loss_options.insert(key.to_owned(), Value::Object(m));
            }
        }
        let loss = LossKind::from_options(&loss_name, loss_options)?;
        let optimizer = optimizer_config(&mut o)?;
        let schedule = schedule_config(&mut o)?;
        let (normalize, normalize_stats) = normalize_option(&mut o)?;
        let config = TrainConfig {
            optimizer,
            schedule,
            label_smoothing: o.float("label_smoothing")?.unwrap_or(d.label_smoothing),
            augment: Augment {
                flip: o.bool("flip")?.unwrap_or(d.augment.flip),
                crop_padding: o.int("crop_padding")?.unwrap_or(d.augment.crop_padding),
            },
            normalize,
            normalize_stats,
            name: o.string("name")?.unwrap_or(loss_name.clone()),
            arch: o.string("model")?.map(|m| m.parse()).transpose()?.unwrap_or(d.arch),
            stem: o.string("stem")?.map(|s| s.parse()).transpose()?.unwrap_or(d.stem),
            hue_head: HueHeadConfig { hidden: o.int("hue_hidden")?.filter(|&h| h != 0) },
            loss,
            epochs: o.count("epochs")?.map_or(d.epochs, |v| v as usize),
            batch_size: o.count("batch_size")?.map_or(d.batch_size, |v| v as usize),
            lr: o.float("lr")?.unwrap_or(d.lr),
            seed: o.count("seed")?.unwrap_or(d.seed),
            device: o.device()?.unwrap_or(d.device),
            progress: o.bool("progress")?.unwrap_or(d.progress),
            live: o.bool("live")?.unwrap_or(d.live),
            checkpoint: o.string("checkpoint")?.map(std::path::PathBuf::from),
            resume: o.bool("resume")?.unwrap_or(d.resume),
            channels_last: o.bool("channels_last")?.or(d.channels_last),
            bn_recalibrate: o.bool("bn_recalibrate")?.unwrap_or(d.bn_recalibrate),
            precision: o.string("precision")?.map(|p| p.parse()).transpose()?.unwrap_or(d.precision),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The options of a run, less the losses' own maps ([`TrainConfig::options`] adds those).
pub const TRAIN_OPTIONS: &[OptionDoc] = &[
    OptionDoc::new("name", "string", "(the loss's name)", "the run's name in tables, figures and manifests"),
    OptionDoc::new("model", "string", "\"small_cnn\"", "the architecture trained").one_of(<Arch as Registry>::names),
    OptionDoc::new("stem", "string", "\"auto\"", "the first layers: ImageNet's, or stride 1 for small images (auto: small below 64 px)").one_of(|| vec!["auto", "imagenet", "small"]),
    OptionDoc::new("loss", "string", "\"onehot\"", "the training objective; its own options go in the map named below").one_of(<LossName as Registry>::names),
    OptionDoc::new("hue_hidden", "int", "0", "a hidden layer of this width in the hue head (0: linear)"),
    OptionDoc::new("label_smoothing", "float", "0.0", "label smoothing of the one-hot term"),
    OptionDoc::new("epochs", "int", "10", "passes over the training part"),
    OptionDoc::new("batch_size", "int", "64", "images per step"),
    OptionDoc::new("lr", "float", "0.001", "learning rate"),
    OptionDoc::new("optimizer", "string", "\"adam\"", "the optimiser (PyTorch's update rules)").one_of(|| OptimizerKind::NAMES.to_vec()),
    OptionDoc::new("weight_decay", "float", "(adamw: 0.01, sgd: 0)", "decoupled (adamw) or L2 (sgd) weight decay"),
    OptionDoc::new("momentum", "float", "(sgd: 0.9)", "SGD momentum"),
    OptionDoc::new("nesterov", "bool", "(sgd: false)", "Nesterov momentum"),
    OptionDoc::new("schedule", "string", "\"constant\"", "the learning-rate schedule").one_of(|| Schedule::NAMES.to_vec()),
    OptionDoc::new("min_lr", "float", "(cosine: 0)", "the cosine schedule's final rate"),
    OptionDoc::new("step_every", "int", "(step: required)", "epochs between the step schedule's decays"),
    OptionDoc::new("step_gamma", "float", "(step: 0.1)", "the step schedule's factor"),
    OptionDoc::new("flip", "bool", "false", "random horizontal flips"),
    OptionDoc::new("crop_padding", "int", "0", "random crops after zero padding by this many pixels"),
    OptionDoc::new("normalize", "bool | string", "false", "standardise channels: true (the training part's statistics) or \"imagenet\""),
    OptionDoc::new("seed", "int", "0", "seeds weights, batch order and augmentation"),
    crate::options::DEVICE,
    OptionDoc::new("channels_last", "bool", "(by model)", "NHWC layout of kernels and batches; default: on the CPU for the small CNN, and for ResNets in bf16 (measured faster), off elsewhere"),
    OptionDoc::new("bn_recalibrate", "bool", "false", "recompute batch-norm statistics on the training part before evaluating"),
    OptionDoc::new("precision", "string", "\"fp32\"", "bf16: the forward pass under bfloat16 autocast").one_of(|| vec!["fp32", "bf16"]),
    OptionDoc::new("progress", "bool", "true", "a progress bar (a line per epoch off a terminal)"),
    OptionDoc::new("live", "bool", "true", "in a notebook, the running curves as one figure updated each epoch (at most twice a second)"),
    OptionDoc::new("checkpoint", "string", "(none)", "a directory for a checkpoint after every epoch and the finished model"),
    OptionDoc::new("resume", "bool", "false", "continue from the checkpoint there"),
];

/// ImageNet's per-channel `(mean, sd)` (torchvision's `Normalize`), RGB.
pub const IMAGENET_STATS: [(f64, f64); 3] = {
    use crate::models::torchvision::{IMAGENET_MEAN as M, IMAGENET_SD as S};
    [(M[0], S[0]), (M[1], S[1]), (M[2], S[2])]
};

/// `normalize`: `false` (default), `true` (the training part's statistics) or `"imagenet"`.
fn normalize_option(o: &mut Options) -> Result<(bool, Option<Vec<(f64, f64)>>)> {
    if !o.contains("normalize") {
        return Ok((false, None));
    }
    if let Ok(Some(text)) = o.clone_string("normalize") {
        return match text.as_str() {
            "imagenet" => {
                o.string("normalize")?;
                Ok((false, Some(IMAGENET_STATS.to_vec())))
            }
            other => Err(Error::invalid_option("normalize", format!("must be true, false or \"imagenet\", got \"{other}\""))),
        };
    }
    Ok((o.bool("normalize")?.unwrap_or(false), None))
}

/// `optimizer` ("adam", "adamw", "sgd") with the keys that belong to it: `weight_decay` (adamw:
/// 0.01, sgd: 0), `momentum` (sgd: 0.9), `nesterov` (sgd: false). A key that does not belong to
/// the chosen optimiser is an error.
fn optimizer_config(o: &mut Options) -> Result<OptimizerKind> {
    let name = o.string("optimizer")?.unwrap_or_else(|| "adam".into());
    let (weight_decay, momentum, nesterov) = (o.float("weight_decay")?, o.float("momentum")?, o.bool("nesterov")?);
    let unused = |key: &str, given: bool| -> Result<()> {
        if given {
            return Err(Error::invalid_option(key, format!("does not apply to the {name} optimizer")));
        }
        Ok(())
    };
    match name.as_str() {
        "adam" => {
            unused("weight_decay", weight_decay.is_some())?;
            unused("momentum", momentum.is_some())?;
            unused("nesterov", nesterov.is_some())?;
            Ok(OptimizerKind::Adam)
        }
        "adamw" => {
            unused("momentum", momentum.is_some())?;
            unused("nesterov", nesterov.is_some())?;
            Ok(OptimizerKind::AdamW { weight_decay: weight_decay.unwrap_or(0.01) })
        }
        "sgd" => Ok(OptimizerKind::Sgd {
            momentum: momentum.unwrap_or(0.9),
            weight_decay: weight_decay.unwrap_or(0.0),
            nesterov: nesterov.unwrap_or(false),
        }),
        other => Err(Error::invalid_option(
            "optimizer",
            format!("unknown optimizer \"{other}\"; valid: {}", OptimizerKind::NAMES.join(", ")),
        )),
    }
}

/// `schedule` ("constant", "cosine", "step") with `min_lr` (cosine: 0), `step_every` (step:
/// required) and `step_gamma` (step: 0.1).
fn schedule_config(o: &mut Options) -> Result<Schedule> {
    let name = o.string("schedule")?.unwrap_or_else(|| "constant".into());
    let (min_lr, every, gamma) = (o.float("min_lr")?, o.count("step_every")?, o.float("step_gamma")?);
    let misplaced = |key: &str| Error::invalid_option(key, format!("does not apply to the {name} schedule"));
    match name.as_str() {
        "constant" if min_lr.is_some() => Err(misplaced("min_lr")),
        "constant" | "cosine" if every.is_some() => Err(misplaced("step_every")),
        "constant" | "cosine" if gamma.is_some() => Err(misplaced("step_gamma")),
        "step" if min_lr.is_some() => Err(misplaced("min_lr")),
        "constant" => Ok(Schedule::Constant),
        "cosine" => Ok(Schedule::Cosine { min_lr: min_lr.unwrap_or(0.0) }),
        "step" => Ok(Schedule::Step {
            every: every.ok_or_else(|| Error::invalid_option("step_every", "the step schedule needs it"))? as usize,
            gamma: gamma.unwrap_or(0.1),
        }),
        other => Err(Error::invalid_option("schedule", format!("unknown schedule \"{other}\"; valid: {}", Schedule::NAMES.join(", ")))),
    }
}
