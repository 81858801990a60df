//! Which options map each bound function reads: `huelab api` prints the table under the
//! function's signature. The tables themselves belong to the library's config types (their
//! `OPTIONS`, from which `Options` takes the keys it accepts), so what is printed is what is
//! accepted; a test calls every function listed here with an unknown key and compares the keys
//! its error lists with these.
use crate::cluster::slurm::SlurmOptions;
use crate::compare::CompareConfig;
use crate::data::{ImageFolderConfig, LoaderOptions, SplitConfig, SubsetConfig};
use crate::extract::{ExtractorOptions, ACTIVATIONS_OPTIONS};
use crate::knn::{ClassifyConfig, MemoryConfig};
use crate::nn::HueLossConfig;
use crate::options::OptionDoc;
use crate::train::TrainConfig;

/// The options of the bound function `function`, if it takes an options map.
pub fn of(function: &str) -> Option<Vec<OptionDoc>> {
    let table: &[OptionDoc] = match function {
        "train" => return Some(TrainConfig::options()),
        "compare" => CompareConfig::OPTIONS,
        "load_idx" => LoaderOptions::IDX_OPTIONS,
        "load_npy" => LoaderOptions::NPY_OPTIONS,
        "load_image_folder" | "load_image_list" => ImageFolderConfig::OPTIONS,
        "subset" => SubsetConfig::OPTIONS,
        "split" => SplitConfig::OPTIONS,
        "hue_labels" | "hue_loss" => HueLossConfig::OPTIONS,
        "pretrained" => ExtractorOptions::PRETRAINED_OPTIONS,
        "trained_model" => ExtractorOptions::TRAINED_OPTIONS,
        "torchscript" => ExtractorOptions::TORCHSCRIPT_OPTIONS,
        "load_memory" => ExtractorOptions::MEMORY_OPTIONS,
        "activations" => ACTIVATIONS_OPTIONS,
        "pixel_memory" | "pixel_memory_of" => MemoryConfig::OPTIONS,
        "knn_classify" => ClassifyConfig::OPTIONS,
        "slurm" => SlurmOptions::OPTIONS,
        _ => return None,
    };
    Some(table.to_vec())
}
