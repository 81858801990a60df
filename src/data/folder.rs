//! Image files on disk, decoded on demand: an ImageFolder directory (one sub-folder per class),
//! the `train/` + `val/` + `test/` layout of original splits, or a list file of `path label`
//! lines. Opening indexes the files and decodes nothing; a batch decodes its images, resizes
//! them with the folder's transform and returns them as `uint8`. Of a JPEG, a batch decodes
//! only the part its crop needs ([`super::jpeg_region`]).
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tch::Tensor;

use super::image_file::{check_header, check_scan, damaged, decode_bytes, MAX_DECODED_PIXELS};
use super::jpeg_region::{reach_of_resize, Decoded, RegionDecoder};
use super::split::{Split, SplitConfig};
use crate::error::{Error, Result};

/// How a folder's images become the model's fixed-size input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderTransform {
    /// Every image resized to `size` (aspect not kept), the same in training and evaluation.
    #[default]
    Resize,
    /// torchvision's ImageNet protocol: `RandomResizedCrop(size)` (area 8–100 %, aspect 3/4–4/3)
    /// for training; `Resize(size · 256/224)` of the shorter side then `CenterCrop(size)` for
    /// evaluation. (The horizontal flip is the run's `flip` option.)
    Imagenet,
}

impl std::str::FromStr for FolderTransform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "resize" => Ok(FolderTransform::Resize),
            "imagenet" => Ok(FolderTransform::Imagenet),
            _ => Err(Error::invalid_option("transform", format!("expected \"resize\" or \"imagenet\", got \"{s}\""))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageFolderConfig {
    /// Images come out `(height, width)`.
    pub size: (u32, u32),
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    pub transform: FolderTransform,
    /// Threads decoding batches (0: one per core).
    #[serde(skip)]
    pub workers: usize,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        ImageFolderConfig { size: (64, 64), channels: 3, transform: FolderTransform::Resize, workers: 0 }
    }
}

pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Which transform a batch gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deterministic (validation, test, activations).
    Eval,
    /// Random crops drawn per image from `(seed, epoch, image index)`, so a batch is the same
    /// whichever worker makes it.
    Train { seed: u64, epoch: u64 },
}

/// The files of a data set, in label order, with how to decode them.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub files: Vec<PathBuf>,
    pub config: ImageFolderConfig,
    /// Where the files may be read from (the script's access when the data set was opened;
    /// batches decode on other threads).
    pub access: crate::input::Access,
}

impl ImageFiles {
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn shape(&self) -> [i64; 3] {
        [self.config.channels as i64, self.config.size.0 as i64, self.config.size.1 as i64]
    }

    /// Decodes the images at `indices` into `uint8 [n, C, H, W]`, each mirrored left–right
    /// where `flips` (empty, or one per index) says so.
    pub fn load(&self, indices: &[i64], mode: Mode, flips: &[bool]) -> Result<Tensor> {
        self.load_timed(indices, mode, flips, &mut Scratch::default(), None)
    }

    /// [`load`](Self::load) with a worker's reused buffers, adding each stage's time to
    /// `times` when given (`huelab bench data`'s breakdown times this same code).
    pub fn load_timed(&self, indices: &[i64], mode: Mode, flips: &[bool], scratch: &mut Scratch, mut times: Option<&mut StageTimes>) -> Result<Tensor> {
        if !flips.is_empty() && flips.len() != indices.len() {
            return Err(Error::msg(format!("{} flips drawn for {} images", flips.len(), indices.len())));
        }
        let [c, h, w] = self.shape();
        let per_image = (c * h * w) as usize;
        // The pixels are laid out straight into the batch tensor's storage (no buffer of the
        // same size copied into it afterwards).
        let batch = Tensor::f_empty([indices.len() as i64, c, h, w], (tch::Kind::Uint8, tch::Device::Cpu))?;
        if indices.is_empty() {
            return Ok(batch);
        }
        // SAFETY: `batch` was just allocated by libtorch as a contiguous uint8 CPU tensor of
        // `per_image × indices.len()` elements; no other handle to its storage exists while
        // `pixels` lives, and every byte is written below before the tensor is returned (each
        // slot by `to_channels_first`, from a resized image of exactly `per_image` bytes).
        let pixels = unsafe { std::slice::from_raw_parts_mut(batch.data_ptr() as *mut u8, per_image * indices.len()) };
        for (k, (slot, &i)) in pixels.chunks_exact_mut(per_image).zip(indices).enumerate() {
            let mut clock = StageClock::start(times.as_deref_mut());
            let path = self.path(i)?;
            let bytes = crate::input::read_with(path, crate::input::limits::IMAGE, &self.access)?;
            clock.lap(Stage::Read);
            let rng = match mode {
                Mode::Eval => None,
                Mode::Train { seed, epoch } => Some(image_rng(seed, epoch, i)),
            };
            let (format, width, height) = check_header(path, &bytes)?;
            let data_error = |message| Error::Data { path: path.clone(), message };
            if format == image::ImageFormat::Jpeg {
                let crop = crop_of(width, height, &self.config, rng);
                let (h, w) = self.config.size;
                let reach = reach_of_resize(crop, (w, h), (width, height));
                decode_jpeg_part(scratch, &bytes, Some(reach)).map_err(|e| damaged(path, e))?;
                clock.lap(Stage::Decode);
                resize_decoded(scratch, crop, &self.config).map_err(data_error)?;
            } else {
                let image = decode_bytes(path, &bytes, format, (width, height))?;
                clock.lap(Stage::Decode);
                transform(scratch, image, &self.config, rng).map_err(data_error)?;
            }
            clock.lap(Stage::Resize);
            if scratch.resized.len() != per_image {
                return Err(Error::msg(format!("{}: resized to {} bytes, expected {per_image} ({c}×{h}×{w})", path.display(), scratch.resized.len())));
            }
            to_channels_first(&scratch.resized, c as usize, w as usize, flips.get(k).copied().unwrap_or(false), slot);
            clock.lap(Stage::Layout);
        }
        Ok(batch)
    }

    /// The image at `index` read and decoded whole by the decoder batches use (no crop or
    /// resize): what decoding alone costs.
    pub fn read_and_decode(&self, index: usize, scratch: &mut Scratch) -> Result<()> {
        let path = self.path(index as i64)?;
        let bytes = crate::input::read_with(path, crate::input::limits::IMAGE, &self.access)?;
        let (format, width, height) = check_header(path, &bytes)?;
        if format == image::ImageFormat::Jpeg {
            decode_jpeg_part(scratch, &bytes, None).map_err(|e| damaged(path, e))
        } else {
            decode_bytes(path, &bytes, format, (width, height)).map(drop)
        }
    }

    fn path(&self, index: i64) -> Result<&PathBuf> {
        usize::try_from(index).ok().and_then(|i| self.files.get(i)).ok_or_else(|| Error::msg(format!("image index {index} is out of range for {} images", self.files.len())))
    }

    /// SHA-256 of every file's relative path, label and bytes (read one file at a time), with
    /// the transform. Every file's header is checked on the way (format, dimensions within
    /// bounds, a JPEG's end marker), so a broken file is an error when the data set opens,
    /// not hours into training.
    pub fn content_hash(&self, labels: &[i64], root: &Path) -> Result<String> {
        let mut hasher = Sha256::new();
        let progress = crate::progress::images_bar("indexing", self.files.len());
        for (file, label) in self.files.iter().zip(labels) {
            let relative = file.strip_prefix(root).unwrap_or(file);
            hasher.update(relative.to_string_lossy().as_bytes());
            hasher.update(label.to_le_bytes());
            let bytes = crate::input::read_with(file, crate::input::limits::IMAGE, &self.access)?;
            check_header(file, &bytes)?;
            check_scan(file, &bytes)?;
            hasher.update(&bytes);
            progress.inc(1);
        }
        progress.finish_and_clear();
        hasher.update(format!("{:?}", (self.config.size, self.config.channels, self.config.transform)).as_bytes());
        Ok(format!("{:x}", hasher.finalize()))
    }
}

/// The generator of one image's random crop in one epoch.
fn image_rng(seed: u64, epoch: u64, index: i64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6875_655f_6372_6f70);
    rng.set_stream(epoch.wrapping_mul(0x1_0000_0000).wrapping_add(index as u64));
    rng
}

/// The crop `(x, y, width, height)` of an image that its transform resizes to the output.
fn crop_of(width: u32, height: u32, config: &ImageFolderConfig, rng: Option<ChaCha8Rng>) -> (f64, f64, f64, f64) {
    let (h, w) = config.size;
    match (config.transform, rng) {
        (FolderTransform::Resize, _) => (0.0, 0.0, width as f64, height as f64),
        (FolderTransform::Imagenet, None) => {
            // Resize(s · 256/224) of the shorter side then CenterCrop(h, w): the centred part of
            // the image that becomes the output.
            let target = h.max(w) as f64 * 256.0 / 224.0;
            let scale = target / width.min(height).max(1) as f64;
            let (cw, ch) = ((w as f64 / scale).min(width as f64), (h as f64 / scale).min(height as f64));
            ((width as f64 - cw) / 2.0, (height as f64 - ch) / 2.0, cw, ch)
        }
        (FolderTransform::Imagenet, Some(mut rng)) => {
            let (x, y, cw, ch) = random_resized_crop(width, height, &mut rng);
            (x as f64, y as f64, cw as f64, ch as f64)
        }
    }
}

/// What one worker reuses from image to image: the resizer (its coefficient and row buffers),
/// the JPEG decoder and its pixels, and the resized pixels.
pub struct Scratch {
    resizer: fast_image_resize::Resizer,
    jpeg: Option<RegionDecoder>,
    decoded: Decoded,
    resized: Vec<u8>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { resizer: fast_image_resize::Resizer::new(), jpeg: None, decoded: Decoded::default(), resized: Vec::new() }
    }
}

/// Decodes the part `reach` of a JPEG (the whole image for `None`) into `scratch.decoded`.
fn decode_jpeg_part(scratch: &mut Scratch, bytes: &[u8], reach: Option<super::jpeg_region::Rect>) -> std::result::Result<(), String> {
    let decoder = match &mut scratch.jpeg {
        Some(decoder) => decoder,
        jpeg @ None => jpeg.insert(RegionDecoder::new(MAX_DECODED_PIXELS)?),
    };
    let header = decoder.header(bytes)?;
    decoder.decode(bytes, &header, reach, &mut scratch.decoded)
}

/// The crop `(x, y, width, height)` of the image (its coordinates) of the part in
/// `scratch.decoded`, resized to the folder's size as [`transform`] does. The decoded pixels
/// are read in place when they have the folder's channels (a worker's buffers are reused from
/// image to image); otherwise converted as `image` converts.
fn resize_decoded(scratch: &mut Scratch, (x, y, cw, ch): (f64, f64, f64, f64), config: &ImageFolderConfig) -> std::result::Result<(), String> {
    let region = scratch.decoded.region.ok_or("no pixels decoded")?;
    let crop = (x - f64::from(region.x), y - f64::from(region.y), cw, ch);
    let decoded_channels = if scratch.decoded.grey { 1 } else { 3 };
    if decoded_channels != config.channels {
        let pixels = std::mem::take(&mut scratch.decoded.pixels);
        let part = if scratch.decoded.grey {
            image::GrayImage::from_raw(region.width, region.height, pixels).map(DynamicImage::ImageLuma8)
        } else {
            image::RgbImage::from_raw(region.width, region.height, pixels).map(DynamicImage::ImageRgb8)
        };
        let part = part.ok_or("the decoder returned fewer pixels than the region holds")?;
        return resize_crop(scratch, part, crop, config);
    }
    let source = fast_image_resize::images::ImageRef::new(region.width, region.height, &scratch.decoded.pixels, pixel_type(config.channels)).map_err(|e| format!("cannot resize the image: {e}"))?;
    resize_into(&mut scratch.resizer, &mut scratch.resized, &source, crop, config)
}

/// The image cropped and resized (bilinear, antialiased) to the folder's size, as interleaved
/// `[H, W, C]` bytes in `scratch.resized`.
fn transform(scratch: &mut Scratch, image: DynamicImage, config: &ImageFolderConfig, rng: Option<ChaCha8Rng>) -> std::result::Result<(), String> {
    let crop = crop_of(image.width(), image.height(), config, rng);
    resize_crop(scratch, image, crop, config)
}

/// The crop `(x, y, width, height)` of `image` resized to the folder's size, in the folder's
/// channels (a colour image made grey as `image` does it), into `scratch.resized`.
fn resize_crop(scratch: &mut Scratch, image: DynamicImage, crop: (f64, f64, f64, f64), config: &ImageFolderConfig) -> std::result::Result<(), String> {
    let (width, height) = (image.width(), image.height());
    let raw = if config.channels == 1 { image.into_luma8().into_raw() } else { image.into_rgb8().into_raw() };
    let source = fast_image_resize::images::ImageRef::new(width, height, &raw, pixel_type(config.channels)).map_err(|e| format!("cannot resize the image: {e}"))?;
    resize_into(&mut scratch.resizer, &mut scratch.resized, &source, crop, config)
}

fn pixel_type(channels: u8) -> fast_image_resize::PixelType {
    if channels == 1 { fast_image_resize::PixelType::U8 } else { fast_image_resize::PixelType::U8x3 }
}

/// `source`'s crop `(x, y, width, height)` resized (bilinear, antialiased) to the folder's size
/// into `resized`, as interleaved `[H, W, C]` bytes.
fn resize_into(resizer: &mut fast_image_resize::Resizer, resized: &mut Vec<u8>, source: &fast_image_resize::images::ImageRef, (x, y, cw, ch): (f64, f64, f64, f64), config: &ImageFolderConfig) -> std::result::Result<(), String> {
    use fast_image_resize::{images::Image, FilterType, ResizeAlg, ResizeOptions};
    let (h, w) = config.size;
    resized.resize(h as usize * w as usize * usize::from(config.channels), 0);
    let mut out = Image::from_slice_u8(w, h, resized, pixel_type(config.channels)).map_err(|e| format!("cannot resize the image: {e}"))?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)).crop(x, y, cw, ch);
    resizer.resize(source, &mut out, &options).map_err(|e| format!("cannot resize the image: {e}"))
}

/// torchvision's evaluation transform: `Resize(s · 256/224)` of the shorter side (bilinear with
/// antialiasing), then `CenterCrop` to `(h, w)`; `s` the larger of `h` and `w`.
pub fn resize_center_crop(image: &DynamicImage, (h, w): (u32, u32)) -> DynamicImage {
    let target = (h.max(w) as f64 * 256.0 / 224.0).round() as u32;
    let (iw, ih) = (image.width().max(1), image.height().max(1));
    let scale = target as f64 / iw.min(ih) as f64;
    let (rw, rh) = (((iw as f64 * scale).round() as u32).max(w), ((ih as f64 * scale).round() as u32).max(h));
    let resized = image.resize_exact(rw, rh, FilterType::Triangle);
    resized.crop_imm((rw - w) / 2, (rh - h) / 2, w, h)
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// `(x, y, width, height)` of the crop.
fn random_resized_crop(width: u32, height: u32, rng: &mut ChaCha8Rng) -> (u32, u32, u32, u32) {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let area = w * h;
    let (log_lo, log_hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..1.0);
        let ratio = rng.random_range(log_lo..log_hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=(w - cw) as u32);
            let y = rng.random_range(0..=(h - ch) as u32);
            return (x, y, cw as u32, ch as u32);
        }
    }
    // Fallback: the whole image cropped to the nearest allowed aspect ratio, centred.
    let ratio = w / h;
    let (cw, ch) = if ratio < 3.0 / 4.0 {
        (w, (w / (3.0 / 4.0)).round())
    } else if ratio > 4.0 / 3.0 {
        ((h * 4.0 / 3.0).round(), h)
    } else {
        (w, h)
    };
    (((w - cw) / 2.0) as u32, ((h - ch) / 2.0) as u32, cw.max(1.0) as u32, ch.max(1.0) as u32)
}

/// Interleaved `[H, W, C]` bytes (rows `width` pixels long) → planar `[C, H, W]` in `out`,
/// mirrored left–right when `flip`: the augmentation's flip done in the same pass.
fn to_channels_first(interleaved: &[u8], channels: usize, width: usize, flip: bool, out: &mut [u8]) {
    let plane = interleaved.len() / channels;
    let row_bytes = width * channels;
    for (y, row) in interleaved.chunks_exact(row_bytes).enumerate() {
        for c in 0..channels {
            let target = &mut out[c * plane + y * width..c * plane + (y + 1) * width];
            let source = row[c..].iter().step_by(channels);
            if flip {
                target.iter_mut().rev().zip(source).for_each(|(t, &v)| *t = v);
            } else {
                target.iter_mut().zip(source).for_each(|(t, &v)| *t = v);
            }
        }
    }
}

/// The stages of decoding one image file, as `huelab bench data` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading the file.
    Read,
    /// Checking the header and decoding to RGB (or grey) pixels.
    Decode,
    /// Cropping and resizing to the output size.
    Resize,
    /// Interleaved → planar `[C, H, W]` bytes, with the flip.
    Layout,
}

/// Time spent in each [`Stage`], summed over images.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub read: std::time::Duration,
    pub decode: std::time::Duration,
    pub resize: std::time::Duration,
    pub layout: std::time::Duration,
}

/// Laps of one image through the stages; does nothing without a [`StageTimes`] to add to.
struct StageClock<'a> {
    times: Option<&'a mut StageTimes>,
    last: std::time::Instant,
}

impl<'a> StageClock<'a> {
    fn start(times: Option<&'a mut StageTimes>) -> Self {
        StageClock { times, last: std::time::Instant::now() }
    }

    fn lap(&mut self, stage: Stage) {
        let Some(times) = self.times.as_deref_mut() else { return };
        let now = std::time::Instant::now();
        let spent = now - self.last;
        self.last = now;
        match stage {
            Stage::Read => times.read += spent,
            Stage::Decode => times.decode += spent,
            Stage::Resize => times.resize += spent,
            Stage::Layout => times.layout += spent,
        }
    }
}

pub(super) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

/// A file with an image's extension. Not only regular files: a FIFO or a broken link named
/// `x.png` is an error when it is read, not silently left out of the data set.
fn is_image(path: &Path) -> bool {
    !path.is_dir() && path.extension().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The images of an ImageFolder directory: class sub-folders sorted by name, images sorted
/// inside each; `(files, labels, class names)`.
pub fn index_class_folders(root: &Path) -> Result<(Vec<PathBuf>, Vec<i64>, Vec<String>)> {
    let class_dirs: Vec<PathBuf> = read_dir_sorted(root)?.into_iter().filter(|p| p.is_dir() && !is_hidden(p)).collect();
    if class_dirs.len() < 2 {
        return Err(Error::Data { path: root.to_owned(), message: format!("an ImageFolder needs at least 2 class sub-folders, found {}", class_dirs.len()) });
    }
    let mut files = vec![];
    let mut labels = vec![];
    let mut class_names = vec![];
    for (class, dir) in class_dirs.iter().enumerate() {
        let images: Vec<PathBuf> = read_dir_sorted(dir)?.into_iter().filter(|p| is_image(p)).collect();
        if images.is_empty() {
            return Err(Error::Data { path: dir.clone(), message: format!("class folder has no {} images", IMAGE_EXTENSIONS.join("/")) });
        }
        labels.extend(std::iter::repeat_n(class as i64, images.len()));
        files.extend(images);
        class_names.push(dir.file_name().map_or_else(|| class.to_string(), |n| n.to_string_lossy().into_owned()));
    }
    Ok((files, labels, class_names))
}

/// The parts of the `train/` + `val/` (or `valid/`) + `test/` layout that `root` has, if it has
/// `train/` and `test/`.
pub fn split_folders(root: &Path) -> Option<[Option<PathBuf>; 3]> {
    let part = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
    let (train, test) = (part(&["train"])?, part(&["test"])?);
    Some([Some(train), part(&["val", "valid", "validation"]), Some(test)])
}

/// The three part folders as one data set: files of train, then val, then test, with the same
/// classes in each (the union of their class folders), and the split they came with.
pub fn index_split_folders(root: &Path, parts: &[Option<PathBuf>; 3]) -> Result<(Vec<PathBuf>, Vec<i64>, Vec<String>, Split)> {
    // Every part must have the same class folders: a test/ whose classes differ from train/'s
    // would be scored against labels the model never learned, or under other indices.
    let classes_of = |dir: &Path| -> Result<Vec<String>> {
        let mut names: Vec<String> = read_dir_sorted(dir)?.into_iter().filter(|p| p.is_dir() && !is_hidden(p)).map(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
        names.sort();
        Ok(names)
    };
    let first = parts.iter().flatten().next().ok_or_else(|| Error::Data { path: root.to_owned(), message: "has no train/ folder".into() })?;
    let class_names = classes_of(first)?;
    for dir in parts.iter().flatten().skip(1) {
        let other = classes_of(dir)?;
        if other != class_names {
            let only = |a: &[String], b: &[String]| a.iter().filter(|n| !b.contains(n)).cloned().collect::<Vec<_>>().join(", ");
            return Err(Error::Data {
                path: dir.clone(),
                message: format!(
                    "has other class folders than {}: only here [{}], missing here [{}]; every part of a split needs the same classes",
                    first.display(),
                    only(&other, &class_names),
                    only(&class_names, &other)
                ),
            });
        }
    }
    if class_names.len() < 2 {
        return Err(Error::Data { path: root.to_owned(), message: format!("the train/ and test/ folders need at least 2 class sub-folders, found {}", class_names.len()) });
    }
    let mut files = vec![];
    let mut labels = vec![];
    let mut indices: [Vec<i64>; 3] = Default::default();
    for (part, dir) in parts.iter().enumerate() {
        let Some(dir) = dir else { continue };
        for (class, name) in class_names.iter().enumerate() {
            let class_dir = dir.join(name);
            if !class_dir.is_dir() {
                continue;
            }
            for image in read_dir_sorted(&class_dir)?.into_iter().filter(|p| is_image(p)) {
                indices[part].push(files.len() as i64);
                files.push(image);
                labels.push(class as i64);
            }
        }
        if indices[part].is_empty() {
            return Err(Error::Data { path: dir.clone(), message: format!("has no {} images in class sub-folders", IMAGE_EXTENSIONS.join("/")) });
        }
    }
    let [train, val, test] = indices;
    let n = files.len() as f64;
    let config = SplitConfig { train: train.len() as f64 / n, val: val.len() as f64 / n, test: test.len() as f64 / n, seed: 0 };
    Ok((files, labels, class_names, Split::new(config, train, val, test)))
}

/// A list file of `relative/path label` lines (`#` comments and blank lines skipped); the label
/// is a class name or a class index, and without one the file's parent folder names its class.
/// Paths are relative to `root`. Class names sort; indices must run 0..M.
pub fn index_list_file(root: &Path, list: &Path) -> Result<(Vec<PathBuf>, Vec<i64>, Vec<String>)> {
    let text = crate::input::read_text(list, crate::input::limits::LIST)?;
    let bad = |line: usize, message: String| Error::Data { path: list.to_owned(), message: format!("line {line}: {message}") };
    let mut entries: Vec<(PathBuf, String)> = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, label) = match line.rsplit_once(char::is_whitespace) {
            Some((p, l)) => (p.trim(), l.trim().to_owned()),
            None => {
                let parent = Path::new(line).parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
                (line, parent.ok_or_else(|| bad(n + 1, format!("'{line}' has no label and no class folder")))?)
            }
        };
        let file = root.join(path);
        if std::fs::symlink_metadata(&file).is_err() {
            return Err(bad(n + 1, format!("{} does not exist", file.display())));
        }
        if !is_image(&file) {
            return Err(bad(n + 1, format!("{} is not a {} file", file.display(), IMAGE_EXTENSIONS.join("/"))));
        }
        entries.push((file, label));
    }
    if entries.is_empty() {
        return Err(Error::Data { path: list.to_owned(), message: "lists no images".into() });
    }
    // Labels are all class indices or all class names: a number that is not an index (-1, 2³²,
    // 0.5) or indices mixed with names cannot be right.
    let numeric = entries.iter().all(|(_, l)| l.parse::<u32>().is_ok());
    if !numeric {
        let looks_numeric = |l: &str| l.parse::<f64>().is_ok() || l.parse::<i128>().is_ok();
        let all_numeric = entries.iter().all(|(_, l)| looks_numeric(l));
        // All numbers: the first that is not an index; numbers among names: the first number.
        let culprit = |l: &str| if all_numeric { l.parse::<u32>().is_err() } else { looks_numeric(l) };
        let lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'));
        if let Some(((n, _), (_, label))) = lines.zip(&entries).find(|(_, (_, l))| culprit(l)) {
            let why = if all_numeric { "a class index is a whole number from 0 to 4294967295" } else { "the file mixes class indices with class names" };
            return Err(bad(n + 1, format!("label '{label}' is not a class index; {why}")));
        }
    }
    let mut class_names: Vec<String> = entries.iter().map(|(_, l)| l.clone()).collect();
    class_names.sort_by_key(|l| if numeric { (l.parse::<u32>().unwrap_or(0), String::new()) } else { (0, l.clone()) });
    class_names.dedup();
    if numeric {
        if let Some((k, missing)) = class_names.iter().enumerate().find(|(k, l)| l.parse::<usize>().ok() != Some(*k)) {
            return Err(Error::Data { path: list.to_owned(), message: format!("class indices must run 0..{}; index {k} is missing (found {missing})", class_names.len()) });
        }
    }
    if class_names.len() < 2 {
        return Err(Error::Data { path: list.to_owned(), message: format!("a data set needs at least 2 classes, the list names {}", class_names.len()) });
    }
    let labels = entries.iter().map(|(_, l)| class_names.iter().position(|c| c == l).unwrap_or(0) as i64).collect();
    Ok((entries.into_iter().map(|(f, _)| f).collect(), labels, class_names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::jpeg_region::tests::{compress, photo};
    use turbojpeg_sys as tj;

    fn configs() -> Vec<ImageFolderConfig> {
        let config = |size, channels, transform| ImageFolderConfig { size, channels, transform, workers: 1 };
        vec![
            config((224, 224), 3, FolderTransform::Imagenet),
            config((224, 224), 1, FolderTransform::Imagenet),
            config((48, 32), 3, FolderTransform::Imagenet),
            config((64, 64), 3, FolderTransform::Resize),
            config((600, 700), 3, FolderTransform::Imagenet),
        ]
    }

    /// Each crop resized from the part decoded and from the whole image decoded: the same bytes.
    #[test]
    fn a_jpeg_crop_decoded_in_part_resizes_to_the_same_bytes_as_from_the_whole_image() {
        for (width, height, subsampling) in [(500, 375, tj::TJSAMP_TJSAMP_420), (375, 500, tj::TJSAMP_TJSAMP_444), (333, 251, tj::TJSAMP_TJSAMP_GRAY), (97, 61, tj::TJSAMP_TJSAMP_422)] {
            let jpeg = compress(&photo(width, height, 5), width, height, subsampling, false);
            for config in configs() {
                for index in 0..25 {
                    let rng = (index > 0).then(|| image_rng(3, 2, index));
                    let crop = crop_of(width, height, &config, rng);
                    let (h, w) = config.size;
                    let mut whole = Scratch::default();
                    decode_jpeg_part(&mut whole, &jpeg, None).unwrap();
                    resize_decoded(&mut whole, crop, &config).unwrap();
                    let mut part = Scratch::default();
                    let reach = reach_of_resize(crop, (w, h), (width, height));
                    decode_jpeg_part(&mut part, &jpeg, Some(reach)).unwrap();
                    let area = |r: Option<crate::data::jpeg_region::Rect>| r.map_or(0, |r| r.width * r.height);
                    assert!(area(part.decoded.region) <= area(whole.decoded.region));
                    resize_decoded(&mut part, crop, &config).unwrap();
                    assert!(whole.resized == part.resized, "{width}×{height} subsampling {subsampling}, {config:?}, crop {crop:?}, reach {reach:?}");
                }
            }
        }
    }

    /// libjpeg-turbo instead of zune-jpeg: the batches' pixels differ by the two decoders'
    /// rounding (inverse DCT, chroma upsampling), no more.
    #[test]
    fn the_decoder_change_moves_pixels_by_rounding_only() {
        let (width, height) = (500, 375);
        let jpeg = compress(&photo(width, height, 9), width, height, tj::TJSAMP_TJSAMP_420, false);
        let config = ImageFolderConfig { size: (224, 224), channels: 3, transform: FolderTransform::Imagenet, workers: 1 };
        let crop = crop_of(width, height, &config, None);
        let mut turbo = Scratch::default();
        decode_jpeg_part(&mut turbo, &jpeg, Some(reach_of_resize(crop, (224, 224), (width, height)))).unwrap();
        resize_decoded(&mut turbo, crop, &config).unwrap();
        let mut zune = Scratch::default();
        let (format, w, h) = check_header(Path::new("photo.jpg"), &jpeg).unwrap();
        let image = decode_bytes(Path::new("photo.jpg"), &jpeg, format, (w, h)).unwrap();
        transform(&mut zune, image, &config, None).unwrap();
        let diffs: Vec<i32> = turbo.resized.iter().zip(&zune.resized).map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs()).collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = diffs.iter().copied().max().unwrap();
        assert!(max <= 8 && mean < 1.0, "max {max}, mean {mean}");
    }
}
