//! Model construction: variable names, the bottleneck hook and input checks.
use huelab::models::{Arch, HueNet, ModelSpec, Stem};
use huelab::nn::HueHeadConfig;
use tch::{nn, Device, Kind, Tensor};

fn spec(input_size: (i64, i64), hidden: Option<i64>) -> ModelSpec {
    ModelSpec { arch: Arch::SmallCnn, in_channels: 1, num_classes: 10, input_size, stem: Stem::Auto, hue_head: HueHeadConfig { hidden } }
}

#[test]
fn variables_have_explicit_stable_names() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
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
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
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
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = HueNet::new(&vs.root(), &spec((8, 8), None)).unwrap();
    let err = net.forward_t(&Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu)), false).unwrap_err().to_string();
    assert!(err.contains("xs") && err.contains("[2, 3, 8, 8]") && err.contains("[batch, 1, 8, 8]"), "{err}");
    let err = HueNet::new(&vs.root(), &spec((2, 2), None)).unwrap_err().to_string();
    assert!(err.contains("at least 4×4") && err.contains("2×2"), "{err}");
    let err = "resnet".parse::<Arch>().unwrap_err().to_string();
    assert!(err.contains("resnet") && err.contains("small_cnn"), "{err}");
}

fn backbone_parameter_count(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .into_iter()
        .filter(|(name, t)| name.starts_with("backbone.") && t.requires_grad())
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

fn build(arch: Arch, in_channels: i64, size: i64, stem: Stem) -> (nn::VarStore, HueNet) {
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ModelSpec { arch, in_channels, num_classes: 10, input_size: (size, size), stem, hue_head: HueHeadConfig::default() };
    let net = HueNet::new(&vs.root(), &spec).unwrap();
    (vs, net)
}

#[test]
fn backbones_match_the_published_parameter_counts() {
    // torchvision: resnet18 11 689 512 and efficientnet_b0 5 288 548 parameters, of which the
    // 1000-way classifier holds 512·1000 + 1000 and 1280·1000 + 1000.
    let (vs, _) = build(Arch::ResNet18, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 11_689_512 - 513_000);
    let (vs, _) = build(Arch::EfficientNetB0, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 5_288_548 - 1_281_000);
    // densenet121 7 978 856 and densenet201 20 013 928 with a 1024- and 1920-wide classifier;
    // vgg11_bn 132 868 840 and vgg16_bn 138 365 992, whose three-layer classifier holds
    // 25088·4096 + 4096 + 4096·4096 + 4096 + 4096·1000 + 1000 = 123 642 856.
    let (vs, _) = build(Arch::DenseNet121, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 7_978_856 - 1_025_000);
    let (vs, _) = build(Arch::DenseNet201, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 20_013_928 - 1_921_000);
    let (vs, _) = build(Arch::Vgg11, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 132_868_840 - 123_642_856);
    let (vs, _) = build(Arch::Vgg16, 3, 224, Stem::Auto);
    assert_eq!(backbone_parameter_count(&vs), 138_365_992 - 123_642_856);
}

#[test]
fn backbones_keep_the_reference_variable_names() {
    let (vs, _) = build(Arch::ResNet18, 3, 64, Stem::Auto);
    let names = vs.variables();
    for name in ["backbone.conv1.weight", "backbone.layer1.0.conv1.weight", "backbone.layer4.1.bn2.running_var", "backbone.layer2.0.downsample.0.weight"] {
        assert!(names.contains_key(name), "{name}");
    }
    let (vs, _) = build(Arch::EfficientNetB0, 3, 64, Stem::Auto);
    let names = vs.variables();
    for name in ["backbone._conv_stem.weight", "backbone._bn0.running_mean", "backbone._blocks.0._depthwise_conv.weight", "backbone._blocks.15._project_conv.weight", "backbone._blocks.1._expand_conv.weight", "backbone._blocks.3._se_reduce.bias", "backbone._conv_head.weight", "backbone._bn1.weight"] {
        assert!(names.contains_key(name), "{name}");
    }
    assert!(!names.contains_key("backbone._blocks.16._project_conv.weight"), "B0 has 16 blocks");
    assert!(!names.contains_key("backbone._blocks.0._expand_conv.weight"), "the first block does not expand");
    let (vs, _) = build(Arch::DenseNet121, 3, 64, Stem::Auto);
    let names = vs.variables();
    for name in ["backbone.features.conv0.weight", "backbone.features.denseblock4.denselayer16.conv2.weight", "backbone.features.transition3.conv.weight", "backbone.features.norm5.running_var"] {
        assert!(names.contains_key(name), "{name}");
    }
    let (vs, _) = build(Arch::Vgg16, 3, 64, Stem::Auto);
    let names = vs.variables();
    for name in ["backbone.features.0.weight", "backbone.features.1.running_mean", "backbone.features.40.weight", "backbone.features.41.bias"] {
        assert!(names.contains_key(name), "{name}");
    }
}

#[test]
fn backbones_give_bottlenecks_for_grey_28x28_and_rgb_inputs() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let cases = [
        (Arch::ResNet18, 1, 28, Stem::Auto, [512, 4, 4]),
        (Arch::ResNet18, 3, 64, Stem::Auto, [512, 2, 2]),
        (Arch::EfficientNetB0, 1, 28, Stem::Auto, [1280, 2, 2]),
        (Arch::EfficientNetB0, 3, 64, Stem::Imagenet, [1280, 2, 2]),
        (Arch::DenseNet121, 1, 28, Stem::Auto, [1024, 3, 3]),
        (Arch::DenseNet201, 3, 64, Stem::Imagenet, [1920, 2, 2]),
        (Arch::Vgg11, 1, 28, Stem::Auto, [512, 1, 1]),
        (Arch::Vgg16, 3, 64, Stem::Imagenet, [512, 2, 2]),
    ];
    for (arch, channels, size, stem, expected) in cases {
        let (_vs, net) = build(arch, channels, size, stem);
        let xs = Tensor::rand([2, channels, size, size], (Kind::Float, Device::Cpu));
        let features = net.features_t(&xs, true).unwrap();
        assert_eq!(features.size()[1..], expected, "{arch:?} {channels}×{size}×{size}");
        let out = net.forward_t(&xs, true).unwrap();
        assert_eq!((out.logits.size(), out.hue_xy.size()), (vec![2, 10], vec![2, 2]));
    }
    assert_eq!(build(Arch::ResNet18, 1, 28, Stem::Auto).1.spec().stem, Stem::Small, "auto resolves by size");
    assert_eq!(build(Arch::ResNet18, 3, 64, Stem::Auto).1.spec().stem, Stem::Imagenet);
}

#[test]
fn too_small_inputs_say_so() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ModelSpec { arch: Arch::ResNet18, in_channels: 1, num_classes: 10, input_size: (28, 28), stem: Stem::Imagenet, hue_head: HueHeadConfig::default() };
    let err = HueNet::new(&vs.root(), &spec).unwrap_err().to_string();
    assert!(err.contains("at least 32×32") && err.contains("28×28") && err.contains("small stem"), "{err}");
}

#[test]
fn efficientnet_batch_norm_uses_pytorch_momentum() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    // running_mean ← 0.9 · running_mean + 0.1 · batch mean (PyTorch's default momentum), so one
    // train-mode pass from zero leaves exactly a tenth of the stem's batch mean.
    let (vs, net) = build(Arch::EfficientNetB0, 1, 32, Stem::Small);
    let xs = Tensor::rand([4, 1, 32, 32], (Kind::Float, Device::Cpu));
    let variables = vs.variables();
    let weight = &variables["backbone._conv_stem.weight"];
    let expected = tch::no_grad(|| xs.conv2d(weight, None::<Tensor>, [1], [1], [1], 1).mean_dim(&[0i64, 2, 3][..], false, Kind::Float) * 0.1);
    net.forward_t(&xs, true).unwrap();
    let running_mean = &vs.variables()["backbone._bn0.running_mean"];
    let worst = (running_mean - expected).abs().max().double_value(&[]);
    assert!(worst < 1e-6, "running_mean differs from 0.1 × batch mean by {worst}");
}

#[test]
fn resnet_intermediate_layers_end_at_the_bottleneck() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ModelSpec { arch: Arch::ResNet18, in_channels: 1, num_classes: 10, input_size: (28, 28), stem: Stem::Auto, hue_head: HueHeadConfig::default() };
    let net = HueNet::new(&vs.root(), &spec).unwrap();
    assert_eq!(net.layer_names(), ["bottleneck", "stem", "layer1", "layer2", "layer3", "layer4"]);
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let sizes: Vec<Vec<i64>> = ["stem", "layer1", "layer2", "layer3"].iter().map(|l| net.layer_t(&x, l, false).unwrap().size()).collect();
    assert_eq!(sizes, [vec![2, 64, 28, 28], vec![2, 64, 28, 28], vec![2, 128, 14, 14], vec![2, 256, 7, 7]]);
    assert!(net.layer_t(&x, "layer4", false).unwrap().equal(&net.features_t(&x, false).unwrap()));
    let err = net.layer_t(&x, "layer5", false).unwrap_err().to_string();
    assert!(err.contains("valid layers: bottleneck, stem, layer1"), "{err}");
}
