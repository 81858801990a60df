//! Cosine search with FAISS: an index of the inner-product metric over the memory's unit
//! vectors (after PCA, re-normalised: `PCA<n>,L2norm,…`), any index-factory string. For unit
//! vectors `‖a − b‖² = 2 − 2 a·b`, so the similarities FAISS returns are reported as those
//! squared distances and Eq. 1–3 apply unchanged; with `Flat` the neighbours are those of the
//! L2 backend.
use std::path::Path;

use faiss::MetricType;
use tch::Tensor;

use super::faiss::{check_pca, flat_values, FaissIndex};
use super::{Neighbours, SearchIndex};
use crate::error::Result;
use crate::knn::MemoryConfig;

#[derive(Debug)]
pub struct InnerProductIndex(FaissIndex);

impl InnerProductIndex {
    /// The factory string: PCA output is not of unit length, so it is normalised again.
    fn factory(config: &MemoryConfig) -> String {
        match config.pca {
            Some(d) => format!("PCA{d},L2norm,{}", config.index),
            None => config.index.clone(),
        }
    }

    pub fn create(dim: i64, config: &MemoryConfig) -> Result<Self> {
        check_pca(dim, config)?;
        let mut index = FaissIndex::with_metric(dim as u32, &Self::factory(config), MetricType::InnerProduct)?;
        if let Some(n) = config.nprobe {
            index.set_parameter("nprobe", n as f64)?;
        }
        if let Some(n) = config.ef_search {
            index.set_parameter("efSearch", n as f64)?;
        }
        Ok(InnerProductIndex(index))
    }

    pub fn load(path: &Path, dim: i64, config: &MemoryConfig) -> Result<Self> {
        Ok(InnerProductIndex(FaissIndex::load(path, dim, &Self::factory(config), MetricType::InnerProduct, config)?))
    }
}

impl SearchIndex for InnerProductIndex {
    fn needs_training(&self) -> bool {
        self.0.needs_training()
    }

    fn train(&mut self, sample: &Tensor) -> Result<()> {
        self.0.train(sample)
    }

    fn add(&mut self, vectors: &Tensor) -> Result<()> {
        self.0.add(vectors)
    }

    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        let Neighbours { k, distances_sq: similarities, ids } = self.0.search_raw(&flat_values(queries)?, k)?;
        // Similarities come in descending order, so the distances ascend; a slot with no
        // neighbour (id -1) gets an infinite distance.
        let distances_sq = similarities.iter().zip(&ids).map(|(&s, &id)| if id < 0 { f32::INFINITY } else { (2.0 - 2.0 * s).max(0.0) }).collect();
        Ok(Neighbours { k, distances_sq, ids })
    }

    fn len(&self) -> i64 {
        self.0.len()
    }

    fn write(&self, path: &Path) -> Result<()> {
        self.0.write(path)
    }
}
