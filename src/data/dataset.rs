use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::folder::{ImageFiles, Mode};
use super::split::{stratified_split, DataIdentity, Split, SplitConfig};
use crate::error::{Error, Result};

/// Labelled images `[N, C, H, W]` with int64 labels in `0..num_classes`. The pixels are held
/// in memory (`uint8` 0–255 where the source is 8-bit, else float32 in `[0, 1]`) or stay on
/// disk as image files decoded batch by batch; either way every image a consumer receives is
/// float32 in `[0, 1]`. The constructors check these invariants, so every consumer can rely on
/// them.
#[derive(Debug)]
pub struct ImageDataset {
    name: String,
    pixels: Pixels,
    labels: Vec<i64>,
    class_names: Vec<String>,
    content_hash: String,
    /// The split the data came with (the `train/` + `val/` + `test/` layout).
    given_split: Option<Split>,
}

#[derive(Debug)]
enum Pixels {
    /// `[N, C, H, W]`, `uint8` or float32.
    InMemory(Tensor),
    /// Image files, with the directory their paths are reported relative to.
    Files { files: ImageFiles, root: PathBuf },
}

/// What a run manifest records about its data.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub name: String,
    pub len: usize,
    pub image_shape: [i64; 3],
    pub num_classes: usize,
    /// SHA-256 of the images (as float32) and labels; of the files' bytes, paths and labels
    /// for image files.
    pub sha256: String,
}

/// `uint8` pixels scaled to `[0, 1]` float32 (the same operation huelab always used, so the
/// values and hashes of 8-bit data are those of earlier versions); float32 unchanged.
pub fn to_unit_float(raw: &Tensor) -> Tensor {
    if raw.kind() == Kind::Uint8 {
        raw / 255.0
    } else {
        raw.shallow_clone()
    }
}

fn check_labels(name: &str, labels: &[i64], class_names: &[String]) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::msg(format!("data set '{name}' has no images")));
    }
    if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= class_names.len()) {
        return Err(Error::msg(format!("data set '{name}': label {bad} is out of range for {} classes", class_names.len())));
    }
    // Two classes of one name could not be told apart in any table, figure or prediction.
    let mut seen = std::collections::HashSet::with_capacity(class_names.len());
    if let Some(twice) = class_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Error::msg(format!("data set '{name}': class name '{twice}' is given to two classes")));
    }
    Ok(())
}

impl ImageDataset {
    /// A data set of images `[N, C, H, W]`: `uint8` (0–255, kept as 8-bit) or any float kind
    /// with values in `[0, 1]` (kept as float32).
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
        check_labels(&name, &labels, &class_names)?;
        let images = if images.kind() == Kind::Uint8 { images.contiguous() } else { images.to_kind(Kind::Float).contiguous() };
        let content_hash = hash_tensor(&images, &labels)?;
        Ok(ImageDataset { name, pixels: Pixels::InMemory(images), labels, class_names, content_hash, given_split: None })
    }

    /// A data set of image files decoded on demand; the content hash is computed now, reading
    /// the files block by block. `given_split` is a split the files came with.
    pub fn from_files(name: impl Into<String>, files: ImageFiles, root: &Path, labels: Vec<i64>, class_names: Vec<String>, given_split: Option<Split>) -> Result<Self> {
        let name = name.into();
        if files.len() != labels.len() {
            return Err(Error::msg(format!("data set '{name}': {} files for {} labels", files.len(), labels.len())));
        }
        check_labels(&name, &labels, &class_names)?;
        let content_hash = files.content_hash(&labels, root)?;
        let identity = DataIdentity { len: labels.len(), sha256: content_hash.clone() };
        let given_split = given_split.map(|s| s.of_data(identity));
        Ok(ImageDataset { name, pixels: Pixels::Files { files, root: root.to_owned() }, labels, class_names, content_hash, given_split })
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

    /// `[C, H, W]` of every image as consumers receive it.
    pub fn image_shape(&self) -> [i64; 3] {
        match &self.pixels {
            Pixels::InMemory(t) => {
                let s = t.size();
                [s[1], s[2], s[3]]
            }
            Pixels::Files { files, .. } => files.shape(),
        }
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

    /// Whether the pixels are in memory (else they are image files read batch by batch).
    pub fn is_in_memory(&self) -> bool {
        matches!(self.pixels, Pixels::InMemory(_))
    }

    /// The image files of an on-disk set.
    pub fn files(&self) -> Option<&ImageFiles> {
        match &self.pixels {
            Pixels::Files { files, .. } => Some(files),
            Pixels::InMemory(_) => None,
        }
    }

    /// A handle on the in-memory pixels (for a batch worker thread, which needs its own).
    pub(super) fn stored_tensor(&self) -> Option<Tensor> {
        match &self.pixels {
            Pixels::InMemory(t) => Some(t.shallow_clone()),
            Pixels::Files { .. } => None,
        }
    }

    /// The split the data came with, if any (the `train/` + `val/` + `test/` layout).
    pub fn given_split(&self) -> Option<&Split> {
        self.given_split.as_ref()
    }

    pub fn identity(&self) -> DataIdentity {
        DataIdentity { len: self.len(), sha256: self.content_hash.clone() }
    }

    /// The images at `indices` as stored (`uint8` or float32, `[n, C, H, W]`); image files are
    /// decoded with `mode`'s transform. [`to_unit_float`] makes them float32 in `[0, 1]`.
    pub fn load_raw(&self, indices: &[i64], mode: Mode) -> Result<Tensor> {
        self.check_indices(indices)?;
        match &self.pixels {
            Pixels::InMemory(t) => Ok(t.f_index_select(0, &Tensor::from_slice(indices))?),
            Pixels::Files { files, .. } => files.load(indices, mode, &[]),
        }
    }

    /// The images at `indices` (float32 in `[0, 1]`) with their labels, for evaluation.
    pub fn select(&self, indices: &[i64]) -> Result<(Tensor, Tensor)> {
        let images = to_unit_float(&self.load_raw(indices, Mode::Eval)?);
        let chosen: Vec<i64> = indices.iter().map(|&i| self.labels[i as usize]).collect();
        Ok((images, Tensor::from_slice(&chosen)))
    }

    /// Every image, float32 in `[0, 1]`: for sets that fit in memory (an image-file set is
    /// decoded whole).
    pub fn images(&self) -> Result<Tensor> {
        let all: Vec<i64> = (0..self.len() as i64).collect();
        Ok(self.select(&all)?.0)
    }

    fn check_indices(&self, indices: &[i64]) -> Result<()> {
        match indices.iter().find(|&&i| i < 0 || i as usize >= self.len()) {
            Some(bad) => Err(Error::msg(format!("'{}': image index {bad} is out of range for {} images", self.name, self.len()))),
            None => Ok(()),
        }
    }

    /// A data set of the images at `indices`, in that order, with the same classes (an
    /// image-file set stays on disk).
    pub fn subset(&self, name: impl Into<String>, indices: &[i64]) -> Result<ImageDataset> {
        self.check_indices(indices).map_err(|e| Error::msg(format!("subset of {e}")))?;
        let labels = indices.iter().map(|&i| self.labels[i as usize]).collect();
        match &self.pixels {
            Pixels::InMemory(t) => ImageDataset::new(name, t.f_index_select(0, &Tensor::from_slice(indices))?, labels, self.class_names.clone()),
            Pixels::Files { files, root } => {
                let chosen = ImageFiles { files: indices.iter().map(|&i| files.files[i as usize].clone()).collect(), config: files.config, access: files.access.clone() };
                ImageDataset::from_files(name, chosen, root, labels, self.class_names.clone(), None)
            }
        }
    }

    /// A seeded stratified split of this data set, marked as its own.
    pub fn split(&self, config: SplitConfig) -> Result<Split> {
        Ok(stratified_split(&self.labels, self.num_classes(), config)?.of_data(self.identity()))
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

/// SHA-256 of the images as float32 values (8-bit images scaled to `[0, 1]` as consumers see
/// them) and of the labels, computed a block of images at a time.
fn hash_tensor(images: &Tensor, labels: &[i64]) -> Result<String> {
    let n = images.size()[0];
    let per_image = images.numel() / n.max(1) as usize;
    // About 4 MB of float32 per block.
    let block = ((1 << 20) / per_image.max(1)).max(1) as i64;
    let mut hasher = Sha256::new();
    let mut values: Vec<f32> = vec![];
    for start in (0..n).step_by(block as usize) {
        let len = block.min(n - start);
        let chunk = to_unit_float(&images.narrow(0, start, len)).to_kind(Kind::Float).contiguous();
        values.resize(chunk.numel(), 0.0);
        chunk.f_copy_data(&mut values, chunk.numel())?;
        hasher.update(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    hasher.update(labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>());
    Ok(format!("{:x}", hasher.finalize()))
}
