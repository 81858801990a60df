//! The nearest-neighbour search under a pixel memory, as a named seam: [`SearchIndex`] is what
//! the memory calls, [`Backend`] what its options choose (and `memory.json` records).
//!
//! Adding a backend: write it in its own file in `knn/search/` (implementing
//! [`SearchIndex`]), then add its variant to [`Backend`] and one arm to each `match` below.
//! Nothing else changes.
mod faiss;
mod inner_product;
mod threads;
mod torch;

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub use self::faiss::{check_factory, FaissIndex};
pub use self::inner_product::InnerProductIndex;
pub use self::torch::TorchFlat;
use super::MemoryConfig;
use crate::error::{Error, Result};

/// The `k` nearest memory rows of each query: squared L2 distances ascending, ids (`-1` where
/// an approximate index found fewer than `k`).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub distances_sq: Vec<f32>,
    pub ids: Vec<i64>,
}

/// An index of vectors `[n, dim]` (float32, unit length) with nearest-neighbour search.
pub trait SearchIndex: std::fmt::Debug {
    /// Whether [`Self::train`] must run before vectors are added (IVF, PQ, PCA).
    fn needs_training(&self) -> bool {
        false
    }

    /// Learns the index's parameters from a sample of vectors `[n, dim]`.
    fn train(&mut self, _sample: &Tensor) -> Result<()> {
        Ok(())
    }

    /// Vectors `[n, dim]`, after those already there.
    fn add(&mut self, vectors: &Tensor) -> Result<()>;

    /// The `k` nearest vectors of each query `[nq, dim]`.
    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours>;

    /// Vectors held.
    fn len(&self) -> i64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the index to `path` (a temporary file the memory renames into place).
    fn write(&self, path: &Path) -> Result<()>;
}

/// Which search runs under the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// FAISS, any index-factory string, L2 distances (the default).
    #[default]
    Faiss,
    /// Exact search with libtorch (CPU or GPU): only `Flat`, no PCA.
    Torch,
    /// FAISS with the inner-product (cosine) metric: on unit vectors the same neighbours as L2,
    /// and the metric HNSW and IVF graphs of cosine similarity are built with; similarities `s`
    /// are reported as squared distances `2 − 2s`, so Eq. 1–3 apply unchanged.
    FaissIp,
}

impl Backend {
    pub const NAMES: &'static [&'static str] = &["faiss", "torch", "faiss_ip"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Faiss => "faiss",
            Backend::Torch => "torch",
            Backend::FaissIp => "faiss_ip",
        }
    }

    /// The file the index is saved to inside a memory directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Backend::Faiss | Backend::FaissIp => "index.faiss",
            Backend::Torch => "vectors.safetensors",
        }
    }

    /// A new, empty index for vectors of `dim`.
    pub fn create(self, dim: i64, config: &MemoryConfig, device: Device) -> Result<Box<dyn SearchIndex>> {
        Ok(match self {
            Backend::Faiss => Box::new(FaissIndex::create(dim, config)?),
            Backend::Torch => Box::new(TorchFlat::create(dim, config, device)?),
            Backend::FaissIp => Box::new(InnerProductIndex::create(dim, config)?),
        })
    }

    /// An index saved by [`SearchIndex::write`] at `path`.
    /// `vectors` is how many the memory says the index holds: the file may not be much larger
    /// than they need (a sparse or padded file is refused before FAISS or libtorch reads it).
    pub fn load(self, path: &Path, dim: i64, vectors: u64, config: &MemoryConfig, device: Device) -> Result<Box<dyn SearchIndex>> {
        // Float32 vectors, plus what an index keeps beside each (HNSW's links, IVF's ids) and a
        // fixed part (trained quantisers, PCA matrices).
        let per_vector = (dim.max(0) as u64).saturating_mul(4).saturating_add(2048);
        let bound = vectors.saturating_mul(per_vector).saturating_add((dim.max(0) as u64).saturating_mul(dim.max(0) as u64).saturating_mul(4)).saturating_add(256 << 20);
        crate::input::regular_file(path, bound)?;
        Ok(match self {
            Backend::Faiss => Box::new(FaissIndex::load(path, dim, config)?),
            Backend::Torch => {
                crate::input::safetensors(path, vectors.saturating_mul((dim.max(0) as u64).saturating_mul(4)))?;
                Box::new(TorchFlat::load(path, dim, device)?)
            }
            Backend::FaissIp => Box::new(InnerProductIndex::load(path, dim, config)?),
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Backend::Faiss, Backend::Torch, Backend::FaissIp].into_iter().find(|b| b.name() == s).ok_or_else(|| {
            Error::invalid_option("backend", format!("expected one of {}, got \"{s}\"", Self::NAMES.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")))
        })
    }
}

/// Runs `work` on every item, shared out to `workers` threads that each run `start` first
/// (per-thread settings); the first error is returned. Which thread takes which item changes
/// only the speed, so a fixed split into items gives the same results under any load.
pub(super) fn share_out<T: Send>(items: Vec<T>, workers: usize, start: impl Fn() + Sync, work: impl Fn(T) -> Result<()> + Sync) -> Result<()> {
    let workers = workers.min(items.len()).max(1);
    let queue = std::sync::Mutex::new(items);
    let failures: Vec<Error> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    start();
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                        let Some(item) = next else { return Ok(()) };
                        work(item)?;
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().unwrap_or_else(|_| Err(Error::msg("a search worker panicked"))).err()).collect()
    });
    failures.into_iter().next().map_or(Ok(()), Err)
}

/// Pads results of `found < k` columns with `-1` ids and infinite distances.
pub(super) fn pad_neighbours(distances_sq: Vec<f32>, ids: Vec<i64>, nq: usize, found: usize, k: usize) -> Neighbours {
    if found == k {
        return Neighbours { k, distances_sq, ids };
    }
    let mut d = vec![f32::INFINITY; nq * k];
    let mut i = vec![-1i64; nq * k];
    for q in 0..nq {
        d[q * k..q * k + found].copy_from_slice(&distances_sq[q * found..(q + 1) * found]);
        i[q * k..q * k + found].copy_from_slice(&ids[q * found..(q + 1) * found]);
    }
    Neighbours { k, distances_sq: d, ids: i }
}
