//! The nearest-neighbour search under a pixel memory, as a named seam: [`SearchIndex`] is what
//! the memory calls, [`Backend`] what its options choose (and `memory.json` records).
//!
//! Adding a backend: write it in its own file in `knn/search/` (implementing
//! [`SearchIndex`]) and declare it below, then add its variant to [`Backend`] and one arm to
//! each exhaustive `match` in this file (name, `check`, file name, `create`, `load`). Parsing, listing,
//! serde and the "unknown backend" message derive from them ([`crate::registry`]).
mod cosine;
mod faiss;
mod faiss_structure;
mod inner_product;
mod threads;
mod torch;

use std::path::Path;

use strum::EnumIter;
use tch::{Device, Tensor};

pub use self::cosine::TorchCosine;
pub use self::faiss::{check_factory, FaissIndex};
pub use self::inner_product::InnerProductIndex;
pub use self::torch::TorchFlat;
use super::MemoryConfig;
use crate::error::{Error, Result};
use crate::registry::Registry;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, EnumIter)]
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
    /// Exact cosine search in huelab's exact-search code (CPU or GPU): `Flat` only; the same
    /// squared distances `2 − 2s` as `faiss_ip` with `Flat`.
    TorchCosine,
}

impl Registry for Backend {
    const OPTION: &'static str = "backend";

    /// The `backend:` option's value, as `memory.json` records it.
    fn name(self) -> &'static str {
        match self {
            Backend::Faiss => "faiss",
            Backend::Torch => "torch",
            Backend::FaissIp => "faiss_ip",
            Backend::TorchCosine => "torch_cosine",
        }
    }
}

crate::by_name!(Backend);

impl Backend {
    pub fn name(self) -> &'static str {
        Registry::name(self)
    }

    /// Whether `config`'s index options suit this backend, checked before anything is built
    /// (FAISS would crash on some factory strings rather than refuse them).
    pub fn check(self, config: &MemoryConfig) -> Result<()> {
        match self {
            Backend::Faiss | Backend::FaissIp => check_factory(&config.index),
            // The exact searches take `Flat` without PCA.
            Backend::Torch | Backend::TorchCosine if config.index != "Flat" || config.pca.is_some() => {
                Err(Error::invalid_option("backend", format!("the {} backend is exact: index \"Flat\" without pca", self.name())))
            }
            Backend::Torch | Backend::TorchCosine => Ok(()),
        }
    }

    /// The file the index is saved to inside a memory directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Backend::Faiss | Backend::FaissIp => "index.faiss",
            Backend::Torch | Backend::TorchCosine => "vectors.safetensors",
        }
    }

    /// A new, empty index for vectors of `dim`; `config` has passed `MemoryConfig::validate`
    /// (which asks [`Self::check`]).
    pub fn create(self, dim: i64, config: &MemoryConfig, device: Device) -> Result<Box<dyn SearchIndex>> {
        Ok(match self {
            Backend::Faiss => Box::new(FaissIndex::create(dim, config)?),
            Backend::Torch => Box::new(TorchFlat::new(dim, device)),
            Backend::FaissIp => Box::new(InnerProductIndex::create(dim, config)?),
            Backend::TorchCosine => Box::new(TorchCosine::new(dim, device)),
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
        // The exact searches' safetensors: one float32 tensor of `vectors` rows.
        let vectors_file = |path: &Path| crate::input::safetensors(path, vectors.saturating_mul((dim.max(0) as u64).saturating_mul(4)));
        Ok(match self {
            Backend::Faiss => Box::new(FaissIndex::load(path, dim, &config.factory(), ::faiss::MetricType::L2, config)?),
            Backend::Torch => {
                vectors_file(path)?;
                Box::new(TorchFlat::load(path, dim, device)?)
            }
            Backend::TorchCosine => {
                vectors_file(path)?;
                Box::new(TorchCosine::load(path, dim, device)?)
            }
            Backend::FaissIp => Box::new(InnerProductIndex::load(path, dim, config)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_parses_from_its_name_and_is_listed() {
        crate::registry::tests::check::<Backend>();
    }
}
