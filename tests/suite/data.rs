//! The built-in digits and seeded stratified splits.
use std::collections::HashSet;

use huelab::data::{builtin, digits, stratified_split, ImageDataset, SplitConfig};
use tch::{Kind, Tensor};

#[test]
fn digits_are_1797_grey_8x8_images_in_10_classes() {
    let data = digits();
    assert_eq!(data.len(), 1797);
    assert_eq!(data.image_shape(), [1, 8, 8]);
    assert_eq!(data.num_classes(), 10);
    let (max, min) = (data.images().unwrap().max().double_value(&[]), data.images().unwrap().min().double_value(&[]));
    assert!(min == 0.0 && max == 1.0, "pixels scaled to [0, 1], got [{min}, {max}]");
    for class in 0..10 {
        let n = data.labels().iter().filter(|&&l| l == class).count();
        assert!((170..=190).contains(&n), "class {class} has {n} images");
    }
    assert_eq!(data.summary().sha256, digits().summary().sha256, "the content hash is stable");
}

#[test]
fn unknown_builtin_names_the_valid_ones() {
    let err = builtin("cifar").unwrap_err().to_string();
    assert!(err.contains("cifar") && err.contains("digits"), "{err}");
}

#[test]
fn split_is_disjoint_complete_stratified_and_seeded() {
    let data = digits();
    let config = SplitConfig { train: 0.6, val: 0.2, test: 0.2, seed: 7 };
    let split = stratified_split(data.labels(), 10, config).unwrap();
    let all: Vec<i64> = split.train.iter().chain(&split.val).chain(&split.test).copied().collect();
    assert_eq!(all.len(), data.len());
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), data.len(), "parts are disjoint");
    for class in 0..10 {
        let in_class = |part: &[i64]| part.iter().filter(|&&i| data.labels()[i as usize] == class).count() as f64;
        let total = in_class(&all);
        assert!((in_class(&split.test) / total - 0.2).abs() < 0.01, "class {class} is stratified");
    }
    assert_eq!(split, stratified_split(data.labels(), 10, config).unwrap(), "same seed, same split");
    let other = stratified_split(data.labels(), 10, SplitConfig { seed: 8, ..config }).unwrap();
    assert_ne!(split.test, other.test, "another seed, another split");
}

#[test]
fn bad_split_fractions_are_errors() {
    let labels = digits().labels().to_vec();
    for (config, word) in [
        (SplitConfig { train: 0.5, val: 0.2, test: 0.2, seed: 0 }, "must be 1"),
        (SplitConfig { train: 1.2, val: -0.1, test: -0.1, seed: 0 }, "[0, 1]"),
        (SplitConfig { train: 0.0, val: 0.5, test: 0.5, seed: 0 }, "above 0"),
    ] {
        let err = stratified_split(&labels, 10, config).unwrap_err().to_string();
        assert!(err.contains(word), "{config:?}: {err}");
    }
}

#[test]
fn dataset_checks_its_invariants() {
    let images = Tensor::zeros([3, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
    let names = vec!["a".to_owned(), "b".to_owned()];
    assert!(ImageDataset::new("ok", images.shallow_clone(), vec![0, 1, 1], names.clone()).is_ok());
    let err = ImageDataset::new("bad", images.shallow_clone(), vec![0, 2, 1], names.clone()).unwrap_err().to_string();
    assert!(err.contains("label 2"), "{err}");
    let err = ImageDataset::new("short", images, vec![0, 1], names).unwrap_err().to_string();
    assert!(err.contains("images") && err.contains("[3, 1, 4, 4]"), "{err}");
}

#[test]
fn augmentation_flips_and_crops_within_the_padded_image() {
    use huelab::data::Augment;
    use rand::SeedableRng;
    let batch = Tensor::arange(2 * 3 * 4, (Kind::Float, tch::Device::Cpu)).view([2, 1, 3, 4]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let flipped = Augment { flip: true, crop_padding: 0 }.apply(&batch, &mut rng);
    for i in 0..2 {
        let image = flipped.get(i);
        assert!(image.equal(&batch.get(i)) || image.equal(&batch.get(i).flip([2])), "each image is itself or its mirror");
    }
    let cropped = Augment { flip: false, crop_padding: 1 }.apply(&batch, &mut rng);
    assert_eq!(cropped.size(), [2, 1, 3, 4]);
    // A crop of the zero-padded image keeps a shifted window of the original: its non-zero
    // pixels all come from the original.
    let original: Vec<f32> = Vec::try_from(batch.flatten(0, -1)).unwrap();
    let values: Vec<f32> = Vec::try_from(cropped.flatten(0, -1)).unwrap();
    assert!(values.iter().all(|v| *v == 0.0 || original.contains(v)));
    let identity = Augment::default().apply(&batch, &mut rng);
    assert!(identity.equal(&batch));
}

#[test]
fn kfold_covers_every_image_once_and_splits_the_rest() {
    use huelab::data::{kfold_split, stratified_kfold};
    let data = digits();
    let folds = stratified_kfold(data.labels(), 10, 3, 5).unwrap();
    let all: Vec<i64> = folds.iter().flatten().copied().collect();
    assert_eq!(all.len(), data.len());
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), data.len());
    assert!(folds.iter().all(|f| (598..=600).contains(&f.len())), "{:?}", folds.iter().map(Vec::len).collect::<Vec<_>>());
    let split = kfold_split(data.labels(), 10, &folds, 1, 0.1, 5).unwrap();
    assert_eq!(split.test, folds[1]);
    let inner: HashSet<i64> = split.train.iter().chain(&split.val).copied().collect();
    assert_eq!(inner.len(), data.len() - folds[1].len());
    assert!(inner.iter().all(|i| !folds[1].contains(i)), "test images never train");
    assert!((split.val.len() as f64 / inner.len() as f64 - 0.1).abs() < 0.01);
    assert!(stratified_kfold(data.labels(), 10, 1, 0).is_err());
}
