//! Backbones with a bottleneck hook, and [`HueNet`]: a backbone plus the class and hue heads.
//! Every model exposes its bottleneck activation map (`features_t`), which the training loop
//! pools for the heads and the pixel-kNN tools index directly.
mod arch;
mod densenet;
mod efficientnet;
mod efficientnet_lite;
mod imagenet;
mod memory_format;
mod mobilenet;
mod pretrained;
mod pth;
mod resnet;
mod small_cnn;
pub mod torchvision;
mod vgg;
mod weights;

pub use arch::{Arch, ArchInfo, CpuKind, Stems};
pub use densenet::DenseNet;
pub use efficientnet::EfficientNet;
pub use efficientnet_lite::{EfficientNetLite, LiteVariant};
pub use imagenet::ImageNetModel;
pub use memory_format::{channels_last, is_channels_last, to_channels_last};
pub use mobilenet::MobileNetV2;
pub use torchvision::{TorchvisionArch, TorchvisionNet};
pub use pretrained::{load_image, load_into, preprocess_batch, preprocess_image, read_imagenet_classes, ClassScore, PretrainedNet};
pub use pth::{load_state_dict, verify_zip};
pub use resnet::ResNet;
pub use small_cnn::SmallCnn;
pub use vgg::Vgg;
pub use weights::{check_finite, check_state, classifier_classes, variable_bytes};

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::error::{Error, Result};
use crate::nn::{HueHeadConfig, Heads};

/// The two outputs of a forward pass (class logits and `θ'`).
pub use crate::nn::HeadOutputs as HueNetOutput;

thread_local! {
    static STOCHASTIC_DEPTH: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with stochastic depth off on this thread: forward passes in training mode (batch
/// statistics) through the network evaluation uses, as batch-norm recalibration needs.
pub fn without_stochastic_depth<T>(f: impl FnOnce() -> T) -> T {
    let before = STOCHASTIC_DEPTH.with(|s| s.replace(false));
    let result = f();
    STOCHASTIC_DEPTH.with(|s| s.set(before));
    result
}

pub(crate) fn stochastic_depth_enabled() -> bool {
    STOCHASTIC_DEPTH.with(|s| s.get())
}

/// Runs a forward pass of `model` up to `layer`. tch's layers (`apply`, `forward`) have no
/// fallible twins: a libtorch error inside them (a shape a new backbone cannot take, a device
/// out of memory) arrives as a panic carrying the error. Here it becomes [`Error::Forward`],
/// naming the model and layer, instead of the firewall's request for a bug report. Every
/// forward pass of a network goes through this (`HueNet`, torchvision's, the Lite networks).
pub fn forward_pass<T>(model: &str, layer: &str, pass: impl FnOnce() -> T) -> Result<T> {
    crate::firewall::catch_any("a forward pass", pass).map_err(|e| match e {
        Error::Internal { message, .. } => {
            // tch unwraps libtorch's error inside the layer: keep what libtorch said.
            let message = message.trim_start_matches("called `Result::unwrap()` on an `Err` value: ");
            Error::Forward { model: model.to_owned(), layer: layer.to_owned(), message: crate::error::first_line(message) }
        }
        other => other,
    })
}

/// A feature extractor ending at the bottleneck. Its passes are plain tch calls; callers reach
/// them through [`forward_pass`], which makes libtorch's failures typed errors.
pub trait Backbone: std::fmt::Debug {
    /// The bottleneck activation map `[B, N, H, W]` (the last spatial layer, after its ReLU).
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor;
    /// `N`, the channel count of the bottleneck.
    fn out_channels(&self) -> i64;
    /// Intermediate layers [`Backbone::layer_t`] can stop after, in order.
    fn layer_names(&self) -> Vec<String> {
        vec![]
    }
    /// The activation map after the named layer; `None` for a name not in `layer_names`.
    fn layer_t(&self, _xs: &Tensor, _name: &str, _train: bool) -> Option<Tensor> {
        None
    }
}

/// The first layers of an ImageNet network shrink the input 4× (ResNet: 7×7 stride-2 conv and
/// a max-pool) or 2× (EfficientNet: stride-2 conv), which leaves almost nothing of a 28×28
/// image. The small stem keeps full resolution there (ResNet: 3×3 stride-1 conv, no pool, as is
/// usual for CIFAR; EfficientNet: stride 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// `small` for inputs under 64 pixels on a side, else `imagenet`.
    #[default]
    Auto,
    Imagenet,
    Small,
}

impl Stem {
    /// Below this many pixels on the shorter side, `Auto` means `Small`.
    pub const SMALL_BELOW: i64 = 64;

    pub fn resolve(self, arch: Arch, (h, w): (i64, i64)) -> Result<Stem> {
        match (arch.info().stems, self) {
            // The small CNN has one stem, a stride-1 3×3 convolution.
            (Stems::SmallOnly, Stem::Auto | Stem::Small) => Ok(Stem::Small),
            (Stems::SmallOnly, Stem::Imagenet) => Err(Error::invalid_option("stem", format!("{} has no imagenet stem", arch.name()))),
            (_, Stem::Auto) if h.min(w) < Self::SMALL_BELOW => Ok(Stem::Small),
            (_, Stem::Auto) => Ok(Stem::Imagenet),
            (_, resolved) => Ok(resolved),
        }
    }
}

impl std::str::FromStr for Stem {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Stem::Auto),
            "imagenet" => Ok(Stem::Imagenet),
            "small" => Ok(Stem::Small),
            _ => Err(Error::invalid_option("stem", format!("expected \"auto\", \"imagenet\" or \"small\", got \"{s}\""))),
        }
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
    /// `Auto` until the model is built; [`HueNet::spec`] holds the resolved stem.
    pub stem: Stem,
    pub hue_head: HueHeadConfig,
}

#[derive(Debug)]
pub struct HueNet {
    spec: ModelSpec,
    backbone: Box<dyn Backbone>,
    heads: Heads,
}

impl HueNet {
    pub const MAX_IN_CHANNELS: i64 = 1024;
    pub const MAX_CLASSES: i64 = 100_000;
    pub const MAX_INPUT_SIDE: i64 = 8192;
    pub const MAX_HUE_HIDDEN: i64 = 1 << 16;

    /// Builds the model with its variables under `p / "backbone"` and `p / "heads"`.
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<Self> {
        let (h, w) = spec.input_size;
        let stem = spec.stem.resolve(spec.arch, spec.input_size)?;
        let min = spec.arch.min_input_size(stem);
        if h < min || w < min {
            let hint = if stem == Stem::Small { String::new() } else { " (the small stem accepts smaller inputs)".into() };
            return Err(Error::invalid_option(
                "model",
                format!("{} with the {stem:?} stem needs inputs of at least {min}×{min}, the data is {h}×{w}{hint}", spec.arch.name()),
            ));
        }
        // Upper bounds too: a spec can come from a user's `model.json`, and these numbers size
        // weight tensors before anything else looks at them.
        if !(1..=Self::MAX_IN_CHANNELS).contains(&spec.in_channels) || !(2..=Self::MAX_CLASSES).contains(&spec.num_classes) {
            return Err(Error::msg(format!(
                "a model needs 1 to {} input channels and 2 to {} classes, got {} and {}",
                Self::MAX_IN_CHANNELS,
                Self::MAX_CLASSES,
                spec.in_channels,
                spec.num_classes
            )));
        }
        if h > Self::MAX_INPUT_SIDE || w > Self::MAX_INPUT_SIDE {
            return Err(Error::msg(format!("inputs of {h}×{w}: at most {0}×{0}", Self::MAX_INPUT_SIDE)));
        }
        if let Some(hidden) = spec.hue_head.hidden {
            if !(1..=Self::MAX_HUE_HIDDEN).contains(&hidden) {
                return Err(Error::invalid_option("hue_hidden", format!("{hidden} units; expected 1 to {}", Self::MAX_HUE_HIDDEN)));
            }
        }
        let backbone = spec.arch.build(&(p / "backbone"), spec.in_channels, stem, spec.input_size);
        let heads = Heads::new(&(p / "heads"), backbone.out_channels(), spec.num_classes, spec.hue_head);
        Ok(HueNet { spec: ModelSpec { stem, ..spec.clone() }, backbone, heads })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The bottleneck activation map `[B, N, H', W']` for a batch `[B, C, H, W]`.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(xs)?;
        forward_pass(self.spec.arch.name(), "bottleneck", || self.backbone.features_t(xs, train))
    }

    /// `bottleneck` and the backbone's intermediate layers.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["bottleneck".to_owned()];
        names.extend(self.backbone.layer_names());
        names
    }

    /// The activation map after the named layer (see [`Self::layer_names`]).
    pub fn layer_t(&self, xs: &Tensor, name: &str, train: bool) -> Result<Tensor> {
        self.check_input(xs)?;
        if name == "bottleneck" {
            return self.features_t(xs, train);
        }
        forward_pass(self.spec.arch.name(), name, || self.backbone.layer_t(xs, name, train))?.ok_or_else(|| {
            Error::invalid_option("layer", format!("{} has no layer '{name}'; valid layers: {}", self.spec.arch.name(), self.layer_names().join(", ")))
        })
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<HueNetOutput> {
        let features = self.features_t(xs, train)?;
        let (logits, hue_xy) = forward_pass(self.spec.arch.name(), "heads", || self.heads.forward(&features.adaptive_avg_pool2d([1, 1]).flatten(1, -1)))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn a_libtorch_failure_in_a_forward_pass_is_a_typed_error_naming_the_model_and_layer() {
        let _generator = crate::rng::lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let backbone = Arch::ResNet18.build(&vs.root(), 3, Stem::Small, (32, 32));
        // One channel where the first convolution wants three: libtorch refuses.
        let x = Tensor::zeros([1, 1, 32, 32], (Kind::Float, Device::Cpu));
        let error = forward_pass("resnet18", "bottleneck", || backbone.features_t(&x, false)).unwrap_err();
        assert!(matches!(error, Error::Forward { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("resnet18") && text.contains("'bottleneck'") && text.contains("channels"), "{text}");
        assert!(!text.contains("bug in huelab") && !text.contains("unwrap"), "{text}");
    }
}
