//! Labelled image data sets held as tensors: the built-in sets, loaders for IDX, `.npy` and
//! ImageFolder data, and seeded stratified splits and subsets.
mod augment;
mod builtin;
mod dataset;
mod digits;
mod idx;
mod image_folder;
mod npy;
mod options;
mod split;

pub use augment::Augment;
pub use builtin::*;
pub use dataset::*;
pub use digits::digits;
pub use idx::{load_idx, read_idx, IdxArray};
pub use image_folder::*;
pub use npy::*;
pub use options::LoaderOptions;
pub use split::*;
