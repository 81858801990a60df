//! The training objective as a named seam: [`LossKind`] is what a run's options choose (and
//! what manifests and checkpoints record); [`Loss`] is what the trainer calls. A loss is a sum
//! of named parts (e.g. `onehot` + `hue`); the parts' names flow unchanged into the per-epoch
//! metrics, the CSV columns (`train_<part>_loss`), the curves and the manifest, so nothing
//! downstream knows which losses exist.
//!
//! Adding a loss: write it in its own file in `nn/` (implementing [`Loss`]), then add its
//! variant to [`LossKind`] and one arm to each `match` below. Nothing else changes.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::Tensor;

use super::focal::FocalLoss;
use super::heads::HeadOutputs;
use super::hue_loss::{AngleAssignment, HueLossConfig, OneHotHueLoss};
use super::onehot::OneHotLoss;
use crate::error::{Error, Result};
use crate::options::Options;

/// One named part of a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossPart {
    /// In column names and manifests: `train_<key>_loss`.
    pub key: &'static str,
    /// In figure legends.
    pub label: &'static str,
}

/// What the trainer optimises: the sum of [`Loss::parts`].
pub trait Loss: std::fmt::Debug {
    fn parts(&self) -> &'static [LossPart];

    /// The batch mean of every part (as it enters the total), in the order of `parts`.
    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>>;
}

/// The losses huelab trains with, as run options name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum LossKind {
    /// Softmax cross-entropy on the class logits.
    #[serde(rename = "onehot")]
    OneHot,
    /// `L_onehot + weight · L_hue` (METHOD.md §3).
    #[serde(rename = "onehot+hue")]
    OneHotHue { hue: HueLossConfig },
    /// Focal loss (Lin et al. 2017) on the class logits: `−(1 − p_t)^γ log p_t`, which
    /// down-weights the images a model already gets right; `γ = 0` is the one-hot loss.
    #[serde(rename = "focal")]
    Focal { gamma: f64 },
}

impl LossKind {
    pub const NAMES: &'static [&'static str] = &["onehot", "onehot+hue", "focal"];

    /// The keys of a run's options map that carry a loss's own options (`hue: #{ … }`).
    pub const OPTION_KEYS: &'static [&'static str] = &["hue", "focal"];

    pub fn name(&self) -> &'static str {
        match self {
            LossKind::OneHot => "onehot",
            LossKind::OneHotHue { .. } => "onehot+hue",
            LossKind::Focal { .. } => "focal",
        }
    }

    /// The loss named `name`; `options` holds the run's option maps of losses by their key (at
    /// most the one that belongs to `name`).
    pub fn from_options(name: &str, mut options: Map<String, Value>) -> Result<Self> {
        let mut own = |key: &str| options.remove(key).unwrap_or(Value::Null);
        let loss = match name {
            "onehot" => LossKind::OneHot,
            "onehot+hue" => LossKind::OneHotHue { hue: HueLossConfig::from_options(own("hue"))? },
            "focal" => {
                let mut o = Options::from_value(own("focal"), "focal options", &["gamma"])?;
                LossKind::Focal { gamma: o.float("gamma")?.unwrap_or(FocalLoss::DEFAULT_GAMMA) }
            }
            _ => return Err(Error::invalid_option("loss", format!("unknown loss '{name}'; valid losses: {}", Self::NAMES.join(", ")))),
        };
        if let Some(key) = options.keys().next() {
            return Err(Error::invalid_option(key, format!("{key} options were given, but loss is \"{name}\"")));
        }
        loss.validate()?;
        Ok(loss)
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            LossKind::OneHot => Ok(()),
            LossKind::OneHotHue { hue } => hue.validate(),
            LossKind::Focal { gamma } => FocalLoss::validate(*gamma),
        }
    }

    /// The parts the loss reports, in order.
    pub fn parts(&self) -> &'static [LossPart] {
        match self {
            LossKind::OneHot => OneHotLoss::PARTS,
            LossKind::OneHotHue { .. } => OneHotHueLoss::PARTS,
            LossKind::Focal { .. } => FocalLoss::PARTS,
        }
    }

    /// The loss for `num_classes` classes; `label_smoothing` applies to a one-hot term.
    pub fn build(&self, num_classes: usize, label_smoothing: f64) -> Result<Box<dyn Loss>> {
        Ok(match self {
            LossKind::OneHot => Box::new(OneHotLoss { label_smoothing }),
            LossKind::OneHotHue { hue } => Box::new(OneHotHueLoss::new(num_classes, label_smoothing, hue.clone())?),
            LossKind::Focal { gamma } => {
                if label_smoothing != 0.0 {
                    return Err(Error::invalid_option("label_smoothing", "does not apply to the focal loss"));
                }
                Box::new(FocalLoss { gamma: *gamma })
            }
        })
    }

    /// Numbers a report records beside the options, derived from them for `num_classes`
    /// classes (e.g. the hue distance scale in force).
    pub fn derived(&self, num_classes: usize) -> Map<String, Value> {
        match self {
            LossKind::OneHotHue { hue } => hue.derived(num_classes),
            LossKind::OneHot | LossKind::Focal { .. } => Map::new(),
        }
    }

    /// The class angles the hue head of a model trained with this loss is scored against: the
    /// loss's own when it trains the head, else the default assignment (a chance-level
    /// reference for an untrained head).
    pub fn head_angles(&self) -> AngleAssignment {
        match self {
            LossKind::OneHotHue { hue } => hue.assignment,
            LossKind::OneHot | LossKind::Focal { .. } => HueLossConfig::default().assignment,
        }
    }

    /// The hue options, when the loss has a hue term.
    pub fn hue_config(&self) -> Option<&HueLossConfig> {
        match self {
            LossKind::OneHotHue { hue } => Some(hue),
            LossKind::OneHot | LossKind::Focal { .. } => None,
        }
    }
}
