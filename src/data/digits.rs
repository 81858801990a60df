//! The 8×8 handwritten digits (1 797 images, 10 classes), compiled into smartcore: the one data
//! set that needs no download.
use tch::Tensor;

use super::ImageDataset;

/// Pixel values in the source run from 0 to 16.
const MAX_PIXEL: f32 = 16.0;

pub fn digits() -> ImageDataset {
    let raw = smartcore::dataset::digits::load_dataset();
    let pixels: Vec<f32> = raw.data.iter().map(|&v| v / MAX_PIXEL).collect();
    let images = Tensor::from_slice(&pixels).view([raw.num_samples as i64, 1, 8, 8]);
    let labels = raw.target.iter().map(|&t| t as i64).collect();
    let class_names = (0..10).map(|d| d.to_string()).collect();
    ImageDataset::new("digits", images, labels, class_names).expect("the bundled digits are well formed")
}
