//! torchvision's ImageNet classifiers with their published weights (`resnet18-f37072fd.pth`,
//! `densenet201-c1103571.pth`, …: `torch.save` state dicts in the zip format, or
//! `.safetensors`): huelab's backbone with the ImageNet stem and torchvision's classifier, the
//! file's names mapped onto huelab's, and torchvision's preprocessing (`Resize(256)`,
//! `CenterCrop(224)`, ImageNet mean and sd).
use std::path::{Path, PathBuf};

use image::DynamicImage;
use tch::{nn, Device, Kind, Tensor};

use super::efficientnet::torchvision_b0_name;
use super::pretrained::{load_into, rgb_at_size};
use super::pth::load_state_dict;
use super::{Backbone, DenseNet, EfficientNet, ResNet, Stem, Vgg};
use crate::error::{Error, Result};

/// ImageNet's per-channel mean and sd (RGB), which torchvision's weights expect.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_SD: [f64; 3] = [0.229, 0.224, 0.225];
/// The input side of torchvision's ImageNet evaluation.
pub const INPUT_SIZE: i64 = 224;

/// The architectures whose torchvision weights huelab loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum TorchvisionArch {
    ResNet18,
    ResNet34,
    DenseNet121,
    DenseNet201,
    Vgg16,
    Vgg16Bn,
    EfficientNetB0,
}

impl crate::registry::Registry for TorchvisionArch {
    const OPTION: &'static str = "model";

    fn name(self) -> &'static str {
        TorchvisionArch::name(self)
    }
}

crate::by_name!(TorchvisionArch);

impl TorchvisionArch {
    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet18 => "resnet18",
            Self::ResNet34 => "resnet34",
            Self::DenseNet121 => "densenet121",
            Self::DenseNet201 => "densenet201",
            Self::Vgg16 => "vgg16",
            Self::Vgg16Bn => "vgg16_bn",
            Self::EfficientNetB0 => "efficientnet_b0",
        }
    }
}

#[derive(Debug)]
enum Head {
    /// Global average pooling, then one linear layer.
    Linear(nn::Linear),
    /// VGG: adaptive average pooling to 7×7, flatten, linear-ReLU-linear-ReLU-linear.
    Vgg([nn::Linear; 3]),
}

/// A torchvision ImageNet classifier with its weights loaded.
#[derive(Debug)]
pub struct TorchvisionNet {
    arch: TorchvisionArch,
    backbone: Box<dyn Backbone>,
    head: Head,
    classes: i64,
    vs: nn::VarStore,
    weights: PathBuf,
}

/// A torchvision variable name as huelab names it.
fn huelab_name(arch: TorchvisionArch, name: &str) -> String {
    match arch {
        TorchvisionArch::EfficientNetB0 => torchvision_b0_name(name).unwrap_or_else(|| name.to_owned()),
        // The published DenseNet weights predate torchvision's `norm1` names: `norm.1`.
        TorchvisionArch::DenseNet121 | TorchvisionArch::DenseNet201 => {
            for part in ["norm", "relu", "conv"] {
                for n in ["1", "2"] {
                    let old = format!(".{part}.{n}.");
                    if name.contains("denselayer") && name.contains(&old) {
                        return name.replacen(&old, &format!(".{part}{n}."), 1);
                    }
                }
            }
            name.to_owned()
        }
        _ => name.to_owned(),
    }
}

impl TorchvisionNet {
    /// Builds `arch` and loads the state dict at `weights` (zip or legacy `torch.save`, or
    /// safetensors) onto `device`; names or shapes that do not match are an error naming the
    /// tensor. The class count comes from the file's classifier.
    pub fn load(arch: TorchvisionArch, weights: &Path, device: Device) -> Result<Self> {
        let state: Vec<(String, Tensor)> = load_state_dict(weights)?.into_iter().map(|(n, t)| (huelab_name(arch, &n), t)).collect();
        let head_key = match arch {
            TorchvisionArch::ResNet18 | TorchvisionArch::ResNet34 => "fc.weight",
            TorchvisionArch::DenseNet121 | TorchvisionArch::DenseNet201 => "classifier.weight",
            TorchvisionArch::Vgg16 | TorchvisionArch::Vgg16Bn => "classifier.6.weight",
            TorchvisionArch::EfficientNetB0 => "classifier.1.weight",
        };
        let classes = state
            .iter()
            .find(|(n, _)| n == head_key)
            .ok_or_else(|| Error::Data { path: weights.to_owned(), message: format!("no '{head_key}': not a torchvision {} state dict", arch.name()) })
            .and_then(|(name, t)| super::weights::classifier_classes(name, t).map_err(|message| Error::Data { path: weights.to_owned(), message }))?;
        if !(1..=100_000).contains(&classes) {
            return Err(Error::Data { path: weights.to_owned(), message: format!("'{head_key}' has {classes} classes") });
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        // Initial weights are drawn (then replaced): under the generator lock, beside training runs.
        let _generator = crate::rng::lock();
        let (backbone, head): (Box<dyn Backbone>, Head) = match arch {
            TorchvisionArch::ResNet18 => (Box::new(ResNet::resnet18(&root, 3, Stem::Imagenet)), Head::Linear(nn::linear(&root / "fc", 512, classes, Default::default()))),
            TorchvisionArch::ResNet34 => (Box::new(ResNet::resnet34(&root, 3, Stem::Imagenet)), Head::Linear(nn::linear(&root / "fc", 512, classes, Default::default()))),
            TorchvisionArch::DenseNet121 | TorchvisionArch::DenseNet201 => {
                let net = if arch == TorchvisionArch::DenseNet121 { DenseNet::densenet121(&root, 3, Stem::Imagenet) } else { DenseNet::densenet201(&root, 3, Stem::Imagenet) };
                let c = net.out_channels();
                (Box::new(net), Head::Linear(nn::linear(&root / "classifier", c, classes, Default::default())))
            }
            TorchvisionArch::Vgg16 | TorchvisionArch::Vgg16Bn => {
                let net = if arch == TorchvisionArch::Vgg16 { Vgg::vgg16_plain(&root, 3, Stem::Imagenet) } else { Vgg::vgg16(&root, 3, Stem::Imagenet) };
                let c = &root / "classifier";
                let layers = [nn::linear(&c / "0", 512 * 7 * 7, 4096, Default::default()), nn::linear(&c / "3", 4096, 4096, Default::default()), nn::linear(&c / "6", 4096, classes, Default::default())];
                (Box::new(net), Head::Vgg(layers))
            }
            TorchvisionArch::EfficientNetB0 => {
                let net = EfficientNet::b0(&root, 3, Stem::Imagenet);
                (Box::new(net), Head::Linear(nn::linear(&root / "classifier" / "1", 1280, classes, Default::default())))
            }
        };
        load_into(&mut vs, state, weights)?;
        vs.set_device(device);
        vs.freeze();
        Ok(TorchvisionNet { arch, backbone, head, classes, vs, weights: weights.to_owned() })
    }

    pub fn arch(&self) -> TorchvisionArch {
        self.arch
    }

    pub fn classes(&self) -> i64 {
        self.classes
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn weights(&self) -> &Path {
        &self.weights
    }

    /// `bottleneck` and the backbone's named layers.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["bottleneck".to_owned()];
        names.extend(self.backbone.layer_names());
        names
    }

    /// The activation map after `layer` for preprocessed images `[B, 3, H, W]`.
    pub fn layer_t(&self, xs: &Tensor, layer: &str) -> Result<Tensor> {
        check_input(xs)?;
        let name = self.arch.name();
        if layer == "bottleneck" {
            return super::forward_pass(name, layer, || self.backbone.features_t(xs, false));
        }
        super::forward_pass(name, layer, || self.backbone.layer_t(xs, layer, false))?.ok_or_else(|| {
            Error::invalid_option("layer", format!("{} has no layer '{layer}'; valid layers: {}", self.arch.name(), self.layer_names().join(", ")))
        })
    }

    /// Class logits `[B, classes]` of preprocessed images.
    pub fn logits_t(&self, xs: &Tensor) -> Result<Tensor> {
        check_input(xs)?;
        super::forward_pass(self.arch.name(), "classifier", || {
            let features = self.backbone.features_t(xs, false);
            match &self.head {
                Head::Linear(fc) => features.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(fc),
                Head::Vgg([a, b, c]) => {
                    let x = features.adaptive_avg_pool2d([7, 7]).flatten(1, -1);
                    x.apply(a).relu().apply(b).relu().apply(c)
                }
            }
        })
    }

    /// Logits of images already on the net's device, without gradients.
    pub fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| self.logits_t(&xs.to_device(self.device())))
    }
}

fn check_input(xs: &Tensor) -> Result<()> {
    let size = xs.size();
    if size.len() != 4 || size[1] != 3 || size[2] < 32 || size[3] < 32 {
        return Err(Error::Shape { op: "torchvision network", arg: "images", expected: "[batch, 3, ≥32, ≥32]".into(), got: size });
    }
    Ok(())
}

/// An image as torchvision's ImageNet evaluation takes it: `Resize(256)`, `CenterCrop(224)`,
/// RGB in `[0, 1]`, standardised with ImageNet's mean and sd; `[3, 224, 224]`.
pub fn preprocess_image(image: &DynamicImage) -> Tensor {
    let side = INPUT_SIZE as u32;
    let rgb = crate::data::resize_center_crop(image, (side, side)).to_rgb8();
    let pixels = Tensor::from_slice(rgb.as_raw()).view([INPUT_SIZE, INPUT_SIZE, 3]).permute([2, 0, 1]).to_kind(Kind::Float) / 255.0;
    standardise(&pixels.unsqueeze(0)).squeeze_dim(0)
}

/// Images `[N, C, H, W]` in `[0, 1]` (grey repeated to RGB) resized to `size` (bilinear) and
/// standardised with ImageNet's mean and sd.
pub fn preprocess_batch(images: &Tensor, size: i64) -> Result<Tensor> {
    Ok(standardise(&rgb_at_size(images, size)?))
}

fn standardise(x: &Tensor) -> Tensor {
    let column = |v: [f64; 3]| Tensor::from_slice(&v).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(x.device());
    (x - column(IMAGENET_MEAN)) / column(IMAGENET_SD)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_torchvision_network_parses_from_its_name_and_is_listed() {
        crate::registry::tests::check::<super::TorchvisionArch>();
    }
}
