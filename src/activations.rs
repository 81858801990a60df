//! Activation maps of labelled images, `[N, C, H, W]`, whatever produced them: kept in memory,
//! written to and read from `.npy` files that numpy reads. [`ActivationSource`] is the seam
//! through which the kNN memory asks for activations of images without knowing what network
//! (pretrained, trained by huelab, TorchScript; see `extract`) makes them.
use std::path::Path;

use ndarray::{Array1, Array4};
use ndarray_npy::write_npy;
use tch::{Device, Kind, Tensor};

use crate::data::{numbered_classes, read_npy_checked, ImageDataset};
use crate::error::{Error, Result};
use crate::files::write_then_rename;

/// Anything that turns images into activation maps.
pub trait ActivationSource {
    /// Activation maps of every image of `data`, `batch_size` images per forward pass.
    fn activations_of(&self, data: &ImageDataset, batch_size: usize) -> Result<Activations>;
}

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
        // Zero channels or an empty grid would reach libtorch's reshapes as an impossible size.
        if size.len() != 4 || size[0] != labels.len() as i64 || size[1..].iter().any(|&d| d < 1) {
            return Err(Error::Shape { op: "Activations::new", arg: "maps", expected: format!("[{}, channels ≥ 1, height ≥ 1, width ≥ 1]", labels.len()), got: size });
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

    /// One line for a debugger's variables panel or a notebook: the tensor's shape, element
    /// type and device, where the maps came from, and their first values.
    pub fn summary(&self) -> String {
        let size = self.maps.size();
        let first = self.maps.f_reshape([-1]).and_then(|flat| flat.f_narrow(0, 0, flat.size()[0].min(6))).and_then(|head| head.f_to_kind(Kind::Double)).and_then(|head| head.f_to_device(Device::Cpu));
        let preview = match first.map(|head| Vec::<f64>::try_from(&head)) {
            Ok(Ok(values)) => values.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", "),
            _ => "?".into(),
        };
        let kind = match self.maps.kind() {
            Kind::Float => "float32".to_owned(),
            Kind::Half => "float16".to_owned(),
            Kind::BFloat16 => "bfloat16".to_owned(),
            Kind::Double => "float64".to_owned(),
            other => format!("{other:?}"),
        };
        let device = match self.maps.device() {
            Device::Cuda(n) => format!("cuda:{n}"),
            other => format!("{other:?}").to_lowercase(),
        };
        format!("Activations: tensor {size:?} {kind} on {device}, {} ({} images); first values [{preview}, …]", self.source, self.labels.len())
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
        let maps: Array4<f32> = read_npy_checked(maps_path, "float32 [N, C, H, W]")?;
        let labels: Array1<i64> = read_npy_checked(labels_path, "int64 [N]")?;
        let bad_maps = |message: String| Error::Data { path: maps_path.to_owned(), message };
        if maps.shape()[1..].contains(&0) {
            return Err(bad_maps(format!("activation maps of shape {:?}: channels, height and width must be at least 1", maps.shape())));
        }
        if let Some((i, v)) = maps.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            // NaN or inf activations make every distance NaN: the classifier would then answer
            // without an error and with chance accuracy.
            return Err(bad_maps(format!("value {v} at flat index {i}: activations must be finite")));
        }
        if maps.shape()[0] != labels.len() {
            return Err(Error::Data {
                path: labels_path.to_owned(),
                message: format!("{} labels for {} activation maps in {}", labels.len(), maps.shape()[0], maps_path.display()),
            });
        }
        let shape: Vec<i64> = maps.shape().iter().map(|&d| d as i64).collect();
        let values: Vec<f32> = maps.iter().copied().collect();
        let labels = labels.to_vec();
        let class_names = match class_names {
            Some(names) => names,
            None => numbered_classes(&labels).map_err(|message| Error::Data { path: labels_path.to_owned(), message })?,
        };
        Activations::new(Tensor::from_slice(&values).view(shape.as_slice()), labels, class_names, maps_path.display().to_string())
            .map_err(|e| Error::Data { path: labels_path.to_owned(), message: e.to_string() })
    }
}

/// Writes an array as `.npy` atomically.
pub fn write_npy_atomic<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(path: &Path, array: &ndarray::Array<A, D>) -> Result<()> {
    write_then_rename(path, |partial| {
        write_npy(partial, array).map_err(|e| Error::Data { path: path.to_owned(), message: format!("cannot write: {e}") })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_shape_type_device_source_and_first_values() {
        let maps = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, Device::Cpu)).view([2, 3, 2, 2]) / 10.0;
        let activations = Activations::new(maps, vec![0, 1], vec!["a".into(), "b".into()], "probe/layer").unwrap();
        assert_eq!(activations.summary(), "Activations: tensor [2, 3, 2, 2] float32 on cpu, probe/layer (2 images); first values [0.0000, 0.1000, 0.2000, 0.3000, 0.4000, 0.5000, …]");
    }
}
