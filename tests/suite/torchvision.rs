//! torchvision checkpoints in torch.save's zip format load into huelab's backbones and give
//! PyTorch's own outputs: the fixtures (tests/fixtures/make_torchvision_fixtures.py, run once
//! with PyTorch 2.11 / torchvision 0.26) hold pattern-weight models saved by torch.save and
//! their logits for two pattern inputs. No Python runs here.
use std::io::Read;
use std::path::{Path, PathBuf};

use huelab::models::{ImageNetModel, TorchvisionArch, TorchvisionNet};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision").join(name)
}

/// The fixture's weights, unpacked from `.pth.gz` into `dir` as the `.pth` torch.save wrote.
fn weights(dir: &Path, arch: &str) -> PathBuf {
    let mut bytes = vec![];
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(&format!("{arch}.pth.gz"))).unwrap()).read_to_end(&mut bytes).unwrap();
    let path = dir.join(format!("{arch}.pth"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `((7h + 3w + 5c + b) mod 17) / 16 − 0.5`, as the fixture script makes them.
fn inputs() -> Tensor {
    let mut values = Vec::with_capacity(2 * 3 * 224 * 224);
    for b in 0..2i64 {
        for c in 0..3i64 {
            for h in 0..224i64 {
                for w in 0..224i64 {
                    values.push(((7 * h + 3 * w + 5 * c + b) % 17) as f32 / 16.0 - 0.5);
                }
            }
        }
    }
    Tensor::from_slice(&values).view([2, 3, 224, 224])
}

fn reference(arch: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{arch}.json"))).unwrap()).unwrap()
}

fn check(arch_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let arch: TorchvisionArch = arch_name.parse().unwrap();
    let net = TorchvisionNet::load(arch, &weights(dir.path(), arch_name), Device::Cpu).unwrap();
    let expected = reference(arch_name);
    let x = inputs();
    let logits: Vec<Vec<f32>> = Vec::try_from(net.predict(&x).unwrap()).unwrap();
    let mut worst = 0f64;
    for (row, expected_row) in logits.iter().zip(expected["logits"].as_array().unwrap()) {
        for (got, want) in row.iter().zip(expected_row.as_array().unwrap()) {
            worst = worst.max((*got as f64 - want.as_f64().unwrap()).abs());
        }
    }
    assert_eq!(logits.len(), 2);
    eprintln!("{arch_name}: largest logit difference from PyTorch {worst:.2e}");
    assert!(worst < 1e-4, "{arch_name}: logits differ from PyTorch's by up to {worst}");

    let features = tch::no_grad(|| net.layer_t(&x, "bottleneck")).unwrap();
    let shape: Vec<i64> = expected["bottleneck_shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(features.size(), shape, "{arch_name}: bottleneck shape");
    let means: Vec<f64> = Vec::try_from(features.mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)).unwrap();
    for (got, want) in means.iter().zip(expected["bottleneck_mean"].as_array().unwrap()) {
        assert!((got - want.as_f64().unwrap()).abs() < 1e-4, "{arch_name}: bottleneck mean {got} vs {want}");
    }
}

#[test]
fn resnet18_reproduces_pytorch() {
    check("resnet18");
}

#[test]
fn densenet201_with_the_published_key_names_reproduces_pytorch() {
    check("densenet201");
}

#[test]
fn efficientnet_b0_with_torchvision_names_reproduces_pytorch() {
    check("efficientnet_b0");
}

#[test]
fn safetensors_and_mismatched_files_are_read_or_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = weights(dir.path(), "resnet18");
    // The same state dict as safetensors.
    let state = huelab::models::load_state_dict(&path).unwrap();
    let safetensors = dir.path().join("resnet18.safetensors");
    Tensor::write_safetensors(&state, &safetensors).unwrap();
    let a = TorchvisionNet::load(TorchvisionArch::ResNet18, &path, Device::Cpu).unwrap().predict(&inputs()).unwrap();
    let b = TorchvisionNet::load(TorchvisionArch::ResNet18, &safetensors, Device::Cpu).unwrap().predict(&inputs()).unwrap();
    assert_eq!(Vec::<f32>::try_from(a.flatten(0, -1)).unwrap(), Vec::<f32>::try_from(b.flatten(0, -1)).unwrap());

    // ResNet-18 weights are not ResNet-34's: the missing tensors are named.
    let err = TorchvisionNet::load(TorchvisionArch::ResNet34, &path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("resnet18.pth") && err.contains("layer3.2"), "{err}");
    // Nor DenseNet's.
    let err = ImageNetModel::load("densenet121", Some(&path), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("classifier.weight") && err.contains("densenet121"), "{err}");
    // A torchvision network needs its file.
    let err = ImageNetModel::load("resnet18", None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("weights"), "{err}");
}

#[test]
fn a_torchvision_network_gives_activations_and_memories_from_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = weights(dir.path(), "resnet18");
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join("images").join(class)).unwrap();
        for i in 0..4u8 {
            let colour = if class == "a" { [200, 30 + i * 10, 30] } else { [30, 30 + i * 10, 200] };
            image::RgbImage::from_pixel(80, 60, image::Rgb(colour)).save(dir.path().join("images").join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let mut args = std::collections::BTreeMap::new();
    args.insert("weights".to_owned(), path.display().to_string());
    args.insert("data".to_owned(), dir.path().join("images").display().to_string());
    let script = r#"
        let net = pretrained("resnet18", #{ weights: arg("weights", ""), layer: "layer3", size: 64 });
        let data = load_image_folder(arg("data", ""), #{ size: 64 });
        let acts = activations(net, data, #{ batch_size: 3 });
        let memory = pixel_memory_of(net, data, #{ add_batch: 3 });
        [net.description, acts.channels, acts.grid, memory.len]
    "#;
    let out = huelab::script::ScriptRunner::from_source("tv.rhai", script, args).eval().unwrap().cast::<rhai::Array>();
    assert!(out[0].to_string().starts_with("resnet18 layer3"), "{}", out[0]);
    assert_eq!(out[1].as_int().unwrap(), 256);
    assert_eq!(out[2].to_string(), "[4, 4]");
    assert_eq!(out[3].as_int().unwrap(), 8 * 16);
}

#[test]
fn a_head_of_other_classes_is_never_labelled_with_imagenet_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = huelab::models::load_state_dict(&weights(dir.path(), "resnet18")).unwrap();
    // The same network with a 5-class classifier, as a fine-tuned checkpoint has.
    let five: Vec<(String, Tensor)> = state
        .into_iter()
        .map(|(n, t)| match n.as_str() {
            "fc.weight" => (n, t.narrow(0, 0, 5)),
            "fc.bias" => (n, t.narrow(0, 0, 5)),
            _ => (n, t),
        })
        .collect();
    let path = dir.path().join("five.safetensors");
    Tensor::write_safetensors(&five, &path).unwrap();
    let image = dir.path().join("x.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 50])).save(&image).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huelab"))
        .args(["predict", "--model", "resnet18", "--weights"])
        .arg(&path)
        .arg(&image)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("5 classes, not ImageNet's 1000"), "{stderr}");
    assert!(!stdout.contains("tench") && !stdout.contains("goldfish"), "ImageNet names on a 5-class head: {stdout}");
}
