//! Labelled image data sets held as tensors, the built-in sets, and seeded stratified splits.
mod dataset;
mod digits;
mod split;

pub use dataset::*;
pub use digits::digits;
pub use split::*;

/// The built-in data sets, by the name scripts use.
pub const BUILTIN_DATASETS: &[&str] = &["digits"];

/// Loads a built-in data set by name.
pub fn builtin(name: &str) -> crate::Result<ImageDataset> {
    match name {
        "digits" => Ok(digits()),
        _ => Err(crate::Error::msg(format!(
            "unknown built-in data set '{name}'; built-in sets: {}",
            BUILTIN_DATASETS.join(", ")
        ))),
    }
}
