//! Cheap `Clone` handles that scripts hold. The values behind them are read-only.
use std::rc::Rc;

use crate::compare::Comparison;
use crate::data::{ImageDataset, Split};
use crate::train::TrainReport;

#[derive(Debug, Clone)]
pub struct DatasetHandle(pub Rc<ImageDataset>);

#[derive(Debug, Clone)]
pub struct SplitHandle(pub Rc<Split>);

#[derive(Debug, Clone)]
pub struct ReportHandle(pub Rc<TrainReport>);

#[derive(Debug, Clone)]
pub struct ComparisonHandle(pub Rc<Comparison>);
