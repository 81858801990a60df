//! The three extension points, each proved by a real addition made through it: the focal loss
//! (a `Loss`), ResNet-34 (a backbone row of the architecture table) and the FAISS cosine search
//! backend (a `SearchIndex`), each working end to end.
use huelab::activations::Activations;
use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::device::DeviceChoice;
use huelab::knn::{classify, Backend, ClassifyConfig, MemoryConfig, PixelMemory};
use huelab::models::{Arch, HueNet, ModelSpec, Stem};
use huelab::nn::{FocalLoss, HeadOutputs, HueHeadConfig, Loss, LossKind};
use huelab::script::ScriptRunner;
use huelab::train::{train, TrainConfig};
use tch::{nn, Device, Kind, Tensor};

fn heads(logits: &[f32], classes: i64) -> HeadOutputs {
    let n = logits.len() as i64 / classes;
    HeadOutputs { logits: Tensor::from_slice(logits).view([n, classes]), hue_xy: Tensor::zeros([n, 2], (Kind::Float, Device::Cpu)) }
}

#[test]
fn focal_loss_with_gamma_zero_is_the_cross_entropy_and_matches_a_hand_computed_value() {
    let out = heads(&[2.0, 0.0, -1.0, 0.5, 0.5, 0.0], 3);
    let targets = Tensor::from_slice(&[0i64, 2]);
    let ce = out.logits.cross_entropy_for_logits(&targets).double_value(&[]);
    let gamma0 = FocalLoss { gamma: 0.0 }.compute(&out, &targets).unwrap()[0].double_value(&[]);
    assert!((gamma0 - ce).abs() < 1e-6, "{gamma0} vs {ce}");

    // By hand (float64): p_t = softmax(row)[t]; FL = mean(−(1 − p_t)² log p_t).
    let p = |row: [f64; 3], t: usize| row[t].exp() / row.iter().map(|v| v.exp()).sum::<f64>();
    let fl = |p: f64| -(1.0 - p).powi(2) * p.ln();
    let expected = (fl(p([2.0, 0.0, -1.0], 0)) + fl(p([0.5, 0.5, 0.0], 2))) / 2.0;
    let got = FocalLoss { gamma: 2.0 }.compute(&out, &targets).unwrap()[0].double_value(&[]);
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn focal_loss_trains_from_a_script_and_reports_its_part_by_name() {
    let runner = ScriptRunner::from_source(
        "focal.rhai",
        r#"
        let data = dataset("digits");
        let run = train(data, data.split(#{}), #{ loss: "focal", focal: #{ gamma: 1.5 }, epochs: 2, device: "cpu", progress: false });
        [run.test_accuracy, run.epochs[1].train_focal_loss, run.epochs[1].train_loss]
        "#,
        Default::default(),
    );
    let values = runner.eval().unwrap().cast::<rhai::Array>();
    assert!(values[0].as_float().unwrap() > 0.5, "learns: {}", values[0]);
    assert_eq!(values[1].as_float().unwrap(), values[2].as_float().unwrap(), "its one part is the whole loss");

    let err = ScriptRunner::from_source("bad.rhai", r#"let d = dataset("digits"); train(d, d.split(#{}), #{ loss: "focal", focal: #{ gamma: -1 } })"#, Default::default())
        .eval()
        .unwrap_err();
    assert!(err.message.contains("'gamma'") && err.message.contains(">= 0"), "{err}");
}

#[test]
fn a_focal_run_names_its_part_in_the_metrics() {
    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let config = TrainConfig { loss: LossKind::Focal { gamma: 2.0 }, epochs: 1, progress: false, device: DeviceChoice::Cpu, ..Default::default() };
    let report = train(&data, &split, &config).unwrap();
    let epoch = &report.epochs[0];
    assert_eq!(epoch.train_parts.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["focal"]);
    assert_eq!(epoch.train_part("focal"), Some(epoch.train_loss));
    let json = serde_json::to_value(epoch).unwrap();
    assert_eq!(json["train_focal_loss"], json["train_loss"]);
}

#[test]
fn resnet34_has_torchvisions_parameter_count_and_trains() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    // torchvision's resnet34: 21 797 672 parameters, of which the classifier holds 512·1000 + 1000.
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = ModelSpec { arch: Arch::ResNet34, in_channels: 3, num_classes: 10, input_size: (224, 224), stem: Stem::Auto, hue_head: HueHeadConfig::default() };
    let _net = HueNet::new(&vs.root(), &spec).unwrap();
    let count: i64 = vs.variables().iter().filter(|(n, t)| n.starts_with("backbone.") && t.requires_grad()).map(|(_, t)| t.numel() as i64).sum();
    assert_eq!(count, 21_797_672 - 513_000);
    assert!(vs.variables().contains_key("backbone.layer3.5.conv2.weight"), "six blocks in the third stage, torchvision's names");
    assert_eq!("resnet34".parse::<Arch>().unwrap(), Arch::ResNet34);

    let data = digits();
    let split = stratified_split(data.labels(), 10, SplitConfig::default()).unwrap();
    let config = TrainConfig { arch: Arch::ResNet34, epochs: 2, progress: false, device: DeviceChoice::Cpu, ..Default::default() };
    let report = train(&data, &split, &config).unwrap();
    assert!(report.epochs[1].train_loss < report.epochs[0].train_loss, "the loss falls: {:?}", report.epochs);
    assert_eq!(report.model.arch, Arch::ResNet34);
}

fn clustered(n: i64, seed: i64) -> Activations {
    let labels: Vec<i64> = (0..n).map(|i| i % 3).collect();
    // Seeded under the training runs' generator lock: tests run side by side in one process.
    let (centres, noise) = huelab::rng::seeded(seed, || (Tensor::randn([3, 16, 1, 1], (Kind::Float, Device::Cpu)), Tensor::randn([n, 16, 3, 3], (Kind::Float, Device::Cpu)) * 0.8));
    let maps = centres.index_select(0, &Tensor::from_slice(&labels)) + noise;
    Activations::new(maps.relu(), labels, vec!["a".into(), "b".into(), "c".into()], "clustered").unwrap()
}

#[test]
fn the_cosine_backend_finds_the_l2_neighbours_of_unit_vectors_and_survives_save_and_load() {
    let (memory_acts, queries) = (clustered(60, 1), clustered(30, 2));
    let l2 = MemoryConfig::default();
    let ip = MemoryConfig { backend: Backend::FaissIp, ..Default::default() };
    let mut l2_memory = PixelMemory::build(&memory_acts, &l2, Device::Cpu).unwrap();
    let mut ip_memory = PixelMemory::build(&memory_acts, &ip, Device::Cpu).unwrap();
    let vectors = huelab::knn::Descriptor::Pixel.vectors(queries.maps());
    let (a, b) = (l2_memory.search(&vectors, 5).unwrap(), ip_memory.search(&vectors, 5).unwrap());
    let same = a.ids.iter().zip(&b.ids).filter(|(x, y)| x == y).count() as f64 / a.ids.len() as f64;
    assert!(same > 0.99, "same neighbours: {same}");
    let max_gap = a.distances_sq.iter().zip(&b.distances_sq).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max_gap < 1e-4, "distances agree: {max_gap}");

    let config = ClassifyConfig::default();
    let (pa, _) = classify(&mut l2_memory, &queries, &config).unwrap();
    let (pb, _) = classify(&mut ip_memory, &queries, &config).unwrap();
    assert_eq!(pa.predicted, pb.predicted);

    let dir = tempfile::tempdir().unwrap();
    ip_memory.save(dir.path()).unwrap();
    let mut loaded = PixelMemory::load(dir.path(), Device::Cpu).unwrap();
    assert_eq!(loaded.config().backend, Backend::FaissIp);
    assert_eq!(classify(&mut loaded, &queries, &config).unwrap().0.predicted, pb.predicted);

    let err = "annoy".parse::<Backend>().unwrap_err().to_string();
    assert!(err.contains("faiss_ip") && err.contains("annoy"), "{err}");
}

// The second round of additions, each made by following src/README.md's recipe literally: the
// poly-1 loss, MobileNetV2 and an exact cosine backend without FAISS.

#[test]
fn poly1_trains_from_a_script_with_its_two_parts_named_listed_and_documented() {
    let runner = ScriptRunner::from_source(
        "poly1.rhai",
        r#"
        let data = dataset("digits");
        let run = train(data, data.split(#{}), #{ loss: "poly1", poly1: #{ epsilon: 2.0 }, epochs: 2, device: "cpu", progress: false });
        let e = run.epochs[1];
        [run.test_accuracy, e.train_onehot_loss, e.train_poly1_loss, e.train_loss]
        "#,
        Default::default(),
    );
    let values: Vec<f64> = runner.eval().unwrap().cast::<rhai::Array>().iter().map(|v| v.as_float().unwrap()).collect();
    assert!(values[0] > 0.5, "learns: {values:?}");
    assert!(values[2] > 0.0 && (values[1] + values[2] - values[3]).abs() < 1e-5, "the parts sum to the loss (float32 batch sums): {values:?}");

    let err = ScriptRunner::from_source("bad.rhai", r#"let d = dataset("digits"); train(d, d.split(#{}), #{ loss: "poly1", poly1: #{ epsilon: -3 } })"#, Default::default())
        .eval()
        .unwrap_err();
    assert!(err.message.contains("'epsilon'") && err.message.contains(">= -1"), "{err}");
    let unknown = LossKind::from_options("poly2", Default::default()).unwrap_err().to_string();
    assert!(unknown.contains("poly1") && unknown.contains("focal"), "the unknown-loss message lists it: {unknown}");
    let api = huelab::script::api_text().unwrap();
    assert!(api.contains("poly1") && api.contains("epsilon"), "huelab api documents it");
}

#[test]
fn mobilenet_v2_is_listed_and_trains_from_a_script() {
    let runner = ScriptRunner::from_source(
        "mobilenet.rhai",
        r#"
        let data = subset(dataset("mnist5k"), #{ per_class: 12, seed: 1 });
        let run = train(data, data.split(#{}), #{ model: "mobilenet_v2", epochs: 2, batch_size: 16, lr: 0.003, device: "cpu", progress: false });
        [models().trainable.contains("mobilenet_v2"), run.epochs[0].train_loss, run.epochs[1].train_loss]
        "#,
        Default::default(),
    );
    let values = runner.eval().unwrap().cast::<rhai::Array>();
    assert!(values[0].as_bool().unwrap(), "models() lists it");
    let (first, second) = (values[1].as_float().unwrap(), values[2].as_float().unwrap());
    assert!(first.is_finite() && second < first, "the loss falls: {first} → {second}");
    assert_eq!("mobilenet_v2".parse::<Arch>().unwrap(), Arch::MobileNetV2);
    let api = huelab::script::api_text().unwrap();
    assert!(api.contains("mobilenet_v2"), "huelab api lists it among the models");
}

#[test]
fn the_exact_cosine_backend_equals_faiss_ip_from_a_script_and_survives_save_and_load() {
    let (memory_acts, queries) = (clustered(60, 3), clustered(30, 4));
    let ip = MemoryConfig { backend: Backend::FaissIp, ..Default::default() };
    let cosine = MemoryConfig { backend: Backend::TorchCosine, ..Default::default() };
    let mut ip_memory = PixelMemory::build(&memory_acts, &ip, Device::Cpu).unwrap();
    let mut cosine_memory = PixelMemory::build(&memory_acts, &cosine, Device::Cpu).unwrap();
    let vectors = huelab::knn::Descriptor::Pixel.vectors(queries.maps());
    let (a, b) = (ip_memory.search(&vectors, 5).unwrap(), cosine_memory.search(&vectors, 5).unwrap());
    assert_eq!(a.ids, b.ids, "the same neighbours in the same order");
    let max_gap = a.distances_sq.iter().zip(&b.distances_sq).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max_gap < 1e-5, "the same squared distances 2 − 2s: {max_gap}");
    let config = ClassifyConfig::default();
    let predicted = classify(&mut ip_memory, &queries, &config).unwrap().0.predicted;
    assert_eq!(classify(&mut cosine_memory, &queries, &config).unwrap().0.predicted, predicted);

    let dir = tempfile::tempdir().unwrap();
    cosine_memory.save(dir.path()).unwrap();
    assert!(dir.path().join("vectors.safetensors").is_file());
    let mut loaded = PixelMemory::load(dir.path(), Device::Cpu).unwrap();
    assert_eq!(loaded.config().backend, Backend::TorchCosine);
    assert_eq!(classify(&mut loaded, &queries, &config).unwrap().0.predicted, predicted);

    // From a script: the backend by name, and an approximate index refused by name.
    let runner = ScriptRunner::from_source(
        "cosine.rhai",
        r#"
        let net = pretrained("efficientnet_lite0", #{ size: 32 });
        let acts = activations(net, dataset("textures").subset(#{ per_class: 2, seed: 0 }), #{});
        let memory = pixel_memory(acts, #{ backend: "torch_cosine" });
        let bad = "";
        try { pixel_memory(acts, #{ backend: "torch_cosine", index: "HNSW32" }); } catch (e) { bad = `${e}`; }
        [memory.description, bad]
        "#,
        Default::default(),
    );
    let result = runner.eval();
    let values = result.unwrap().cast::<rhai::Array>();
    assert!(values[0].to_string().contains("torch_cosine"), "{values:?}");
    assert!(values[1].to_string().contains("torch_cosine") && values[1].to_string().contains("Flat"), "{values:?}");
}
