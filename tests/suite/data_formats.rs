//! Loaders for IDX, `.npy` and ImageFolder data on files made here, their errors, and the real
//! built-in sets that setup.sh fetches.
use std::io::Write;
use std::path::{Path, PathBuf};

use huelab::data::{builtin, load_idx, load_image_folder, load_npy, stratified_subset, ImageFolderConfig, NpyLayout};
use ndarray::{Array1, Array3, Array4};

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap();
}

#[test]
fn idx_files_load_gzipped_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|i| (i * 20) as u8).collect();
    let (images, labels) = (dir.path().join("img.gz"), dir.path().join("lab.idx"));
    write_gz(&images, &idx_bytes(&[3, 2, 2], &pixels));
    std::fs::write(&labels, idx_bytes(&[3], &[0, 2, 1])).unwrap();
    let data = load_idx("tiny", &images, &labels, None).unwrap();
    assert_eq!(data.image_shape(), [1, 2, 2]);
    assert_eq!(data.labels(), [0, 2, 1]);
    assert_eq!(data.class_names(), ["0", "1", "2"]);
    let first = Vec::<f32>::try_from(data.images().unwrap().get(1).flatten(0, -1)).unwrap();
    assert_eq!(first, vec![80.0 / 255.0, 100.0 / 255.0, 120.0 / 255.0, 140.0 / 255.0]);
}

#[test]
fn broken_idx_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("labels"), idx_bytes(&[3], &[0, 1, 1])).unwrap();
    std::fs::write(path("truncated"), &idx_bytes(&[3, 2, 2], &[0; 12])[..20]).unwrap();
    std::fs::write(path("header"), &idx_bytes(&[3, 2, 2], &[0; 12])[..14]).unwrap();
    std::fs::write(path("text"), b"hello world").unwrap();
    std::fs::write(path("four"), idx_bytes(&[4, 2, 2], &[0; 16])).unwrap();
    for (file, word) in [("truncated", "holds 4"), ("header", "truncated IDX header"), ("text", "not an IDX file"), ("four", "expected 4 labels")] {
        let err = load_idx("x", &path(file), &path("labels"), None).unwrap_err().to_string();
        assert!(err.contains(word), "{file}: {err}");
        assert!(err.contains(dir.path().to_str().unwrap()), "the error names the file: {err}");
    }
    let err = load_idx("x", &path("missing"), &path("labels"), None).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

/// The path for the image array, and a label array written at `y.npy`.
fn npy_pair(dir: &Path, labels: &[i32]) -> (PathBuf, PathBuf) {
    let labels_path = dir.join("y.npy");
    ndarray_npy::write_npy(&labels_path, &Array1::from(labels.to_vec())).unwrap();
    (dir.join("x.npy"), labels_path)
}

#[test]
fn npy_arrays_load_in_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = npy_pair(dir.path(), &[1, 0]);
    // Channels last: pixel (row 0, col 1) of image 1 has RGB (10, 20, 30).
    let mut nhwc = Array4::<u8>::zeros((2, 6, 5, 3));
    nhwc[[1, 0, 1, 0]] = 10;
    nhwc[[1, 0, 1, 1]] = 20;
    nhwc[[1, 0, 1, 2]] = 30;
    ndarray_npy::write_npy(&x, &nhwc).unwrap();
    let data = load_npy("nhwc", &x, &y, NpyLayout::Auto, Some(vec!["cat".into(), "dog".into()])).unwrap();
    assert_eq!(data.image_shape(), [3, 6, 5]);
    let green = data.images().unwrap().double_value(&[1, 1, 0, 1]);
    assert!((green - 20.0 / 255.0).abs() < 1e-6, "{green}");

    let nchw = Array4::<f32>::from_elem((2, 1, 6, 6), 0.5);
    ndarray_npy::write_npy(&x, &nchw).unwrap();
    let data = load_npy("nchw", &x, &y, NpyLayout::Auto, None).unwrap();
    assert_eq!(data.image_shape(), [1, 6, 6]);

    let grey = Array3::<u8>::zeros((2, 7, 7));
    ndarray_npy::write_npy(&x, &grey).unwrap();
    assert_eq!(load_npy("grey", &x, &y, NpyLayout::Auto, None).unwrap().image_shape(), [1, 7, 7]);
}

#[test]
fn npy_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = npy_pair(dir.path(), &[0, 1]);
    ndarray_npy::write_npy(&x, &Array4::<u8>::zeros((2, 3, 5, 3))).unwrap();
    let err = load_npy("a", &x, &y, NpyLayout::Auto, None).unwrap_err().to_string();
    assert!(err.contains("layout"), "{err}");
    assert!(load_npy("a", &x, &y, NpyLayout::ChannelsLast, None).is_ok());

    ndarray_npy::write_npy(&x, &Array3::<f32>::from_elem((2, 4, 4), 255.0)).unwrap();
    let err = load_npy("a", &x, &y, NpyLayout::Auto, None).unwrap_err().to_string();
    assert!(err.contains("[0, 1]") && err.contains("x.npy"), "{err}");

    ndarray_npy::write_npy(&x, &Array3::<u8>::zeros((3, 4, 4))).unwrap();
    let err = load_npy("a", &x, &y, NpyLayout::Auto, None).unwrap_err().to_string();
    assert!(err.contains("2 labels for 3 images"), "{err}");
}

fn write_png(path: &Path, rgb: [u8; 3], size: u32) {
    image::RgbImage::from_pixel(size, size, image::Rgb(rgb)).save(path).unwrap();
}

#[test]
fn image_folders_load_resized_with_class_names_from_folders() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("blue", [0, 0, 255]), ("red", [255, 0, 0])] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..3 {
            write_png(&dir.path().join(class).join(format!("{i}.png")), colour, 10 + i);
        }
    }
    std::fs::write(dir.path().join("red/notes.txt"), "not an image").unwrap();
    let data = load_image_folder("colours", dir.path(), ImageFolderConfig { size: (8, 6), channels: 3, ..Default::default() }).unwrap();
    assert_eq!(data.len(), 6);
    assert_eq!(data.image_shape(), [3, 8, 6]);
    assert_eq!(data.class_names(), ["blue", "red"]);
    assert_eq!(data.labels(), [0, 0, 0, 1, 1, 1]);
    assert_eq!(data.images().unwrap().double_value(&[0, 2, 3, 3]), 1.0, "blue is channel 2 of class 0");
    assert_eq!(data.images().unwrap().double_value(&[5, 0, 0, 0]), 1.0, "red is channel 0 of class 1");
    let grey = load_image_folder("grey", dir.path(), ImageFolderConfig { size: (4, 4), channels: 1, ..Default::default() }).unwrap();
    assert_eq!(grey.image_shape(), [1, 4, 4]);
}

#[test]
fn image_folder_errors_name_the_folder_or_file() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
    }
    write_png(&dir.path().join("a/1.png"), [1, 2, 3], 4);
    let err = load_image_folder("x", dir.path(), ImageFolderConfig::default()).unwrap_err().to_string();
    assert!(err.contains("/b") && err.contains("no png/jpg/jpeg images"), "{err}");
    std::fs::write(dir.path().join("b/broken.png"), b"\x89PNG but not really").unwrap();
    let err = load_image_folder("x", dir.path(), ImageFolderConfig::default()).unwrap_err().to_string();
    assert!(err.contains("broken.png") && err.contains("decode"), "{err}");
}

#[test]
fn builtin_sets_from_the_registries_are_real() {
    let fashion = builtin("fashion_mnist").unwrap();
    assert_eq!((fashion.len(), fashion.image_shape(), fashion.num_classes()), (60000, [1, 28, 28], 10));
    assert_eq!(fashion.class_names()[9], "Ankle boot");
    assert_eq!(builtin("fashion_mnist_test").unwrap().len(), 10000);

    let mnist = builtin("mnist5k").unwrap();
    assert_eq!((mnist.len(), mnist.image_shape()), (5000, [1, 28, 28]));
    assert!((0..10).all(|c| mnist.labels().iter().filter(|&&l| l == c).count() == 500));

    let textures = builtin("textures").unwrap();
    assert_eq!((textures.len(), textures.image_shape()), (768, [1, 32, 32]));
    assert_eq!(textures.class_names(), ["brick", "grass", "gravel"]);
    let spread = textures.images().unwrap().std(true).double_value(&[]);
    assert!(spread > 0.05, "real photographs vary: std {spread}");
}

#[test]
fn subsets_are_stratified_seeded_and_bounded() {
    let data = builtin("digits").unwrap();
    let pick = stratified_subset(data.labels(), data.class_names(), 20, 4).unwrap();
    assert_eq!(pick.len(), 200);
    assert_eq!(pick, stratified_subset(data.labels(), data.class_names(), 20, 4).unwrap());
    assert_ne!(pick, stratified_subset(data.labels(), data.class_names(), 20, 5).unwrap());
    let small = data.subset("small", &pick).unwrap();
    assert!((0..10).all(|c| small.labels().iter().filter(|&&l| l == c).count() == 20));
    let beyond = stratified_subset(data.labels(), data.class_names(), 10_000, 0).unwrap_err().to_string();
    assert!(beyond.contains("per_class") && beyond.contains("has only"), "more than a class holds is an error naming it, not the whole data set: {beyond}");
    assert!(data.subset("bad", &[0, 99999]).unwrap_err().to_string().contains("99999"));
}
