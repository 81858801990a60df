//! What `huelab bench …` prints: each benchmark run, its table of medians and ratios with
//! their spread, and its JSON written when asked.
use std::path::{Path, PathBuf};

use crate::error::Result;

/// `huelab bench knn`.
pub fn knn(python: &Path, bench: &crate::bench::KnnBench, out: Option<&Path>) -> Result<()> {
    let started = std::time::Instant::now();
    let r = crate::bench::bench_knn(python, bench, |step| eprintln!("bench knn: [{:>5.1} s] {step}", started.elapsed().as_secs_f64()))?;
    let mb = |b: u64| b as f64 / 1e6;
    crate::outln!(
        "memory: {} vectors of {} (Flat), queries: {} images = {} pixel vectors (the references: the first {}), K = {}",
        r.memory_vectors, bench.dim, bench.query_images, r.pixel_queries, r.reference_pixel_queries, bench.k
    );
    crate::outln!("{:<34} {:>14} {:>16}", "", "images/s", "pixel queries/s");
    crate::outln!("{:<34} {:>14.1} {:>16.0}", "huelab classify (search + Eq. 2-3)", r.huelab_images_per_second, r.huelab_pixel_queries_per_second);
    crate::outln!("{:<34} {:>14.1} {:>16.0}", format!("faiss-python {} search only", r.faiss_python["faiss"].as_str().unwrap_or("?")), r.faiss_python_pixel_queries_per_second / r.pixel_queries as f64 * bench.query_images as f64, r.faiss_python_pixel_queries_per_second);
    crate::outln!("{:<34} {:>14.1} {:>16.0}", "PyTorch matmul + topk (exact)", r.pytorch_pixel_queries_per_second / r.pixel_queries as f64 * bench.query_images as f64, r.pytorch_pixel_queries_per_second);
    crate::outln!("ratio huelab / faiss-python: {:.3}x (goal >= 0.95x); huelab / PyTorch matmul + topk: {:.3}x", r.ratio, r.ratio_to_pytorch);
    let (g0, g1) = crate::bench::quartiles(&r.gemm_gflops);
    crate::outln!(
        "GEMM anchor (4096² float32 libtorch matmul): {:.0} GFLOP/s (IQR {g0:.0} – {g1:.0}); huelab's search {:.0} GFLOP/s = {:.3} of it (goal >= 0.75)",
        r.gemm_gflops_median, r.huelab_gflops, r.huelab_fraction_of_gemm_peak
    );
    if !bench.skip_busy {
        crate::outln!(
            "with one core busy (another process): huelab {:.0} pixel queries/s = {:.3} of quiet (goal >= 0.4)",
            r.busy_pixel_queries_per_second, r.busy_fraction_of_quiet
        );
    }
    if let Some(t) = &r.torch_backend {
        crate::outln!(
            "exact libtorch backend on {}: {:.1} images/s, {:.0} pixel queries/s; neighbours equal to FAISS Flat {:.4}, max |d² difference| {:.2e}, same class {:.4}",
            t.device, t.images_per_second, t.pixel_queries_per_second, t.same_ids, t.max_distance_difference, t.same_predictions
        );
    }
    crate::outln!("Flat bank: {:.1} MB vs raw float32 {:.1} MB = {:.3}x (goal <= 1.1x); RSS growth while building {:.1} MB", mb(r.flat_bank_bytes), mb(r.raw_float32_bytes), r.flat_bank_ratio, r.flat_rss_growth_bytes as f64 / 1e6);
    crate::outln!("{} (nprobe {}): {:.1} MB = {:.4} of Flat (goal <= 0.0625), accuracy {:.4} vs Flat {:.4} = {:.3}x (goal >= 0.95x); built in {:.1} s",
        bench.approximate, bench.nprobe, mb(r.approximate_bank_bytes), r.approximate_memory_ratio, r.approximate_accuracy, r.flat_accuracy, r.approximate_accuracy_ratio, r.approximate_build_seconds);
    if let Some(path) = out {
        crate::bench::write_result_json(path, serde_json::json!({ "result": r }))?;
    }
    Ok(())
}

/// `huelab bench data`.
pub fn data(python: &Path, folder: &Path, bench: &crate::bench::DataBench, out: Option<&Path>) -> Result<()> {
    let r = crate::bench::bench_data(python, folder, bench, |step| eprintln!("bench data: {step}"))?;
    let mb = |b: u64| b as f64 / 1e6;
    crate::outln!("{} JPEG photos (~500×375) in {}, batch {}, {} workers, {}×{} RandomResizedCrop + flip + normalise", bench.images, folder.display(), bench.batch, bench.workers, bench.size, bench.size);
    crate::outln!("as one float32 tensor the epoch would take {:.0} MB", mb(r.float32_bytes));
    crate::outln!("{:<28} {:>12} {:>22} {:>14}", "", "images/s", "IQR over rounds", "peak RSS MB");
    crate::outln!("{:<28} {:>12.1} {:>10.1} – {:<9.1} {:>14.0}", "huelab pipeline", r.huelab_median, r.huelab_iqr.0, r.huelab_iqr.1, mb(r.huelab_peak_rss_bytes));
    if !bench.skip_reference {
        crate::outln!("{:<28} {:>12.1} {:>10.1} – {:<9.1} {:>14.0}", "torchvision DataLoader", r.torchvision_median, r.torchvision_iqr.0, r.torchvision_iqr.1, mb(r.torchvision_peak_rss_bytes));
        crate::outln!("ratio huelab / torchvision: {:.3}x images/s (goal >= 1.5x); peak RSS {:.0} MB vs {:.0} MB", r.ratio, mb(r.huelab_peak_rss_bytes), mb(r.torchvision_peak_rss_bytes));
    }
    crate::outln!("{:<28} {:>12.1}   (every file read and decoded once, {} workers)", "decoding alone: huelab", r.ceiling_huelab_decoder_median, bench.workers);
    if !bench.skip_reference {
        crate::outln!("{:<28} {:>12.1}   (libjpeg-turbo's TurboJPEG API, {} processes)", "decoding alone: turbojpeg", r.ceiling_turbojpeg_median, bench.workers);
        crate::outln!("huelab pipeline / libjpeg-turbo decoding alone: {:.3} (goal >= 0.8)", r.fraction_of_ceiling);
    }
    let s = &r.breakdown;
    crate::outln!("where one image's time goes on one thread (first {} images), microseconds per image:", s.images);
    let total = s.total_us();
    for (stage, us) in [("read", s.read_us), ("decode", s.decode_us), ("crop + resize", s.crop_resize_us), ("planar layout + flip", s.layout_flip_us), ("to float + standardise", s.to_float_us), ("batching", s.batching_us)] {
        crate::outln!("  {:<26} {:>9.1} us {:>6.1} %", stage, us, 100.0 * us / total);
    }
    crate::outln!("  {:<26} {:>9.1} us  = {:.0} images/s per thread", "total", total, 1e6 / total);
    let baseline = r.huelab.first().map_or(0, |p| p.baseline_rss_bytes);
    crate::outln!("huelab RSS before the epoch {:.0} MB (libtorch and the open data set), peak {:.0} MB = {:.3} of the epoch's float32 size (goal: under 1 GB)", mb(baseline), mb(r.huelab_peak_rss_bytes), r.huelab_peak_rss_bytes as f64 / r.float32_bytes as f64);
    if let Some(path) = out {
        crate::bench::write_result_json(path, serde_json::json!({ "result": r }))?;
    }
    Ok(())
}

/// `huelab bench train`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    python: &Path,
    models: &[String],
    batch: i64,
    size: i64,
    steps: &[usize],
    rounds: usize,
    threads: i32,
    device: &str,
    precisions: Option<Vec<String>>,
    out: Option<&Path>,
) -> Result<()> {
    use crate::bench::{compare_train_throughput, TrainBench};
    use crate::precision::Precision;
    let started = std::time::Instant::now();
    let device = device.parse::<crate::device::DeviceChoice>()?.resolve()?;
    let precisions = match precisions {
        Some(names) => names.iter().map(|p| p.parse::<Precision>()).collect::<crate::error::Result<Vec<_>>>()?,
        None if device != tch::Device::Cpu || crate::precision::cpu_has_bf16() => vec![Precision::Fp32, Precision::Bf16],
        None => {
            eprintln!("bench train: bf16 left out: this CPU has no bf16 instructions (avx512_bf16, amx_bf16), so bf16 is emulated; --precisions fp32,bf16 measures it anyway");
            vec![Precision::Fp32]
        }
    };
    crate::outln!("{rounds} alternating rounds per row; each side in both memory layouts (NCHW contiguous, channels-last): huelab's row is the layout `train` uses for the model");
    crate::outln!("ratio = huelab median / the better of PyTorch's two medians, IQR = quartiles of the per-round ratios");
    crate::outln!("{:<10} {:>5} {:>8} {:>9} {:>20} {:>14} {:>14} {:>7} {:>17}", "model", "batch", "input", "precision", "huelab img/s", "pytorch NCHW", "pytorch NHWC", "ratio", "IQR");
    let mut results = Vec::new();
    for (i, name) in models.iter().enumerate() {
        let arch: crate::models::Arch = name.parse()?;
        let mut by_precision = Vec::new();
        for &precision in &precisions {
            let bench = TrainBench { arch, batch, channels: 1, size, classes: 10, warmup: 3, steps: steps.get(i).copied().unwrap_or(20), threads, device, precision, channels_last: false };
            let r = compare_train_throughput(python, bench, rounds, |step| eprintln!("bench train: [{:>6.1} s] {step}", started.elapsed().as_secs_f64()))?;
            let layout = |channels_last: bool| if channels_last { "NHWC" } else { "NCHW" };
            crate::outln!(
                "{:<10} {:>5} {:>8} {:>9} {:>13.1} ({}) {:>14.1} {:>14.1} {:>6.3}x {:>7.3} – {:<7.3}",
                name, batch, format!("1x{size}x{size}"), precision.name(), r.huelab_median, layout(r.bench.channels_last), r.pytorch_median, r.pytorch_channels_last_median, r.ratio, r.ratio_iqr.0, r.ratio_iqr.1
            );
            crate::outln!(
                "{:<10} {:>9} huelab in the other layout ({}): {:.1} img/s ({:.3}x the layout train uses)",
                "", precision.name(), layout(!r.bench.channels_last), r.huelab_other_layout_median, r.huelab_other_layout_median / r.huelab_median
            );
            let peak = r.huelab.iter().filter_map(|t| t.peak_rss_bytes).max().unwrap_or(0);
            crate::outln!("{:<10} {:>9} huelab peak RSS while training: {:.0} MB", "", precision.name(), peak as f64 / 1e6);
            if let Some(share) = r.convolution_share() {
                let ms = |s: f64| s * 1e3;
                crate::outln!(
                    "{:<10} {:>9} convolutions (their fraction of a profiled PyTorch step, {}; the same kernels in huelab): {:.1} ms of PyTorch's median {:.1} ms step ({:.1} %)",
                    "", precision.name(), layout(r.pytorch_best().1), ms(share.convolutions), ms(share.pytorch_step), 100.0 * share.convolutions / share.pytorch_step
                );
                crate::outln!(
                    "{:<10} {:>9} outside them: huelab {:.1} ms, PyTorch {:.1} ms per step; ceiling {:.3}x (huelab's ratio if nothing else took time); {:.2}x needs huelab outside <= {:.1} ms",
                    "", precision.name(), ms(share.huelab_outside), ms(share.pytorch_outside), share.ceiling, TARGET_TRAIN_RATIO, ms(share.outside_allowed_for(TARGET_TRAIN_RATIO))
                );
            }
            by_precision.push(r);
        }
        if let (Some(fp32), Some(bf16)) = (
            by_precision.iter().find(|r| r.bench.precision == Precision::Fp32),
            by_precision.iter().find(|r| r.bench.precision == Precision::Bf16),
        ) {
            crate::outln!(
                "{:<10} fp32 -> bf16 speed-up: huelab {:.3}x, PyTorch {:.3}x",
                name,
                bf16.huelab_median / fp32.huelab_median,
                bf16.pytorch_best().0 / fp32.pytorch_best().0
            );
        }
        results.extend(by_precision);
    }
    if let Some(path) = out {
        let malloc_tuning = !std::env::var("HUELAB_MALLOC_TUNING").is_ok_and(|v| v == "0");
        crate::bench::write_result_json(path, serde_json::json!({ "threads": threads, "malloc_tuning": malloc_tuning, "results": results }))?;
    }
    Ok(())
}

/// The training speed the performance issues ask of huelab against PyTorch's better layout;
/// `bench train` prints how little time outside the convolutions that leaves.
const TARGET_TRAIN_RATIO: f64 = 1.05;

/// `huelab bench script`.
pub fn script(epochs: usize, rounds: usize, example: Option<PathBuf>, script: PathBuf, out: Option<&Path>) -> Result<()> {
    use crate::bench::{bench_script_overhead, default_example_path, ScriptBench};
    let huelab = std::env::current_exe().map_err(|e| crate::error::Error::msg(format!("cannot find the huelab binary: {e}")))?;
    let example = example.unwrap_or_else(|| default_example_path(&huelab));
    let bench = ScriptBench { huelab, example, script, epochs, rounds };
    let r = bench_script_overhead(&bench, |step| eprintln!("bench script: {step}"))?;
    crate::outln!("two small-CNN runs on the digits, {epochs} epochs each, + metrics.csv, curves.png, manifest.json; {rounds} alternating rounds");
    crate::outln!("{:<44} {:>10}", "", "median s");
    crate::outln!("{:<44} {:>10.2}", format!("huelab run {}", bench.script.display()), r.rhai_median);
    crate::outln!("{:<44} {:>10.2}", "examples/train_digits (Rust)", r.rust_median);
    crate::outln!(
        "Rhai overhead: {:+.2} % (IQR of per-round overheads {:+.2} % – {:+.2} %; goal within 2 %)",
        100.0 * r.overhead,
        100.0 * r.overhead_iqr.0,
        100.0 * r.overhead_iqr.1
    );
    let growth = crate::bench::bench_script_growth(&bench.huelab, rounds, |step| eprintln!("bench script (growth): {step}"))?;
    let [short, long] = growth.lengths;
    crate::outln!("a script building a list of pairs with push; {rounds} rotating rounds, each less an empty loop's run");
    crate::outln!("{:<44} {:>10.2}", "empty loop", crate::bench::median(&growth.empty_seconds));
    crate::outln!("{:<44} {:>10.2}", format!("{short} pushes"), crate::bench::median(&growth.short_seconds));
    crate::outln!("{:<44} {:>10.2}", format!("{long} pushes"), crate::bench::median(&growth.long_seconds));
    crate::outln!(
        "time per push at {long} over at {short}: {:.2} (IQR {:.2} – {:.2}; 1 = linear, 10 = a push costs O(length))",
        growth.per_push_ratio,
        growth.ratio_iqr.0,
        growth.ratio_iqr.1
    );
    if let Some(path) = out {
        crate::bench::write_result_json(path, serde_json::json!({ "result": r, "growth": growth }))?;
    }
    Ok(())
}
