//! The pixel memory: unit vectors of labelled images, each with its class, image id and grid
//! cell, in a FAISS index (exact `Flat` or approximate: IVF, HNSW, PQ, optionally after PCA)
//! or in the exact libtorch backend. Built in batches so that memory stays bounded by the
//! index itself; saved to and loaded from a directory with checks against truncation and
//! format changes.
use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::search::{Backend, Neighbours, SearchIndex};
use super::Descriptor;
use crate::options::OptionDoc;
use crate::registry::Registry;
use crate::activations::{write_npy_atomic, ActivationSource, Activations};
use crate::files::file_digest;
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::files::{write_atomic, write_then_rename};

const FORMAT: u32 = 1;
const META_FILE: &str = "memory.json";
const ENTRIES_FILE: &str = "entries.npy";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    pub descriptor: Descriptor,
    /// A FAISS index-factory string: `Flat`, `IVF256,Flat`, `HNSW32`, `IVF256,PQ32`, …
    pub index: String,
    /// Reduce vectors to this many dimensions with PCA (trained on the memory) first.
    pub pca: Option<usize>,
    pub backend: Backend,
    /// At most this many vectors train IVF/PQ/PCA (a seeded sample of the memory's images).
    pub train_size: usize,
    /// Images whose vectors are added per call to the index.
    pub add_batch: usize,
    pub nprobe: Option<usize>,
    pub ef_search: Option<usize>,
    pub seed: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            descriptor: Descriptor::Pixel,
            index: "Flat".into(),
            pca: None,
            backend: Backend::Faiss,
            train_size: 100_000,
            add_batch: 256,
            nprobe: None,
            ef_search: None,
            seed: 0,
        }
    }
}

impl MemoryConfig {
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("descriptor", "string", "\"pixel\"", "what one memory vector is (gem:P: GeM with exponent P)").one_of(|| Descriptor::NAMES.to_vec()),
        OptionDoc::new("index", "string", "\"Flat\"", "a FAISS index-factory string: \"Flat\", \"IVF256,Flat\", \"HNSW32\", \"IVF256,PQ32\", …"),
        OptionDoc::new("pca", "int", "(none)", "reduce vectors to this many dimensions first (PCA trained on the memory)"),
        OptionDoc::new("backend", "string", "\"faiss\"", "the search under the memory").one_of(<Backend as Registry>::names),
        OptionDoc::new("train_size", "int", "100000", "at most this many vectors train IVF, PQ and PCA"),
        OptionDoc::new("add_batch", "int", "256", "images whose vectors are added per call"),
        OptionDoc::new("nprobe", "int", "(FAISS's)", "IVF lists searched per query"),
        OptionDoc::new("ef_search", "int", "(FAISS's)", "HNSW search breadth"),
        OptionDoc::new("seed", "int", "0", "seeds the training sample"),
        crate::options::DEVICE,
    ];

    /// The config and the device of the exact backends, from an options map ([`Self::OPTIONS`]).
    pub fn from_options(map: serde_json::Map<String, serde_json::Value>) -> Result<(Self, Device)> {
        let mut o = crate::options::Options::new(map, "pixel_memory options", Self::OPTIONS)?;
        let d = MemoryConfig::default();
        let size = |v: Option<u64>| v.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let config = MemoryConfig {
            descriptor: o.string("descriptor")?.map(|s| Descriptor::parse(&s)).transpose()?.unwrap_or(d.descriptor),
            index: o.string("index")?.unwrap_or(d.index),
            pca: size(o.count("pca")?),
            backend: o.string("backend")?.map(|s| s.parse()).transpose()?.unwrap_or(d.backend),
            train_size: size(o.count("train_size")?).unwrap_or(d.train_size),
            add_batch: size(o.count("add_batch")?).unwrap_or(d.add_batch),
            nprobe: size(o.count("nprobe")?),
            ef_search: size(o.count("ef_search")?),
            seed: o.count("seed")?.unwrap_or(d.seed),
        };
        config.validate()?;
        let device = o.device()?.unwrap_or_default().resolve()?;
        Ok((config, device))
    }

    pub fn validate(&self) -> Result<()> {
        for (key, value) in [("pca", self.pca), ("train_size", Some(self.train_size)), ("add_batch", Some(self.add_batch)), ("nprobe", self.nprobe), ("ef_search", self.ef_search)] {
            if value == Some(0) {
                return Err(Error::invalid_option(key, "must be at least 1"));
            }
        }
        // Search-time breadths beyond these only exhaust memory (FAISS sizes its heaps by them).
        for (key, value, most) in [("nprobe", self.nprobe, 1u64 << 20), ("ef_search", self.ef_search, 1 << 16), ("pca", self.pca, 1 << 16)] {
            if let Some(v) = value.filter(|&v| v as u64 > most) {
                return Err(Error::invalid_option(key, format!("{v} is more than {most}")));
            }
        }
        self.backend.check(self)
    }

    /// The index-factory string: `index`, after `PCA<pca>` if set.
    pub fn factory(&self) -> String {
        match self.pca {
            Some(d) => format!("PCA{d},{}", self.index),
            None => self.index.clone(),
        }
    }
}

/// What is saved beside the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryMeta {
    format: u32,
    huelab_version: String,
    config: MemoryConfig,
    /// Length of the vectors given to the memory (before PCA).
    dim: i64,
    channels: i64,
    grid: (i64, i64),
    class_names: Vec<String>,
    class_counts: Vec<u64>,
    images: u64,
    vectors: u64,
    source: String,
    index_bytes: u64,
    index_sha256: String,
}

#[derive(Debug)]
pub struct PixelMemory {
    search: Box<dyn SearchIndex>,
    meta: MemoryMeta,
    /// Per memory vector: class, image id (0-based, in the order added), grid cell `y·W + x`.
    classes: Vec<u32>,
    image_ids: Vec<u32>,
    cells: Vec<u32>,
}

impl PixelMemory {
    /// A memory of every image of `acts` under `config`, on `device` for the torch backend.
    pub fn build(acts: &Activations, config: &MemoryConfig, device: Device) -> Result<Self> {
        if acts.is_empty() {
            return Err(Error::msg("a memory needs at least one image"));
        }
        let mut memory = Self::empty(acts, config, device)?;
        if memory.needs_training() {
            memory.train(&acts.select(&training_sample(acts.len(), config, acts.grid()))?)?;
        }
        memory.add(acts)?;
        Ok(memory)
    }

    /// The same memory as [`Self::build`] of `extractor`'s activations of `data`, without ever
    /// holding all of them: the training sample is extracted first, then `add_batch` images
    /// at a time are extracted and added.
    pub fn build_streaming(extractor: &dyn ActivationSource, data: &ImageDataset, config: &MemoryConfig, device: Device) -> Result<Self> {
        match Self::build_streaming_until_stopped(extractor, data, config, device)? {
            (_, true) => Err(Error::Interrupted),
            (memory, false) => Ok(memory),
        }
    }

    /// [`Self::build_streaming`], ending at a stop request with the memory of the images added
    /// so far (the data set's first [`Self::images`], in order; `true` beside it) instead of an
    /// error. A stop before the first images were added is still an error: there is nothing.
    pub fn build_streaming_until_stopped(extractor: &dyn ActivationSource, data: &ImageDataset, config: &MemoryConfig, device: Device) -> Result<(Self, bool)> {
        if data.is_empty() {
            return Err(Error::msg("a memory needs at least one image"));
        }
        if config.add_batch == 0 {
            return Err(Error::invalid_option("add_batch", "must be at least 1"));
        }
        let chunk = |indices: &[i64]| -> Result<Activations> {
            let part = data.subset(data.name(), indices)?;
            extractor.activations_of(&part, config.add_batch)
        };
        let first_len = config.add_batch.min(data.len()) as i64;
        let first = chunk(&(0..first_len).collect::<Vec<_>>())?;
        let mut memory = Self::empty(&first, config, device)?;
        if memory.needs_training() {
            let sample = training_sample(data.len(), config, first.grid());
            memory.train(&chunk(&sample)?)?;
        }
        memory.add(&first)?;
        for start in (first_len..data.len() as i64).step_by(config.add_batch) {
            let end = (start + config.add_batch as i64).min(data.len() as i64);
            // `add` leaves the memory whole at a stop: the images of its finished batches.
            match chunk(&(start..end).collect::<Vec<_>>()).and_then(|acts| memory.add(&acts)) {
                Ok(()) => {}
                Err(Error::Interrupted) if memory.images() > 0 => return Ok((memory, true)),
                Err(e) => return Err(e),
            }
        }
        Ok((memory, false))
    }

    /// An empty memory for activations shaped like `acts` (same channels, grid and classes).
    fn empty(acts: &Activations, config: &MemoryConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let grid = acts.grid();
        let dim = config.descriptor.dim(acts.channels(), grid);
        let search = config.backend.create(dim, config, device)?;
        Ok(PixelMemory {
            search,
            meta: MemoryMeta {
                format: FORMAT,
                huelab_version: env!("CARGO_PKG_VERSION").into(),
                config: config.clone(),
                dim,
                channels: acts.channels(),
                grid,
                class_names: acts.class_names().to_vec(),
                class_counts: vec![0; acts.class_names().len()],
                images: 0,
                vectors: 0,
                source: acts.source().to_owned(),
                index_bytes: 0,
                index_sha256: String::new(),
            },
            classes: vec![],
            image_ids: vec![],
            cells: vec![],
        })
    }

    fn needs_training(&self) -> bool {
        self.search.needs_training()
    }

    /// Trains IVF/PQ/PCA on (at most `train_size` vectors of) the sample's images.
    fn train(&mut self, sample: &Activations) -> Result<()> {
        if !self.needs_training() {
            return Ok(());
        }
        let config = &self.meta.config;
        let vectors = config.descriptor.vectors(sample.maps());
        let rows = vectors.size()[0].min(config.train_size as i64);
        self.search.train(&vectors.narrow(0, 0, rows))
    }

    /// Adds every image of `acts` (same layer, same grid, same classes) after those there. A stop
    /// request ends it with `Interrupted` between batches, the memory holding the images of
    /// the batches added before (the first ones of `acts`), consistent for search and `save`.
    pub fn add(&mut self, acts: &Activations) -> Result<()> {
        if acts.grid() != self.meta.grid || acts.channels() != self.meta.channels {
            return Err(Error::msg(format!(
                "these activations are {}×{}×{}, the memory holds {}×{}×{}",
                acts.channels(), acts.grid().0, acts.grid().1, self.meta.channels, self.meta.grid.0, self.meta.grid.1
            )));
        }
        if acts.class_names() != self.meta.class_names {
            return Err(Error::msg("these activations have other classes than the memory"));
        }
        let descriptor = self.meta.config.descriptor;
        let per_image = descriptor.per_image(self.meta.grid);
        let batch = self.meta.config.add_batch;
        let progress = super::progress_bar("memory", acts.len());
        for start in (0..acts.len()).step_by(batch) {
            crate::interrupt::check()?;
            let len = batch.min(acts.len() - start);
            let vectors = descriptor.vectors(&acts.maps().narrow(0, start as i64, len as i64));
            self.search.add(&vectors)?;
            for (offset, &label) in acts.labels()[start..start + len].iter().enumerate() {
                let image = (self.meta.images + offset as u64) as u32;
                for cell in 0..per_image as u32 {
                    self.classes.push(label as u32);
                    self.image_ids.push(image);
                    self.cells.push(cell);
                }
                self.meta.class_counts[label as usize] += per_image as u64;
            }
            self.meta.images += len as u64;
            self.meta.vectors = self.classes.len() as u64;
            progress.inc(len as u64);
            crate::interrupt::reached(crate::interrupt::StopPoint::MemoryBatch { batch: self.meta.images.div_ceil(batch as u64) as usize })?;
        }
        progress.finish_and_clear();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn config(&self) -> &MemoryConfig {
        &self.meta.config
    }

    pub fn descriptor(&self) -> Descriptor {
        self.meta.config.descriptor
    }

    pub fn grid(&self) -> (i64, i64) {
        self.meta.grid
    }

    pub fn channels(&self) -> i64 {
        self.meta.channels
    }

    pub fn class_names(&self) -> &[String] {
        &self.meta.class_names
    }

    /// Images added so far.
    pub fn images(&self) -> u64 {
        self.meta.images
    }

    /// What the activations came from.
    pub fn source(&self) -> &str {
        &self.meta.source
    }

    /// Memory vectors per class (the denominator of Eq. 2).
    pub fn class_counts(&self) -> &[u64] {
        &self.meta.class_counts
    }

    pub fn class_of(&self, id: usize) -> u32 {
        self.classes[id]
    }

    pub fn image_of(&self, id: usize) -> u32 {
        self.image_ids[id]
    }

    pub fn cell_of(&self, id: usize) -> u32 {
        self.cells[id]
    }

    /// A short description, e.g. `pixel Flat (faiss), 37 632 vectors of 1280`.
    pub fn describe(&self) -> String {
        let c = &self.meta.config;
        format!("{} {} ({}), {} vectors of {}", c.descriptor.name(), c.factory(), c.backend.name(), self.len(), self.meta.dim)
    }

    /// The `k` nearest memory vectors of each row of `queries` (`[n, dim]`, unit vectors).
    pub fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        let dim = queries.size().get(1).copied().unwrap_or(0);
        if queries.dim() != 2 || dim != self.meta.dim {
            return Err(Error::Shape { op: "PixelMemory::search", arg: "queries", expected: format!("[n, {}]", self.meta.dim), got: queries.size() });
        }
        if k == 0 || k > self.len() {
            return Err(Error::invalid_option("k", format!("{k} neighbours asked for, the memory holds {} vectors", self.len())));
        }
        self.search.search(queries, k)
    }

    /// Writes the memory into `dir`: the index, `entries.npy` (int64 `[n, 3]`: class, image,
    /// cell) and `memory.json` last, so a reader never sees a half-written memory as whole.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let final_path = dir.join(self.meta.config.backend.file_name());
        write_then_rename(&final_path, |partial| self.search.write(partial))?;
        let (bytes, sha) = file_digest(&final_path)?;
        self.meta.index_bytes = bytes;
        self.meta.index_sha256 = sha;

        let entries = Array2::from_shape_fn((self.len(), 3), |(i, j)| match j {
            0 => self.classes[i] as i64,
            1 => self.image_ids[i] as i64,
            _ => self.cells[i] as i64,
        });
        write_npy_atomic(&dir.join(ENTRIES_FILE), &entries)?;
        let json = serde_json::to_vec_pretty(&self.meta).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&dir.join(META_FILE), &json)
    }

    /// Loads a memory saved by [`Self::save`]; the torch backend goes to `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        crate::input::directory(dir)?;
        let meta_path = dir.join(META_FILE);
        let bytes = crate::input::read(&meta_path, crate::input::limits::JSON)?;
        let meta: MemoryMeta = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Data { path: meta_path.clone(), message: format!("not a huelab memory (or from another version): {e}") })?;
        if meta.format != FORMAT {
            return Err(Error::Data { path: meta_path, message: format!("memory format {} is not supported (expected {FORMAT})", meta.format) });
        }
        let index_path: PathBuf = dir.join(meta.config.backend.file_name());
        crate::input::regular_file(&index_path, crate::input::limits::array())?;
        if meta.index_bytes != std::fs::metadata(&index_path).map_err(|e| Error::io(&index_path, e))?.len() {
            return Err(Error::Data { path: index_path, message: format!("memory.json expects {} bytes: truncated or replaced", meta.index_bytes) });
        }
        let (bytes, sha) = file_digest(&index_path)?;
        if bytes != meta.index_bytes || sha != meta.index_sha256 {
            return Err(Error::Data {
                path: index_path,
                message: format!("{bytes} bytes, memory.json expects {} with another checksum: truncated or replaced", meta.index_bytes),
            });
        }
        meta.check_consistent().map_err(|message| Error::Data { path: meta_path.clone(), message })?;
        // The configuration in memory.json sets the index's search parameters: an error there
        // names memory.json, not just the option.
        let in_meta = |e: Error| match e {
            Error::Data { .. } | Error::Io { .. } => e,
            other => Error::Data { path: meta_path.clone(), message: format!("its configuration: {}", other) },
        };
        meta.config.validate().map_err(in_meta)?;
        let search = meta.config.backend.load(&index_path, meta.dim, meta.vectors, &meta.config, device).map_err(in_meta)?;
        if search.len() as u64 != meta.vectors {
            return Err(Error::Data {
                path: index_path,
                message: format!("the index holds {} vectors, memory.json expects {}", search.len(), meta.vectors),
            });
        }
        let entries_path = dir.join(ENTRIES_FILE);
        let entries: Array2<i64> =
            crate::data::read_npy_checked(&entries_path, "int64 entries [vectors, 3] (class, image, cell)")?;
        if entries.nrows() as u64 != meta.vectors || entries.ncols() != 3 {
            return Err(Error::Data {
                path: entries_path,
                message: format!("{}×{} entries, memory.json expects {}×3", entries.nrows(), entries.ncols(), meta.vectors),
            });
        }
        meta.check_entries(&entries).map_err(|message| Error::Data { path: entries_path, message })?;
        let column = |j: usize| entries.column(j).iter().map(|&v| v as u32).collect::<Vec<u32>>();
        Ok(PixelMemory { search, classes: column(0), image_ids: column(1), cells: column(2), meta })
    }
}

impl MemoryMeta {
    /// Whether the sizes in `memory.json` agree with each other (a memory built by [`PixelMemory::add`]
    /// always does), so that nothing later is sized or indexed by a number that lies.
    fn check_consistent(&self) -> std::result::Result<(), String> {
        let (h, w) = self.grid;
        if !(1..=4096).contains(&h) || !(1..=4096).contains(&w) || !(1..=1 << 20).contains(&self.channels) {
            return Err(format!("implausible activation shape {}×{h}×{w}", self.channels));
        }
        let dim = self.config.descriptor.dim(self.channels, self.grid);
        if self.dim != dim {
            return Err(format!("dim {} does not match {} descriptors of {}×{h}×{w} maps ({dim})", self.dim, self.config.descriptor.name(), self.channels));
        }
        if self.class_names.is_empty() || self.class_names.len() != self.class_counts.len() {
            return Err(format!("{} class names but {} class counts", self.class_names.len(), self.class_counts.len()));
        }
        let per_image = self.config.descriptor.per_image(self.grid) as u64;
        if self.images.checked_mul(per_image) != Some(self.vectors) {
            return Err(format!("{} images of {per_image} vectors each cannot make {} vectors", self.images, self.vectors));
        }
        if self.class_counts.iter().try_fold(0u64, |sum, &c| sum.checked_add(c)) != Some(self.vectors) {
            return Err(format!("the class counts do not add up to the {} vectors", self.vectors));
        }
        Ok(())
    }

    /// Whether `entries.npy` is what [`PixelMemory::add`] writes for this memory: row `r` is
    /// image `r / per_image`, cell `r % per_image`, and one class per image whose counts are
    /// `class_counts`.
    fn check_entries(&self, entries: &Array2<i64>) -> std::result::Result<(), String> {
        let per_image = self.config.descriptor.per_image(self.grid);
        let mut counts = vec![0u64; self.class_names.len()];
        for (r, row) in entries.rows().into_iter().enumerate() {
            let (class, image, cell) = (row[0], row[1], row[2]);
            let r = r as i64;
            if image != r / per_image || cell != r % per_image {
                return Err(format!("row {r} is image {image}, cell {cell}; expected image {}, cell {}", r / per_image, r % per_image));
            }
            if class < 0 || class as usize >= counts.len() {
                return Err(format!("row {r} has class {class}, the memory has {} classes", counts.len()));
            }
            if cell > 0 && class != entries[[r as usize - 1, 0]] {
                return Err(format!("row {r}: the cells of image {image} have different classes"));
            }
            counts[class as usize] += 1;
        }
        if counts != self.class_counts {
            return Err(format!("class counts {counts:?} differ from memory.json's {:?}", self.class_counts));
        }
        Ok(())
    }
}

/// The images whose vectors train an index: a seeded shuffle of `0..images`, cut to enough
/// images for `train_size` vectors.
fn training_sample(images: usize, config: &MemoryConfig, grid: (i64, i64)) -> Vec<i64> {
    let per_image = config.descriptor.per_image(grid) as usize;
    let mut order: Vec<i64> = (0..images as i64).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(config.seed));
    order.truncate(config.train_size.div_ceil(per_image).max(1));
    order
}

