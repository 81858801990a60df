//! The architectures huelab builds by name. [`Arch::info`] is one exhaustive `match` that gives
//! each its name, stems, smallest input and constructor; parsing, listing (`models()` in
//! scripts), serde, the minimum-size check and construction all read it (see
//! [`crate::registry`]).
//!
//! Adding a backbone: write it in its own file in `models/` (implementing [`Backbone`]), declare
//! the file in `models/mod.rs`, then add its variant to [`Arch`] and its arm to [`Arch::info`].
//! Nothing else changes.
use strum::EnumIter;
use tch::nn;

use super::{Backbone, DenseNet, EfficientNet, MobileNetV2, ResNet, SmallCnn, Stem, Vgg};
use crate::registry::Registry;

/// The architectures huelab can build by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter)]
pub enum Arch {
    SmallCnn,
    ResNet18,
    ResNet34,
    EfficientNetB0,
    DenseNet121,
    DenseNet201,
    Vgg11,
    Vgg16,
    MobileNetV2,
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

/// What [`Arch::info`] says of an architecture.
pub struct ArchInfo {
    pub name: &'static str,
    pub stems: Stems,
    /// Smallest input height/width with the small stem and with the ImageNet stem: the sizes
    /// whose bottleneck is 1×1.
    pub min_input: (i64, i64),
    pub build: BuildBackbone,
}

impl Arch {
    pub fn info(self) -> ArchInfo {
        fn info(name: &'static str, stems: Stems, min_input: (i64, i64), build: BuildBackbone) -> ArchInfo {
            ArchInfo { name, stems, min_input, build }
        }
        match self {
            Arch::SmallCnn => info("small_cnn", Stems::SmallOnly, (SmallCnn::MIN_INPUT_SIZE, SmallCnn::MIN_INPUT_SIZE), |p, c, _, size| Box::new(SmallCnn::new(p, c, size))),
            Arch::ResNet18 => info("resnet18", Stems::Both, (8, 32), |p, c, stem, _| Box::new(ResNet::resnet18(p, c, stem))),
            Arch::ResNet34 => info("resnet34", Stems::Both, (8, 32), |p, c, stem, _| Box::new(ResNet::resnet34(p, c, stem))),
            Arch::EfficientNetB0 => info("efficientnet_b0", Stems::Both, (16, 32), |p, c, stem, _| Box::new(EfficientNet::b0(p, c, stem))),
            Arch::DenseNet121 => info("densenet121", Stems::Both, (8, 32), |p, c, stem, _| Box::new(DenseNet::densenet121(p, c, stem))),
            Arch::DenseNet201 => info("densenet201", Stems::Both, (8, 32), |p, c, stem, _| Box::new(DenseNet::densenet201(p, c, stem))),
            Arch::Vgg11 => info("vgg11", Stems::Both, (16, 32), |p, c, stem, _| Box::new(Vgg::vgg11(p, c, stem))),
            Arch::Vgg16 => info("vgg16", Stems::Both, (16, 32), |p, c, stem, _| Box::new(Vgg::vgg16(p, c, stem))),
            Arch::MobileNetV2 => info("mobilenet_v2", Stems::Both, (16, 32), |p, c, stem, _| Box::new(MobileNetV2::new(p, c, stem))),
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Whether `train` lays this architecture's weights and batches out channels-last on
    /// `device` in `precision` when the run does not say (`channels_last` option), chosen by
    /// measurement on this CPU's kind (`huelab bench train` measures both layouts;
    /// results/bench/train-layouts-*.json). The small CNN: 1.345x (fp32) and 1.572x (bf16)
    /// faster channels-last on an Intel CPU with AMX. ResNet-18 in bf16: 1.106x (Intel, AMX) and
    /// 1.060x (AMD Zen 4); in fp32 it depends on the vector units: 1.060x on Zen 4 (AVX-512
    /// without AMX), 0.977x with AMX (no gain), AVX2-only CPUs not measured (contiguous). The
    /// other architectures and GPUs were not measured: contiguous there. The layout changes
    /// speed and the last bits of sums, never the model: a run reports the one it used.
    pub fn trains_channels_last(self, device: tch::Device, precision: crate::precision::Precision) -> bool {
        device == tch::Device::Cpu && self.channels_last_on(&CpuKind::this_machine(), precision)
    }

    /// [`Arch::trains_channels_last`] on a CPU of kind `cpu`.
    pub fn channels_last_on(self, cpu: &CpuKind, precision: crate::precision::Precision) -> bool {
        use crate::precision::Precision;
        match self {
            Arch::SmallCnn => true,
            Arch::ResNet18 | Arch::ResNet34 => precision == Precision::Bf16 || (cpu.avx512 && !cpu.amx),
            _ => false,
        }
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

impl Registry for Arch {
    const OPTION: &'static str = "model";
    fn name(self) -> &'static str {
        Arch::name(self)
    }
}

/// What of a CPU's vector units the layout choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuKind {
    /// AVX-512 Foundation.
    pub avx512: bool,
    /// Advanced Matrix Extensions (Intel's tile units; oneDNN uses them for bf16 and int8).
    pub amx: bool,
}

impl CpuKind {
    /// This machine's, from /proc/cpuinfo's flags.
    pub fn this_machine() -> Self {
        let flags = crate::precision::cpu_flags();
        let has = |f: &str| flags.iter().any(|g| g == f);
        CpuKind { avx512: has("avx512f"), amx: has("amx_tile") }
    }
}

crate::by_name!(Arch);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_parses_from_its_name_and_is_listed() {
        crate::registry::tests::check::<Arch>();
    }

    /// The measured defaults: ResNets channels-last in fp32 only on AVX-512 without AMX.
    #[test]
    fn resnets_choose_their_fp32_layout_by_the_cpus_vector_units() {
        use crate::precision::Precision::{Bf16, Fp32};
        let zen3 = CpuKind { avx512: false, amx: false };
        let zen4 = CpuKind { avx512: true, amx: false };
        let sapphire_rapids = CpuKind { avx512: true, amx: true };
        for arch in [Arch::ResNet18, Arch::ResNet34] {
            assert_eq!([zen3, zen4, sapphire_rapids].map(|cpu| arch.channels_last_on(&cpu, Fp32)), [false, true, false]);
            assert!([zen3, zen4, sapphire_rapids].iter().all(|cpu| arch.channels_last_on(cpu, Bf16)));
        }
        assert!(Arch::SmallCnn.channels_last_on(&zen3, Fp32));
        assert!(!Arch::DenseNet121.channels_last_on(&zen4, Bf16));
    }
}
