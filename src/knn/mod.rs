//! Pixel-wise k-nearest-neighbour memory classification (paper §3, Eq. 1–3): descriptors of
//! activation maps (per pixel, or one per image for the baselines), the memory that indexes
//! them with their class, image and position over a search backend (`search/`: FAISS L2 or
//! cosine, an exact libtorch search), and the classifier with the match statistics behind the
//! observation figures. Activations come from anything that implements
//! [`crate::activations::ActivationSource`].
mod classify;
mod descriptor;
mod memory;
mod run;
mod search;

pub use search::{Backend, FaissIndex, InnerProductIndex, Neighbours, SearchIndex, TorchFlat};
pub use classify::{centred, classify, classify_until_stopped, kernel_scores, Classified, ClassifyConfig, QueriesDone, QueryWatcher, ConditionalMatches, MatchStats, ObserveConfig, Predictions, Vote};
pub use descriptor::{Descriptor, GEM_DEFAULT_P};
pub use memory::{MemoryConfig, PixelMemory};
pub use run::{run_knn, run_knn_until_stopped, KnnRun};

fn progress_bar(what: &str, images: usize) -> indicatif::ProgressBar {
    crate::progress::images_bar(what, images)
}
