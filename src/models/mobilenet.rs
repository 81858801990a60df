//! MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks")
//! with torchvision's variable names (`features.0.0`, `features.1.conv.0.0`, …, `features.18`)
//! and parameter count (3 504 872 with the ImageNet classifier, 2 223 872 without), any input
//! channel count, and the small stem (a stride-1 first convolution) for small images. A cheap
//! backbone: 0.3 GFLOPs at 224², a 1280-channel bottleneck at 1/32 of the input.
use tch::{nn, Tensor};

use super::{Backbone, Stem};

/// `(expansion t, output channels c, repeats n, first stride s)` of the inverted-residual
/// stages (the paper's Table 2).
const STAGES: [(i64, i64, usize, i64); 7] = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
const FIRST_CHANNELS: i64 = 32;
const LAST_CHANNELS: i64 = 1280;

/// Convolution, batch norm, ReLU6 (torchvision's `Conv2dNormActivation`: `.0` and `.1`).
#[derive(Debug)]
struct ConvBnRelu6 {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBnRelu6 {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let config = nn::ConvConfig { stride, padding: (kernel - 1) / 2, groups, bias: false, ..Default::default() };
        ConvBnRelu6 { conv: nn::conv2d(p / "0", c_in, c_out, kernel, config), bn: nn::batch_norm2d(p / "1", c_out, Default::default()) }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).clamp(0.0, 6.0)
    }
}

/// Expand (1×1, unless t = 1), depthwise 3×3, project (1×1, linear); a shortcut when the
/// shape is kept.
#[derive(Debug)]
struct InvertedResidual {
    expand: Option<ConvBnRelu6>,
    depthwise: ConvBnRelu6,
    project: nn::Conv2D,
    project_bn: nn::BatchNorm,
    shortcut: bool,
}

impl InvertedResidual {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, expansion: i64) -> Self {
        let hidden = c_in * expansion;
        let conv = p / "conv";
        // torchvision numbers the parts of `conv` in order, so the expansion shifts the others.
        let expand = (expansion != 1).then(|| ConvBnRelu6::new(&(&conv / "0"), c_in, hidden, 1, 1, 1));
        let at = usize::from(expand.is_some());
        let depthwise = ConvBnRelu6::new(&(&conv / at.to_string()), hidden, hidden, 3, stride, hidden);
        let project = nn::conv2d(&conv / (at + 1).to_string(), hidden, c_out, 1, nn::ConvConfig { bias: false, ..Default::default() });
        let project_bn = nn::batch_norm2d(&conv / (at + 2).to_string(), c_out, Default::default());
        InvertedResidual { expand, depthwise, project, project_bn, shortcut: stride == 1 && c_in == c_out }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = match &self.expand {
            Some(expand) => expand.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        let y = self.depthwise.forward_t(&x, train).apply(&self.project).apply_t(&self.project_bn, train);
        if self.shortcut {
            xs + y
        } else {
            y
        }
    }
}

#[derive(Debug)]
enum Feature {
    Conv(ConvBnRelu6),
    Block(InvertedResidual),
}

impl Feature {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Feature::Conv(c) => c.forward_t(xs, train),
            Feature::Block(b) => b.forward_t(xs, train),
        }
    }
}

/// MobileNetV2's `features`: the first convolution, 17 inverted residuals, the 1×1 to 1280.
#[derive(Debug)]
pub struct MobileNetV2 {
    features: Vec<Feature>,
}

impl MobileNetV2 {
    /// `stem` must be resolved: `Small` makes the first convolution stride 1.
    pub fn new(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        let p = p / "features";
        let first_stride = if stem == Stem::Small { 1 } else { 2 };
        let mut features = vec![Feature::Conv(ConvBnRelu6::new(&(&p / "0"), in_channels, FIRST_CHANNELS, 3, first_stride, 1))];
        let mut c_in = FIRST_CHANNELS;
        for (expansion, c_out, repeats, stride) in STAGES {
            for r in 0..repeats {
                let path = &p / features.len().to_string();
                features.push(Feature::Block(InvertedResidual::new(&path, c_in, c_out, if r == 0 { stride } else { 1 }, expansion)));
                c_in = c_out;
            }
        }
        features.push(Feature::Conv(ConvBnRelu6::new(&(&p / features.len().to_string()), c_in, LAST_CHANNELS, 1, 1, 1)));
        MobileNetV2 { features }
    }
}

impl Backbone for MobileNetV2 {
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features.iter().fold(xs.shallow_clone(), |x, f| f.forward_t(&x, train))
    }

    fn out_channels(&self) -> i64 {
        LAST_CHANNELS
    }

    /// torchvision's `features.0` … `features.18`.
    fn layer_names(&self) -> Vec<String> {
        (0..self.features.len()).map(|i| format!("features.{i}")).collect()
    }

    fn layer_t(&self, xs: &Tensor, name: &str, train: bool) -> Option<Tensor> {
        let stop = self.layer_names().iter().position(|n| n == name)?;
        Some(self.features[..=stop].iter().fold(xs.shallow_clone(), |x, f| f.forward_t(&x, train)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn torchvision_names_and_parameter_count_and_a_forward_pass() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = MobileNetV2::new(&vs.root(), 3, Stem::Imagenet);
        let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // torchvision's 3 504 872 less its classifier (1280 × 1000 + 1000).
        assert_eq!(trainable, 3_504_872 - 1_281_000);
        let names = vs.variables();
        for name in ["features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight", "features.1.conv.2.running_var", "features.2.conv.0.1.bias", "features.2.conv.3.weight", "features.17.conv.2.weight", "features.18.0.weight", "features.18.1.running_mean"] {
            assert!(names.contains_key(name), "{name} missing");
        }
        // 52 convolution + batch-norm pairs of 5 tensors: torchvision's 314 keys less the 52
        // `num_batches_tracked` counters and the classifier's 2.
        assert_eq!(names.len(), 260);
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(net.features_t(&x, false).size(), [2, 1280, 2, 2]);
        assert_eq!(net.layer_t(&x, "features.3", false).unwrap().size(), [2, 24, 16, 16]);
        let small = MobileNetV2::new(&nn::VarStore::new(Device::Cpu).root(), 1, Stem::Small);
        assert_eq!(small.features_t(&Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu)), false).size(), [1, 1280, 1, 1]);
    }
}
