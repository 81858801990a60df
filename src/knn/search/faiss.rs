//! FAISS under a pixel memory: any index-factory string (`Flat`, `IVF256,Flat`, `HNSW32`,
//! `IVF1024,PQ16`, optionally after PCA), CPU, L2 distances.
use std::path::Path;

use faiss::index::autotune::ParameterSpace;
use faiss::index::IndexImpl;
use faiss::{Index, MetricType};
use tch::{Kind, Tensor};

use super::faiss_structure::Structure;
use super::{Neighbours, SearchIndex};
use crate::error::{Error, Result};
use crate::knn::MemoryConfig;

pub fn faiss_error(what: &str, e: faiss::error::Error) -> Error {
    Error::msg(format!("faiss {what}: {e}"))
}

/// A FAISS index built from a factory string, with its search-time parameters.
pub struct FaissIndex {
    pub index: IndexImpl,
    pub factory: String,
}

impl std::fmt::Debug for FaissIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaissIndex({}, {} vectors)", self.factory, self.index.ntotal())
    }
}

/// Row-major float32 values of a `[n, dim]` tensor.
pub(super) fn flat_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::try_from(t.to_kind(Kind::Float).flatten(0, -1))?)
}

impl FaissIndex {
    pub fn new(dim: u32, factory: &str) -> Result<Self> {
        Self::with_metric(dim, factory, MetricType::L2)
    }

    pub fn with_metric(dim: u32, factory: &str, metric: MetricType) -> Result<Self> {
        let index = faiss::index_factory(dim, factory, metric)
            .map_err(|e| Error::invalid_option("index", format!("faiss cannot build \"{factory}\" for dimension {dim}: {e}")))?;
        Ok(FaissIndex { index, factory: factory.to_owned() })
    }

    /// The L2 index a memory config asks for (its `index`, after `PCA<pca>` if set), with its
    /// search-time parameters set.
    pub fn create(dim: i64, config: &MemoryConfig) -> Result<Self> {
        check_pca(dim, config)?;
        check_factory(&config.index)?;
        let mut index = Self::new(dim as u32, &config.factory())?;
        index.apply_search_parameters(config)?;
        Ok(index)
    }

    /// An index written by [`SearchIndex::write`] that `factory` (with `metric`) made; search-time
    /// parameters are not saved with a FAISS index, so they are set again from `config`.
    pub fn load(path: &Path, dim: i64, factory: &str, metric: MetricType, config: &MemoryConfig) -> Result<Self> {
        let index = faiss::index::io::read_index(path.to_string_lossy().as_ref())
            .map_err(|e| Error::Data { path: path.to_owned(), message: format!("faiss cannot read the index: {e}") })?;
        // The memory's descriptors are `dim` long: an index of another dimension would be
        // searched with vectors of the wrong length.
        if i64::from(index.d()) != dim {
            return Err(Error::Data { path: path.to_owned(), message: format!("the index holds {}-dimensional vectors, memory.json says {dim}", index.d()) });
        }
        check_factory(&config.index)?;
        let made = Self::with_metric(dim as u32, factory, metric)?;
        let written = tempfile::NamedTempFile::new().map_err(|e| Error::msg(format!("cannot make a temporary file: {e}")))?;
        faiss::index::io::write_index(&made.index, written.path().to_string_lossy().as_ref()).map_err(|e| faiss_error("write", e))?;
        let (found, expected) = (Structure::of(&index, path)?, Structure::of(&made.index, written.path())?);
        if found != expected {
            return Err(Error::Data {
                path: path.to_owned(),
                message: format!("holds another index than memory.json describes: {found}; \"{factory}\" makes {expected}"),
            });
        }
        let mut index = FaissIndex { index, factory: factory.to_owned() };
        index.apply_search_parameters(config)?;
        Ok(index)
    }

    /// Sets `nprobe` (IVF) or `efSearch` (HNSW) and similar; unknown names are errors.
    pub fn set_parameter(&mut self, name: &str, value: f64) -> Result<()> {
        let space = ParameterSpace::new().map_err(|e| faiss_error("parameter space", e))?;
        space
            .set_index_parameter(&self.index, name, value)
            .map_err(|e| Error::invalid_option(name, format!("faiss index \"{}\" does not take it: {e}", self.factory)))
    }

    fn apply_search_parameters(&mut self, config: &MemoryConfig) -> Result<()> {
        if let Some(n) = config.nprobe {
            self.set_parameter("nprobe", n as f64)?;
        }
        if let Some(n) = config.ef_search {
            self.set_parameter("efSearch", n as f64)?;
        }
        Ok(())
    }

    /// FAISS's own result: distances (or similarities, for inner products) and ids (−1 where
    /// fewer than `k` exist), large searches split over the cores (see `threads.rs`).
    pub fn search_raw(&mut self, queries: &[f32], k: usize) -> Result<Neighbours> {
        let dim = self.index.d() as usize;
        if queries.len() % dim.max(1) != 0 {
            return Err(Error::msg(format!("faiss search: {} values are not rows of {dim}", queries.len())));
        }
        let (distances_sq, ids) = super::threads::search(&mut self.index, queries, dim, k)?;
        Ok(Neighbours { k, distances_sq, ids })
    }
}

/// PCA to more dimensions than the vectors have (or to none) is a config error.
/// Checks the numbers of an index-factory string before FAISS sees it: FAISS divides by some
/// of them and sizes tables by others, so `PQ0` dies with SIGFPE, `HNSW0` and `IVF0,Flat` with a
/// segmentation fault, and `PQ8x40` asks for 2⁴⁰ centroids. Every number must be at least 1 and
/// within what the component can use.
pub fn check_factory(index: &str) -> Result<()> {
    let bad = |message: String| Error::invalid_option("index", format!("\"{index}\": {message}"));
    if index.trim().is_empty() {
        return Err(bad("empty; e.g. \"Flat\", \"IVF256,Flat\", \"HNSW32\", \"IVF256,PQ8\"".into()));
    }
    for component in index.split(',') {
        let component = component.trim();
        let numbers: Vec<u64> = component
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| !run.is_empty())
            .map(|run| run.parse::<u64>().unwrap_or(u64::MAX))
            .collect();
        let letters: String = component.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let limit: &[u64] = match letters.as_str() {
            // Lists of an inverted file; links per node of a graph.
            "IVF" => &[1 << 20, 512],
            "HNSW" | "NSG" => &[512],
            // Sub-quantisers and bits per code.
            "PQ" | "OPQ" => &[1 << 16, 16],
            "SQ" => &[8],
            "PCA" | "PCAR" | "PCAW" | "PCAWR" | "RR" => &[1 << 16],
            _ => &[1 << 20],
        };
        for (i, &n) in numbers.iter().enumerate() {
            let most = limit.get(i).or(limit.last()).copied().unwrap_or(1 << 20);
            if n == 0 || n > most {
                return Err(bad(format!("{n} in \"{component}\" is outside 1..={most}")));
            }
        }
        if letters == "SQ" && !numbers.is_empty() && !matches!(numbers[0], 4 | 6 | 8) {
            return Err(bad(format!("\"{component}\": scalar quantisers have 4, 6 or 8 bits (or fp16)")));
        }
    }
    Ok(())
}

pub(super) fn check_pca(dim: i64, config: &MemoryConfig) -> Result<()> {
    match config.pca.filter(|&p| p == 0 || p as i64 > dim) {
        Some(p) => Err(Error::invalid_option("pca", format!("{p} dimensions asked for, the vectors have {dim}"))),
        None => Ok(()),
    }
}

impl SearchIndex for FaissIndex {
    fn needs_training(&self) -> bool {
        !self.index.is_trained()
    }

    fn train(&mut self, sample: &Tensor) -> Result<()> {
        let rows = sample.size()[0];
        self.index
            .train(&flat_values(sample)?)
            .map_err(|e| Error::invalid_option("index", format!("faiss cannot train \"{}\" on {rows} vectors: {e}", self.factory)))
    }

    fn add(&mut self, vectors: &Tensor) -> Result<()> {
        self.index.add(&flat_values(vectors)?).map_err(|e| faiss_error("add", e))
    }

    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        self.search_raw(&flat_values(queries)?, k)
    }

    fn len(&self) -> i64 {
        self.index.ntotal() as i64
    }

    fn write(&self, path: &Path) -> Result<()> {
        faiss::index::io::write_index(&self.index, path.to_string_lossy().as_ref())
            .map_err(|e| Error::Data { path: path.to_owned(), message: format!("faiss cannot write the index: {e}") })
    }
}
