//! The focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection") on the class
//! logits: `FL = −(1 − p_t)^γ · log p_t`, averaged over the batch, where `p_t` is the softmax
//! probability of the true class. It down-weights images the model already classifies with
//! confidence, which helps on fine-grained sets with hard and imbalanced classes; `γ = 0` is the
//! plain one-hot cross-entropy.
use tch::{Kind, Tensor};

use super::heads::HeadOutputs;
use super::loss::{Loss, LossPart};
use crate::error::{Error, Result};
use crate::options::OptionDoc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FocalLoss {
    pub gamma: f64,
}

impl FocalLoss {
    /// The paper's recommended focusing parameter.
    pub const DEFAULT_GAMMA: f64 = 2.0;
    pub const PARTS: &'static [LossPart] = &[LossPart { key: "focal", label: "focal" }];
    pub const OPTIONS: &'static [OptionDoc] = &[OptionDoc::new("gamma", "float", "2.0", "the focusing parameter γ (0: the one-hot loss)")];

    pub fn validate(gamma: f64) -> Result<()> {
        if !(gamma.is_finite() && gamma >= 0.0) {
            return Err(Error::invalid_option("gamma", format!("must be a number >= 0, got {gamma}")));
        }
        Ok(())
    }
}

impl Loss for FocalLoss {
    fn parts(&self) -> &'static [LossPart] {
        Self::PARTS
    }

    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>> {
        let log_p = out.logits.f_log_softmax(-1, Kind::Float)?;
        let log_p_true = log_p.f_gather(1, &targets.unsqueeze(1), false)?.squeeze_dim(1);
        let weight = (log_p_true.exp().neg() + 1.0).clamp_min(0.0).pow_tensor_scalar(self.gamma);
        Ok(vec![-(weight * log_p_true).mean(Kind::Float)])
    }
}
