//! Training-time augmentation: horizontal flips and random crops (zero padding, then a crop of
//! the original size), drawn from a generator the caller seeds, so two runs with the same seed
//! see the same augmented images.
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Augment {
    /// Mirror each image left–right with probability 1/2.
    pub flip: bool,
    /// Pad each side by this many zero pixels, then crop back to the original size at a random
    /// offset (0: no crop).
    pub crop_padding: i64,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        !self.flip && self.crop_padding == 0
    }

    /// Augments each image of a `[B, C, H, W]` batch independently.
    pub fn apply(&self, batch: &Tensor, rng: &mut impl Rng) -> Tensor {
        if self.is_identity() {
            return batch.shallow_clone();
        }
        let size = batch.size();
        let (h, w) = (size[2], size[3]);
        let p = self.crop_padding;
        let source = if p > 0 { batch.constant_pad_nd([p, p, p, p]) } else { batch.shallow_clone() };
        let images: Vec<Tensor> = (0..size[0])
            .map(|i| {
                let (dy, dx) = if p > 0 { (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p)) } else { (0, 0) };
                let image = source.get(i).narrow(1, dy, h).narrow(2, dx, w);
                if self.flip && rng.random_bool(0.5) {
                    image.flip([2])
                } else {
                    image
                }
            })
            .collect();
        Tensor::stack(&images, 0)
    }
}
