//! Opening image data on disk: an ImageFolder directory (one sub-folder per class, sorted by
//! name), the `train/` + `val/` + `test/` layout of original splits (each part an ImageFolder;
//! the split comes with the data), or a list file of `path label` lines. Nothing is decoded
//! when the data set opens; batches decode their images (see [`super::folder`]).
use std::path::Path;

use super::folder::{index_class_folders, index_list_file, index_split_folders, split_folders, ImageFiles};
use super::{ImageDataset, ImageFolderConfig};
use crate::error::Result;

/// An ImageFolder directory, or the `train/` + `val/` + `test/` layout when `root` has
/// `train/` and `test/` (then [`ImageDataset::given_split`] holds the split).
pub fn load_image_folder(name: &str, root: &Path, config: ImageFolderConfig) -> Result<ImageDataset> {
    config.validate()?;
    if let Some(parts) = split_folders(root) {
        let (files, labels, class_names, split) = index_split_folders(root, &parts)?;
        return ImageDataset::from_files(name, ImageFiles { files, config, access: crate::input::current() }, root, labels, class_names, Some(split));
    }
    let (files, labels, class_names) = index_class_folders(root)?;
    ImageDataset::from_files(name, ImageFiles { files, config, access: crate::input::current() }, root, labels, class_names, None)
}

/// The images a list file names (`relative/path label` per line, relative to `root`).
pub fn load_image_list(name: &str, root: &Path, list: &Path, config: ImageFolderConfig) -> Result<ImageDataset> {
    config.validate()?;
    let (files, labels, class_names) = index_list_file(root, list)?;
    ImageDataset::from_files(name, ImageFiles { files, config, access: crate::input::current() }, root, labels, class_names, None)
}
