//! Image folders stay on disk: iterating an ImageFolder whose images would take several times
//! the process's memory as float32 keeps the resident memory bounded by the batches in flight,
//! and the same seed gives the same batches whatever the number of workers.
use huelab::bench::make_photo_folder;
use huelab::data::{load_image_folder, Augment, BatchPlan, BatchStream, FolderTransform, ImageFolderConfig, Mode};
use tch::{Kind, Tensor};

fn plan(n: usize, batch: usize, epoch: u64) -> BatchPlan {
    let augment = Augment { flip: true, crop_padding: 0 };
    let order: Vec<i64> = (0..n as i64).rev().collect();
    let drawn = augment.draw(n, &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(epoch));
    BatchPlan { order, batch_size: batch, augment, drawn, mode: Some(Mode::Train { seed: 7, epoch }), skip: 0, standardise: None }
}

/// The epoch runs in a process of its own (`huelab bench data` on the folder made here), so its
/// resident memory is that of a user's run, not of this test binary.
#[test]
fn an_image_folder_several_times_the_memory_iterates_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let images = 2400;
    make_photo_folder(&dir.path().join("photos"), images, 10, 0).unwrap();
    let config = ImageFolderConfig { size: (224, 224), channels: 3, transform: FolderTransform::Imagenet, workers: 2 };
    let data = load_image_folder("photos", &dir.path().join("photos"), config).unwrap();
    assert_eq!((data.len(), data.num_classes()), (images, 10));
    assert!(!data.is_in_memory());

    let out = dir.path().join("bench.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_huelab"))
        .args(["bench", "data", "--no-reference", "--rounds", "1", "--batch", "32", "--workers", "2", "--images", &images.to_string()])
        .arg("--folder")
        .arg(dir.path().join("photos"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let float32_bytes = result["result"]["float32_bytes"].as_u64().unwrap();
    let peak = result["result"]["huelab_peak_rss_bytes"].as_u64().unwrap();
    // What the epoch added to the process: the resident memory before it (libtorch's pages,
    // 130-140 MB, which depend on the CPU's kernels, not on the data) is not the pipeline's.
    let baseline = result["result"]["huelab"][0]["baseline_rss_bytes"].as_u64().unwrap();
    let added = peak.saturating_sub(baseline);
    assert_eq!(float32_bytes, (images * 3 * 224 * 224 * 4) as u64);
    assert!(result["result"]["huelab"][0]["images_per_second"].as_f64().unwrap() > 0.0);
    eprintln!(
        "float32 size of the epoch {:.0} MB, peak resident memory {:.0} MB, {:.0} MB over the {:.0} MB before the epoch ({:.1}×)",
        float32_bytes as f64 / 1e6,
        peak as f64 / 1e6,
        added as f64 / 1e6,
        baseline as f64 / 1e6,
        float32_bytes as f64 / added as f64
    );
    assert!(float32_bytes >= 4 * added, "the epoch's float32 size ({float32_bytes} bytes) is not 4× the memory the epoch added ({added} bytes over {baseline})");
}

#[test]
fn the_same_seed_gives_the_same_batches_whatever_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    make_photo_folder(dir.path(), 40, 4, 1).unwrap();
    let config = ImageFolderConfig { size: (64, 64), channels: 3, transform: FolderTransform::Imagenet, workers: 1 };
    let data = load_image_folder("photos", dir.path(), config).unwrap();
    let collect = |workers: usize, epoch: u64| -> Vec<Vec<f32>> {
        BatchStream::new(&data, plan(40, 6, epoch), workers).unwrap().map(|b| Vec::<f32>::try_from(b.unwrap().0.flatten(0, -1)).unwrap()).collect()
    };
    let one = collect(1, 0);
    assert_eq!(one, collect(3, 0), "1 and 3 workers");
    assert_eq!(one, collect(2, 0), "1 and 2 workers");
    assert_ne!(one, collect(2, 1), "another epoch crops elsewhere");
    assert_eq!(one.len(), 7, "40 images in batches of 6");
}

/// The stream flips image files while laying their pixels out and standardises them in its
/// float conversion; the batches equal those of the separate steps (decode unflipped, libtorch's
/// `flip`, `/ 255`, `- mean`, `/ sd`) bit for bit.
#[test]
fn fused_flips_and_standardisation_equal_the_separate_steps() {
    let dir = tempfile::tempdir().unwrap();
    make_photo_folder(dir.path(), 24, 3, 2).unwrap();
    let config = ImageFolderConfig { size: (48, 40), channels: 3, transform: FolderTransform::Imagenet, workers: 2 };
    let data = load_image_folder("photos", dir.path(), config).unwrap();
    let stats = vec![(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)];
    let plan = BatchPlan { standardise: Some(stats.clone()), ..plan(24, 5, 3) };
    assert!(plan.drawn.iter().any(|a| a.flip) && plan.drawn.iter().any(|a| !a.flip));
    let streamed: Vec<Tensor> = BatchStream::new(&data, plan.clone(), 2).unwrap().map(|b| b.unwrap().0).collect();
    let column = |f: fn(&(f64, f64)) -> f64| Tensor::from_slice(&stats.iter().map(f).collect::<Vec<f64>>()).view([1, 3, 1, 1]).to_kind(Kind::Float);
    for (b, batch) in streamed.iter().enumerate() {
        let indices = &plan.order[b * 5..(b * 5 + 5).min(24)];
        let raw = data.files().unwrap().load(indices, plan.mode.unwrap(), &[]).unwrap();
        let images: Vec<Tensor> = indices.iter().enumerate().map(|(k, _)| {
            let image = raw.get(k as i64);
            if plan.drawn[b * 5 + k].flip { image.flip([2]) } else { image }
        }).collect();
        let expected = (Tensor::stack(&images, 0) / 255.0 - column(|s| s.0)) / column(|s| s.1);
        assert_eq!(batch.size(), expected.size());
        assert!(batch.equal(&expected), "batch {b} differs");
    }
}
