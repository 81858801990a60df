//! Activation maps of a named layer, taken from a pretrained ImageNet network, a trained huelab
//! model or a user's TorchScript module, batched with progress; kept in memory or written to
//! `.npy` files that numpy reads.
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array4};
use ndarray_npy::{read_npy, write_npy};
use tch::{Device, Kind, Tensor};

use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::models::{preprocess_batch, LiteVariant, PretrainedNet};
use crate::output::write_then_rename;
use crate::train::TrainedModel;

/// Activation maps `[N, C, H, W]` (float32, CPU) of `N` labelled images.
#[derive(Debug)]
pub struct Activations {
    maps: Tensor,
    labels: Vec<i64>,
    class_names: Vec<String>,
    /// What produced them, e.g. `efficientnet_lite0/head @224 on textures`.
    source: String,
}

impl Activations {
    pub fn new(maps: Tensor, labels: Vec<i64>, class_names: Vec<String>, source: impl Into<String>) -> Result<Self> {
        let size = maps.size();
        if size.len() != 4 || size[0] != labels.len() as i64 {
            return Err(Error::Shape { op: "Activations::new", arg: "maps", expected: format!("[{}, channels, height, width]", labels.len()), got: size });
        }
        if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= class_names.len()) {
            return Err(Error::msg(format!("activation label {bad} is out of range for {} classes", class_names.len())));
        }
        let maps = maps.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        Ok(Activations { maps, labels, class_names, source: source.into() })
    }

    pub fn maps(&self) -> &Tensor {
        &self.maps
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `C`, the length of one pixel vector.
    pub fn channels(&self) -> i64 {
        self.maps.size()[1]
    }

    /// `(H, W)` of the activation grid.
    pub fn grid(&self) -> (i64, i64) {
        let s = self.maps.size();
        (s[2], s[3])
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[i64]) -> Result<Activations> {
        if let Some(bad) = indices.iter().find(|&&i| i < 0 || i as usize >= self.len()) {
            return Err(Error::msg(format!("index {bad} is out of range for {} activation maps", self.len())));
        }
        let maps = self.maps.index_select(0, &Tensor::from_slice(indices));
        let labels = indices.iter().map(|&i| self.labels[i as usize]).collect();
        Activations::new(maps, labels, self.class_names.clone(), self.source.clone())
    }

    /// Fig. 3's energy map: `‖I(x, y)‖²` averaged over the images, `[H, W]` as float64.
    pub fn energy_map(&self) -> Tensor {
        self.maps.to_kind(Kind::Double).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double).mean_dim([0i64].as_slice(), false, Kind::Double)
    }

    /// Writes `maps` to `maps_path` (float32 `[N, C, H, W]`) and the labels to `labels_path`
    /// (int64 `[N]`), each atomically.
    pub fn save_npy(&self, maps_path: &Path, labels_path: &Path) -> Result<()> {
        let s = self.maps.size();
        let values: Vec<f32> = Vec::try_from(self.maps.flatten(0, -1))?;
        let shape = (s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize);
        let array = Array4::from_shape_vec(shape, values).map_err(|e| Error::msg(e.to_string()))?;
        write_npy_atomic(maps_path, &array)?;
        write_npy_atomic(labels_path, &Array1::from_vec(self.labels.clone()))
    }

    /// Reads maps and labels written by [`Self::save_npy`] (or by numpy: float32 `[N, C, H,
    /// W]`, int64 `[N]`).
    pub fn load_npy(maps_path: &Path, labels_path: &Path, class_names: Option<Vec<String>>) -> Result<Activations> {
        let maps: Array4<f32> = read_npy(maps_path).map_err(|e| Error::Data { path: maps_path.to_owned(), message: format!("expected float32 [N, C, H, W]: {e}") })?;
        let labels: Array1<i64> = read_npy(labels_path).map_err(|e| Error::Data { path: labels_path.to_owned(), message: format!("expected int64 [N]: {e}") })?;
        let shape: Vec<i64> = maps.shape().iter().map(|&d| d as i64).collect();
        let values: Vec<f32> = maps.iter().copied().collect();
        let labels = labels.to_vec();
        let classes = labels.iter().copied().max().map_or(0, |m| m + 1) as usize;
        let class_names = class_names.unwrap_or_else(|| (0..classes).map(|c| c.to_string()).collect());
        Activations::new(Tensor::from_slice(&values).view(shape.as_slice()), labels, class_names, maps_path.display().to_string())
    }
}

/// Writes an array as `.npy` atomically.
pub(crate) fn write_npy_atomic<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(path: &Path, array: &ndarray::Array<A, D>) -> Result<()> {
    write_then_rename(path, |partial| {
        write_npy(partial, array).map_err(|e| Error::Data { path: path.to_owned(), message: format!("cannot write: {e}") })
    })
}

/// Where activation maps come from. (One exists per script call; the size of the variants
/// does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Extractor {
    /// An ImageNet-pretrained EfficientNet-Lite; images are resized to `size` and normalised as
    /// the weights expect.
    Pretrained { net: PretrainedNet, layer: String, size: i64 },
    /// A model trained by huelab (its bottleneck or an intermediate layer), inputs
    /// standardised as in its training.
    Trained { model: TrainedModel, path: PathBuf, layer: String },
    /// A TorchScript module (`torch.jit.trace` of the network cut at the wanted layer) whose
    /// `forward` returns `[B, C, H, W]`; inputs are the `[0, 1]` images, resized to `size` if
    /// given.
    TorchScript { module: tch::CModule, path: PathBuf, size: Option<i64>, device: Device },
}

impl Extractor {
    /// A pretrained network by name (`efficientnet_lite0` …), weights default to the bundled
    /// file; `size` defaults to the network's input resolution.
    pub fn pretrained(model: &str, weights: Option<&Path>, layer: &str, size: Option<i64>, device: Device) -> Result<Self> {
        let variant = LiteVariant::from_name(model)?;
        let net = PretrainedNet::load(variant, weights, device)?;
        // Check the layer name now, not after the first batch.
        net.net.layer_index(layer)?;
        let size = size.unwrap_or(variant.input_size());
        if size < 32 {
            return Err(Error::invalid_option("size", format!("{size} is too small for {model} (at least 32)")));
        }
        Ok(Extractor::Pretrained { net, layer: layer.to_owned(), size })
    }

    /// The model a checkpointed huelab run saved in `dir`, cut after `layer` (`bottleneck`, or
    /// e.g. `layer3` of a ResNet, `block2` of the small CNN).
    pub fn trained(dir: &Path, layer: &str, device: Device) -> Result<Self> {
        let model = TrainedModel::load(dir, device)?;
        let names = model.net.layer_names();
        if !names.iter().any(|n| n == layer) {
            return Err(Error::invalid_option(
                "layer",
                format!("the {} model in {} has no layer '{layer}'; valid layers: {}", model.info.spec.arch.name(), dir.display(), names.join(", ")),
            ));
        }
        Ok(Extractor::Trained { model, path: dir.to_owned(), layer: layer.to_owned() })
    }

    pub fn torchscript(path: &Path, size: Option<i64>, device: Device) -> Result<Self> {
        let module = tch::CModule::load_on_device(path, device)
            .map_err(|e| Error::Data { path: path.to_owned(), message: format!("not a TorchScript module: {e}") })?;
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
        let batch = crate::models::load_image(image, net.input_size())?.unsqueeze(0);
        let names = crate::models::read_imagenet_classes(None)?;
        Ok(net.top_k(&batch, k, &names)?.remove(0))
    }

    /// A short description for manifests and figure titles.
    pub fn describe(&self) -> String {
        match self {
            Extractor::Pretrained { net, layer, size } => format!("{} {layer} @{size}px", net.net.variant().name()),
            Extractor::Trained { model, path, layer } => format!("{} {layer} ({})", model.info.spec.arch.name(), path.display()),
            Extractor::TorchScript { path, .. } => format!("TorchScript {}", path.display()),
        }
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| match self {
            Extractor::Pretrained { net, layer, size } => {
                let x = preprocess_batch(images, *size)?.to_device(net.device());
                net.net.layer_t(&x, layer, false)
            }
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

    /// Activation maps of every image of `data`, `batch_size` at a time, with a progress bar on
    /// a terminal.
    pub fn extract(&self, data: &ImageDataset, batch_size: usize) -> Result<Activations> {
        if batch_size == 0 {
            return Err(Error::invalid_option("batch_size", "must be at least 1"));
        }
        let n = data.len();
        let progress = ProgressBar::new(n as u64);
        progress.set_style(ProgressStyle::with_template("activations {bar:30} {pos}/{len} images [{elapsed_precise}<{eta_precise}]").expect("valid template"));
        let mut parts = Vec::with_capacity(n.div_ceil(batch_size));
        for start in (0..n).step_by(batch_size) {
            crate::interrupt::check()?;
            let len = batch_size.min(n - start);
            let batch = data.images().narrow(0, start as i64, len as i64);
            parts.push(self.forward(&batch)?.to_device(Device::Cpu));
            progress.inc(len as u64);
        }
        progress.finish_and_clear();
        let source = format!("{} on {}", self.describe(), data.name());
        Activations::new(Tensor::cat(&parts, 0), data.labels().to_vec(), data.class_names().to_vec(), source)
    }
}
