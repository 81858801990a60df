//! IDX files, the MNIST format: two zero bytes, a type byte, a dimension count, big-endian u32
//! sizes, then the values. Gzipped files are recognised by their magic bytes, not their name.
use std::io::Read;
use std::path::Path;

use tch::Tensor;

use super::ImageDataset;
use crate::error::{Error, Result};

/// The only IDX element type image data sets use.
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads the whole file, un-gzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gzipped(path)?;
    let bad = |message: String| Error::Data { path: path.to_owned(), message };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (it must start with two zero bytes)".into()));
    }
    if bytes[2] != UNSIGNED_BYTE {
        return Err(bad(format!("IDX element type 0x{:02x} is not supported; only unsigned bytes (0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(bad(format!("truncated IDX header ({} bytes, {ndim} dimensions)", bytes.len())));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    let found = bytes.len() - header;
    if found != expected {
        return Err(bad(format!("the header announces {dims:?} = {expected} values but the file holds {found}")));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// An image data set from an IDX image file (`[N, H, W]`) and an IDX label file (`[N]`).
/// Pixels are scaled from 0–255 to [0, 1]; without `class_names`, classes are named "0", "1", …
pub fn load_idx(name: &str, images: &Path, labels: &Path, class_names: Option<Vec<String>>) -> Result<ImageDataset> {
    let image_array = read_idx(images)?;
    let label_array = read_idx(labels)?;
    let [n, h, w] = image_array.dims[..] else {
        return Err(Error::Data {
            path: images.to_owned(),
            message: format!("expected images of shape [N, height, width], found {:?}", image_array.dims),
        });
    };
    if label_array.dims != [n] {
        return Err(Error::Data {
            path: labels.to_owned(),
            message: format!("expected {n} labels to match {}, found shape {:?}", images.display(), label_array.dims),
        });
    }
    let labels_i64: Vec<i64> = label_array.data.iter().map(|&l| l as i64).collect();
    let class_names = class_names.unwrap_or_else(|| numbered_classes(&labels_i64));
    let pixels = Tensor::from_slice(&image_array.data).view([n as i64, 1, h as i64, w as i64]);
    ImageDataset::new(name, pixels / 255.0, labels_i64, class_names)
        .map_err(|e| Error::Data { path: labels.to_owned(), message: e.to_string() })
}

/// "0", "1", … up to the largest label.
pub fn numbered_classes(labels: &[i64]) -> Vec<String> {
    let count = labels.iter().copied().max().map_or(0, |m| m + 1);
    (0..count).map(|c| c.to_string()).collect()
}
