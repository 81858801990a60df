//! The options of the file loaders, from options maps.
use serde_json::{Map, Value};

use super::{ImageFolderConfig, NpyLayout};
use crate::error::{Error, Result};
use crate::options::Options;

/// The data set's name, its class names and, for `.npy`, the layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoaderOptions {
    pub name: Option<String>,
    pub class_names: Option<Vec<String>>,
    pub layout: NpyLayout,
}

impl LoaderOptions {
    /// `load_npy`'s keys: `layout` ("auto", "nchw", "nhwc"), `class_names`, `name`.
    pub fn npy(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "load_npy options", &["layout", "class_names", "name"])?;
        Ok(LoaderOptions {
            name: o.string("name")?,
            class_names: o.strings("class_names")?,
            layout: o.string("layout")?.map(|l| l.parse()).transpose()?.unwrap_or_default(),
        })
    }

    /// `load_idx`'s keys: `class_names`, `name`.
    pub fn idx(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "load_idx options", &["class_names", "name"])?;
        Ok(LoaderOptions { name: o.string("name")?, class_names: o.strings("class_names")?, layout: NpyLayout::default() })
    }
}

impl ImageFolderConfig {
    /// The largest height or width images are resized to.
    pub const MAX_SIDE: u32 = 8192;

    /// The folder config and an optional data set name. Keys: `size` (`[h, w]` or one number;
    /// default 64), `channels` (1 or 3; default 3), `transform` ("resize" or "imagenet"),
    /// `workers` (decoding threads; 0: one per core), `name`.
    pub fn from_options(map: Map<String, Value>) -> Result<(Self, Option<String>)> {
        let mut o = Options::new(map, "load_image_folder options", &["size", "channels", "transform", "workers", "name"])?;
        let d = ImageFolderConfig::default();
        let channels = match o.count("channels")? {
            None => d.channels,
            Some(c @ (1 | 3)) => c as u8,
            Some(c) => return Err(Error::invalid_option("channels", format!("must be 1 or 3, got {c}"))),
        };
        let config = ImageFolderConfig {
            size: o.size("size", Self::MAX_SIDE)?.unwrap_or(d.size),
            channels,
            transform: o.string("transform")?.map(|t| t.parse()).transpose()?.unwrap_or(d.transform),
            workers: o.count("workers")?.map_or(d.workers, |w| usize::try_from(w).unwrap_or(usize::MAX).min(256)),
        };
        config.validate()?;
        Ok((config, o.string("name")?))
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.channels, 1 | 3) {
            return Err(Error::invalid_option("channels", format!("must be 1 or 3, got {}", self.channels)));
        }
        let (h, w) = self.size;
        if h == 0 || w == 0 || h > Self::MAX_SIDE || w > Self::MAX_SIDE {
            return Err(Error::invalid_option("size", format!("height and width must be in 1..={}, got {h}×{w}", Self::MAX_SIDE)));
        }
        Ok(())
    }
}
