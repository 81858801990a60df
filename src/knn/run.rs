//! One named classification of query images against a memory, with what a manifest needs to
//! say how it was made.
use std::time::Instant;

use serde::Serialize;

use super::{classify_until_stopped, Classified, ClassifyConfig, QueryWatcher, MatchStats, MemoryConfig, PixelMemory, Predictions};
use crate::activations::Activations;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct KnnRun {
    pub name: String,
    /// e.g. `pixel Flat (faiss), 37632 vectors of 1280`.
    pub memory: String,
    pub memory_config: MemoryConfig,
    pub memory_images: u64,
    pub memory_source: String,
    pub query_images: usize,
    pub query_source: String,
    pub config: ClassifyConfig,
    pub accuracy: f64,
    pub seconds: f64,
    /// Stopped by an interrupt: `query_images` are the first queries only. Left out of the JSON
    /// when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    #[serde(skip)]
    pub predictions: Predictions,
    #[serde(skip)]
    pub stats: Option<MatchStats>,
}

pub fn run_knn(name: &str, memory: &mut PixelMemory, queries: &Activations, config: &ClassifyConfig) -> Result<KnnRun> {
    let run = run_knn_until_stopped(name, memory, queries, config, None)?;
    if run.interrupted {
        return Err(crate::error::Error::Interrupted);
    }
    Ok(run)
}

/// [`run_knn`], ending at a stop request with a run of the queries classified so far (the
/// first `query_images`), marked `interrupted`, instead of an error; `watch` told of every
/// batch of queries.
pub fn run_knn_until_stopped(name: &str, memory: &mut PixelMemory, queries: &Activations, config: &ClassifyConfig, watch: Option<QueryWatcher>) -> Result<KnnRun> {
    let started = Instant::now();
    let Classified { predictions, stats, interrupted } = classify_until_stopped(memory, queries, config, watch)?;
    Ok(KnnRun {
        name: name.to_owned(),
        memory: memory.describe(),
        memory_config: memory.config().clone(),
        memory_images: memory.images(),
        memory_source: memory.source().to_owned(),
        query_images: predictions.predicted.len(),
        query_source: queries.source().to_owned(),
        config: config.clone(),
        accuracy: predictions.accuracy,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
        predictions,
        stats,
    })
}
