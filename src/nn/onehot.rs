//! The one-hot loss: softmax cross-entropy on the class logits, with optional label smoothing.
use tch::Tensor;

use super::heads::HeadOutputs;
use super::loss::{Loss, LossPart};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneHotLoss {
    /// PyTorch's `label_smoothing` (0: none).
    pub label_smoothing: f64,
}

impl OneHotLoss {
    pub const PART: LossPart = LossPart { key: "onehot", label: "one-hot" };
    pub const PARTS: &'static [LossPart] = &[Self::PART];

    /// The batch mean cross-entropy of `logits [B, M]` against class indices `targets [B]`.
    pub fn cross_entropy(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        Ok(logits.f_cross_entropy_loss::<Tensor>(targets, None, tch::Reduction::Mean, -100, self.label_smoothing)?)
    }
}

impl Loss for OneHotLoss {
    fn parts(&self) -> &'static [LossPart] {
        Self::PARTS
    }

    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>> {
        Ok(vec![self.cross_entropy(&out.logits, targets)?])
    }
}
