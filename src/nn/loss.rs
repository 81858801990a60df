//! The training objective as a named seam: [`LossKind`] is what a run's options choose (and
//! what manifests and checkpoints record); [`Loss`] is what the trainer calls. A loss is a sum
//! of named parts (e.g. `onehot` + `hue`); the parts' names flow unchanged into the per-epoch
//! metrics, the CSV columns (`train_<part>_loss`), the curves and the manifest, so nothing
//! downstream knows which losses exist.
//!
//! Adding a loss: write it in its own file in `nn/` (implementing [`Loss`]) and declare it in
//! `nn/mod.rs`, then add its variant to [`LossKind`] and one arm to each exhaustive `match`
//! below (the compiler lists them). Its name, the option key of its own map, parsing, listing
//! and the "unknown loss" message come from [`LossName`], which strum derives from the variants.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::EnumDiscriminants;
use tch::Tensor;

use super::focal::FocalLoss;
use super::heads::HeadOutputs;
use super::hue_loss::{AngleAssignment, HueLossConfig, OneHotHueLoss};
use super::onehot::OneHotLoss;
use super::poly::Poly1Loss;
use crate::error::{Error, Result};
use crate::options::{OptionDoc, Options};
use crate::registry::Registry;

/// One named part of a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossPart {
    /// In column names and manifests: `train_<key>_loss`.
    pub key: &'static str,
    /// In figure legends.
    pub label: &'static str,
}

/// What the trainer optimises: the sum of [`Loss::parts`]. Only `parts` and `compute` are
/// required; what a hue loss adds has defaults that mean "no hue term".
pub trait Loss: std::fmt::Debug {
    fn parts(&self) -> &'static [LossPart];

    /// The batch mean of every part (as it enters the total), in the order of `parts`.
    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>>;

    /// Numbers a report records beside the options, derived from them and the class count
    /// (e.g. the hue distance scale in force).
    fn derived(&self) -> Map<String, Value> {
        Map::new()
    }

    /// The class angles this loss trains the model's hue head towards; `None` when it does
    /// not train that head.
    fn head_angles(&self) -> Option<AngleAssignment> {
        None
    }
}

/// The losses huelab trains with, as run options name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EnumDiscriminants)]
#[strum_discriminants(name(LossName), derive(strum::EnumIter))]
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
    /// Poly-1 (Leng et al. 2022, "PolyLoss"): the cross-entropy plus `ε · (1 − p_t)`, the
    /// first term of its Taylor series given its own weight.
    #[serde(rename = "poly1")]
    Poly1 { epsilon: f64 },
}

impl Registry for LossName {
    const OPTION: &'static str = "loss";

    /// The `loss:` option's value, the same as the serde name of the variant (a test checks).
    fn name(self) -> &'static str {
        match self {
            LossName::OneHot => "onehot",
            LossName::OneHotHue => "onehot+hue",
            LossName::Focal => "focal",
            LossName::Poly1 => "poly1",
        }
    }
}

crate::by_name!(LossName);

impl LossName {
    /// The key of the run option that holds this loss's own options map, if it has one.
    pub fn option_key(self) -> Option<&'static str> {
        match self {
            LossName::OneHot => None,
            LossName::OneHotHue => Some("hue"),
            LossName::Focal => Some("focal"),
            LossName::Poly1 => Some("poly1"),
        }
    }

    /// One line on what the loss is, for `huelab api`.
    pub fn doc(self) -> &'static str {
        match self {
            LossName::OneHot => "softmax cross-entropy on the class logits",
            LossName::OneHotHue => "one-hot + weight · hue loss (METHOD.md Eq. 4–5)",
            LossName::Focal => "focal loss −(1 − p_t)^γ log p_t",
            LossName::Poly1 => "poly-1: cross-entropy + ε (1 − p_t)",
        }
    }

    /// The keys of the loss's own options map (under [`Self::option_key`]).
    pub fn options(self) -> &'static [OptionDoc] {
        match self {
            LossName::OneHot => &[],
            LossName::OneHotHue => HueLossConfig::OPTIONS,
            LossName::Focal => FocalLoss::OPTIONS,
            LossName::Poly1 => Poly1Loss::OPTIONS,
        }
    }
}

impl LossKind {
    /// The keys of a run's options map that carry a loss's own options (`hue: #{ … }`).
    pub fn option_keys() -> Vec<&'static str> {
        LossName::all().into_iter().filter_map(LossName::option_key).collect()
    }

    pub fn name(&self) -> &'static str {
        LossName::from(self).name()
    }

    /// The loss named `name`; `options` holds the run's option maps of losses by their key (at
    /// most the one that belongs to `name`).
    pub fn from_options(name: &str, mut options: Map<String, Value>) -> Result<Self> {
        let which = LossName::parse(name)?;
        let own = which.option_key().map_or(Value::Null, |key| options.remove(key).unwrap_or(Value::Null));
        let loss = match which {
            LossName::OneHot => LossKind::OneHot,
            LossName::OneHotHue => LossKind::OneHotHue { hue: HueLossConfig::from_options(own)? },
            LossName::Focal => {
                let mut o = Options::from_value(own, "focal options", FocalLoss::OPTIONS)?;
                LossKind::Focal { gamma: o.float("gamma")?.unwrap_or(FocalLoss::DEFAULT_GAMMA) }
            }
            LossName::Poly1 => {
                let mut o = Options::from_value(own, "poly1 options", Poly1Loss::OPTIONS)?;
                LossKind::Poly1 { epsilon: o.float("epsilon")?.unwrap_or(Poly1Loss::DEFAULT_EPSILON) }
            }
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
            LossKind::Poly1 { epsilon } => Poly1Loss::validate(*epsilon),
        }
    }

    /// The parts the loss reports, in order.
    pub fn parts(&self) -> &'static [LossPart] {
        match self {
            LossKind::OneHot => OneHotLoss::PARTS,
            LossKind::OneHotHue { .. } => OneHotHueLoss::PARTS,
            LossKind::Focal { .. } => FocalLoss::PARTS,
            LossKind::Poly1 { .. } => Poly1Loss::PARTS,
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
            LossKind::Poly1 { epsilon } => Box::new(Poly1Loss { epsilon: *epsilon, onehot: OneHotLoss { label_smoothing } }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loss_parses_from_its_name_is_listed_and_records_that_name() {
        crate::registry::tests::check::<LossName>();
        for name in LossName::all() {
            let kind = LossKind::from_options(name.name(), Map::new()).unwrap();
            assert_eq!(LossName::from(&kind), name);
            // Manifests and checkpoints record the serde name: it must be the option's.
            assert_eq!(serde_json::to_value(&kind).unwrap()["kind"], name.name());
            assert!(!kind.parts().is_empty());
            assert!(!name.doc().is_empty());
        }
        assert_eq!(LossKind::option_keys(), ["hue", "focal", "poly1"]);
    }
}
