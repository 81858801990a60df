//! Exact cosine search without FAISS (the `torch_cosine` backend): rows and queries are scaled to
//! unit length and compared by their inner product, reported as the squared distance `2 − 2s`
//! of unit vectors — the numbers `faiss_ip` gives with `Flat`, from the exact search's own
//! code (bit-identical under any load on the CPU, libtorch on a GPU). Vectors of any length may
//! be added: cosine similarity ignores it.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::torch::{Metric, TorchFlat};
use super::{Neighbours, SearchIndex};
use crate::error::Result;

#[derive(Debug)]
pub struct TorchCosine(TorchFlat);

/// Each row scaled to unit length (a zero row stays zero: it is nobody's neighbour by angle).
fn unit_rows(vectors: &Tensor) -> Result<Tensor> {
    let vectors = vectors.f_to_kind(Kind::Float)?;
    let norms = vectors.f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?.clamp_min(1e-12);
    Ok(vectors.f_div(&norms)?)
}

impl TorchCosine {
    /// An empty index (a memory config asking for it is `Flat` without PCA: `Backend::check`).
    pub fn new(dim: i64, device: Device) -> Self {
        TorchCosine(TorchFlat::with_metric(dim, Metric::InnerProduct, device))
    }

    /// The unit vectors written by [`SearchIndex::write`].
    pub fn load(path: &Path, dim: i64, device: Device) -> Result<Self> {
        Ok(TorchCosine(TorchFlat::load_with_metric(path, dim, Metric::InnerProduct, device)?))
    }
}

impl SearchIndex for TorchCosine {
    fn add(&mut self, vectors: &Tensor) -> Result<()> {
        self.0.add(&unit_rows(vectors)?);
        Ok(())
    }

    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        self.0.search(&unit_rows(queries)?, k)
    }

    fn len(&self) -> i64 {
        self.0.len()
    }

    fn write(&self, path: &Path) -> Result<()> {
        SearchIndex::write(&self.0, path)
    }
}
