//! A small CNN for tests and small images (8×8 digits, 28×28 grey): three 3×3 conv + batch-norm
//! + ReLU blocks, with max-pooling that adapts to the input size.
use tch::{nn, Tensor};

use super::Backbone;

#[derive(Debug)]
pub struct SmallCnn {
    blocks: Vec<ConvBlock>,
    /// Whether a 2×2 max-pool follows each block.
    pool_after: Vec<bool>,
}

#[derive(Debug)]
struct ConvBlock {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Self {
        let conv_config = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
        ConvBlock { conv: nn::conv2d(p / "conv", c_in, c_out, 3, conv_config), bn: nn::batch_norm2d(p / "bn", c_out, Default::default()) }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}

impl SmallCnn {
    const CHANNELS: [i64; 3] = [32, 64, 128];
    pub const MIN_INPUT_SIZE: i64 = 4;

    /// Blocks live under `p / "block1"` … `p / "block3"`. One max-pool after the second block;
    /// a second one after the first block when the input is at least 16 pixels on each side,
    /// so 28×28 inputs reach a 7×7 bottleneck and 8×8 inputs a 4×4 one.
    pub fn new(p: &nn::Path, in_channels: i64, (h, w): (i64, i64)) -> Self {
        let mut c_in = in_channels;
        let blocks = Self::CHANNELS
            .iter()
            .enumerate()
            .map(|(i, &c_out)| {
                let block = ConvBlock::new(&(p / format!("block{}", i + 1)), c_in, c_out);
                c_in = c_out;
                block
            })
            .collect();
        let pool_after = vec![h.min(w) >= 16, true, false];
        SmallCnn { blocks, pool_after }
    }
}

impl Backbone for SmallCnn {
    fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (block, &pool) in self.blocks.iter().zip(&self.pool_after) {
            x = block.forward_t(&x, train);
            if pool {
                x = x.max_pool2d_default(2);
            }
        }
        x
    }

    fn out_channels(&self) -> i64 {
        Self::CHANNELS[Self::CHANNELS.len() - 1]
    }

    /// `block1` … `block3`, each after its max-pool where it has one.
    fn layer_names(&self) -> Vec<String> {
        (1..=self.blocks.len()).map(|i| format!("block{i}")).collect()
    }

    fn layer_t(&self, xs: &Tensor, name: &str, train: bool) -> Option<Tensor> {
        let stop = self.layer_names().iter().position(|n| n == name)? + 1;
        let mut x = xs.shallow_clone();
        for (block, &pool) in self.blocks.iter().zip(&self.pool_after).take(stop) {
            x = block.forward_t(&x, train);
            if pool {
                x = x.max_pool2d_default(2);
            }
        }
        Some(x)
    }
}
