//! Model construction: variable names, the bottleneck hook and input checks.
use huelab::models::{Arch, HueNet, ModelSpec};
use huelab::nn::HueHeadConfig;
use tch::{nn, Device, Kind, Tensor};

fn spec(input_size: (i64, i64), hidden: Option<i64>) -> ModelSpec {
    ModelSpec { arch: Arch::SmallCnn, in_channels: 1, num_classes: 10, input_size, hue_head: HueHeadConfig { hidden } }
}

#[test]
fn variables_have_explicit_stable_names() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = HueNet::new(&vs.root(), &spec((8, 8), None)).unwrap();
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    let mut expected = vec![
        "heads.classifier.bias", "heads.classifier.weight", "heads.hue.bias", "heads.hue.weight",
    ];
    for block in 1..=3 {
        for v in ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight", "conv.weight"] {
            expected.push(Box::leak(format!("backbone.block{block}.{v}").into_boxed_str()));
        }
    }
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn bottleneck_and_heads_have_the_documented_shapes() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = HueNet::new(&vs.root(), &spec((28, 28), Some(16))).unwrap();
    let xs = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let features = net.features_t(&xs, false).unwrap();
    assert_eq!(features.size(), [3, 128, 7, 7], "two pools for 28×28");
    assert!(features.min().double_value(&[]) >= 0.0, "the bottleneck is taken after its ReLU");
    let out = net.forward_t(&xs, true).unwrap();
    assert_eq!(out.logits.size(), [3, 10]);
    assert_eq!(out.hue_xy.size(), [3, 2]);
    assert!(vs.variables().contains_key("heads.hue_hidden.weight"));

    let vs8 = nn::VarStore::new(Device::Cpu);
    let net8 = HueNet::new(&vs8.root(), &spec((8, 8), None)).unwrap();
    let x8 = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(net8.features_t(&x8, false).unwrap().size(), [2, 128, 4, 4], "one pool for 8×8");
}

#[test]
fn wrong_input_shape_and_too_small_inputs_are_errors() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = HueNet::new(&vs.root(), &spec((8, 8), None)).unwrap();
    let err = net.forward_t(&Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu)), false).unwrap_err().to_string();
    assert!(err.contains("xs") && err.contains("[2, 3, 8, 8]") && err.contains("[batch, 1, 8, 8]"), "{err}");
    let err = HueNet::new(&vs.root(), &spec((2, 2), None)).unwrap_err().to_string();
    assert!(err.contains("at least 4×4") && err.contains("2×2"), "{err}");
    let err = "resnet".parse::<Arch>().unwrap_err().to_string();
    assert!(err.contains("resnet") && err.contains("small_cnn"), "{err}");
}
