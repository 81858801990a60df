//! Script options maps → the library's config types. Each is a translation: the keys, the
//! defaults, the checks and the error messages are the library's `from_options`.
use rhai::Map;

use super::options::to_json;
use crate::compare::{Arm, CompareConfig};
use crate::data::{ImageFolderConfig, LoaderOptions, SplitConfig, SubsetConfig};
use crate::error::Result;
use crate::extract::{activation_batch_size, ExtractorOptions};
use crate::knn::{ClassifyConfig, MemoryConfig};
use crate::nn::HueLossConfig;
use crate::train::TrainConfig;

pub fn hue_config(map: Map) -> Result<HueLossConfig> {
    HueLossConfig::from_options(serde_json::Value::Object(to_json(map)?))
}

pub fn split_config(map: Map) -> Result<SplitConfig> {
    SplitConfig::from_options(to_json(map)?)
}

pub fn train_config(map: Map) -> Result<TrainConfig> {
    TrainConfig::from_options(to_json(map)?)
}

pub fn subset_config(map: Map) -> Result<SubsetConfig> {
    SubsetConfig::from_options(to_json(map)?)
}

pub fn npy_options(map: Map) -> Result<LoaderOptions> {
    LoaderOptions::npy(to_json(map)?)
}

pub fn idx_options(map: Map) -> Result<LoaderOptions> {
    LoaderOptions::idx(to_json(map)?)
}

pub fn image_folder_options(map: Map) -> Result<(ImageFolderConfig, Option<String>)> {
    ImageFolderConfig::from_options(to_json(map)?)
}

pub fn compare_config(map: Map) -> Result<CompareConfig> {
    CompareConfig::from_options(to_json(map)?)
}

pub fn arm_config(map: Map) -> Result<Arm> {
    Arm::from_options(to_json(map)?)
}

pub fn extractor_options(map: Map, context: &str, allowed: &[crate::options::OptionDoc]) -> Result<ExtractorOptions> {
    ExtractorOptions::from_options(to_json(map)?, context, allowed)
}

pub fn activation_options(map: Map) -> Result<usize> {
    activation_batch_size(to_json(map)?)
}

pub fn memory_config(map: Map) -> Result<(MemoryConfig, tch::Device)> {
    MemoryConfig::from_options(to_json(map)?)
}

pub fn classify_config(map: Map) -> Result<(String, ClassifyConfig)> {
    ClassifyConfig::from_options(to_json(map)?)
}
