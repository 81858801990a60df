//! Labelled image data sets, in memory (`uint8` where the source is 8-bit) or as image files on
//! disk decoded batch by batch: the built-in sets, loaders for IDX, `.npy`, ImageFolder
//! directories (also with original train/val/test splits) and list files, seeded stratified
//! splits and subsets, augmentation, and the batch stream that prepares batches on worker
//! threads in a fixed order.
mod augment;
mod builtin;
mod dataset;
mod digits;
mod folder;
mod image_file;
mod jpeg_region;
mod jpeg_scan;
mod idx;
mod image_folder;
mod npy;
mod options;
mod split;
mod stream;
mod to_float;

pub use augment::{Augment, ImageAugment};
pub use builtin::*;
pub use dataset::*;
pub use digits::digits;
pub use idx::{load_idx, numbered_classes, read_idx, IdxArray, MAX_NUMBERED_CLASSES};
pub use folder::{resize_center_crop, FolderTransform, ImageFiles, ImageFolderConfig, Mode, Scratch, StageTimes, IMAGE_EXTENSIONS};
pub use image_file::decode;
pub use image_folder::*;
pub use npy::*;
pub use options::LoaderOptions;
pub use split::*;
pub use stream::{BatchPlan, BatchStream};
pub use to_float::ByteToFloat;
