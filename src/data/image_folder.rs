//! ImageFolder directories: one sub-folder per class (sorted by name), PNG or JPEG images
//! inside, each decoded, converted to grey or RGB and resized to one size.
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use serde::Serialize;
use tch::Tensor;

use super::ImageDataset;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageFolderConfig {
    /// Every image is resized to `(height, width)`.
    pub size: (u32, u32),
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        ImageFolderConfig { size: (64, 64), channels: 3 }
    }
}

const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

pub fn load_image_folder(name: &str, root: &Path, config: ImageFolderConfig) -> Result<ImageDataset> {
    config.validate()?;
    let (h, w) = config.size;
    let mut class_dirs: Vec<PathBuf> = read_dir_sorted(root)?.into_iter().filter(|p| p.is_dir()).collect();
    class_dirs.retain(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    if class_dirs.len() < 2 {
        return Err(Error::Data { path: root.to_owned(), message: format!("an ImageFolder needs at least 2 class sub-folders, found {}", class_dirs.len()) });
    }
    let mut pixels: Vec<u8> = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::new();
    for (class, dir) in class_dirs.iter().enumerate() {
        let files: Vec<PathBuf> = read_dir_sorted(dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())))
            .collect();
        if files.is_empty() {
            return Err(Error::Data { path: dir.clone(), message: format!("class folder has no {} images", EXTENSIONS.join("/")) });
        }
        for file in files {
            let image = image::open(&file).map_err(|e| Error::Data { path: file.clone(), message: format!("cannot decode the image: {e}") })?;
            let resized = image.resize_exact(w, h, FilterType::Triangle);
            let raw = if config.channels == 1 { resized.to_luma8().into_raw() } else { resized.to_rgb8().into_raw() };
            pixels.extend(to_channels_first(&raw, config.channels as usize));
            labels.push(class as i64);
        }
        class_names.push(dir.file_name().map_or_else(|| class.to_string(), |n| n.to_string_lossy().into_owned()));
    }
    let n = labels.len() as i64;
    let images = Tensor::from_slice(&pixels).view([n, config.channels as i64, h as i64, w as i64]) / 255.0;
    ImageDataset::new(name, images, labels, class_names)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

/// Interleaved `[H, W, C]` bytes → planar `[C, H, W]`.
fn to_channels_first(interleaved: &[u8], channels: usize) -> impl Iterator<Item = u8> + '_ {
    (0..channels).flat_map(move |c| interleaved.iter().skip(c).step_by(channels).copied())
}
