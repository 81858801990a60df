//! EfficientNet-B0 (Tan & Le 2019) with the variable names of the `efficientnet_pytorch`
//! package (`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`, …, `_conv_head`, `_bn1`): MBConv
//! blocks with squeeze-excitation, SiLU, and stochastic depth rising linearly to 0.2 over the
//! blocks. Batch norm uses PyTorch's defaults as torchvision's `efficientnet_b0` does (momentum
//! 0.1, eps 1e-5), not `efficientnet_pytorch`'s TensorFlow-derived momentum 0.01: with that,
//! the running statistics of a short from-scratch run stay near their initial values and every
//! evaluation-mode prediction collapses to one class.
use tch::{nn, Kind, Tensor};

use super::{Backbone, Stem};

/// One stage of MBConv blocks: `(repeats, kernel, stride, expand_ratio, c_in, c_out)`.
type StageArgs = (usize, i64, i64, i64, i64, i64);

const B0_STAGES: [StageArgs; 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const SE_RATIO: f64 = 0.25;
const DROP_CONNECT_RATE: f64 = 0.2;
const STEM_CHANNELS: i64 = 32;
const HEAD_CHANNELS: i64 = 1280;

fn bn(p: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, channels, Default::default())
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64, bias: bool) -> nn::Conv2D {
    nn::conv2d(p, c_in, c_out, kernel, nn::ConvConfig { stride, padding: kernel / 2, groups, bias, ..Default::default() })
}

#[derive(Debug)]
struct MbConv {
    expand: Option<(nn::Conv2D, nn::BatchNorm)>,
    depthwise: nn::Conv2D,
    bn1: nn::BatchNorm,
    se_reduce: nn::Conv2D,
    se_expand: nn::Conv2D,
    project: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// Residual (with stochastic depth) only when the block keeps the shape.
    residual: bool,
    drop_rate: f64,
}

impl MbConv {
    fn new(p: &nn::Path, (kernel, stride, expand_ratio, c_in, c_out): (i64, i64, i64, i64, i64), drop_rate: f64) -> Self {
        let hidden = c_in * expand_ratio;
        let squeezed = ((c_in as f64 * SE_RATIO) as i64).max(1);
        MbConv {
            expand: (expand_ratio != 1).then(|| (conv(p / "_expand_conv", c_in, hidden, 1, 1, 1, false), bn(p / "_bn0", hidden))),
            depthwise: conv(p / "_depthwise_conv", hidden, hidden, kernel, stride, hidden, false),
            bn1: bn(p / "_bn1", hidden),
            se_reduce: conv(p / "_se_reduce", hidden, squeezed, 1, 1, 1, true),
            se_expand: conv(p / "_se_expand", squeezed, hidden, 1, 1, 1, true),
            project: conv(p / "_project_conv", hidden, c_out, 1, 1, 1, false),
            bn2: bn(p / "_bn2", c_out),
            residual: stride == 1 && c_in == c_out,
            drop_rate,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = match &self.expand {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train).silu(),
            None => xs.shallow_clone(),
        };
        x = x.apply(&self.depthwise).apply_t(&self.bn1, train).silu();
        let gate = x.adaptive_avg_pool2d([1, 1]).apply(&self.se_reduce).silu().apply(&self.se_expand).sigmoid();
        let x = (x * gate).apply(&self.project).apply_t(&self.bn2, train);
        if self.residual {
            residual_with_stochastic_depth(xs, x, self.drop_rate, train)
        } else {
            x
        }
    }
}

/// `xs + branch`, where in training the whole branch is dropped for a random `drop_rate` of
/// the samples (stochastic depth) and the kept ones are scaled up to keep the expectation.
pub(super) fn residual_with_stochastic_depth(xs: &Tensor, branch: Tensor, drop_rate: f64, train: bool) -> Tensor {
    if train && drop_rate > 0.0 && super::stochastic_depth_enabled() {
        let keep = 1.0 - drop_rate;
        let mask = Tensor::rand([branch.size()[0], 1, 1, 1], (Kind::Float, branch.device())).ge(drop_rate).to_kind(branch.kind());
        xs + branch * mask / keep
    } else {
        xs + branch
    }
}

#[derive(Debug)]
pub struct EfficientNet {
    conv_stem: nn::Conv2D,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: nn::Conv2D,
    bn1: nn::BatchNorm,
}

impl EfficientNet {
    /// EfficientNet-B0. With `Stem::Small` the stem convolution has stride 1 instead of 2, so
    /// 28×28 inputs reach a 2×2 bottleneck instead of 1×1.
    pub fn b0(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        let stem_stride = if stem == Stem::Small { 1 } else { 2 };
        let total: usize = B0_STAGES.iter().map(|s| s.0).sum();
        let mut blocks = Vec::with_capacity(total);
        for &(repeats, kernel, stride, expand, c_in, c_out) in &B0_STAGES {
            for r in 0..repeats {
                let (block_stride, block_in) = if r == 0 { (stride, c_in) } else { (1, c_out) };
                let drop_rate = DROP_CONNECT_RATE * blocks.len() as f64 / total as f64;
                let path = p / "_blocks" / blocks.len().to_string();
                blocks.push(MbConv::new(&path, (kernel, block_stride, expand, block_in, c_out), drop_rate));
            }
        }
        EfficientNet {
            conv_stem: conv(p / "_conv_stem", in_channels, STEM_CHANNELS, 3, stem_stride, 1, false),
            bn0: bn(p / "_bn0", STEM_CHANNELS),
            blocks,
            conv_head: conv(p / "_conv_head", B0_STAGES[6].5, HEAD_CHANNELS, 1, 1, 1, false),
            bn1: bn(p / "_bn1", HEAD_CHANNELS),
        }
    }
}

/// The huelab name (`_blocks.5._depthwise_conv.weight`) of a variable of torchvision's
/// `efficientnet_b0` (`features.3.1.block.1.0.weight`); `None` for a name outside its features.
/// torchvision numbers each block's parts in order (expansion, depthwise, squeeze-excitation,
/// projection; the first stage has no expansion), huelab follows `efficientnet_pytorch`.
pub fn torchvision_b0_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("features.")?;
    let (stage, rest) = rest.split_once('.')?;
    let stage: usize = stage.parse().ok()?;
    let part = |conv: &str, norm: &str, rest: &str| -> Option<String> {
        let (which, field) = rest.split_once('.')?;
        Some(format!("{}.{field}", if which == "0" { conv } else if which == "1" { norm } else { return None }))
    };
    match stage {
        0 => part("_conv_stem", "_bn0", rest),
        8 => part("_conv_head", "_bn1", rest),
        1..=7 => {
            let (block, rest) = rest.split_once('.')?;
            let block: usize = block.parse().ok()?;
            if block >= B0_STAGES[stage - 1].0 {
                return None;
            }
            let index: usize = B0_STAGES[..stage - 1].iter().map(|s| s.0).sum::<usize>() + block;
            let rest = rest.strip_prefix("block.")?;
            let (k, rest) = rest.split_once('.')?;
            let k: usize = k.parse().ok()?;
            // With expansion: 0 expand, 1 depthwise, 2 SE, 3 project; without: 0, 1, 2 shift down.
            let k = if B0_STAGES[stage - 1].3 == 1 { k + 1 } else { k };
            let prefix = format!("_blocks.{index}");
            let inner = match k {
                0 => part("_expand_conv", "_bn0", rest)?,
                1 => part("_depthwise_conv", "_bn1", rest)?,
                2 => {
                    let (fc, field) = rest.split_once('.')?;
                    format!("{}.{field}", match fc {
                        "fc1" => "_se_reduce",
                        "fc2" => "_se_expand",
                        _ => return None,
                    })
                }
                3 => part("_project_conv", "_bn2", rest)?,
                _ => return None,
            };
            Some(format!("{prefix}.{inner}"))
        }
        _ => None,
    }
}

impl Backbone for EfficientNet {
    /// The head convolution's activation map, `[B, 1280, H/32, W/32]` (`H/16` with the small stem).
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.apply(&self.conv_stem).apply_t(&self.bn0, train).silu();
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        x.apply(&self.conv_head).apply_t(&self.bn1, train).silu()
    }

    fn out_channels(&self) -> i64 {
        HEAD_CHANNELS
    }
}
