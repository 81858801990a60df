//! The options of the file loaders, from options maps.
use serde_json::{Map, Value};

use super::{ImageFolderConfig, NpyLayout};
use crate::error::{Error, Result};
use crate::options::{OptionDoc, Options};

/// The data set's name, its class names and, for `.npy`, the layout.
const CLASS_NAMES: OptionDoc = OptionDoc::new("class_names", "array", "(\"0\", \"1\", …)", "the class names, in label order");
const NAME: OptionDoc = OptionDoc::new("name", "string", "(the file's name)", "the data set's name in reports");

#[derive(Debug, Clone, Default, PartialEq)]

pub struct LoaderOptions {
    pub name: Option<String>,
    pub class_names: Option<Vec<String>>,
    pub layout: NpyLayout,
}

impl LoaderOptions {
    pub const NPY_OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("layout", "string", "\"auto\"", "the image array's axes (auto: channels where a size is 1 or 3)").one_of(|| vec!["auto", "nchw", "nhwc"]),
        CLASS_NAMES,
        NAME,
    ];
    pub const IDX_OPTIONS: &'static [OptionDoc] = &[CLASS_NAMES, NAME];

    /// `load_npy`'s options ([`Self::NPY_OPTIONS`]).
    pub fn npy(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "load_npy options", Self::NPY_OPTIONS)?;
        Ok(LoaderOptions {
            name: o.string("name")?,
            class_names: o.strings("class_names")?,
            layout: o.string("layout")?.map(|l| l.parse()).transpose()?.unwrap_or_default(),
        })
    }

    /// `load_idx`'s options ([`Self::IDX_OPTIONS`]).
    pub fn idx(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "load_idx options", Self::IDX_OPTIONS)?;
        Ok(LoaderOptions { name: o.string("name")?, class_names: o.strings("class_names")?, layout: NpyLayout::default() })
    }
}

impl ImageFolderConfig {
    /// The largest height or width images are resized to.
    pub const MAX_SIDE: u32 = 8192;

    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("size", "int | [h, w]", "64", "the side (or height and width) images are brought to"),
        OptionDoc::new("channels", "int", "3", "1 (grey) or 3 (RGB)"),
        OptionDoc::new("transform", "string", "\"resize\"", "resize: every image to size; imagenet: RandomResizedCrop for training, Resize + CenterCrop for evaluation").one_of(|| vec!["resize", "imagenet"]),
        OptionDoc::new("workers", "int", "0", "decoding threads (0: one per core)"),
        NAME,
    ];

    /// The folder config and an optional data set name ([`Self::OPTIONS`]).
    pub fn from_options(map: Map<String, Value>) -> Result<(Self, Option<String>)> {
        let mut o = Options::new(map, "load_image_folder options", Self::OPTIONS)?;
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
