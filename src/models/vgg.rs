//! VGG-11 and VGG-16 with batch norm (Simonyan & Zisserman 2014; torchvision's `vgg11_bn`,
//! `vgg16_bn` layout and names: `features.<index>`), and VGG-16 without it (torchvision's
//! `vgg16`, for its pretrained weights). The bottleneck is the output of `features`, after the
//! last ReLU and max-pool. The small stem drops the first max-pool.
use tch::{nn, Tensor};

use super::{Backbone, Stem};

/// `Some(channels)`: 3×3 conv + BN + ReLU; `None`: 2×2 max-pool.
const VGG11: &[Option<i64>] = &[Some(64), None, Some(128), None, Some(256), Some(256), None, Some(512), Some(512), None, Some(512), Some(512), None];
const VGG16: &[Option<i64>] = &[
    Some(64), Some(64), None, Some(128), Some(128), None, Some(256), Some(256), Some(256), None,
    Some(512), Some(512), Some(512), None, Some(512), Some(512), Some(512), None,
];

#[derive(Debug)]
enum Layer {
    ConvBnRelu(nn::Conv2D, Option<nn::BatchNorm>),
    MaxPool,
}

#[derive(Debug)]
pub struct Vgg {
    layers: Vec<Layer>,
}

impl Vgg {
    pub fn vgg11(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, VGG11)
    }

    pub fn vgg16(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, VGG16)
    }

    /// VGG-16 without batch norm (torchvision's `vgg16`: conv i, ReLU i+1).
    pub fn vgg16_plain(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::build(p, in_channels, stem, VGG16, false)
    }

    fn new(p: &nn::Path, in_channels: i64, stem: Stem, config: &[Option<i64>]) -> Self {
        Self::build(p, in_channels, stem, config, true)
    }

    fn build(p: &nn::Path, in_channels: i64, stem: Stem, config: &[Option<i64>], batch_norm: bool) -> Self {
        let features = p / "features";
        // torchvision numbers every module of `features`: conv i, bn i+1, relu i+2, pool.
        let (mut index, mut c_in, mut first_pool) = (0, in_channels, true);
        let mut layers = Vec::new();
        for entry in config {
            match entry {
                Some(c_out) => {
                    let conv = nn::conv2d(&features / index, c_in, *c_out, 3, nn::ConvConfig { padding: 1, ..Default::default() });
                    let bn = batch_norm.then(|| nn::batch_norm2d(&features / (index + 1), *c_out, Default::default()));
                    layers.push(Layer::ConvBnRelu(conv, bn));
                    index += if batch_norm { 3 } else { 2 };
                    c_in = *c_out;
                }
                None => {
                    if !(first_pool && stem == Stem::Small) {
                        layers.push(Layer::MaxPool);
                    }
                    first_pool = false;
                    index += 1;
                }
            }
        }
        Vgg { layers }
    }
}

impl Backbone for Vgg {
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.layers.iter().fold(xs.shallow_clone(), |x, layer| match layer {
            Layer::ConvBnRelu(conv, Some(bn)) => x.apply(conv).apply_t(bn, train).relu(),
            Layer::ConvBnRelu(conv, None) => x.apply(conv).relu(),
            Layer::MaxPool => x.max_pool2d_default(2),
        })
    }

    fn out_channels(&self) -> i64 {
        512
    }
}
