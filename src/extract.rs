//! Activation maps of a named layer, taken from a pretrained ImageNet network, a trained huelab
//! model or a user's TorchScript module, batched with progress.
use std::path::{Path, PathBuf};

use indicatif::ProgressStyle;
use tch::{Device, Tensor};

use crate::options::OptionDoc;
use crate::activations::{ActivationSource, Activations};
use crate::data::{BatchPlan, BatchStream, ImageDataset};
use crate::error::{Error, Result};
use crate::models::ImageNetModel;
use crate::train::TrainedModel;

/// Where activation maps come from. (One exists per script call; the size of the variants
/// does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Extractor {
    /// An ImageNet-pretrained network (EfficientNet-Lite, or a torchvision classifier with its
    /// published weights); images are resized to `size` and normalised as the weights expect.
    Pretrained { net: ImageNetModel, layer: String, size: i64 },
    /// A model trained by huelab (its bottleneck or an intermediate layer), inputs
    /// standardised as in its training; `from`: its directory, or the run that has it in memory.
    Trained { model: TrainedModel, from: String, layer: String },
    /// A TorchScript module (`torch.jit.trace` of the network cut at the wanted layer) whose
    /// `forward` returns `[B, C, H, W]`; inputs are the `[0, 1]` images, resized to `size` if
    /// given.
    TorchScript { module: tch::CModule, path: PathBuf, size: Option<i64>, device: Device },
}

impl Extractor {
    /// A pretrained network by name (`efficientnet_lite0` …, `resnet18`, `densenet201`, …);
    /// Lite0's weights are bundled, torchvision's networks need their file; `size` defaults to
    /// the network's input resolution.
    pub fn pretrained(model: &str, weights: Option<&Path>, layer: &str, size: Option<i64>, device: Device) -> Result<Self> {
        let net = ImageNetModel::load(model, weights, device)?;
        // Check the layer name now, not after the first batch.
        net.check_layer(layer)?;
        let size = size.unwrap_or(net.input_size());
        if !(32..=ExtractorOptions::MAX_SIZE).contains(&size) {
            return Err(Error::invalid_option("size", format!("{size} is outside 32..={} for {model}", ExtractorOptions::MAX_SIZE)));
        }
        Ok(Extractor::Pretrained { net, layer: layer.to_owned(), size })
    }

    /// The model a checkpointed huelab run saved in `dir`, cut after `layer` (`bottleneck`, or
    /// e.g. `layer3` of a ResNet, `block2` of the small CNN).
    pub fn trained(dir: &Path, layer: &str, device: Device) -> Result<Self> {
        Self::cut(TrainedModel::load(dir, device)?, dir.display().to_string(), layer)
    }

    /// A copy of a model a run of this session trained (`run_name`'s, in memory), cut after
    /// `layer`, on `device`.
    pub fn trained_in_memory(model: &TrainedModel, layer: &str, device: Device) -> Result<Self> {
        let from = format!("run '{}', in memory", model.info.run_name);
        Self::cut(model.copy_to(device)?, from, layer)
    }

    /// `model` cut after `layer`, which must be one of its layers (checked now, not after the
    /// first batch); `from` says where the model came from.
    fn cut(model: TrainedModel, from: String, layer: &str) -> Result<Self> {
        let names = model.net.layer_names();
        if !names.iter().any(|n| n == layer) {
            return Err(Error::invalid_option(
                "layer",
                format!("the {} model ({from}) has no layer '{layer}'; valid layers: {}", model.info.spec.arch.name(), names.join(", ")),
            ));
        }
        Ok(Extractor::Trained { model, from, layer: layer.to_owned() })
    }

    pub fn torchscript(path: &Path, size: Option<i64>, device: Device) -> Result<Self> {
        crate::models::verify_zip(path)?;
        let module = tch::CModule::load_on_device(path, device)
            .map_err(|e| Error::Data { path: path.to_owned(), message: format!("not a TorchScript module: {}", crate::error::torch_message(&e)) })?;
        Ok(Extractor::TorchScript { module, path: path.to_owned(), size, device })
    }

    /// The top-`k` ImageNet classes of an image file, as `huelab predict` prints them (pretrained
    /// networks only; the network's full input size and preprocessing, whatever `size` is).
    pub fn imagenet_top(&self, image: &Path, k: i64) -> Result<Vec<crate::models::ClassScore>> {
        let Extractor::Pretrained { net, .. } = self else {
            return Err(Error::msg("ImageNet classes need a pretrained network (pretrained(\"efficientnet_lite0\", #{}))"));
        };
        if k < 1 {
            return Err(Error::invalid_option("k", format!("must be at least 1, got {k}")));
        }
        if net.classes() != 1000 {
            return Err(Error::msg(format!("this {} has {} classes, not ImageNet's 1000: its weights are not an ImageNet classifier", net.name(), net.classes())));
        }
        let batch = net.load_image(image)?.unsqueeze(0);
        let names = crate::models::read_imagenet_classes(None)?;
        Ok(net.top_k(&batch, k, &names)?.remove(0))
    }

    /// A short description for manifests and figure titles.
    pub fn describe(&self) -> String {
        match self {
            Extractor::Pretrained { net, layer, size } => format!("{} {layer} @{size}px", net.name()),
            Extractor::Trained { model, from, layer } => format!("{} {layer} ({from})", model.info.spec.arch.name()),
            Extractor::TorchScript { path, .. } => format!("TorchScript {}", path.display()),
        }
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| match self {
            Extractor::Pretrained { net, layer, size } => net.layer_t(&net.preprocess_batch(images, *size)?, layer),
            Extractor::Trained { model, layer, .. } => {
                let x = model.standardise(&images.to_device(model.device()));
                model.net.layer_t(&x, layer, false)
            }
            Extractor::TorchScript { module, size, device, path } => {
                let x = match size {
                    Some(s) => images.upsample_bilinear2d([*s, *s], false, None, None),
                    None => images.shallow_clone(),
                };
                let out = module.forward_ts(&[x.to_device(*device)]).map_err(|e| Error::Data { path: path.clone(), message: format!("forward failed: {e}") })?;
                if out.dim() != 4 {
                    return Err(Error::Data { path: path.clone(), message: format!("forward returned shape {:?}, expected [B, C, H, W]", out.size()) });
                }
                Ok(out)
            }
        })
    }

    /// Activation maps of every image of `data`, `batch_size` at a time (image files decoded
    /// on worker threads as the network runs), with a progress bar on a terminal.
    pub fn extract(&self, data: &ImageDataset, batch_size: usize) -> Result<Activations> {
        if batch_size == 0 {
            return Err(Error::invalid_option("batch_size", "must be at least 1"));
        }
        let n = data.len();
        let progress = crate::progress::new_bar(n as u64);
        progress.set_style(ProgressStyle::with_template("activations {bar:30} {pos}/{len} images [{elapsed_precise}<{eta_precise}]").expect("valid template"));
        let mut parts = Vec::with_capacity(n.div_ceil(batch_size));
        let plan = BatchPlan::eval((0..n as i64).collect(), batch_size);
        for batch in BatchStream::new(data, plan, crate::train::pipeline_workers(data))? {
            crate::interrupt::check()?;
            let (images, labels) = batch?;
            let len = labels.size()[0];
            parts.push(self.forward(&images)?.to_device(Device::Cpu));
            progress.inc(len as u64);
        }
        progress.finish_and_clear();
        let source = format!("{} on {}", self.describe(), data.name());
        Activations::new(Tensor::cat(&parts, 0), data.labels().to_vec(), data.class_names().to_vec(), source)
    }
}

impl ActivationSource for Extractor {
    fn activations_of(&self, data: &ImageDataset, batch_size: usize) -> Result<Activations> {
        self.extract(data, batch_size)
    }
}

/// Options of `pretrained`, `trained_model` and `torchscript`: `weights` (path), `layer`
/// ("bottleneck"), `size` (input side in pixels), `device`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorOptions {
    pub weights: Option<String>,
    pub layer: String,
    pub size: Option<i64>,
    pub device: Device,
}

impl ExtractorOptions {
    /// The options each extractor takes.
    pub const PRETRAINED_OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("weights", "string", "(bundled for efficientnet_lite0)", "the weights file (.pth or .safetensors); torchvision's networks need one"),
        LAYER,
        OptionDoc::new("size", "int", "(the weights' own)", "the input side images are resized to, at most 1024"),
        crate::options::DEVICE,
    ];
    pub const TRAINED_OPTIONS: &'static [OptionDoc] = &[LAYER, crate::options::DEVICE];
    pub const TORCHSCRIPT_OPTIONS: &'static [OptionDoc] = &[OptionDoc::new("size", "int", "(no resize)", "resize inputs to this side, at most 1024"), crate::options::DEVICE];
    pub const MEMORY_OPTIONS: &'static [OptionDoc] = &[OptionDoc::new("device", "string", "\"auto\"", "where an exact backend's vectors go: \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"")];
    /// The largest input side an extractor resizes images to: four times ImageNet's 224 and more;
    /// beyond it one batch of RGB floats alone needs gigabytes.
    pub const MAX_SIZE: i64 = 1024;

    pub fn from_options(map: serde_json::Map<String, serde_json::Value>, context: &str, allowed: &[OptionDoc]) -> Result<Self> {
        let mut o = crate::options::Options::new(map, context, allowed)?;
        let size = o.int("size")?;
        if let Some(s) = size.filter(|&s| !(1..=Self::MAX_SIZE).contains(&s)) {
            return Err(Error::invalid_option("size", format!("must be in 1..={}, got {s}", Self::MAX_SIZE)));
        }
        Ok(ExtractorOptions {
            weights: o.string("weights")?,
            layer: o.string("layer")?.unwrap_or_else(|| "bottleneck".into()),
            size,
            device: o.device()?.unwrap_or_default().resolve()?,
        })
    }
}

/// `activations`' options.
pub const ACTIVATIONS_OPTIONS: &[OptionDoc] = &[OptionDoc::new("batch_size", "int", "32", "images per forward pass")];

/// The layer an extractor stops after.
const LAYER: OptionDoc = OptionDoc::new("layer", "string", "\"bottleneck\"", "the layer whose activations are extracted: \"bottleneck\", or a layer name (Lite: stem, blocks.N, head; ResNet: stem, layer1…layer4; small CNN: block1…block3; MobileNetV2: features.N)");

/// `batch_size` (32) of `activations`.
pub fn activation_batch_size(map: serde_json::Map<String, serde_json::Value>) -> Result<usize> {
    let mut o = crate::options::Options::new(map, "activations options", ACTIVATIONS_OPTIONS)?;
    match o.count("batch_size")? {
        Some(0) => Err(Error::invalid_option("batch_size", "must be at least 1")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Ok(32),
    }
}
