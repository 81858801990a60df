//! The activation-hue loss (METHOD.md §3, paper Eq. 4–5).
//!
//! Each of the `M` classes owns an angle `θ_c` on the unit circle; the network predicts a
//! 2-vector `θ'`, and the loss is a softmax cross-entropy over the negative, scaled distances
//! `dθ_i = scale · ‖θ' − (cos θ_i, sin θ_i)‖₂`. Every choice the paper leaves open is a field
//! of [`HueLossConfig`] whose default is the paper's literal reading.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

use super::heads::HeadOutputs;
use super::loss::{Loss, LossPart};
use super::onehot::OneHotLoss;
use crate::error::{Error, Result};
use crate::options::{OptionDoc, Options};

/// How the `M` equally spaced angles `2πk/M` are given to the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AngleAssignment {
    /// Class `c` gets angle `2πc/M`.
    Ordered,
    /// Class `c` gets angle `2π·π(c)/M` for a permutation `π` drawn from `seed` (the paper
    /// assigns angles "randomly").
    Random { seed: u64 },
}

/// The options of the hue loss. `Default` is the paper's literal reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HueLossConfig {
    /// Factor on the distances before the softmax; `None` means the paper's `1/(2M)`, which
    /// makes the hue logits nearly equal.
    pub scale: Option<f64>,
    /// Project `θ'` onto the unit circle before measuring distances (paper: no).
    pub project: bool,
    /// Weight of the hue term in `L = L_onehot + weight · L_hue` (paper: 1).
    pub weight: f64,
    pub assignment: AngleAssignment,
}

impl Default for HueLossConfig {
    fn default() -> Self {
        HueLossConfig { scale: None, project: false, weight: 1.0, assignment: AngleAssignment::Random { seed: 0 } }
    }
}

impl HueLossConfig {
    /// The distance scale in force for `num_classes` classes.
    pub fn effective_scale(&self, num_classes: usize) -> f64 {
        self.scale.unwrap_or(1.0 / (2.0 * num_classes as f64))
    }

    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("scale", "float", "(1 / (2M) for M classes)", "the distance scale of Eq. 5"),
        OptionDoc::new("project", "bool", "false", "scale θ' to unit length before the distances"),
        OptionDoc::new("weight", "float", "1.0", "the hue term's weight in the total loss"),
        OptionDoc::new("assignment", "string", "\"random\"", "how classes get their angles").one_of(|| vec!["random", "ordered"]),
        OptionDoc::new("seed", "int", "0", "seeds the random assignment"),
    ];

    /// From an options map (`null`: the defaults); keys in [`Self::OPTIONS`].
    pub fn from_options(options: Value) -> Result<Self> {
        let mut o = Options::from_value(options, "hue options", Self::OPTIONS)?;
        let defaults = HueLossConfig::default();
        let seed = o.count("seed")?;
        let assignment = match o.string("assignment")?.as_deref() {
            None | Some("random") => AngleAssignment::Random { seed: seed.unwrap_or(0) },
            Some("ordered") if seed.is_some() => {
                return Err(Error::invalid_option("seed", "only a random assignment takes a seed"));
            }
            Some("ordered") => AngleAssignment::Ordered,
            Some(other) => {
                return Err(Error::invalid_option("assignment", format!("expected \"random\" or \"ordered\", got \"{other}\"")));
            }
        };
        let config = HueLossConfig {
            scale: o.float("scale")?,
            project: o.bool("project")?.unwrap_or(defaults.project),
            weight: o.float("weight")?.unwrap_or(defaults.weight),
            assignment,
        };
        config.validate()?;
        Ok(config)
    }

    /// What a report records beside these options for `num_classes` classes.
    pub fn derived(&self, num_classes: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("hue_scale".into(), self.effective_scale(num_classes).into());
        m
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(scale) = self.scale {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(Error::invalid_option("scale", format!("must be a positive number, got {scale}")));
            }
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::invalid_option("weight", format!("must be a number >= 0, got {}", self.weight)));
        }
        Ok(())
    }
}

/// The angle label of every class: the unit-circle points the hue head is trained towards.
#[derive(Debug, Clone, PartialEq)]
pub struct HueLabels {
    angles: Vec<f64>,
}

impl HueLabels {
    /// More classes than any labelled image set has (ImageNet-21k: 21 841): a larger count is a
    /// typo or a corrupt file, and would size the angle table by it.
    pub const MAX_CLASSES: usize = 100_000;

    pub fn new(num_classes: usize, assignment: AngleAssignment) -> Result<Self> {
        if num_classes < 2 {
            return Err(Error::invalid_option("num_classes", format!("the hue loss needs at least 2 classes, got {num_classes}")));
        }
        if num_classes > Self::MAX_CLASSES {
            return Err(Error::invalid_option("num_classes", format!("{num_classes} classes; the hue loss takes at most {}", Self::MAX_CLASSES)));
        }
        let mut slots: Vec<usize> = (0..num_classes).collect();
        if let AngleAssignment::Random { seed } = assignment {
            slots.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        let step = std::f64::consts::TAU / num_classes as f64;
        Ok(HueLabels { angles: slots.into_iter().map(|slot| slot as f64 * step).collect() })
    }

    pub fn num_classes(&self) -> usize {
        self.angles.len()
    }

    /// The angle `θ_c` in radians, in `[0, 2π)`.
    pub fn angle(&self, class: usize) -> f64 {
        self.angles[class]
    }

    /// `(cos θ_c, sin θ_c)` for every class, in class order.
    pub fn points(&self) -> Vec<[f64; 2]> {
        self.angles.iter().map(|a| [a.cos(), a.sin()]).collect()
    }

    /// The points as a `[M, 2]` tensor.
    pub fn to_tensor(&self, kind: Kind, device: Device) -> Tensor {
        let flat: Vec<f64> = self.points().into_iter().flatten().collect();
        Tensor::from_slice(&flat).view([self.num_classes() as i64, 2]).to_kind(kind).to_device(device)
    }

    /// For each row of `pred_xy` (`[B, 2]`), the class whose angle is nearest to the direction
    /// of `θ'`. The nearest point on the circle and the nearest angle are the same class, since
    /// `argmin ‖θ' − p_c‖ = argmax θ'·p_c` for unit `p_c`.
    pub fn nearest_class(&self, pred_xy: &Tensor) -> Result<Tensor> {
        check_pred_shape("nearest_class", pred_xy)?;
        let points = self.to_tensor(pred_xy.kind(), pred_xy.device());
        Ok(pred_xy.f_matmul(&points.tr())?.argmax(-1, false))
    }
}

fn check_pred_shape(op: &'static str, pred_xy: &Tensor) -> Result<()> {
    let size = pred_xy.size();
    if size.len() != 2 || size[1] != 2 {
        return Err(Error::Shape { op, arg: "pred_xy", expected: "[batch, 2]".into(), got: size });
    }
    Ok(())
}

/// The hue term of the total loss, `weight · L_hue`, averaged over the batch; with the default
/// weight 1 it is Eq. 5 itself:
/// `L_hue = −log( exp(−dθ_c) / Σ_i exp(−dθ_i) )`, `dθ_i = scale · ‖θ' − (cos θ_i, sin θ_i)‖₂`.
///
/// `pred_xy` is `[B, 2]` (any float kind), `targets` is `[B]` of class indices (int64).
pub fn hue_loss(pred_xy: &Tensor, targets: &Tensor, labels: &HueLabels, config: &HueLossConfig) -> Result<Tensor> {
    config.validate()?;
    check_pred_shape("hue_loss", pred_xy)?;
    let batch = pred_xy.size()[0];
    if targets.size() != [batch] {
        return Err(Error::Shape { op: "hue_loss", arg: "targets", expected: format!("[{batch}]"), got: targets.size() });
    }
    if targets.kind() != Kind::Int64 {
        return Err(Error::msg(format!("hue_loss: argument 'targets' must hold int64 class indices, got {:?}", targets.kind())));
    }
    let m = labels.num_classes() as i64;
    if batch > 0 {
        let (lo, hi) = (targets.min().int64_value(&[]), targets.max().int64_value(&[]));
        if lo < 0 || hi >= m {
            return Err(Error::msg(format!("hue_loss: a target class is out of range [0, {m}): found {}", if lo < 0 { lo } else { hi })));
        }
    }
    hue_loss_of_checked(pred_xy, targets, labels, config)
}

/// [`hue_loss`] for inputs already known to be well formed (a training batch of a data set
/// whose labels were checked when it was made): no host synchronisation.
fn hue_loss_of_checked(pred_xy: &Tensor, targets: &Tensor, labels: &HueLabels, config: &HueLossConfig) -> Result<Tensor> {
    let pred = if config.project {
        // The clamp keeps θ' = 0 finite; its direction is then arbitrary anyway.
        pred_xy / pred_xy.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12)
    } else {
        pred_xy.shallow_clone()
    };
    let points = labels.to_tensor(pred.kind(), pred.device());
    // [B, 1, 2] − [1, M, 2] → distances [B, M]. The 2-norm's gradient at a zero distance is
    // the subgradient 0 in libtorch, so a prediction exactly on a label stays finite.
    let distances = (pred.unsqueeze(1) - points.unsqueeze(0)).norm_scalaropt_dim(2, [-1], false);
    let logits = distances * (-config.effective_scale(labels.num_classes()));
    let loss = logits.f_log_softmax(-1, logits.kind())?.f_nll_loss::<Tensor>(targets, None, tch::Reduction::Mean, -100)?;
    Ok(loss * config.weight)
}

/// The paper's objective: the one-hot loss plus the weighted hue loss, `L = L_onehot + w·L_hue`.
#[derive(Debug)]
pub struct OneHotHueLoss {
    onehot: OneHotLoss,
    labels: HueLabels,
    config: HueLossConfig,
}

impl OneHotHueLoss {
    pub const PARTS: &'static [LossPart] = &[OneHotLoss::PART, LossPart { key: "hue", label: "hue" }];

    pub fn new(num_classes: usize, label_smoothing: f64, config: HueLossConfig) -> Result<Self> {
        config.validate()?;
        Ok(OneHotHueLoss { onehot: OneHotLoss { label_smoothing }, labels: HueLabels::new(num_classes, config.assignment)?, config })
    }
}

impl Loss for OneHotHueLoss {
    fn parts(&self) -> &'static [LossPart] {
        Self::PARTS
    }

    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>> {
        let onehot = self.onehot.cross_entropy(&out.logits, targets)?;
        check_pred_shape("hue_loss", &out.hue_xy)?;
        Ok(vec![onehot, hue_loss_of_checked(&out.hue_xy, targets, &self.labels, &self.config)?])
    }

    fn derived(&self) -> Map<String, Value> {
        self.config.derived(self.labels.num_classes())
    }

    fn head_angles(&self) -> Option<AngleAssignment> {
        Some(self.config.assignment)
    }
}
