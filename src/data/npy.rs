//! Image and label arrays saved by numpy (`np.save`). Images may be `uint8` (0–255) or
//! `float32`/`float64` already in [0, 1]; labels any integer type.
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{read_npy, ReadNpyError};
use serde::Serialize;
use tch::Tensor;

use super::idx::numbered_classes;
use super::ImageDataset;
use crate::error::{Error, Result};

/// Where the channel axis of a 4-D image array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum NpyLayout {
    /// `[N, H, W]` is grey; `[N, H, W, C]` or `[N, C, H, W]` is told apart by which axis has 1,
    /// 3 or 4 entries, and an array where both could be the channels is an error.
    #[default]
    Auto,
    /// `[N, C, H, W]` (PyTorch).
    ChannelsFirst,
    /// `[N, H, W, C]` (numpy, PIL, TensorFlow).
    ChannelsLast,
}

impl std::str::FromStr for NpyLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(NpyLayout::Auto),
            "nchw" => Ok(NpyLayout::ChannelsFirst),
            "nhwc" => Ok(NpyLayout::ChannelsLast),
            _ => Err(Error::invalid_option("layout", format!("expected \"auto\", \"nchw\" or \"nhwc\", got \"{s}\""))),
        }
    }
}

pub fn load_npy(name: &str, images: &Path, labels: &Path, layout: NpyLayout, class_names: Option<Vec<String>>) -> Result<ImageDataset> {
    let (values, shape) = read_images(images)?;
    let bad_images = |message: String| Error::Data { path: images.to_owned(), message };
    let nchw: [i64; 4] = match (shape.as_slice(), layout) {
        (&[n, h, w], _) => [n, 1, h, w],
        (&[n, a, b, c], NpyLayout::ChannelsFirst) => [n, a, b, c],
        (&[n, a, b, c], NpyLayout::ChannelsLast) => [n, c, a, b],
        (&[n, a, b, c], NpyLayout::Auto) => {
            let is_channels = |d: i64| matches!(d, 1 | 3 | 4);
            match (is_channels(a), is_channels(c)) {
                (true, false) => [n, a, b, c],
                (false, true) => [n, c, a, b],
                _ => return Err(bad_images(format!("cannot tell the channel axis of shape {shape:?}; give layout \"nchw\" or \"nhwc\""))),
            }
        }
        _ => return Err(bad_images(format!("expected images of shape [N, H, W], [N, H, W, C] or [N, C, H, W], found {shape:?}"))),
    };
    let mut tensor = Tensor::from_slice(&values).view(shape.as_slice());
    if shape.len() == 4 && nchw[1] != shape[1] {
        tensor = tensor.permute([0, 3, 1, 2]);
    }
    let tensor = tensor.reshape(nchw).contiguous();

    let label_values = read_labels(labels)?;
    if label_values.len() as i64 != nchw[0] {
        return Err(Error::Data {
            path: labels.to_owned(),
            message: format!("{} labels for {} images in {}", label_values.len(), nchw[0], images.display()),
        });
    }
    let class_names = class_names.unwrap_or_else(|| numbered_classes(&label_values));
    ImageDataset::new(name, tensor, label_values, class_names).map_err(|e| Error::Data { path: labels.to_owned(), message: e.to_string() })
}

/// Pixel values as f32 in [0, 1], and the array's shape.
fn read_images(path: &Path) -> Result<(Vec<f32>, Vec<i64>)> {
    let shape_of = |shape: &[usize]| shape.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let bad = |message: String| Error::Data { path: path.to_owned(), message };
    if let Some(a) = try_read::<u8>(path)? {
        return Ok((a.iter().map(|&v| v as f32 / 255.0).collect(), shape_of(a.shape())));
    }
    let (values, shape): (Vec<f32>, _) = if let Some(a) = try_read::<f32>(path)? {
        (a.iter().copied().collect(), shape_of(a.shape()))
    } else if let Some(a) = try_read::<f64>(path)? {
        (a.iter().map(|&v| v as f32).collect(), shape_of(a.shape()))
    } else {
        return Err(bad("images must be uint8, float32 or float64".into()));
    };
    if let Some(v) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(bad(format!("float images must lie in [0, 1], found {v}; scale them or save them as uint8")));
    }
    Ok((values, shape))
}

fn read_labels(path: &Path) -> Result<Vec<i64>> {
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if let Some(a) = try_read::<$t>(path)? {
                if a.ndim() != 1 {
                    return Err(Error::Data { path: path.to_owned(), message: format!("labels must be 1-D, found shape {:?}", a.shape()) });
                }
                return Ok(a.iter().map(|&v| v as i64).collect());
            })*
        };
    }
    try_types!(i64, i32, u8, u16, u32, i16, i8, u64);
    Err(Error::Data { path: path.to_owned(), message: "labels must be an integer array".into() })
}

/// `None` when the file holds another element type.
fn try_read<T: ndarray_npy::ReadableElement>(path: &Path) -> Result<Option<ArrayD<T>>> {
    match read_npy::<_, ArrayD<T>>(path) {
        Ok(a) => Ok(Some(a)),
        Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
        Err(ReadNpyError::Io(e)) => Err(Error::io(path, e)),
        Err(e) => Err(Error::Data { path: path.to_owned(), message: format!("not a readable .npy file: {e}") }),
    }
}
