use serde::Serialize;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Images `[N, C, H, W]` as float32 in `[0, 1]` with int64 labels `[N]` in `0..num_classes`.
/// The constructor checks these invariants, so every consumer can rely on them.
#[derive(Debug)]
pub struct ImageDataset {
    name: String,
    images: Tensor,
    labels: Vec<i64>,
    class_names: Vec<String>,
    content_hash: String,
}

/// What a run manifest records about its data.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub name: String,
    pub len: usize,
    pub image_shape: [i64; 3],
    pub num_classes: usize,
    /// SHA-256 of the images (as float32) and labels.
    pub sha256: String,
}

impl ImageDataset {
    pub fn new(name: impl Into<String>, images: Tensor, labels: Vec<i64>, class_names: Vec<String>) -> Result<Self> {
        let name = name.into();
        let size = images.size();
        if size.len() != 4 || size[0] != labels.len() as i64 {
            return Err(Error::Shape {
                op: "ImageDataset::new",
                arg: "images",
                expected: format!("[{}, channels, height, width]", labels.len()),
                got: size,
            });
        }
        if labels.is_empty() {
            return Err(Error::msg(format!("data set '{name}' has no images")));
        }
        if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= class_names.len()) {
            return Err(Error::msg(format!("data set '{name}': label {bad} is out of range for {} classes", class_names.len())));
        }
        let images = images.to_kind(Kind::Float).contiguous();
        let content_hash = hash_content(&images, &labels);
        Ok(ImageDataset { name, images, labels, class_names, content_hash })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]`.
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// The images and labels at `indices`, as tensors.
    pub fn select(&self, indices: &[i64]) -> (Tensor, Tensor) {
        select_rows(&self.images, &self.labels, indices)
    }

    /// A data set of the images at `indices`, in that order, with the same classes.
    pub fn subset(&self, name: impl Into<String>, indices: &[i64]) -> Result<ImageDataset> {
        if let Some(bad) = indices.iter().find(|&&i| i < 0 || i as usize >= self.len()) {
            return Err(Error::msg(format!("subset of '{}': index {bad} is out of range for {} images", self.name, self.len())));
        }
        let (images, _) = self.select(indices);
        let labels = indices.iter().map(|&i| self.labels[i as usize]).collect();
        ImageDataset::new(name, images, labels, self.class_names.clone())
    }

    pub fn summary(&self) -> DatasetSummary {
        DatasetSummary {
            name: self.name.clone(),
            len: self.len(),
            image_shape: self.image_shape(),
            num_classes: self.num_classes(),
            sha256: self.content_hash.clone(),
        }
    }
}

/// Rows `indices` of `images` (`[N, …]`) with their `labels`, as tensors. A free function so
/// that a batch-preparing thread, which holds its own handle on the images, selects the same way.
pub fn select_rows(images: &Tensor, labels: &[i64], indices: &[i64]) -> (Tensor, Tensor) {
    let chosen: Vec<i64> = indices.iter().map(|&i| labels[i as usize]).collect();
    (images.index_select(0, &Tensor::from_slice(indices)), Tensor::from_slice(&chosen))
}

fn hash_content(images: &Tensor, labels: &[i64]) -> String {
    let count = images.numel();
    let mut values = vec![0f32; count];
    images.flatten(0, -1).copy_data(&mut values, count);
    let mut hasher = Sha256::new();
    // Hashing in blocks: one update per value is several times slower on 60 000 images.
    for block in values.chunks(1 << 16) {
        hasher.update(block.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    hasher.update(labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>());
    format!("{:x}", hasher.finalize())
}
