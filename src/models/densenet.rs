//! DenseNet-121 and DenseNet-201 (Huang et al. 2017) with torchvision's names
//! (`features.conv0`, `features.denseblock1.denselayer1.norm1`, `features.transition1.conv`,
//! `features.norm5`): growth rate 32, bottleneck width 4·32, compression 0.5. The bottleneck
//! map is `features` followed by a ReLU, as torchvision's forward applies. The small stem is a
//! 3×3 stride-1 convolution without the max-pool.
use tch::{nn, Tensor};

use super::{Backbone, Stem};

const GROWTH: i64 = 32;
const BN_SIZE: i64 = 4;
const INIT_FEATURES: i64 = 64;

#[derive(Debug)]
struct DenseLayer {
    norm1: nn::BatchNorm,
    conv1: nn::Conv2D,
    norm2: nn::BatchNorm,
    conv2: nn::Conv2D,
}

impl DenseLayer {
    fn new(p: &nn::Path, c_in: i64) -> Self {
        let no_bias = |padding| nn::ConvConfig { padding, bias: false, ..Default::default() };
        DenseLayer {
            norm1: nn::batch_norm2d(p / "norm1", c_in, Default::default()),
            conv1: nn::conv2d(p / "conv1", c_in, BN_SIZE * GROWTH, 1, no_bias(0)),
            norm2: nn::batch_norm2d(p / "norm2", BN_SIZE * GROWTH, Default::default()),
            conv2: nn::conv2d(p / "conv2", BN_SIZE * GROWTH, GROWTH, 3, no_bias(1)),
        }
    }

    /// The `GROWTH` new channels computed from everything before.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply_t(&self.norm1, train).relu().apply(&self.conv1).apply_t(&self.norm2, train).relu().apply(&self.conv2)
    }
}

#[derive(Debug)]
struct Transition {
    norm: nn::BatchNorm,
    conv: nn::Conv2D,
}

#[derive(Debug)]
pub struct DenseNet {
    stem: Stem,
    conv0: nn::Conv2D,
    norm0: nn::BatchNorm,
    blocks: Vec<Vec<DenseLayer>>,
    transitions: Vec<Transition>,
    norm5: nn::BatchNorm,
    out_channels: i64,
}

impl DenseNet {
    pub fn densenet121(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, &[6, 12, 24, 16])
    }

    pub fn densenet201(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, &[6, 12, 48, 32])
    }

    fn new(p: &nn::Path, in_channels: i64, stem: Stem, block_sizes: &[usize]) -> Self {
        let f = p / "features";
        let conv0 = match stem {
            Stem::Small => nn::conv2d(&f / "conv0", in_channels, INIT_FEATURES, 3, nn::ConvConfig { padding: 1, bias: false, ..Default::default() }),
            _ => nn::conv2d(&f / "conv0", in_channels, INIT_FEATURES, 7, nn::ConvConfig { stride: 2, padding: 3, bias: false, ..Default::default() }),
        };
        let mut channels = INIT_FEATURES;
        let (mut blocks, mut transitions) = (Vec::new(), Vec::new());
        for (b, &size) in block_sizes.iter().enumerate() {
            let block_path = &f / format!("denseblock{}", b + 1);
            let block = (0..size)
                .map(|l| {
                    let layer = DenseLayer::new(&(&block_path / format!("denselayer{}", l + 1)), channels);
                    channels += GROWTH;
                    layer
                })
                .collect();
            blocks.push(block);
            if b + 1 < block_sizes.len() {
                let t = &f / format!("transition{}", b + 1);
                let out = channels / 2;
                transitions.push(Transition {
                    norm: nn::batch_norm2d(&t / "norm", channels, Default::default()),
                    conv: nn::conv2d(&t / "conv", channels, out, 1, nn::ConvConfig { bias: false, ..Default::default() }),
                });
                channels = out;
            }
        }
        DenseNet {
            stem,
            conv0,
            norm0: nn::batch_norm2d(&f / "norm0", INIT_FEATURES, Default::default()),
            blocks,
            transitions,
            norm5: nn::batch_norm2d(&f / "norm5", channels, Default::default()),
            out_channels: channels,
        }
    }
}

impl Backbone for DenseNet {
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.apply(&self.conv0).apply_t(&self.norm0, train).relu();
        if self.stem != Stem::Small {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for (b, block) in self.blocks.iter().enumerate() {
            for layer in block {
                let new = layer.forward_t(&x, train);
                x = Tensor::cat(&[x, new], 1);
            }
            if let Some(t) = self.transitions.get(b) {
                // Not `avg_pool2d_default`, which passes divisor_override = 1 (a sum, not a mean).
                x = x.apply_t(&t.norm, train).relu().apply(&t.conv).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            }
        }
        x.apply_t(&self.norm5, train).relu()
    }

    fn out_channels(&self) -> i64 {
        self.out_channels
    }
}
