//! Cheap `Clone` handles that scripts hold. The values behind them are read-only.
use std::rc::Rc;

use rhai::Array;

use super::errors::{to_rhai, RhaiResult};

use crate::compare::Comparison;
use crate::data::{ImageDataset, Split};
use crate::train::TrainReport;

#[derive(Debug, Clone)]
pub struct DatasetHandle(pub Rc<ImageDataset>);

#[derive(Debug, Clone)]
pub struct SplitHandle(pub Rc<Split>);

#[derive(Debug, Clone)]
pub struct ReportHandle(pub Rc<TrainReport>);

/// A comparison, or (`pending`: while planning or running one cluster task) a placeholder
/// whose results only the gather job has.
#[derive(Debug, Clone)]
pub struct ComparisonHandle(pub Rc<Comparison>, pub bool);

/// Ends a cluster task's script once its unit ran (carried as a script error, taken as success).
#[derive(Debug, Clone)]
pub struct TaskComplete;

/// A run that stopped for preemption (it wrote a checkpoint at a batch boundary when asked to:
/// `crate::interrupt`), carried out of the script as a script error of this type with its
/// message, so that the cluster task knows it by type, not by its words.
#[derive(Debug, Clone)]
pub struct Preempted(pub String);

/// Every element of `items` as a `T`; an element of another type is an error naming its index,
/// the argument and the expected type (e.g. `runs[1] must be a TrainReport`).
pub fn handles_of<T: Clone + 'static>(items: &Array, argument: &str, expected: &str) -> RhaiResult<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.clone().try_cast::<T>().ok_or_else(|| to_rhai(format!("{argument}[{i}] must be a {expected}, got {}", item.type_name())))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct ExtractorHandle(pub Rc<crate::extract::Extractor>);

#[derive(Debug, Clone)]
pub struct ActivationsHandle(pub Rc<crate::activations::Activations>);

/// A memory is searched through `&mut` (FAISS's search API), so scripts share it in a cell.
#[derive(Debug, Clone)]
pub struct MemoryHandle(pub Rc<std::cell::RefCell<crate::knn::PixelMemory>>);

#[derive(Debug, Clone)]
pub struct KnnRunHandle(pub Rc<crate::knn::KnnRun>);

/// A figure: written with `save`, shown inline by a notebook.
#[derive(Debug, Clone)]
pub struct FigureHandle(pub Rc<crate::plot::Figure>);

impl FigureHandle {
    pub fn new(figure: crate::plot::Figure) -> Self {
        FigureHandle(Rc::new(figure))
    }
}
