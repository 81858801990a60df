//! ResNet-18 and ResNet-34 (He et al. 2015, "Deep Residual Learning for Image Recognition") with
//! torchvision's variable names (`conv1`, `bn1`, `layer1.0.conv1`, …), any input channel count,
//! and a choice of stem for small images.
use tch::{nn, Tensor};

use super::{Backbone, Stem};

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// A 1×1 projection of the shortcut when the shape changes (`downsample.0`, `downsample.1`).
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig { stride, padding: kernel / 2, bias: false, ..Default::default() };
    nn::conv2d(p, c_in, c_out, kernel, config)
}

impl BasicBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            (conv(p / "downsample" / "0", c_in, c_out, 1, stride), nn::batch_norm2d(p / "downsample" / "1", c_out, Default::default()))
        });
        BasicBlock {
            conv1: conv(p / "conv1", c_in, c_out, 3, stride),
            bn1: nn::batch_norm2d(p / "bn1", c_out, Default::default()),
            conv2: conv(p / "conv2", c_out, c_out, 3, 1),
            bn2: nn::batch_norm2d(p / "bn2", c_out, Default::default()),
            downsample,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu().apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (shortcut + ys).relu()
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: Stem,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<BasicBlock>>,
}

impl ResNet {
    const WIDTHS: [i64; 4] = [64, 128, 256, 512];

    /// ResNet-18: two basic blocks per stage. `stem` must be resolved (not `Auto`).
    pub fn resnet18(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, [2, 2, 2, 2])
    }

    /// ResNet-34: 3, 4, 6 and 3 basic blocks per stage (torchvision's `resnet34`).
    pub fn resnet34(p: &nn::Path, in_channels: i64, stem: Stem) -> Self {
        Self::new(p, in_channels, stem, [3, 4, 6, 3])
    }

    fn new(p: &nn::Path, in_channels: i64, stem: Stem, blocks: [usize; 4]) -> Self {
        let conv1 = match stem {
            Stem::Small => conv(p / "conv1", in_channels, 64, 3, 1),
            _ => conv(p / "conv1", in_channels, 64, 7, 2),
        };
        let mut c_in = 64;
        let layers = Self::WIDTHS
            .iter()
            .zip(blocks)
            .enumerate()
            .map(|(i, (&width, count))| {
                let stage = p / format!("layer{}", i + 1);
                (0..count)
                    .map(|b| {
                        let stride = if i > 0 && b == 0 { 2 } else { 1 };
                        let block = BasicBlock::new(&(&stage / b.to_string()), c_in, width, stride);
                        c_in = width;
                        block
                    })
                    .collect()
            })
            .collect();
        ResNet { stem, conv1, bn1: nn::batch_norm2d(p / "bn1", 64, Default::default()), layers }
    }
}

impl Backbone for ResNet {
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        if self.stem != Stem::Small {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for block in self.layers.iter().flatten() {
            x = block.forward_t(&x, train);
        }
        x
    }

    fn out_channels(&self) -> i64 {
        Self::WIDTHS[3]
    }

    /// `stem` (after the first convolution, and the max-pool of the ImageNet stem), `layer1` … `layer4`.
    fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_owned()];
        names.extend((1..=self.layers.len()).map(|i| format!("layer{i}")));
        names
    }

    fn layer_t(&self, xs: &Tensor, name: &str, train: bool) -> Option<Tensor> {
        let stop = self.layer_names().iter().position(|n| n == name)?;
        let mut x = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        if self.stem != Stem::Small {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for layer in &self.layers[..stop] {
            for block in layer {
                x = block.forward_t(&x, train);
            }
        }
        Some(x)
    }
}
