//! Activation sources: a user's TorchScript module and the saved model of a checkpointed run.
use std::path::Path;

use huelab::extract::Extractor;
use huelab::data::{digits, stratified_split, SplitConfig};
use huelab::train::{train, TrainConfig, TrainedModel};
use tch::{Device, Kind, Tensor};

#[test]
fn a_torchscript_module_gives_its_own_output_as_the_activations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_conv.pt");
    let extractor = Extractor::torchscript(&path, None, Device::Cpu).unwrap();
    let data = digits().subset("ten", &(0..10).collect::<Vec<_>>()).unwrap();
    let acts = extractor.extract(&data, 4).unwrap();
    assert_eq!(acts.maps().size(), vec![10, 4, 6, 6]);
    // The fixture's weights, as make_tiny_conv.py sets them.
    let weight = Tensor::arange(36, (Kind::Float, Device::Cpu)).view([4, 1, 3, 3]) / 36.0 - 0.5;
    let bias = Tensor::from_slice(&[0.0f32, 0.1, -0.1, 0.2]);
    let expected = data.images().unwrap().conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1).relu();
    let difference = (acts.maps() - expected).abs().max().double_value(&[]);
    assert!(difference < 1e-5, "max difference {difference}");
    assert_eq!(acts.labels(), data.labels());

    let err = Extractor::torchscript(Path::new("no-such-module.pt"), None, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no-such-module.pt"), "{err}");
}

#[test]
fn a_checkpointed_run_leaves_a_model_that_reproduces_its_test_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig::default()).unwrap();
    let config = TrainConfig { epochs: 2, progress: false, normalize: true, checkpoint: Some(dir.path().join("run")), ..Default::default() };
    let report = train(&data, &split, &config).unwrap();

    let model = TrainedModel::load(&dir.path().join("run"), Device::Cpu).unwrap();
    let (x, y) = data.select(&split.test).unwrap();
    let logits = tch::no_grad(|| model.net.forward_t(&model.standardise(&x), false)).unwrap().logits;
    let accuracy = logits.argmax(-1, false).eq_tensor(&y).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
    assert_eq!(accuracy, report.test.unwrap().accuracy);

    let extractor = Extractor::trained(&dir.path().join("run"), "bottleneck", Device::Cpu).unwrap();
    let acts = extractor.extract(&data, 256).unwrap();
    assert_eq!(acts.len(), data.len());
    assert_eq!(acts.channels(), model.net.features_t(&x.narrow(0, 0, 1), false).unwrap().size()[1]);
    let err = Extractor::trained(&dir.path().join("run"), "layer3", Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no layer 'layer3'") && err.contains("bottleneck, block1, block2, block3"), "{err}");
    // An intermediate layer: the small CNN's first block keeps the 8×8 grid (no pool below 16 px).
    let block1 = Extractor::trained(&dir.path().join("run"), "block1", Device::Cpu).unwrap().extract(&data, 512).unwrap();
    assert_eq!(block1.grid(), (8, 8));
    let last = Extractor::trained(&dir.path().join("run"), "block3", Device::Cpu).unwrap().extract(&data, 512).unwrap();
    assert!(last.maps().equal(acts.maps()), "block3 is the bottleneck");
    let err = Extractor::trained(&dir.path().join("nothing"), "bottleneck", Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("model.json"), "{err}");
}

#[test]
fn a_streamed_memory_equals_one_built_from_all_activations() {
    use huelab::knn::{classify, ClassifyConfig, MemoryConfig, PixelMemory};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_conv.pt");
    let extractor = Extractor::torchscript(&path, None, Device::Cpu).unwrap();
    let data = digits();
    let split = stratified_split(data.labels(), data.num_classes(), SplitConfig { train: 0.8, val: 0.0, test: 0.2, seed: 0 }).unwrap();
    let memory_data = data.subset("digits-memory", &split.train).unwrap();
    let queries = extractor.extract(&data.subset("digits-queries", &split.test).unwrap(), 256).unwrap();
    let all = extractor.extract(&memory_data, 256).unwrap();
    for config in [MemoryConfig { add_batch: 100, ..Default::default() }, MemoryConfig { index: "IVF8,Flat".into(), nprobe: Some(2), add_batch: 100, ..Default::default() }] {
        let mut whole = PixelMemory::build(&all, &config, Device::Cpu).unwrap();
        let mut streamed = PixelMemory::build_streaming(&extractor, &memory_data, &config, Device::Cpu).unwrap();
        assert_eq!(whole.len(), streamed.len());
        let a = classify(&mut whole, &queries, &ClassifyConfig::default()).unwrap().0;
        let b = classify(&mut streamed, &queries, &ClassifyConfig::default()).unwrap().0;
        assert_eq!(a.scores, b.scores, "{}", config.index);
    }
}
