//! Backbones with a bottleneck hook, and [`HueNet`]: a backbone plus the class and hue heads.
//! Every model exposes its bottleneck activation map (`features_t`), which the training loop
//! pools for the heads and the pixel-kNN tools index directly.
mod small_cnn;

pub use small_cnn::SmallCnn;

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::error::{Error, Result};
use crate::nn::{HueHeadConfig, Heads};

/// A feature extractor ending at the bottleneck.
pub trait Backbone: std::fmt::Debug {
    /// The bottleneck activation map `[B, N, H, W]` (the last spatial layer, after its ReLU).
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor;
    /// `N`, the channel count of the bottleneck.
    fn out_channels(&self) -> i64;
}

/// The architectures huelab can build by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    SmallCnn,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[Arch::SmallCnn];

    pub fn name(self) -> &'static str {
        match self {
            Arch::SmallCnn => "small_cnn",
        }
    }

    /// Smallest input height/width the architecture accepts.
    pub fn min_input_size(self) -> i64 {
        match self {
            Arch::SmallCnn => SmallCnn::MIN_INPUT_SIZE,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        Arch::ALL.iter().copied().find(|a| a.name() == name).ok_or_else(|| {
            let valid: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
            Error::invalid_option("model", format!("unknown model '{name}'; valid models: {}", valid.join(", ")))
        })
    }
}

/// Everything needed to build a [`HueNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    pub in_channels: i64,
    pub num_classes: i64,
    /// Input `(height, width)`.
    pub input_size: (i64, i64),
    pub hue_head: HueHeadConfig,
}

/// The two outputs of a forward pass.
#[derive(Debug)]
pub struct HueNetOutput {
    /// Class logits `[B, M]`.
    pub logits: Tensor,
    /// The hue prediction `θ'`, `[B, 2]`.
    pub hue_xy: Tensor,
}

#[derive(Debug)]
pub struct HueNet {
    spec: ModelSpec,
    backbone: Box<dyn Backbone>,
    heads: Heads,
}

impl HueNet {
    /// Builds the model with its variables under `p / "backbone"` and `p / "heads"`.
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<Self> {
        let (h, w) = spec.input_size;
        let min = spec.arch.min_input_size();
        if h < min || w < min {
            return Err(Error::invalid_option(
                "model",
                format!("{} needs inputs of at least {min}×{min}, the data is {h}×{w}", spec.arch.name()),
            ));
        }
        if spec.in_channels < 1 || spec.num_classes < 2 {
            return Err(Error::msg(format!(
                "a model needs at least 1 input channel and 2 classes, got {} and {}",
                spec.in_channels, spec.num_classes
            )));
        }
        let backbone: Box<dyn Backbone> = match spec.arch {
            Arch::SmallCnn => Box::new(SmallCnn::new(&(p / "backbone"), spec.in_channels, spec.input_size)),
        };
        let heads = Heads::new(&(p / "heads"), backbone.out_channels(), spec.num_classes, spec.hue_head);
        Ok(HueNet { spec: spec.clone(), backbone, heads })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The bottleneck activation map `[B, N, H', W']` for a batch `[B, C, H, W]`.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(xs)?;
        Ok(self.backbone.features_t(xs, train))
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<HueNetOutput> {
        let features = self.features_t(xs, train)?;
        let pooled = features.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let (logits, hue_xy) = self.heads.forward(&pooled);
        Ok(HueNetOutput { logits, hue_xy })
    }

    fn check_input(&self, xs: &Tensor) -> Result<()> {
        let size = xs.size();
        let (h, w) = self.spec.input_size;
        let expected = [self.spec.in_channels, h, w];
        if size.len() != 4 || size[1..] != expected {
            return Err(Error::Shape {
                op: "HueNet::forward_t",
                arg: "xs",
                expected: format!("[batch, {}, {h}, {w}]", self.spec.in_channels),
                got: size,
            });
        }
        Ok(())
    }
}
