//! `huelab bench knn`: pixel-kNN classification (search + Eq. 2–3 scoring + argmax) against raw
//! FAISS search of the same vectors through the faiss Python package, alternating in one run;
//! the memory a Flat bank takes against its raw float32 size; and an IVF-PQ bank's accuracy
//! and size against Flat. Two anchors are measured in the same run: the machine's float32
//! matrix-multiply throughput (a large libtorch matmul: the limit an exact search's distance
//! GEMM can reach) and the exact search plain PyTorch gives (`matmul` + `topk`,
//! `benches/knn_torch.py`). huelab's classification is measured again while another process
//! keeps one core busy, as a second experiment on the same machine would. The data are synthetic activation maps with class structure (each
//! class a few "part" prototypes plus noise), so that any size can be measured.
use std::path::Path;
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::activations::Activations;
use crate::error::{Error, Result};
use super::median;
use crate::knn::{classify, ClassifyConfig, Descriptor, MemoryConfig, PixelMemory};

const FAISS_TWIN: &str = include_str!("../../benches/knn_faiss.py");
const TORCH_TWIN: &str = include_str!("../../benches/knn_torch.py");
/// The side of the square matmul that measures the GEMM peak (2·n³ = 137 GFLOP).
const GEMM_SIDE: i64 = 4096;
/// Vectors the approximate bank's k-means trains on.
const APPROXIMATE_TRAIN_SIZE: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnnBench {
    /// Images in the memory; each gives `grid²` pixel vectors.
    pub memory_images: i64,
    pub query_images: i64,
    /// The first this many query images are what the faiss-python and PyTorch references
    /// search (their throughput per query is compared; the full set would make the default
    /// run several minutes long on the slower reference).
    pub reference_query_images: i64,
    pub grid: i64,
    pub dim: i64,
    pub classes: i64,
    pub k: usize,
    pub batch_images: usize,
    pub rounds: usize,
    /// The approximate index compared with Flat for accuracy and size.
    pub approximate: String,
    pub nprobe: usize,
    /// Skip the faiss-python and PyTorch references (a machine without them, e.g. the GPU check).
    pub skip_reference: bool,
    /// Skip the measurement with one core kept busy by another process.
    pub skip_busy: bool,
    /// Also run the exact libtorch backend on this device and check its neighbours against
    /// FAISS Flat.
    #[serde(serialize_with = "crate::device::serialize_optional_device")]
    pub torch_device: Option<tch::Device>,
}

/// The exact libtorch backend against FAISS Flat on the same queries.
#[derive(Debug, Clone, Serialize)]
pub struct TorchBackendCheck {
    pub device: String,
    /// Share of (query, rank) neighbour ids equal to FAISS's.
    pub same_ids: f64,
    /// Largest difference of squared distances at equal rank.
    pub max_distance_difference: f64,
    /// Share of query images given the same class.
    pub same_predictions: f64,
    pub images_per_second: f64,
    pub pixel_queries_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KnnBenchResult {
    pub bench: KnnBench,
    pub memory_vectors: usize,
    pub pixel_queries: usize,
    /// Pixel queries the references search each round.
    pub reference_pixel_queries: usize,
    pub huelab_seconds: Vec<f64>,
    pub faiss_python_seconds: Vec<f64>,
    pub huelab_images_per_second: f64,
    pub huelab_pixel_queries_per_second: f64,
    pub faiss_python_pixel_queries_per_second: f64,
    /// huelab classification throughput over raw faiss-python search throughput (medians).
    pub ratio: f64,
    pub faiss_python: serde_json::Value,
    pub raw_float32_bytes: u64,
    /// Flat: the saved index plus the per-vector class/image/cell entries.
    pub flat_bank_bytes: u64,
    pub flat_bank_ratio: f64,
    /// Resident memory the process grew by while building the Flat bank.
    pub flat_rss_growth_bytes: i64,
    pub flat_accuracy: f64,
    pub approximate_bank_bytes: u64,
    /// Approximate bank size over the Flat bank size.
    pub approximate_memory_ratio: f64,
    pub approximate_accuracy: f64,
    pub approximate_accuracy_ratio: f64,
    pub approximate_build_seconds: f64,
    pub torch_backend: Option<TorchBackendCheck>,
    /// Floating-point operations of one Flat search of all queries: 2 · queries · vectors · dim.
    pub search_flops: f64,
    /// The GEMM anchor: median GFLOP/s of a 4096² float32 libtorch matmul, one per round.
    pub gemm_gflops: Vec<f64>,
    pub gemm_gflops_median: f64,
    /// huelab's classification expressed as GFLOP/s of its search, and as a share of the GEMM
    /// peak (the scoring of Eq. 2–3 is inside the time, so this slightly understates search).
    pub huelab_gflops: f64,
    pub huelab_fraction_of_gemm_peak: f64,
    /// The plain-PyTorch exact search (`matmul` + `topk`) on the same vectors and batches.
    pub pytorch_seconds: Vec<f64>,
    pub pytorch_pixel_queries_per_second: f64,
    pub ratio_to_pytorch: f64,
    /// huelab's classification while another process keeps one core busy.
    pub busy_seconds: Vec<f64>,
    pub busy_pixel_queries_per_second: f64,
    /// Busy throughput over quiet throughput (medians).
    pub busy_fraction_of_quiet: f64,
    /// The busy-core process (ended with the measurement), so a caller can check it is gone.
    pub busy_core_pid: Option<u32>,
}

/// GFLOP/s of one `n × n` by `n × n` float32 matmul through libtorch (after one warm-up).
fn gemm_gflops(n: i64) -> Result<f64> {
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let _ = a.f_matmul(&b)?;
    let start = Instant::now();
    let c = a.f_matmul(&b)?;
    let seconds = start.elapsed().as_secs_f64();
    drop(c);
    Ok(2.0 * (n as f64).powi(3) / seconds / 1e9)
}

/// Another process spinning on one core (a shell loop) for as long as this lives.
struct BusyCore(std::process::Child);

impl BusyCore {
    fn start() -> Result<Self> {
        let child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start the busy-core process (sh): {e}")))?;
        // Let the scheduler see it as a running task before anything is timed.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(BusyCore(child))
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Synthetic maps `[n, dim, grid, grid]`. A pixel is relu(prototype + noise): with probability
/// `BACKGROUND` one of 16 prototypes all classes share (uninformative, as background is), else
/// one of 4 prototypes of its image's class. Hard enough that Flat is not at 100 %.
fn synthetic(b: &KnnBench, n: i64, seed: i64) -> Result<Activations> {
    const PARTS: i64 = 4;
    const SHARED: i64 = 16;
    const BACKGROUND: f64 = 0.75;
    const NOISE: f64 = 3.0;
    tch::manual_seed(1_000);
    let prototypes = Tensor::randn([b.classes * PARTS + SHARED, b.dim], (Kind::Float, Device::Cpu));
    tch::manual_seed(seed);
    let labels: Vec<i64> = (0..n).map(|i| i % b.classes).collect();
    let pixels = n * b.grid * b.grid;
    let label_per_pixel = Tensor::from_slice(&labels).repeat_interleave_self_int(b.grid * b.grid, Some(0), None);
    let own = label_per_pixel * PARTS + Tensor::randint(PARTS, [pixels], (Kind::Int64, Device::Cpu));
    let shared = Tensor::randint(SHARED, [pixels], (Kind::Int64, Device::Cpu)) + b.classes * PARTS;
    let is_background = Tensor::rand([pixels], (Kind::Float, Device::Cpu)).lt(BACKGROUND);
    let which = shared.where_self(&is_background, &own);
    let mean = prototypes.index_select(0, &which);
    let maps = (mean + Tensor::randn([pixels, b.dim], (Kind::Float, Device::Cpu)) * NOISE).relu();
    let maps = maps.view([n, b.grid, b.grid, b.dim]).permute([0, 3, 1, 2]).contiguous();
    Activations::new(maps, labels, (0..b.classes).map(|c| format!("class {c}")).collect(), format!("synthetic {n}×{}×{}×{}", b.dim, b.grid, b.grid))
}

fn write_vectors(path: &Path, vectors: &Tensor) -> Result<()> {
    let size = vectors.size();
    let values: Vec<f32> = Vec::try_from(vectors.flatten(0, -1))?;
    let array = Array2::from_shape_vec((size[0] as usize, size[1] as usize), values).map_err(|e| Error::msg(e.to_string()))?;
    ndarray_npy::write_npy(path, &array).map_err(|e| Error::Data { path: path.to_owned(), message: e.to_string() })
}

fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        // The bank is the index and its entries; memory.json is a few hundred bytes of settings.
        if name != "memory.json" {
            total += entry.metadata().map_err(|e| Error::io(entry.path(), e))?.len();
        }
    }
    Ok(total)
}

/// The memory's and the reference queries' vectors as `.npy` for the Python twins, and the
/// arguments that name them.
fn reference_inputs(b: &KnnBench, scratch: &Path, memory_acts: &Activations, reference_queries: &Tensor) -> Result<Vec<String>> {
    let memory_npy = scratch.join("memory.npy");
    let queries_npy = scratch.join("queries.npy");
    write_vectors(&memory_npy, &Descriptor::Pixel.vectors(memory_acts.maps()))?;
    write_vectors(&queries_npy, reference_queries)?;
    let per_call = b.batch_images as i64 * b.grid * b.grid;
    Ok(vec![
        "--memory".into(), memory_npy.display().to_string(),
        "--queries".into(), queries_npy.display().to_string(),
        "--k".into(), b.k.to_string(),
        "--batch".into(), per_call.to_string(),
    ])
}

/// The alternating timed rounds: the GEMM anchor, huelab's classification and the two Python
/// references, in turn.
struct Rounds {
    ours: Vec<f64>,
    theirs: Vec<f64>,
    pytorch: Vec<f64>,
    gemm: Vec<f64>,
    flat_predictions: crate::knn::Predictions,
    faiss_python: serde_json::Value,
}

type Classifying<'a> = (&'a mut PixelMemory, &'a Activations, &'a ClassifyConfig);

fn alternating_rounds(python: &Path, b: &KnnBench, (flat, queries, config): Classifying, args: &[String], progress: &impl Fn(&str)) -> Result<Rounds> {
    let torch_args: Vec<String> = args.iter().cloned().chain(["--threads".into(), tch::get_num_threads().to_string()]).collect();
    let (mut ours, mut theirs, mut pytorch, mut gemm) = (vec![], vec![], vec![], vec![]);
    let mut flat_predictions = None;
    let mut faiss_python = serde_json::Value::Null;
    let rounds = b.rounds.max(1);
    for round in 0..rounds {
        progress(&format!("round {}/{rounds}: GEMM anchor ({GEMM_SIDE}² float32 matmul)", round + 1));
        gemm.push(gemm_gflops(GEMM_SIDE)?);
        progress(&format!("round {}/{rounds}: huelab", round + 1));
        let start = Instant::now();
        let (predictions, _) = classify(flat, queries, config)?;
        ours.push(start.elapsed().as_secs_f64());
        flat_predictions = Some(predictions);
        if b.skip_reference {
            continue;
        }
        progress(&format!("round {}/{rounds}: faiss-python", round + 1));
        let value = super::run_python_twin(python, FAISS_TWIN, args)?;
        theirs.push(value["seconds"].as_f64().ok_or_else(|| Error::msg("the faiss-python output lacks 'seconds'"))?);
        faiss_python = value;
        progress(&format!("round {}/{rounds}: PyTorch matmul + topk", round + 1));
        let value = super::run_python_twin(python, TORCH_TWIN, &torch_args)?;
        pytorch.push(value["seconds"].as_f64().ok_or_else(|| Error::msg("the PyTorch search output lacks 'seconds'"))?);
    }
    let flat_predictions = flat_predictions.ok_or_else(|| Error::msg("bench knn ran no round"))?;
    Ok(Rounds { ours, theirs, pytorch, gemm, flat_predictions, faiss_python })
}

/// huelab's classification again with another process keeping one core busy, and that
/// process's pid (none with `skip_busy`).
fn busy_rounds(b: &KnnBench, (flat, queries, config): Classifying, progress: &impl Fn(&str)) -> Result<(Vec<f64>, Option<u32>)> {
    if b.skip_busy {
        return Ok((vec![], None));
    }
    let busy_core = BusyCore::start()?;
    let rounds = b.rounds.max(1);
    let mut busy = vec![];
    for round in 0..rounds {
        progress(&format!("round {}/{rounds}: huelab with one core busy", round + 1));
        let start = Instant::now();
        classify(flat, queries, config)?;
        busy.push(start.elapsed().as_secs_f64());
    }
    Ok((busy, Some(busy_core.0.id())))
}

/// The exact libtorch backend on `device` against the FAISS Flat bank: the same neighbours,
/// distances and classes, and its speed.
fn check_torch_backend(
    b: &KnnBench,
    device: Device,
    (memory_acts, queries, query_vectors): (&Activations, &Activations, &Tensor),
    (flat, flat_predictions): (&mut PixelMemory, &crate::knn::Predictions),
    config: &ClassifyConfig,
    progress: &impl Fn(&str),
) -> Result<TorchBackendCheck> {
    progress(&format!("exact libtorch backend on {}", crate::device::device_name(device)));
    let torch_config = MemoryConfig { backend: crate::knn::Backend::Torch, ..Default::default() };
    let mut torch_memory = PixelMemory::build(memory_acts, &torch_config, device)?;
    let pixel_queries = query_vectors.size()[0];
    let probe = query_vectors.narrow(0, 0, (b.batch_images as i64 * b.grid * b.grid).min(pixel_queries));
    let (a, t) = (flat.search(&probe, b.k)?, torch_memory.search(&probe, b.k)?);
    let same_ids = a.ids.iter().zip(&t.ids).filter(|(x, y)| x == y).count() as f64 / a.ids.len() as f64;
    let max_distance_difference = a.distances_sq.iter().zip(&t.distances_sq).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    classify(&mut torch_memory, &queries.select(&[0])?, config)?; // warm-up
    let start = Instant::now();
    let (predictions, _) = classify(&mut torch_memory, queries, config)?;
    let seconds = start.elapsed().as_secs_f64();
    let same = predictions.predicted.iter().zip(&flat_predictions.predicted).filter(|(x, y)| x == y).count();
    Ok(TorchBackendCheck {
        device: crate::device::device_name(device),
        same_ids,
        max_distance_difference,
        same_predictions: same as f64 / predictions.predicted.len() as f64,
        images_per_second: b.query_images as f64 / seconds,
        pixel_queries_per_second: pixel_queries as f64 / seconds,
    })
}

/// The approximate bank: its size on disk, its classification, its build time.
struct ApproximateBank {
    bytes: u64,
    predictions: crate::knn::Predictions,
    build_seconds: f64,
}

fn approximate_bank(b: &KnnBench, (memory_acts, queries): (&Activations, &Activations), config: &ClassifyConfig, scratch: &Path, progress: &impl Fn(&str)) -> Result<ApproximateBank> {
    progress(&format!("building the {} bank", b.approximate));
    let started = Instant::now();
    // k-means on 50 000 vectors (FAISS asks for ≥ 39 per centroid: 39 936 for 1 024 lists), half
    // the library's default sample, keeps the default run short.
    let approx_config = MemoryConfig { index: b.approximate.clone(), nprobe: Some(b.nprobe), train_size: APPROXIMATE_TRAIN_SIZE, ..Default::default() };
    let mut approx = PixelMemory::build(memory_acts, &approx_config, Device::Cpu)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let dir = scratch.join("approx");
    approx.save(&dir)?;
    let bytes = dir_bytes(&dir)?;
    let (predictions, _) = classify(&mut approx, queries, config)?;
    Ok(ApproximateBank { bytes, predictions, build_seconds })
}

pub fn bench_knn(python: &Path, b: &KnnBench, progress: impl Fn(&str)) -> Result<KnnBenchResult> {
    let memory_acts = synthetic(b, b.memory_images, 1)?;
    let queries = synthetic(b, b.query_images, 2)?;
    let config = ClassifyConfig { k: b.k, batch_images: b.batch_images, ..Default::default() };

    progress("building the Flat bank");
    let before = resident_bytes();
    let mut flat = PixelMemory::build(&memory_acts, &MemoryConfig::default(), Device::Cpu)?;
    let rss_growth = resident_bytes() - before;
    let vectors = flat.len();
    let raw = (vectors as i64 * b.dim * 4) as u64;
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let flat_dir = scratch.path().join("flat");
    flat.save(&flat_dir)?;
    let flat_bytes = dir_bytes(&flat_dir)? ;

    progress("writing the vectors for faiss-python");
    let query_vectors = Descriptor::Pixel.vectors(queries.maps());
    let pixel_queries = query_vectors.size()[0] as usize;
    let reference_pixel_queries = (b.reference_query_images.clamp(1, b.query_images) * b.grid * b.grid) as usize;
    let args = reference_inputs(b, scratch.path(), &memory_acts, &query_vectors.narrow(0, 0, reference_pixel_queries as i64))?;

    // huelab gets the same one warm-up batch as the Python side.
    classify(&mut flat, &queries.select(&(0..(b.batch_images as i64).min(b.query_images)).collect::<Vec<_>>())?, &config)?;
    let Rounds { ours, theirs, pytorch, gemm, flat_predictions, faiss_python } = alternating_rounds(python, b, (&mut flat, &queries, &config), &args, &progress)?;
    let (busy, busy_core_pid) = busy_rounds(b, (&mut flat, &queries, &config), &progress)?;
    let flat_accuracy = flat_predictions.accuracy;
    let torch_backend = match b.torch_device {
        None => None,
        Some(device) => Some(check_torch_backend(b, device, (&memory_acts, &queries, &query_vectors), (&mut flat, &flat_predictions), &config, &progress)?),
    };
    drop(flat);
    let approximate = approximate_bank(b, (&memory_acts, &queries), &config, scratch.path(), &progress)?;
    let (approx_bytes, approx_predictions, approximate_build_seconds) = (approximate.bytes, approximate.predictions, approximate.build_seconds);

    let h = median(&ours);
    // NaN for a side that was skipped (--no-reference, --no-busy).
    let median_or_nan = |v: &[f64]| if v.is_empty() { f64::NAN } else { median(v) };
    let (p, t, busy_median) = (median_or_nan(&theirs), median_or_nan(&pytorch), median_or_nan(&busy));
    let search_flops = 2.0 * pixel_queries as f64 * vectors as f64 * b.dim as f64;
    let gemm_gflops_median = median(&gemm);
    let huelab_gflops = search_flops / h / 1e9;
    Ok(KnnBenchResult {
        bench: b.clone(),
        memory_vectors: vectors,
        pixel_queries,
        reference_pixel_queries,
        huelab_seconds: ours,
        faiss_python_seconds: theirs,
        huelab_images_per_second: b.query_images as f64 / h,
        huelab_pixel_queries_per_second: pixel_queries as f64 / h,
        faiss_python_pixel_queries_per_second: reference_pixel_queries as f64 / p,
        ratio: (pixel_queries as f64 / h) / (reference_pixel_queries as f64 / p),
        faiss_python,
        raw_float32_bytes: raw,
        flat_bank_bytes: flat_bytes,
        flat_bank_ratio: flat_bytes as f64 / raw as f64,
        flat_rss_growth_bytes: rss_growth,
        flat_accuracy,
        approximate_bank_bytes: approx_bytes,
        approximate_memory_ratio: approx_bytes as f64 / flat_bytes as f64,
        approximate_accuracy: approx_predictions.accuracy,
        approximate_accuracy_ratio: approx_predictions.accuracy / flat_accuracy,
        approximate_build_seconds,
        torch_backend,
        search_flops,
        gemm_gflops: gemm,
        gemm_gflops_median,
        huelab_gflops,
        huelab_fraction_of_gemm_peak: huelab_gflops / gemm_gflops_median,
        pytorch_seconds: pytorch,
        pytorch_pixel_queries_per_second: reference_pixel_queries as f64 / t,
        ratio_to_pytorch: (pixel_queries as f64 / h) / (reference_pixel_queries as f64 / t),
        busy_seconds: busy,
        busy_pixel_queries_per_second: pixel_queries as f64 / busy_median,
        busy_fraction_of_quiet: h / busy_median,
        busy_core_pid,
    })
}
