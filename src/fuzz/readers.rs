//! The readers of users' files that the fuzz campaign attacks: for each, real seed inputs made
//! by huelab's own writers (or small committed fixtures made by PyTorch), and the call a user's
//! file goes through, down to the numbers it produces.
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};
use ndarray_npy::write_npy;
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::mutate::FileKind;
use crate::activations::Activations;
use crate::data::{digits, load_idx, load_image_folder, load_image_list, load_npy, FolderTransform, ImageDataset, ImageFolderConfig, Mode, NpyLayout, SplitConfig};
use crate::error::{Error, Result};
use crate::extract::Extractor;
use crate::knn::{classify, ClassifyConfig, MemoryConfig, PixelMemory};
use crate::train::{train, TrainConfig};

const TINY_CONV: &[u8] = include_bytes!("../../tests/fixtures/tiny_conv.pt");
const TINY_LEGACY_PTH: &[u8] = include_bytes!("../../tests/fixtures/tiny_legacy.pth");
const TINY_ZIP_PTH: &[u8] = include_bytes!("../../tests/fixtures/tiny_zip.pth");

/// A reader of users' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reader {
    /// `load_npy`: image and label arrays.
    Npy,
    /// `load_activations`: activation maps and labels.
    Activations,
    /// `load_idx`: IDX images and labels, raw and gzipped.
    Idx,
    /// One PNG or JPEG image.
    Image,
    /// An ImageFolder directory, decoded.
    ImageFolder,
    /// A list file of `path label` lines.
    ImageList,
    /// `torch.save` state dicts, legacy and zip format.
    Pth,
    /// A safetensors state dict.
    Safetensors,
    /// `checkpoint.json` and its tensors, resumed.
    Checkpoint,
    /// A saved model (`model.json` + `model.safetensors`), extracting activations.
    Model,
    /// A pixel memory directory, classifying queries.
    Memory,
    /// A TorchScript module, extracting activations.
    Torchscript,
    /// An ImageNet class-name file (`imagenet_classes.js`), as `huelab predict --classes` reads it.
    ClassNames,
    /// A cluster run's `plan.json`, as `huelab status` and `--resume` read it.
    Plan,
    /// Not a file reader: every function bound into Rhai, called with bad arguments
    /// ([`super::surface`]).
    Script,
}

impl Reader {
    pub const ALL: &'static [Reader] = &[
        Reader::Npy,
        Reader::Activations,
        Reader::Idx,
        Reader::Image,
        Reader::ImageFolder,
        Reader::ImageList,
        Reader::Pth,
        Reader::Safetensors,
        Reader::Checkpoint,
        Reader::Model,
        Reader::Memory,
        Reader::Torchscript,
        Reader::ClassNames,
        Reader::Plan,
        Reader::Script,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reader::Npy => "npy",
            Reader::Activations => "activations",
            Reader::Idx => "idx",
            Reader::Image => "image",
            Reader::ImageFolder => "image-folder",
            Reader::ImageList => "image-list",
            Reader::Pth => "pth",
            Reader::Safetensors => "safetensors",
            Reader::Checkpoint => "checkpoint",
            Reader::Model => "model",
            Reader::Memory => "memory",
            Reader::Torchscript => "torchscript",
            Reader::ClassNames => "class-names",
            Reader::Plan => "plan",
            Reader::Script => "script",
        }
    }

    /// How many different seed inputs the reader has (case `i` mutates seed `i % variants`).
    pub fn variants(self) -> usize {
        match self {
            Reader::Npy => 3,
            Reader::Idx => 2,
            Reader::Image => 3,
            Reader::Pth => 2,
            _ => 1,
        }
    }

    /// Writes seed input `variant` under `dir` (which exists and is empty).
    pub fn make_seed(self, variant: usize, dir: &Path) -> Result<SeedInput> {
        match self {
            Reader::Npy => seed_npy(variant, dir),
            Reader::Activations => {
                let acts = random_activations(10, 3)?;
                acts.save_npy(&dir.join("maps.npy"), &dir.join("labels.npy"))?;
                Ok(SeedInput { entry: dir.to_owned(), files: vec![file("maps.npy", FileKind::Binary), file("labels.npy", FileKind::Binary)] })
            }
            Reader::Idx => seed_idx(variant, dir),
            Reader::Image => {
                let name = ["image.png", "image.jpg", "grey.png"][variant % 3];
                write_image(&dir.join(name), 17, 11, variant == 2)?;
                Ok(SeedInput { entry: dir.join(name), files: vec![file(name, FileKind::Binary)] })
            }
            Reader::ImageFolder | Reader::ImageList => seed_image_folder(self == Reader::ImageList, dir),
            Reader::Pth => {
                let (name, bytes) = if variant == 0 { ("state.pth", TINY_LEGACY_PTH) } else { ("state_zip.pth", TINY_ZIP_PTH) };
                std::fs::write(dir.join(name), bytes).map_err(|e| Error::io(dir.join(name), e))?;
                Ok(SeedInput { entry: dir.join(name), files: vec![file(name, FileKind::Binary)] })
            }
            Reader::Safetensors => {
                let tensors = [
                    ("conv.weight".to_owned(), Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu))),
                    ("bn.num_batches_tracked".to_owned(), Tensor::from_slice(&[7i64])),
                    ("half".to_owned(), Tensor::ones([5], (Kind::Half, Device::Cpu))),
                ];
                let path = dir.join("state.safetensors");
                Tensor::write_safetensors(&tensors, &path)?;
                Ok(SeedInput { entry: path, files: vec![file("state.safetensors", FileKind::Binary)] })
            }
            Reader::Checkpoint | Reader::Model => {
                let checkpoint = dir.join("run");
                let (data, split) = tiny_training_data()?;
                train(&data, &split, &tiny_train_config(&checkpoint, 1, false)?)?;
                let files = match self {
                    Reader::Checkpoint => vec![file("run/checkpoint.json", FileKind::Json), file("run/checkpoint-epoch-1.safetensors", FileKind::Binary)],
                    _ => vec![file("run/model.json", FileKind::Json), file("run/model.safetensors", FileKind::Binary)],
                };
                Ok(SeedInput { entry: checkpoint, files })
            }
            Reader::Memory => seed_memory(dir),
            Reader::Torchscript => {
                std::fs::write(dir.join("module.pt"), TINY_CONV).map_err(|e| Error::io(dir.join("module.pt"), e))?;
                Ok(SeedInput { entry: dir.join("module.pt"), files: vec![file("module.pt", FileKind::Binary)] })
            }
            Reader::ClassNames => {
                let text = "// ImageNet classes, as TensorFlow.js lists them\nexport const IMAGENET_CLASSES = {\n  0: 'tench, Tinca tinca',\n  1: 'goldfish, Carassius auratus',\n  2: 'great white shark, white shark, man-eater, man-eating shark, ' +\n      'Carcharodon carcharias',\n  3: 'tiger shark, Galeocerdo cuvieri',\n};\n";
                std::fs::write(dir.join("imagenet_classes.js"), text).map_err(|e| Error::io(dir.join("imagenet_classes.js"), e))?;
                Ok(SeedInput { entry: dir.join("imagenet_classes.js"), files: vec![file("imagenet_classes.js", FileKind::Text)] })
            }
            Reader::Plan => seed_plan(dir),
            // The surface's scripts use this module (`tiny.pt`) for their extractor.
            Reader::Script => {
                std::fs::write(dir.join("tiny.pt"), TINY_CONV).map_err(|e| Error::io(dir.join("tiny.pt"), e))?;
                Ok(SeedInput { entry: dir.join(super::surface::SCRIPT_NAME), files: vec![] })
            }
        }
    }

    /// Reads `input` as a user's file would be read, through to numbers.
    pub fn read(self, input: &SeedInput) -> Result<String> {
        let entry = &input.entry;
        match self {
            Reader::Npy => {
                let data = load_npy("fuzz", &entry.join("images.npy"), &entry.join("labels.npy"), NpyLayout::Auto, None)?;
                Ok(format!("{} images {:?}", data.len(), data.image_shape()))
            }
            Reader::Activations => {
                let acts = Activations::load_npy(&entry.join("maps.npy"), &entry.join("labels.npy"), None)?;
                Ok(format!("{} maps", acts.len()))
            }
            Reader::Idx => {
                let (images, labels) = if entry.join("images.idx").exists() || entry.join("labels.idx").exists() {
                    ("images.idx", "labels.idx")
                } else {
                    ("images.idx.gz", "labels.idx.gz")
                };
                let data = load_idx("fuzz", &entry.join(images), &entry.join(labels), None)?;
                Ok(format!("{} images {:?}", data.len(), data.image_shape()))
            }
            Reader::Image => {
                let image = crate::data::decode(entry)?;
                Ok(format!("{}×{}", image.width(), image.height()))
            }
            Reader::ImageFolder | Reader::ImageList => {
                // ImageNet's crops: of a JPEG, a batch decodes only the part a crop needs.
                let config = ImageFolderConfig { size: (8, 8), workers: 1, transform: FolderTransform::Imagenet, ..Default::default() };
                let data = match self {
                    Reader::ImageFolder => load_image_folder("fuzz", entry, config)?,
                    _ => load_image_list("fuzz", entry, &entry.join("list.txt"), config)?,
                };
                let all: Vec<i64> = (0..data.len() as i64).collect();
                let images = data.load_raw(&all, Mode::Eval)?;
                let cropped = data.load_raw(&all, Mode::Train { seed: 1, epoch: 0 })?;
                Ok(format!("{} images {:?}, cropped {:?}", data.len(), images.size(), cropped.size()))
            }
            Reader::Pth | Reader::Safetensors => {
                let tensors = crate::models::load_state_dict(entry)?;
                Ok(format!("{} tensors", tensors.len()))
            }
            Reader::Checkpoint => {
                let (data, split) = tiny_training_data()?;
                // The seed's run is complete: resuming it loads every tensor and evaluates.
                let report = train(&data, &split, &tiny_train_config(entry, 1, true)?)?;
                Ok(format!("resumed, {} epochs, test {:?}", report.epochs.len(), report.test.map(|t| t.accuracy)))
            }
            Reader::Model => {
                let extractor = Extractor::trained(entry, "bottleneck", Device::Cpu)?;
                let (data, _) = tiny_training_data()?;
                let acts = extractor.extract(&data.subset("fuzz", &[0, 1, 2, 3])?, 2)?;
                Ok(format!("{} maps", acts.len()))
            }
            Reader::Memory => {
                let mut memory = PixelMemory::load(entry, Device::Cpu)?;
                let queries = random_activations(4, 2)?;
                let (_, config) = ClassifyConfig::from_options(serde_json::Map::new())?;
                let (predictions, _) = classify(&mut memory, &queries, &config)?;
                Ok(format!("accuracy {}", predictions.accuracy))
            }
            Reader::Script => Err(Error::msg("the script surface runs scripts, not files (fuzz::run_child)")),
            Reader::ClassNames => {
                let names = crate::models::read_imagenet_classes(Some(entry))?;
                Ok(format!("{} classes, first '{}'", names.len(), names.first().map_or("", String::as_str)))
            }
            Reader::Plan => {
                let plan = crate::cluster::plan::Plan::load(entry)?;
                plan.check_same_units(&plan)?;
                Ok(format!("{} units, {} submissions, gathered {}", plan.units.len(), plan.submissions.len(), plan.gathered(entry)))
            }
            Reader::Torchscript => {
                let extractor = Extractor::torchscript(entry, None, Device::Cpu)?;
                let data = ImageDataset::new("fuzz", Tensor::rand([3, 1, 8, 8], (Kind::Float, Device::Cpu)), vec![0, 1, 0], vec!["a".into(), "b".into()])?;
                let acts = extractor.extract(&data, 2)?;
                Ok(format!("{} maps", acts.len()))
            }
        }
    }
}

/// A reader's input: the path handed to it, and the files of it that mutations may change
/// (relative to the case directory).
#[derive(Debug, Clone)]
pub struct SeedInput {
    pub entry: PathBuf,
    pub files: Vec<(PathBuf, FileKind)>,
}

impl SeedInput {
    /// The same input under another directory (a case's copy of the seed).
    pub fn moved(&self, from: &Path, to: &Path) -> SeedInput {
        let entry = self.entry.strip_prefix(from).map_or_else(|_| self.entry.clone(), |rel| to.join(rel));
        SeedInput { entry, files: self.files.clone() }
    }
}

fn write(dir: &Path, name: &str, f: impl FnOnce(&Path) -> std::result::Result<(), ndarray_npy::WriteNpyError>) -> Result<()> {
    let path = dir.join(name);
    f(&path).map_err(|e| Error::Data { path: path.clone(), message: e.to_string() })
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).and_then(|_| encoder.finish()).map_err(|e| Error::msg(format!("gzip: {e}")))
}

fn write_image(path: &Path, width: u32, height: u32, grey: bool) -> Result<()> {
    let rgb = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 20) as u8, (y * 25) as u8, ((x + y) * 9) as u8]));
    let image = if grey { image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(rgb).to_luma8()) } else { image::DynamicImage::ImageRgb8(rgb) };
    image.save(path).map_err(|e| Error::Data { path: path.to_owned(), message: format!("cannot write the seed image: {e}") })
}

/// Seeded random activations `[n, 4, 3, 3]` with labels cycling over `classes`.
fn random_activations(n: i64, classes: i64) -> Result<Activations> {
    tch::manual_seed(n * 31 + classes);
    let maps = Tensor::rand([n, 4, 3, 3], (Kind::Float, Device::Cpu));
    let labels = (0..n).map(|i| i % classes).collect();
    Activations::new(maps, labels, (0..classes).map(|c| c.to_string()).collect(), "fuzz")
}

/// 60 digits with their split: training one epoch of the small CNN on them takes a moment.
fn tiny_training_data() -> Result<(ImageDataset, crate::data::Split)> {
    let all = digits();
    let indices: Vec<i64> = (0..60).collect();
    let data = all.subset("digits-60", &indices)?;
    let split = data.split(SplitConfig::default())?;
    Ok((data, split))
}

fn tiny_train_config(checkpoint: &Path, epochs: u64, resume: bool) -> Result<TrainConfig> {
    let options = json!({
        "model": "small_cnn", "loss": "onehot+hue", "epochs": epochs, "batch_size": 16, "device": "cpu",
        "progress": false, "checkpoint": checkpoint.display().to_string(), "resume": resume, "seed": 1,
    });
    TrainConfig::from_options(options.as_object().cloned().unwrap_or_default())
}

/// A seed's file by its path under the case directory, and how it is mutated.
fn file(name: &str, kind: FileKind) -> (PathBuf, FileKind) {
    (PathBuf::from(name), kind)
}

fn seed_npy(variant: usize, dir: &Path) -> Result<SeedInput> {
    let labels = Array1::from_iter((0..12i64).map(|i| i % 3));
    match variant {
        0 => write(dir, "images.npy", |p| write_npy(p, &Array4::from_shape_fn((12, 6, 5, 3), |(n, y, x, c)| ((n * 31 + y * 7 + x * 3 + c) % 256) as u8)))?,
        1 => write(dir, "images.npy", |p| write_npy(p, &Array4::from_shape_fn((12, 1, 6, 5), |(n, _, y, x)| ((n + y + x) % 10) as f32 / 10.0)))?,
        _ => write(dir, "images.npy", |p| write_npy(p, &ndarray::Array3::from_shape_fn((12, 6, 5), |(n, y, x)| ((n + y * x) % 10) as f64 / 10.0)))?,
    }
    write(dir, "labels.npy", |p| write_npy(p, &labels))?;
    Ok(SeedInput { entry: dir.to_owned(), files: vec![file("images.npy", FileKind::Binary), file("labels.npy", FileKind::Binary)] })
}

fn seed_idx(variant: usize, dir: &Path) -> Result<SeedInput> {
    let mut images = vec![0, 0, 0x08, 3, 0, 0, 0, 12, 0, 0, 0, 6, 0, 0, 0, 5];
    images.extend((0..12 * 30).map(|i| (i * 37 % 256) as u8));
    let mut labels = vec![0, 0, 0x08, 1, 0, 0, 0, 12];
    labels.extend((0..12).map(|i| (i % 4) as u8));
    let (names, gz) = if variant == 0 { (["images.idx", "labels.idx"], false) } else { (["images.idx.gz", "labels.idx.gz"], true) };
    for (name, bytes) in names.iter().zip([images, labels]) {
        let bytes = if gz { gzip(&bytes)? } else { bytes };
        std::fs::write(dir.join(name), bytes).map_err(|e| Error::io(dir.join(name), e))?;
    }
    Ok(SeedInput { entry: dir.to_owned(), files: names.iter().map(|n| file(n, FileKind::Binary)).collect() })
}

fn seed_image_folder(with_list: bool, dir: &Path) -> Result<SeedInput> {
    let mut files = Vec::new();
    for (class, names) in [("cat", ["a.png", "b.jpg"]), ("dog", ["c.png", "d.jpg"])] {
        std::fs::create_dir_all(dir.join(class)).map_err(|e| Error::io(dir.join(class), e))?;
        for (i, name) in names.iter().enumerate() {
            let rel = format!("{class}/{name}");
            write_image(&dir.join(&rel), 12 + i as u32, 9, false)?;
            files.push(file(&rel, FileKind::Binary));
        }
    }
    if with_list {
        let list = "cat/a.png 0\ncat/b.jpg 0\ndog/c.png 1\ndog/d.jpg 1\n";
        std::fs::write(dir.join("list.txt"), list).map_err(|e| Error::io(dir.join("list.txt"), e))?;
        // The list is what this reader adds; the images are the folder reader's.
        files = vec![file("list.txt", FileKind::Text), files.swap_remove(0)];
    }
    Ok(SeedInput { entry: dir.to_owned(), files })
}

fn seed_memory(dir: &Path) -> Result<SeedInput> {
    let acts = random_activations(8, 2)?;
    let (config, device) = MemoryConfig::from_options(serde_json::Map::new())?;
    let mut memory = PixelMemory::build(&acts, &config, device)?;
    let path = dir.join("memory");
    memory.save(&path)?;
    let files = std::fs::read_dir(&path)
        .map_err(|e| Error::io(&path, e))?
        .filter_map(|e| e.ok())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kind = if name.ends_with(".json") { FileKind::Json } else { FileKind::Binary };
            (PathBuf::from("memory").join(name), kind)
        })
        .collect::<Vec<_>>();
    let mut files = files;
    files.sort();
    Ok(SeedInput { entry: path, files })
}

fn seed_plan(dir: &Path) -> Result<SeedInput> {
    let options = crate::cluster::slurm::SlurmOptions::default();
    let mut plan = crate::cluster::plan::Plan::new(dir.join("script.rhai"), "0".repeat(64), [("seeds".to_owned(), "2".to_owned())].into_iter().collect(), options)?;
    plan.units = (0..3)
        .map(|index| crate::cluster::plan::PlannedUnit {
            index,
            name: format!("hue fold {index} seed 0"),
            call: "compare 1".into(),
            arm: Some("hue".into()),
            fold: Some(index),
            seed: 0,
            epochs: 3,
            checkpoint: dir.join("units").join(format!("compare1-{index}")),
            fingerprint: format!("{index:064x}"),
        })
        .collect();
    plan.submissions.push(crate::cluster::plan::Submission { array_job: "41".into(), gather_job: "42".into(), units: vec![0, 1, 2], submitted_unix: 1_764_000_000 });
    plan.save(dir)?;
    Ok(SeedInput { entry: dir.to_owned(), files: vec![file("plan.json", FileKind::Json)] })
}
