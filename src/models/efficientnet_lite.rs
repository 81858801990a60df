//! EfficientNet-Lite0…4 (the TensorFlow "lite" variants of EfficientNet: no squeeze-excitation,
//! ReLU6, a stem of 32 and a head of 1280 channels at every width, first and last stage never
//! repeated more), with the variable names of the `efficientnet_pytorch` family (`_conv_stem`,
//! `_bn0`, `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`, `_bn0..2`,
//! `_conv_head`, `_bn1`, `_fc`), so that state dicts saved from those ports load as they are.
//! Convolutions pad like TensorFlow's `SAME` (the extra pixel of an even total goes bottom and
//! right), as the weights were trained; batch norm uses TensorFlow's eps 1e-3.
use tch::{nn, Tensor};

use super::efficientnet::residual_with_stochastic_depth;
use super::Backbone;
use crate::error::{Error, Result};

/// `(repeats, kernel, stride, expand_ratio, c_in, c_out)` of EfficientNet-B0's seven stages,
/// which the lite variants scale.
type StageArgs = (usize, i64, i64, i64, i64, i64);
const BASE_STAGES: [StageArgs; 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const STEM_CHANNELS: i64 = 32;
const HEAD_CHANNELS: i64 = 1280;
const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;
const DROP_CONNECT_RATE: f64 = 0.2;

/// One of the five published lite variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteVariant {
    pub index: u8,
}

impl LiteVariant {
    pub const NAMES: [&'static str; 5] =
        ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite3", "efficientnet_lite4"];

    pub fn from_name(name: &str) -> Result<Self> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| LiteVariant { index: i as u8 }).ok_or_else(|| {
            Error::invalid_option("model", format!("unknown pretrained model '{name}'; valid: {}", Self::NAMES.join(", ")))
        })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index as usize]
    }

    /// `(width multiplier, depth multiplier, input resolution, dropout)` from the TensorFlow
    /// `efficientnet_lite_builder`.
    pub fn params(self) -> (f64, f64, i64, f64) {
        [(1.0, 1.0, 224, 0.2), (1.0, 1.1, 240, 0.2), (1.1, 1.2, 260, 0.3), (1.2, 1.4, 280, 0.3), (1.4, 1.8, 300, 0.3)]
            [self.index as usize]
    }

    pub fn input_size(self) -> i64 {
        self.params().2
    }
}

/// TensorFlow's channel rounding: to the nearest multiple of 8, never below 90 %.
fn round_filters(filters: i64, width: f64) -> i64 {
    let scaled = filters as f64 * width;
    let mut rounded = (((scaled + 4.0) as i64) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * scaled {
        rounded += 8;
    }
    rounded
}

fn bn(p: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, channels, nn::BatchNormConfig { eps: BN_EPS, momentum: BN_MOMENTUM, ..Default::default() })
}

/// A convolution padded like TensorFlow's `SAME`.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    kernel: i64,
    stride: i64,
}

impl SameConv {
    fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let conv = nn::conv2d(p, c_in, c_out, kernel, nn::ConvConfig { stride, groups, bias: false, ..Default::default() });
        SameConv { conv, kernel, stride }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        if self.kernel == 1 {
            return xs.apply(&self.conv);
        }
        let size = xs.size();
        let pad = |len: i64| {
            let out = (len + self.stride - 1) / self.stride;
            let total = ((out - 1) * self.stride + self.kernel - len).max(0);
            (total / 2, total - total / 2)
        };
        let (top, bottom) = pad(size[2]);
        let (left, right) = pad(size[3]);
        xs.constant_pad_nd([left, right, top, bottom]).apply(&self.conv)
    }
}

fn relu6(xs: Tensor) -> Tensor {
    xs.clamp(0.0, 6.0)
}

#[derive(Debug)]
struct LiteBlock {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: SameConv,
    bn1: nn::BatchNorm,
    project: SameConv,
    bn2: nn::BatchNorm,
    residual: bool,
    drop_rate: f64,
}

impl LiteBlock {
    fn new(p: &nn::Path, (kernel, stride, expand_ratio, c_in, c_out): (i64, i64, i64, i64, i64), drop_rate: f64) -> Self {
        let hidden = c_in * expand_ratio;
        LiteBlock {
            expand: (expand_ratio != 1).then(|| (SameConv::new(p / "_expand_conv", c_in, hidden, 1, 1, 1), bn(p / "_bn0", hidden))),
            depthwise: SameConv::new(p / "_depthwise_conv", hidden, hidden, kernel, stride, hidden),
            bn1: bn(p / "_bn1", hidden),
            project: SameConv::new(p / "_project_conv", hidden, c_out, 1, 1, 1),
            bn2: bn(p / "_bn2", c_out),
            residual: stride == 1 && c_in == c_out,
            drop_rate,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = match &self.expand {
            Some((conv, bn)) => relu6(conv.forward(xs).apply_t(bn, train)),
            None => xs.shallow_clone(),
        };
        x = relu6(self.depthwise.forward(&x).apply_t(&self.bn1, train));
        let x = self.project.forward(&x).apply_t(&self.bn2, train);
        if self.residual {
            residual_with_stochastic_depth(xs, x, self.drop_rate, train)
        } else {
            x
        }
    }
}

/// EfficientNet-Lite with its ImageNet classifier (`_fc`).
#[derive(Debug)]
pub struct EfficientNetLite {
    variant: LiteVariant,
    conv_stem: SameConv,
    bn0: nn::BatchNorm,
    blocks: Vec<LiteBlock>,
    conv_head: SameConv,
    bn1: nn::BatchNorm,
    fc: nn::Linear,
}

impl EfficientNetLite {
    pub fn new(p: &nn::Path, variant: LiteVariant, in_channels: i64, num_classes: i64) -> Self {
        let (width, depth, _, _) = variant.params();
        let last = BASE_STAGES.len() - 1;
        let stages: Vec<StageArgs> = BASE_STAGES
            .iter()
            .enumerate()
            .map(|(i, &(repeats, k, s, e, c_in, c_out))| {
                // Lite keeps the first and last stage at one repeat whatever the depth.
                let repeats = if i == 0 || i == last { repeats } else { (repeats as f64 * depth).ceil() as usize };
                (repeats, k, s, e, round_filters(c_in, width), round_filters(c_out, width))
            })
            .collect();
        let total: usize = stages.iter().map(|s| s.0).sum();
        let mut blocks = Vec::with_capacity(total);
        // Each block takes the channels the previous layer gives: the first one the stem's 32
        // even where the width multiplier rounds the stage's nominal input up (as Keras
        // infers input channels).
        let mut channels = STEM_CHANNELS;
        for &(repeats, kernel, stride, expand, _, c_out) in &stages {
            for r in 0..repeats {
                let block_stride = if r == 0 { stride } else { 1 };
                let block_in = std::mem::replace(&mut channels, c_out);
                let drop_rate = DROP_CONNECT_RATE * blocks.len() as f64 / total as f64;
                let path = p / "_blocks" / blocks.len().to_string();
                blocks.push(LiteBlock::new(&path, (kernel, block_stride, expand, block_in, c_out), drop_rate));
            }
        }
        EfficientNetLite {
            variant,
            conv_stem: SameConv::new(p / "_conv_stem", in_channels, STEM_CHANNELS, 3, 2, 1),
            bn0: bn(p / "_bn0", STEM_CHANNELS),
            blocks,
            conv_head: SameConv::new(p / "_conv_head", stages[last].5, HEAD_CHANNELS, 1, 1, 1),
            bn1: bn(p / "_bn1", HEAD_CHANNELS),
            fc: nn::linear(p / "_fc", HEAD_CHANNELS, num_classes, Default::default()),
        }
    }

    pub fn variant(&self) -> LiteVariant {
        self.variant
    }

    /// The layers whose activation maps can be taken: `stem`, `blocks.0` … `blocks.K`, `head`
    /// (the bottleneck).
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_owned()];
        names.extend((0..self.blocks.len()).map(|i| format!("blocks.{i}")));
        names.push("head".to_owned());
        names
    }

    /// The position of `layer` in [`Self::layer_names`] (`bottleneck` is `head`); an unknown
    /// name is an error listing the valid ones.
    pub fn layer_index(&self, layer: &str) -> Result<usize> {
        let names = self.layer_names();
        let layer = if layer == "bottleneck" { "head" } else { layer };
        names.iter().position(|n| n == layer).ok_or_else(|| {
            Error::invalid_option("layer", format!("{} has no layer '{layer}'; valid layers: bottleneck, {}", self.variant.name(), names.join(", ")))
        })
    }

    /// The activation map after the named layer (see [`Self::layer_index`]).
    pub fn layer_t(&self, xs: &Tensor, layer: &str, train: bool) -> Result<Tensor> {
        let position = self.layer_index(layer)?;
        let mut x = relu6(self.conv_stem.forward(xs).apply_t(&self.bn0, train));
        for (i, block) in self.blocks.iter().enumerate() {
            if position == i {
                return Ok(x);
            }
            x = block.forward_t(&x, train);
        }
        if position == self.blocks.len() {
            return Ok(x);
        }
        Ok(relu6(self.conv_head.forward(&x).apply_t(&self.bn1, train)))
    }

    /// Class logits `[B, classes]`; dropout before the classifier in training mode.
    pub fn logits_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let pooled = self.features_t(xs, train).adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        pooled.dropout(self.variant.params().3, train).apply(&self.fc)
    }
}

impl Backbone for EfficientNetLite {
    /// The head convolution's activation map, `[B, 1280, H/32, W/32]`.
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = relu6(self.conv_stem.forward(xs).apply_t(&self.bn0, train));
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        relu6(self.conv_head.forward(&x).apply_t(&self.bn1, train))
    }

    fn out_channels(&self) -> i64 {
        HEAD_CHANNELS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rounding_matches_tensorflow() {
        // Values from the TensorFlow builder for lite2 (1.1) and lite4 (1.4).
        assert_eq!(round_filters(16, 1.1), 16);
        assert_eq!(round_filters(24, 1.1), 24);
        assert_eq!(round_filters(40, 1.1), 48);
        assert_eq!(round_filters(320, 1.4), 448);
        assert_eq!(round_filters(112, 1.4), 160);
    }
}
