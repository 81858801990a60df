//! Where setup.sh puts what it downloads (the built-in data sets, pretrained weights, ImageNet
//! class names): `$HUELAB_DATA`, default `/var/cache/huelab/data`. Data loaders and pretrained
//! models ask here instead of knowing the layout themselves.
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The data directory.
pub fn data_dir() -> PathBuf {
    std::env::var_os("HUELAB_DATA").map_or_else(|| PathBuf::from("/var/cache/huelab/data"), PathBuf::from)
}

/// `relative` inside the data directory, which must exist.
pub fn cached(relative: &str) -> Result<PathBuf> {
    require(data_dir().join(relative))
}

/// `path` if it exists, else an error saying that setup fetches it.
pub fn require(path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Data { path, message: "missing; `bash setup.sh deps` fetches the built-in data sets".into() })
    }
}
