//! The one table of architectures huelab builds by name: each row gives the name scripts use,
//! the stems it has, the smallest input it accepts and its constructor. Parsing, listing
//! (`models()` in scripts), the minimum-size check and construction all read this table.
//!
//! Adding a backbone: write it in its own file in `models/` (implementing [`Backbone`]), then
//! add its variant to [`Arch`] and its row to [`ARCHITECTURES`]. Nothing else changes.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tch::nn;

use super::{Backbone, DenseNet, EfficientNet, ResNet, SmallCnn, Stem, Vgg};
use crate::error::{Error, Result};

/// The architectures huelab can build by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    SmallCnn,
    ResNet18,
    ResNet34,
    EfficientNetB0,
    DenseNet121,
    DenseNet201,
    Vgg11,
    Vgg16,
}

/// Which stems an architecture has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stems {
    /// One stride-1 stem (the small CNN).
    SmallOnly,
    /// The ImageNet stem and the small stem (stride 1, no early pooling).
    Both,
}

/// Builds a backbone under a path for `in_channels` channels, a resolved stem and the input
/// `(height, width)`.
pub type BuildBackbone = fn(p: &nn::Path, in_channels: i64, stem: Stem, input_size: (i64, i64)) -> Box<dyn Backbone>;

/// One row of the table.
pub struct ArchInfo {
    pub arch: Arch,
    pub name: &'static str,
    pub stems: Stems,
    /// Smallest input height/width with the small stem and with the ImageNet stem: the sizes
    /// whose bottleneck is 1×1.
    pub min_input: (i64, i64),
    pub build: BuildBackbone,
}

pub const ARCHITECTURES: &[ArchInfo] = &[
    ArchInfo { arch: Arch::SmallCnn, name: "small_cnn", stems: Stems::SmallOnly, min_input: (SmallCnn::MIN_INPUT_SIZE, SmallCnn::MIN_INPUT_SIZE), build: |p, c, _, size| Box::new(SmallCnn::new(p, c, size)) },
    ArchInfo { arch: Arch::ResNet18, name: "resnet18", stems: Stems::Both, min_input: (8, 32), build: |p, c, stem, _| Box::new(ResNet::resnet18(p, c, stem)) },
    ArchInfo { arch: Arch::ResNet34, name: "resnet34", stems: Stems::Both, min_input: (8, 32), build: |p, c, stem, _| Box::new(ResNet::resnet34(p, c, stem)) },
    ArchInfo { arch: Arch::EfficientNetB0, name: "efficientnet_b0", stems: Stems::Both, min_input: (16, 32), build: |p, c, stem, _| Box::new(EfficientNet::b0(p, c, stem)) },
    ArchInfo { arch: Arch::DenseNet121, name: "densenet121", stems: Stems::Both, min_input: (8, 32), build: |p, c, stem, _| Box::new(DenseNet::densenet121(p, c, stem)) },
    ArchInfo { arch: Arch::DenseNet201, name: "densenet201", stems: Stems::Both, min_input: (8, 32), build: |p, c, stem, _| Box::new(DenseNet::densenet201(p, c, stem)) },
    ArchInfo { arch: Arch::Vgg11, name: "vgg11", stems: Stems::Both, min_input: (16, 32), build: |p, c, stem, _| Box::new(Vgg::vgg11(p, c, stem)) },
    ArchInfo { arch: Arch::Vgg16, name: "vgg16", stems: Stems::Both, min_input: (16, 32), build: |p, c, stem, _| Box::new(Vgg::vgg16(p, c, stem)) },
];

impl Arch {
    /// Every architecture, in table order.
    pub const ALL: &'static [Arch] =
        &[Arch::SmallCnn, Arch::ResNet18, Arch::ResNet34, Arch::EfficientNetB0, Arch::DenseNet121, Arch::DenseNet201, Arch::Vgg11, Arch::Vgg16];

    pub fn info(self) -> &'static ArchInfo {
        ARCHITECTURES.iter().find(|i| i.arch == self).expect("every Arch has a row in ARCHITECTURES")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Smallest input height/width the architecture accepts with a resolved `stem`.
    pub fn min_input_size(self, stem: Stem) -> i64 {
        let (small, imagenet) = self.info().min_input;
        match (self.info().stems, stem) {
            (Stems::SmallOnly, _) | (_, Stem::Small) => small,
            _ => imagenet,
        }
    }

    /// The backbone under `p` (with `stem` resolved).
    pub fn build(self, p: &nn::Path, in_channels: i64, stem: Stem, input_size: (i64, i64)) -> Box<dyn Backbone> {
        (self.info().build)(p, in_channels, stem, input_size)
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        ARCHITECTURES.iter().find(|a| a.name == name).map(|a| a.arch).ok_or_else(|| {
            let valid: Vec<_> = ARCHITECTURES.iter().map(|a| a.name).collect();
            Error::invalid_option("model", format!("unknown model '{name}'; valid models: {}", valid.join(", ")))
        })
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_list_of_all_agree() {
        assert_eq!(ARCHITECTURES.iter().map(|a| a.arch).collect::<Vec<_>>(), Arch::ALL);
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>().unwrap(), *a);
        }
    }
}
