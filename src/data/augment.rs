//! Training-time augmentation: horizontal flips and random crops (zero padding, then a crop of
//! the original size), drawn from a generator the caller seeds, so two runs with the same seed
//! see the same augmented images. Drawing and applying are separate steps: the batch
//! coordinator draws every image's parameters in batch order (one stream per epoch, whatever
//! the number of workers), and a worker applies them.
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

/// The drawn augmentation of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageAugment {
    /// Crop offset into the padded image.
    pub dy: i64,
    pub dx: i64,
    pub flip: bool,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        !self.flip && self.crop_padding == 0
    }

    /// The parameters of `n` images, drawn in image order: the crop offset, then the flip.
    pub fn draw(&self, n: usize, rng: &mut impl Rng) -> Vec<ImageAugment> {
        if self.is_identity() {
            return vec![ImageAugment::default(); n];
        }
        let p = self.crop_padding;
        (0..n)
            .map(|_| {
                let (dy, dx) = if p > 0 { (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p)) } else { (0, 0) };
                ImageAugment { dy, dx, flip: self.flip && rng.random_bool(0.5) }
            })
            .collect()
    }

    /// Applies drawn parameters (one per image) to a `[B, C, H, W]` batch.
    pub fn apply_drawn(&self, batch: &Tensor, drawn: &[ImageAugment]) -> Tensor {
        if self.is_identity() {
            return batch.shallow_clone();
        }
        let size = batch.size();
        let (h, w) = (size[2], size[3]);
        let p = self.crop_padding;
        let source = if p > 0 { batch.constant_pad_nd([p, p, p, p]) } else { batch.shallow_clone() };
        let images: Vec<Tensor> = drawn
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let image = source.get(i as i64).narrow(1, a.dy, h).narrow(2, a.dx, w);
                if a.flip {
                    image.flip([2])
                } else {
                    image
                }
            })
            .collect();
        Tensor::stack(&images, 0)
    }

    /// Augments each image of a `[B, C, H, W]` batch independently.
    pub fn apply(&self, batch: &Tensor, rng: &mut impl Rng) -> Tensor {
        let drawn = self.draw(batch.size()[0] as usize, rng);
        self.apply_drawn(batch, &drawn)
    }
}
