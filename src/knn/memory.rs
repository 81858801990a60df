//! The pixel memory: unit vectors of labelled images, each with its class, image id and grid
//! cell, in a FAISS index (exact `Flat` or approximate: IVF, HNSW, PQ, optionally after PCA)
//! or in the exact libtorch backend. Built in batches so that memory stays bounded by the
//! index itself; saved to and loaded from a directory with checks against truncation and
//! format changes.
use std::path::{Path, PathBuf};

use ndarray::Array2;
use ndarray_npy::read_npy;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use super::backend::{FaissIndex, Neighbours, TorchFlat};
use super::Descriptor;
use crate::activations::{Activations, Extractor};
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::activations::write_npy_atomic;
use crate::output::{write_atomic, write_then_rename};

const FORMAT: u32 = 1;
const META_FILE: &str = "memory.json";
const INDEX_FILE: &str = "index.faiss";
const TORCH_FILE: &str = "vectors.safetensors";
const ENTRIES_FILE: &str = "entries.npy";

/// Which search runs under the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Faiss,
    /// Exact search with libtorch (CPU or GPU): only `Flat`, no PCA.
    Torch,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "faiss" => Ok(Backend::Faiss),
            "torch" => Ok(Backend::Torch),
            _ => Err(Error::invalid_option("backend", format!("expected \"faiss\" or \"torch\", got \"{s}\""))),
        }
    }
}

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
    /// Search-time settings are not saved with a FAISS index: set on every build and load.
    fn apply_search_parameters(&self, index: &mut FaissIndex) -> Result<()> {
        if let Some(n) = self.nprobe {
            index.set_parameter("nprobe", n as f64)?;
        }
        if let Some(n) = self.ef_search {
            index.set_parameter("efSearch", n as f64)?;
        }
        Ok(())
    }

    fn factory(&self) -> String {
        match self.pca {
            Some(d) => format!("PCA{d},{}", self.index),
            None => self.index.clone(),
        }
    }
}

#[derive(Debug)]
enum Search {
    Faiss(FaissIndex),
    Torch(TorchFlat),
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
    search: Search,
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
    pub fn build_streaming(extractor: &Extractor, data: &ImageDataset, config: &MemoryConfig, device: Device) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::msg("a memory needs at least one image"));
        }
        if config.add_batch == 0 {
            return Err(Error::invalid_option("add_batch", "must be at least 1"));
        }
        let chunk = |indices: &[i64]| -> Result<Activations> {
            let part = data.subset(data.name(), indices)?;
            extractor.extract(&part, config.add_batch)
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
            memory.add(&chunk(&(start..end).collect::<Vec<_>>())?)?;
        }
        Ok(memory)
    }

    /// An empty memory for activations shaped like `acts` (same channels, grid and classes).
    fn empty(acts: &Activations, config: &MemoryConfig, device: Device) -> Result<Self> {
        if config.add_batch == 0 {
            return Err(Error::invalid_option("add_batch", "must be at least 1"));
        }
        let grid = acts.grid();
        let dim = config.descriptor.dim(acts.channels(), grid);
        let search = match config.backend {
            Backend::Torch => {
                if config.index != "Flat" || config.pca.is_some() {
                    return Err(Error::invalid_option("backend", "the torch backend is exact: index \"Flat\" without pca"));
                }
                Search::Torch(TorchFlat::new(dim, device))
            }
            Backend::Faiss => {
                if let Some(p) = config.pca.filter(|&p| p == 0 || p as i64 > dim) {
                    return Err(Error::invalid_option("pca", format!("{p} dimensions asked for, the vectors have {dim}")));
                }
                let mut index = FaissIndex::new(dim as u32, &config.factory())?;
                config.apply_search_parameters(&mut index)?;
                Search::Faiss(index)
            }
        };
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
        matches!(&self.search, Search::Faiss(index) if !faiss::Index::is_trained(&index.index))
    }

    /// Trains IVF/PQ/PCA on (at most `train_size` vectors of) the sample's images.
    fn train(&mut self, sample: &Activations) -> Result<()> {
        if !self.needs_training() {
            return Ok(());
        }
        let Search::Faiss(index) = &mut self.search else { return Ok(()) };
        let config = &self.meta.config;
        let vectors = config.descriptor.vectors(sample.maps());
        let rows = vectors.size()[0].min(config.train_size as i64);
        let sample: Vec<f32> = Vec::try_from(vectors.narrow(0, 0, rows).flatten(0, -1))?;
        faiss::Index::train(&mut index.index, &sample)
            .map_err(|e| Error::invalid_option("index", format!("faiss cannot train \"{}\" on {rows} vectors: {e}", index.factory)))
    }

    /// Adds every image of `acts` (same layer, same grid, same classes) after those there.
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
            match &mut self.search {
                Search::Faiss(index) => {
                    let flat: Vec<f32> = Vec::try_from(vectors.flatten(0, -1))?;
                    faiss::Index::add(&mut index.index, &flat).map_err(|e| super::backend::faiss_error("add", e))?;
                }
                Search::Torch(index) => index.add(&vectors),
            }
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
            progress.inc(len as u64);
        }
        progress.finish_and_clear();
        self.meta.vectors = self.classes.len() as u64;
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
        let backend = match c.backend {
            Backend::Faiss => "faiss",
            Backend::Torch => "torch",
        };
        format!("{} {} ({backend}), {} vectors of {}", c.descriptor.name(), c.factory(), self.len(), self.meta.dim)
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
        match &mut self.search {
            Search::Faiss(index) => {
                let flat: Vec<f32> = Vec::try_from(queries.to_kind(Kind::Float).flatten(0, -1))?;
                index.search(&flat, k)
            }
            Search::Torch(index) => Ok(index.search(queries, k)),
        }
    }

    /// Writes the memory into `dir`: the index, `entries.npy` (int64 `[n, 3]`: class, image,
    /// cell) and `memory.json` last, so a reader never sees a half-written memory as whole.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let final_path = dir.join(match &self.search {
            Search::Faiss(_) => INDEX_FILE,
            Search::Torch(_) => TORCH_FILE,
        });
        write_then_rename(&final_path, |partial| match &self.search {
            Search::Faiss(index) => faiss::index::io::write_index(&index.index, partial.to_string_lossy().as_ref())
                .map_err(|e| Error::Data { path: partial.to_owned(), message: format!("faiss cannot write the index: {e}") }),
            Search::Torch(index) => Ok(Tensor::write_safetensors(&[("vectors", index.rows_cpu())], partial)?),
        })?;
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
        let meta_path = dir.join(META_FILE);
        let bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta: MemoryMeta = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Data { path: meta_path.clone(), message: format!("not a huelab memory (or from another version): {e}") })?;
        if meta.format != FORMAT {
            return Err(Error::Data { path: meta_path, message: format!("memory format {} is not supported (expected {FORMAT})", meta.format) });
        }
        let index_path: PathBuf = dir.join(if meta.config.backend == Backend::Faiss { INDEX_FILE } else { TORCH_FILE });
        let (bytes, sha) = file_digest(&index_path)?;
        if bytes != meta.index_bytes || sha != meta.index_sha256 {
            return Err(Error::Data {
                path: index_path,
                message: format!("{bytes} bytes, memory.json expects {} with another checksum: truncated or replaced", meta.index_bytes),
            });
        }
        let search = match meta.config.backend {
            Backend::Faiss => {
                let index = faiss::index::io::read_index(index_path.to_string_lossy().as_ref())
                    .map_err(|e| Error::Data { path: index_path.clone(), message: format!("faiss cannot read the index: {e}") })?;
                let mut index = FaissIndex { index, factory: meta.config.factory() };
                meta.config.apply_search_parameters(&mut index)?;
                Search::Faiss(index)
            }
            Backend::Torch => {
                let tensors = Tensor::read_safetensors(&index_path)
                    .map_err(|e| Error::Data { path: index_path.clone(), message: format!("unreadable vectors: {e}") })?;
                let rows = tensors.into_iter().find(|(n, _)| n == "vectors").map(|(_, t)| t)
                    .ok_or_else(|| Error::Data { path: index_path.clone(), message: "no 'vectors' tensor".into() })?;
                let mut index = TorchFlat::new(meta.dim, device);
                index.add(&rows);
                Search::Torch(index)
            }
        };
        let entries_path = dir.join(ENTRIES_FILE);
        let entries: Array2<i64> =
            read_npy(&entries_path).map_err(|e| Error::Data { path: entries_path.clone(), message: format!("unreadable entries: {e}") })?;
        if entries.nrows() as u64 != meta.vectors || entries.ncols() != 3 {
            return Err(Error::Data { path: entries_path, message: format!("{} entries, memory.json expects {}", entries.nrows(), meta.vectors) });
        }
        let column = |j: usize| entries.column(j).iter().map(|&v| v as u32).collect::<Vec<u32>>();
        Ok(PixelMemory { search, classes: column(0), image_ids: column(1), cells: column(2), meta })
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

fn file_digest(path: &Path) -> Result<(u64, String)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok((bytes.len() as u64, format!("{:x}", Sha256::digest(&bytes))))
}
