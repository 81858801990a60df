//! The ImageNet-pretrained networks huelab loads, by name: EfficientNet-Lite0–4 (the bundled
//! Lite0 weights, legacy `.pth`) and torchvision's classifiers (their published `.pth` or
//! `.safetensors` files), each with its own preprocessing.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::efficientnet_lite::LiteVariant;
use super::pretrained::{self, ClassScore, PretrainedNet};
use super::torchvision::{self, TorchvisionArch, TorchvisionNet};
use crate::error::{Error, Result};
use crate::registry::Registry;

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ImageNetModel {
    Lite(PretrainedNet),
    Torchvision(TorchvisionNet),
}

impl ImageNetModel {
    /// Every name `load` takes.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&str> = LiteVariant::NAMES.to_vec();
        names.extend(<TorchvisionArch as Registry>::names());
        names
    }

    /// The network `name` with `weights` (required for torchvision's; Lite0's are bundled).
    pub fn load(name: &str, weights: Option<&Path>, device: Device) -> Result<Self> {
        if let Ok(arch) = <TorchvisionArch as Registry>::parse(name) {
            let weights = weights.ok_or_else(|| {
                Error::invalid_option("weights", format!("{name} needs its torchvision weights file (e.g. {name}-….pth from download.pytorch.org, or .safetensors)"))
            })?;
            return Ok(ImageNetModel::Torchvision(TorchvisionNet::load(arch, weights, device)?));
        }
        match LiteVariant::from_name(name) {
            Ok(variant) => Ok(ImageNetModel::Lite(PretrainedNet::load(variant, weights, device)?)),
            Err(_) => Err(Error::invalid_option("model", format!("unknown pretrained network '{name}'; valid: {}", Self::names().join(", ")))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ImageNetModel::Lite(n) => n.net.variant().name(),
            ImageNetModel::Torchvision(n) => n.arch().name(),
        }
    }

    /// The input side the weights were trained at.
    pub fn input_size(&self) -> i64 {
        match self {
            ImageNetModel::Lite(n) => n.input_size(),
            ImageNetModel::Torchvision(_) => torchvision::INPUT_SIZE,
        }
    }

    pub fn classes(&self) -> i64 {
        match self {
            ImageNetModel::Lite(n) => n.classes(),
            ImageNetModel::Torchvision(n) => n.classes(),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            ImageNetModel::Lite(n) => n.device(),
            ImageNetModel::Torchvision(n) => n.device(),
        }
    }

    /// An error naming the valid layers unless `layer` exists.
    pub fn check_layer(&self, layer: &str) -> Result<()> {
        match self {
            ImageNetModel::Lite(n) => n.net.layer_index(layer).map(drop),
            ImageNetModel::Torchvision(n) if n.layer_names().iter().any(|l| l == layer) => Ok(()),
            ImageNetModel::Torchvision(n) => Err(Error::invalid_option("layer", format!("{} has no layer '{layer}'; valid layers: {}", n.arch().name(), n.layer_names().join(", ")))),
        }
    }

    /// Images `[N, C, H, W]` in `[0, 1]` as the network takes them, at `size`.
    pub fn preprocess_batch(&self, images: &Tensor, size: i64) -> Result<Tensor> {
        match self {
            ImageNetModel::Lite(_) => pretrained::preprocess_batch(images, size),
            ImageNetModel::Torchvision(_) => torchvision::preprocess_batch(images, size),
        }
    }

    /// The activation map after `layer` of preprocessed images.
    pub fn layer_t(&self, xs: &Tensor, layer: &str) -> Result<Tensor> {
        let xs = xs.to_device(self.device());
        tch::no_grad(|| match self {
            ImageNetModel::Lite(n) => super::forward_pass(n.net.variant().name(), layer, || n.net.layer_t(&xs, layer, false))?,
            ImageNetModel::Torchvision(n) => n.layer_t(&xs, layer),
        })
    }

    /// An image file preprocessed for the network's full input size, `[3, S, S]`.
    pub fn load_image(&self, path: &Path) -> Result<Tensor> {
        let image = crate::data::decode(path)?;
        Ok(match self {
            ImageNetModel::Lite(n) => pretrained::preprocess_image(&image, n.input_size()),
            ImageNetModel::Torchvision(_) => torchvision::preprocess_image(&image),
        })
    }

    /// Top-`k` classes of each preprocessed image, named by `names` when the network has one
    /// class per name (else "class i").
    pub fn top_k(&self, batch: &Tensor, k: i64, names: &[String]) -> Result<Vec<Vec<ClassScore>>> {
        if k < 1 {
            return Err(Error::invalid_option("top", format!("must be at least 1, got {k}")));
        }
        let names: &[String] = if names.len() as i64 == self.classes() { names } else { &[] };
        match self {
            ImageNetModel::Lite(n) => n.top_k(batch, k, names),
            ImageNetModel::Torchvision(n) => {
                let probabilities = n.predict(batch)?.softmax(-1, Kind::Float);
                pretrained::top_k_of(&probabilities, k, names)
            }
        }
    }
}
