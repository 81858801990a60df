//! The two heads on the pooled bottleneck: class logits `x` and the hue 2-vector `θ'`.
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

/// Shape of the hue head: "fully-connected layers immediately following the network
/// bottleneck" (paper §4), fed by the globally average-pooled bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HueHeadConfig {
    /// `None`: one linear layer `N → 2` (default). `Some(h)`: `N → h → ReLU → 2`.
    pub hidden: Option<i64>,
}

/// The two outputs of a forward pass.
#[derive(Debug)]
pub struct HeadOutputs {
    /// Class logits `[B, M]`.
    pub logits: Tensor,
    /// The hue prediction `θ'`, `[B, 2]`.
    pub hue_xy: Tensor,
}

impl HeadOutputs {
    /// Both outputs in float32 (no copy when they are already): a bf16 forward pass hands its
    /// outputs to a loss computed in float32.
    pub fn to_float32(self) -> Self {
        let float = |t: Tensor| if t.kind() == tch::Kind::Float { t } else { t.to_kind(tch::Kind::Float) };
        HeadOutputs { logits: float(self.logits), hue_xy: float(self.hue_xy) }
    }
}

#[derive(Debug)]
pub struct Heads {
    classifier: nn::Linear,
    hue_hidden: Option<nn::Linear>,
    hue_out: nn::Linear,
}

impl Heads {
    /// Variables live under `p / "classifier"`, `p / "hue_hidden"` and `p / "hue"`.
    pub fn new(p: &nn::Path, channels: i64, num_classes: i64, config: HueHeadConfig) -> Self {
        let classifier = nn::linear(p / "classifier", channels, num_classes, Default::default());
        let (hue_hidden, hue_in) = match config.hidden {
            Some(h) => (Some(nn::linear(p / "hue_hidden", channels, h, Default::default())), h),
            None => (None, channels),
        };
        let hue_out = nn::linear(p / "hue", hue_in, 2, Default::default());
        Heads { classifier, hue_hidden, hue_out }
    }

    /// `pooled` is `[B, N]`; returns `(logits [B, M], hue_xy [B, 2])`.
    pub fn forward(&self, pooled: &Tensor) -> (Tensor, Tensor) {
        let logits = self.classifier.forward(pooled);
        let hue_in = match &self.hue_hidden {
            Some(hidden) => hidden.forward(pooled).relu(),
            None => pooled.shallow_clone(),
        };
        (logits, self.hue_out.forward(&hue_in))
    }
}
