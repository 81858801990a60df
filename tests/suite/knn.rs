//! Pixel memory and the Eq. 1–3 classifier: hand-computed scores, exact backends agreeing,
//! descriptors, approximate indexes, save/load and the errors a user can run into.
use huelab::activations::Activations;
use huelab::knn::{classify, kernel_scores, Backend, ClassifyConfig, Descriptor, MemoryConfig, ObserveConfig, PixelMemory, Vote};
use tch::{Device, Kind, Tensor};

fn classes(n: usize) -> Vec<String> {
    (0..n).map(|c| format!("c{c}")).collect()
}

/// Activations from explicit pixel vectors: `pixels[image][cell]` is a `C`-vector on a 1×W grid.
fn acts(pixels: &[Vec<Vec<f32>>], labels: &[i64], num_classes: usize) -> Activations {
    let n = pixels.len() as i64;
    let w = pixels[0].len() as i64;
    let c = pixels[0][0].len() as i64;
    let flat: Vec<f32> = pixels.iter().flat_map(|img| img.iter().flat_map(|v| v.iter().copied())).collect();
    // [N, W, C] → [N, C, 1, W]
    let maps = Tensor::from_slice(&flat).view([n, w, c]).permute([0, 2, 1]).unsqueeze(2);
    Activations::new(maps, labels.to_vec(), classes(num_classes), "test").unwrap()
}

fn unit(angle_deg: f32) -> Vec<f32> {
    let a = angle_deg.to_radians();
    vec![a.cos(), a.sin()]
}

#[test]
fn kernel_scores_match_a_hand_computed_example() {
    // Two query pixels, k = 2, class counts [2, 4], ε = 0:
    // pixel 1: d² = [0.5, 1.0], classes [0, 1]; α² = 0.5 → exp(−1) to class 0, exp(−2) to class 1.
    // pixel 2: d² = [0.2, 0.6], classes [1, 1]; α² = 0.2 → exp(−1) + exp(−3) to class 1.
    // score0 = e⁻¹ / 2 = 0.183940; score1 = (e⁻² + e⁻¹ + e⁻³) / 4 = 0.138250.
    let scores = kernel_scores(&[0.5, 1.0, 0.2, 0.6], &[Some(0), Some(1), Some(1), Some(1)], 2, &[2, 4], 0.0);
    let expected = [(-1f64).exp() / 2.0, ((-2f64).exp() + (-1f64).exp() + (-3f64).exp()) / 4.0];
    assert!((scores[0] - expected[0]).abs() < 1e-6 && (scores[1] - expected[1]).abs() < 1e-6, "{scores:?} vs {expected:?}");
    assert!((expected[0] - 0.183940).abs() < 1e-6 && (expected[1] - 0.138250).abs() < 1e-6);
    // A neighbour that was not found (approximate index) counts for nothing.
    let partial = kernel_scores(&[0.5, f32::INFINITY], &[Some(0), None], 2, &[2, 4], 0.0);
    assert_eq!(partial, vec![(-1f64).exp() / 2.0, 0.0]);
}

#[test]
fn classification_through_faiss_equals_the_hand_computation() {
    // Memory: three images of two unit pixels each (2-D vectors at the given angles).
    // Class 0: image 0 = [0°, 10°]; class 1: image 1 = [90°, 80°], image 2 = [180°, 30°].
    let memory_acts = acts(
        &[vec![unit(0.0), unit(10.0)], vec![unit(90.0), unit(80.0)], vec![unit(180.0), unit(30.0)]],
        &[0, 1, 1],
        2,
    );
    let mut memory = PixelMemory::build(&memory_acts, &MemoryConfig::default(), Device::Cpu).unwrap();
    assert_eq!(memory.len(), 6);
    assert_eq!(memory.class_counts(), &[2, 4]);
    // Query: one image with pixels at 20° and 85°, k = 2, ε = 1e-6.
    // Between unit vectors d² = 2 − 2 cos Δ.
    // Pixel 20°: nearest 10° (c0, Δ10) then 30° (c1, Δ10): equal distances, α² = d²(10°).
    //   → both weights exp(−1): class 0 += e⁻¹, class 1 += e⁻¹.
    // Pixel 85°: nearest 80° and 90° (both c1, Δ5): class 1 += 2 e⁻¹.
    // score0 = e⁻¹ / 2, score1 = 3 e⁻¹ / 4 → class 1.
    let query = acts(&[vec![unit(20.0), unit(85.0)]], &[1], 2);
    let config = ClassifyConfig { k: 2, ..Default::default() };
    let (pred, _) = classify(&mut memory, &query, &config).unwrap();
    let d = 2.0 - 2.0 * 10f64.to_radians().cos();
    let w = (-d / (d + 1e-6)).exp();
    let expected = [w / 2.0, 3.0 * w / 4.0];
    for (s, e) in pred.scores[0].iter().zip(expected) {
        assert!((s - e).abs() < 1e-4, "{:?} vs {expected:?}", pred.scores[0]);
    }
    assert_eq!(pred.predicted, vec![1]);
    assert_eq!(pred.accuracy, 1.0);

    // The majority vote counts neighbours: class 0 gets 1, class 1 gets 3.
    let (majority, _) = classify(&mut memory, &query, &ClassifyConfig { vote: Vote::Majority, ..config }).unwrap();
    assert_eq!(majority.scores[0], vec![1.0, 3.0]);
}

fn random_acts(n: i64, c: i64, grid: i64, classes_n: usize, seed: i64) -> Activations {
    let labels: Vec<i64> = (0..n).map(|i| i % classes_n as i64).collect();
    // Class-dependent means, the same in every call, so classification is meaningful.
    // Seeded under the training runs' generator lock: tests run side by side in one process.
    let centres = huelab::rng::seeded(1000, || Tensor::randn([classes_n as i64, c, 1, 1], (Kind::Float, Device::Cpu)) * 2.0);
    let noise = huelab::rng::seeded(seed, || Tensor::randn([n, c, grid, grid], (Kind::Float, Device::Cpu)));
    let maps = noise + centres.index_select(0, &Tensor::from_slice(&labels));
    Activations::new(maps.relu(), labels, classes(classes_n), "random").unwrap()
}

#[test]
fn the_torch_backend_finds_the_same_neighbours_as_faiss_flat() {
    let memory_acts = random_acts(200, 32, 4, 4, 1);
    let queries = random_acts(20, 32, 4, 4, 2);
    let mut faiss_memory = PixelMemory::build(&memory_acts, &MemoryConfig::default(), Device::Cpu).unwrap();
    let torch_config = MemoryConfig { backend: Backend::Torch, ..Default::default() };
    let mut torch_memory = PixelMemory::build(&memory_acts, &torch_config, Device::Cpu).unwrap();
    let q = Descriptor::Pixel.vectors(queries.maps());
    let a = faiss_memory.search(&q, 10).unwrap();
    let b = torch_memory.search(&q, 10).unwrap();
    let mut same = 0;
    for (i, (da, db)) in a.distances_sq.iter().zip(&b.distances_sq).enumerate() {
        assert!((da - db).abs() < 1e-4, "distance {i}: {da} vs {db}");
        same += usize::from(a.ids[i] == b.ids[i]);
    }
    // Ids may only differ between (near-)tied distances.
    assert!(same as f64 >= 0.99 * a.ids.len() as f64, "{same} of {} ids agree", a.ids.len());
    let config = ClassifyConfig::default();
    let (pa, _) = classify(&mut faiss_memory, &queries, &config).unwrap();
    let (pb, _) = classify(&mut torch_memory, &queries, &config).unwrap();
    assert_eq!(pa.predicted, pb.predicted);
}

#[test]
fn descriptors_are_unit_vectors_of_the_right_size() {
    let a = random_acts(3, 8, 5, 2, 3);
    for (descriptor, rows, dim) in [
        (Descriptor::Pixel, 75, 8),
        (Descriptor::Gap, 3, 8),
        (Descriptor::Gmp, 3, 8),
        (Descriptor::Gem { p: 3.0 }, 3, 8),
        (Descriptor::Flatten, 3, 200),
    ] {
        let v = descriptor.vectors(a.maps());
        assert_eq!(v.size(), vec![rows, dim], "{descriptor:?}");
        let norms = v.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5, "{descriptor:?}");
    }
    // GeM with p = 1 is average pooling.
    let gem1 = Descriptor::Gem { p: 1.0 }.vectors(a.maps());
    assert!((gem1 - Descriptor::Gap.vectors(a.maps())).abs().max().double_value(&[]) < 1e-5);
    assert!(Descriptor::parse("gem:4").unwrap() == Descriptor::Gem { p: 4.0 });
    assert!(Descriptor::parse("mean").unwrap_err().to_string().contains("pixel, gap, gmp, gem, flatten"));
}

#[test]
fn approximate_indexes_and_pca_classify_close_to_flat() {
    let memory_acts = random_acts(400, 32, 4, 4, 4);
    let queries = random_acts(80, 32, 4, 4, 5);
    let config = ClassifyConfig::default();
    let accuracy = |memory_config: MemoryConfig| {
        let mut m = PixelMemory::build(&memory_acts, &memory_config, Device::Cpu).unwrap();
        classify(&mut m, &queries, &config).unwrap().0.accuracy
    };
    let flat = accuracy(MemoryConfig::default());
    assert!(flat > 0.9, "flat accuracy {flat}");
    for (index, pca) in [("IVF16,Flat", None), ("HNSW16", None), ("IVF16,PQ8x4", None), ("Flat", Some(16))] {
        let a = accuracy(MemoryConfig { index: index.into(), pca, nprobe: index.starts_with("IVF").then_some(4), ..Default::default() });
        assert!(a >= 0.9 * flat, "{index} pca {pca:?}: {a} vs flat {flat}");
    }
}

#[test]
fn a_saved_memory_loads_and_classifies_identically_and_damage_is_detected() {
    let memory_acts = random_acts(60, 16, 3, 3, 6);
    let queries = random_acts(12, 16, 3, 3, 7);
    let dir = tempfile::tempdir().unwrap();
    for (name, config) in [
        ("ivf", MemoryConfig { index: "IVF4,Flat".into(), nprobe: Some(2), ..Default::default() }),
        ("torch", MemoryConfig { backend: Backend::Torch, ..Default::default() }),
    ] {
        let path = dir.path().join(name);
        let mut memory = PixelMemory::build(&memory_acts, &config, Device::Cpu).unwrap();
        memory.save(&path).unwrap();
        let mut loaded = PixelMemory::load(&path, Device::Cpu).unwrap();
        let a = classify(&mut memory, &queries, &ClassifyConfig::default()).unwrap().0;
        let b = classify(&mut loaded, &queries, &ClassifyConfig::default()).unwrap().0;
        assert_eq!(a.scores, b.scores, "{name}");
    }
    // Truncate the faiss index.
    let index = dir.path().join("ivf/index.faiss");
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
    let err = PixelMemory::load(&dir.path().join("ivf"), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("index.faiss") && err.contains("truncated"), "{err}");
    // A memory.json of another format version.
    let meta = dir.path().join("torch/memory.json");
    let text = std::fs::read_to_string(&meta).unwrap().replace("\"format\": 1", "\"format\": 99");
    std::fs::write(&meta, text).unwrap();
    let err = PixelMemory::load(&dir.path().join("torch"), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("format 99 is not supported"), "{err}");
}

#[test]
fn bad_requests_are_clear_errors() {
    let memory_acts = random_acts(6, 8, 2, 2, 8);
    let mut memory = PixelMemory::build(&memory_acts, &MemoryConfig::default(), Device::Cpu).unwrap();
    // K larger than the memory (6 images × 4 pixels).
    let err = classify(&mut memory, &memory_acts, &ClassifyConfig { k: 25, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("25 neighbours") && err.contains("24 vectors"), "{err}");
    // Queries of another channel count.
    let other = random_acts(2, 4, 2, 2, 9);
    let err = classify(&mut memory, &other, &ClassifyConfig::default()).unwrap_err().to_string();
    assert!(err.contains("dimension mismatch"), "{err}");
    // A class with no memory vectors.
    let one_class = memory_acts.select(&[0, 2, 4]).unwrap();
    let mut lopsided = PixelMemory::build(&one_class, &MemoryConfig::default(), Device::Cpu).unwrap();
    let err = classify(&mut lopsided, &memory_acts, &ClassifyConfig::default()).unwrap_err().to_string();
    assert!(err.contains("class 'c1' has no vectors"), "{err}");
    // An index string faiss does not know.
    let err = PixelMemory::build(&memory_acts, &MemoryConfig { index: "Flatt".into(), ..Default::default() }, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("Flatt"), "{err}");
    // Observation on a query cell off the grid.
    let observe = ObserveConfig { query_cells: vec![(5, 0)], angle_bins: 8 };
    let err = classify(&mut memory, &memory_acts, &ClassifyConfig { observe: Some(observe), ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("(5, 0) is outside the 2×2 grid"), "{err}");
}

#[test]
fn match_statistics_count_every_neighbour_once() {
    let memory_acts = random_acts(40, 16, 3, 2, 10);
    let queries = random_acts(10, 16, 3, 2, 11);
    let mut memory = PixelMemory::build(&memory_acts, &MemoryConfig::default(), Device::Cpu).unwrap();
    let observe = ObserveConfig { query_cells: vec![(1, 1), (0, 0)], angle_bins: 8 };
    let (_, stats) = classify(&mut memory, &queries, &ClassifyConfig { k: 5, observe: Some(observe), ..Default::default() }).unwrap();
    let stats = stats.unwrap();
    let total: f64 = stats.same.iter().chain(&stats.other).sum();
    assert_eq!(total, (10 * 9 * 5) as f64);
    let same_total: f64 = stats.same.iter().sum();
    let angles: f64 = stats.angle_histograms.iter().flatten().sum::<f64>() + stats.centre_matches.iter().sum::<f64>();
    assert_eq!(angles, same_total);
    for c in &stats.conditional {
        let n: f64 = c.same.iter().chain(&c.other).sum();
        assert_eq!(n, (10 * 5) as f64, "cell {:?}", c.cell);
    }
    // The centre cell has no radial direction.
    assert!(stats.conditional[0].same_radial_var.is_nan());
    assert!(stats.conditional[1].same_radial_var.is_finite() || stats.conditional[1].same.iter().sum::<f64>() == 0.0);
}

#[test]
fn activations_round_trip_through_npy() {
    let a = random_acts(5, 4, 3, 2, 12);
    let dir = tempfile::tempdir().unwrap();
    let (maps, labels) = (dir.path().join("maps.npy"), dir.path().join("labels.npy"));
    a.save_npy(&maps, &labels).unwrap();
    let b = Activations::load_npy(&maps, &labels, Some(classes(2))).unwrap();
    assert_eq!(a.labels(), b.labels());
    assert!(a.maps().equal(b.maps()));
    let energy = a.energy_map();
    assert_eq!(energy.size(), vec![3, 3]);
    let by_hand = a.maps().to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]) / 5.0;
    assert!((energy.sum(Kind::Double).double_value(&[]) - by_hand).abs() < 1e-6);
}
