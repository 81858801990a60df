//! The ImageNet-pretrained EfficientNet-Lite0 from its legacy PyTorch pickle: the sanity check
//! on real photos, the other lite variants' shapes, and the loader's errors.
use std::path::PathBuf;

use huelab::extract::Extractor;
use huelab::data::data_dir;
use huelab::models::{load_image, load_state_dict, read_imagenet_classes, EfficientNetLite, LiteVariant, PretrainedNet};
use tch::{nn, Device};

fn photo(name: &str) -> PathBuf {
    data_dir().join("skimage").join(format!("{name}.png"))
}

#[test]
fn the_cat_photo_is_a_cat_and_the_coffee_photo_is_espresso() {
    let net = PretrainedNet::load(LiteVariant::from_name("efficientnet_lite0").unwrap(), None, Device::Cpu).unwrap();
    let names = read_imagenet_classes(None).unwrap();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[281], "tabby, tabby cat");
    let cat = net.top_k(&load_image(&photo("chelsea"), 224).unwrap().unsqueeze(0), 5, &names).unwrap();
    // 281 tabby, 282 tiger cat, 285 Egyptian cat.
    assert!([281, 282, 285].contains(&cat[0][0].index), "cat photo top-5: {:?}", cat[0]);
    let coffee = net.top_k(&load_image(&photo("coffee"), 224).unwrap().unsqueeze(0), 5, &names).unwrap();
    assert_eq!(coffee[0][0].name, "espresso", "coffee photo top-5: {:?}", coffee[0]);
    assert!(coffee[0][0].probability > 0.5);
}

#[test]
fn the_state_dict_has_every_tensor_with_its_strides_resolved() {
    let state = load_state_dict(&data_dir().join("weights/efficientnet-lite0-57934424.pth")).unwrap();
    assert_eq!(state.len(), 296);
    let (name, stem) = &state[0];
    assert_eq!(name, "_conv_stem.weight");
    assert_eq!(stem.size(), vec![32, 3, 3, 3]);
    // Stored channels-last in the file; read back contiguous.
    assert!(stem.is_contiguous());
    let parameters: i64 = state.iter().filter(|(n, _)| !n.contains("running_") && !n.contains("num_batches")).map(|(_, t)| t.numel() as i64).sum();
    assert_eq!(parameters, 4_652_008);
}

#[test]
fn every_lite_variant_has_the_published_size() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    // Parameter counts of the TensorFlow release (with the 1000-class head), in millions.
    for (name, published) in [("efficientnet_lite0", 4.7), ("efficientnet_lite1", 5.4), ("efficientnet_lite2", 6.1), ("efficientnet_lite3", 8.2), ("efficientnet_lite4", 13.0)] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = EfficientNetLite::new(&vs.root(), LiteVariant::from_name(name).unwrap(), 3, 1000);
        let count: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert!((count as f64 / 1e6 - published).abs() < 0.06, "{name}: {count} parameters, published {published} M");
        let size = LiteVariant::from_name(name).unwrap().input_size();
        let out = tch::no_grad(|| net.layer_t(&tch::Tensor::zeros([1, 3, size, size], (tch::Kind::Float, Device::Cpu)), "head", false)).unwrap();
        assert_eq!(out.size(), vec![1, 1280, (size + 31) / 32, (size + 31) / 32], "{name}");
    }
}

#[test]
fn loader_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(data_dir().join("weights/efficientnet-lite0-57934424.pth")).unwrap();
    let truncated = dir.path().join("truncated.pth");
    std::fs::write(&truncated, &original[..original.len() - 1000]).unwrap();
    let err = load_state_dict(&truncated).unwrap_err().to_string();
    assert!(err.contains("truncated.pth") && err.contains("truncated"), "{err}");
    let zip = dir.path().join("new.pth");
    std::fs::write(&zip, b"PK\x03\x04rest").unwrap();
    let err = load_state_dict(&zip).unwrap_err().to_string();
    assert!(err.contains("new.pth") && err.contains("zip"), "a broken zip-format file is an error naming it: {err}");
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, b"hello").unwrap();
    assert!(load_state_dict(&text).unwrap_err().to_string().contains("not a PyTorch file"));
    // lite0 weights do not fit lite2.
    let err = PretrainedNet::load(LiteVariant::from_name("efficientnet_lite2").unwrap(), Some(&data_dir().join("weights/efficientnet-lite0-57934424.pth")), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has shape") || err.contains("missing"), "{err}");
    // A layer that does not exist lists the valid ones.
    let err = Extractor::pretrained("efficientnet_lite0", None, "block7", None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no layer 'block7'") && err.contains("blocks.15") && err.contains("head"), "{err}");
    let err = Extractor::pretrained("resnet50", None, "head", None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("efficientnet_lite0"), "{err}");
}

#[test]
fn a_script_gets_the_top_classes_of_a_photo() {
    let photos = data_dir().join("skimage");
    let source = r#"let top = imagenet_top(pretrained("efficientnet_lite0", #{}), `${arg("photos", "")}/coffee.png`, 3); [top.len(), top[0].name, top[0].probability > 0.5]"#;
    let args = std::collections::BTreeMap::from([("photos".to_owned(), photos.display().to_string())]);
    let values = huelab::script::ScriptRunner::from_source("top.rhai", source, args).eval().unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Array>();
    assert_eq!(values[0].as_int().unwrap(), 3);
    assert_eq!(values[1].to_string(), "espresso");
    assert!(values[2].as_bool().unwrap());
}
