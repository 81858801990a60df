//! `huelab bench data`: images per second of decode + RandomResizedCrop(224) + flip + ImageNet
//! normalisation from a folder of JPEG photos, huelab's batch pipeline (the one `train` uses)
//! against torchvision's `ImageFolder` + `DataLoader` with the same transforms and as many
//! worker processes as huelab has threads, alternating in one run; plus the peak resident
//! memory of each while it iterates (torchvision's: the main process and its workers). The
//! ceiling beside them: decoding alone, the same files by libjpeg-turbo's own API
//! (`tjDecompress` through simplejpeg, one process per worker) and by huelab's decoder; and
//! where huelab's time goes, stage by stage, timed on one thread inside the pipeline's own
//! code ([`ImageFiles::load_timed`]). The photos are made from the bundled photographs and
//! textures, at ImageNet-like sizes (about 500 × 375), so any number can be measured.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use image::imageops::FilterType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{load_image_folder, BatchPlan, BatchStream, ByteToFloat, FolderTransform, ImageDataset, ImageFiles, ImageFolderConfig, Mode, Scratch, StageTimes};
use crate::error::{Error, Result};
use crate::train::IMAGENET_STATS;

const TORCHVISION_TWIN: &str = include_str!("../../benches/data_torchvision.py");
const TURBOJPEG_TWIN: &str = include_str!("../../benches/decode_turbojpeg.py");

/// Images the one-thread stage breakdown times (the first ones of the folder).
const BREAKDOWN_IMAGES: usize = 384;

/// The source photographs (scikit-image's, from the data directory); grey ones become RGB.
const SOURCES: [&str; 10] = ["astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right", "camera", "horse", "brick", "grass", "gravel"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataBench {
    pub images: usize,
    pub batch: usize,
    pub size: u32,
    /// huelab's decoding threads and torchvision's worker processes.
    pub workers: usize,
    pub rounds: usize,
    /// Skip the torchvision reference.
    pub skip_reference: bool,
}

/// One epoch over the folder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pass {
    pub images_per_second: f64,
    pub seconds: f64,
    /// Peak resident memory while iterating.
    pub peak_rss_bytes: u64,
    /// Resident memory just before (huelab: the process with the data set open).
    pub baseline_rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataBenchResult {
    pub bench: DataBench,
    pub folder: PathBuf,
    /// What the epoch's images would take as one float32 tensor.
    pub float32_bytes: u64,
    pub huelab: Vec<Pass>,
    pub torchvision: Vec<Pass>,
    pub huelab_median: f64,
    pub huelab_iqr: (f64, f64),
    pub torchvision_median: f64,
    pub torchvision_iqr: (f64, f64),
    pub ratio: f64,
    pub huelab_peak_rss_bytes: u64,
    pub torchvision_peak_rss_bytes: u64,
    /// Decoding alone, every file once on `workers` threads (processes): libjpeg-turbo's
    /// TurboJPEG API (none with `skip_reference`) and huelab's decoder, images/s per round.
    pub ceiling_turbojpeg: Vec<f64>,
    pub ceiling_huelab_decoder: Vec<f64>,
    pub ceiling_turbojpeg_median: f64,
    pub ceiling_huelab_decoder_median: f64,
    /// huelab's pipeline median over libjpeg-turbo's decode-only median.
    pub fraction_of_ceiling: f64,
    pub breakdown: StageBreakdown,
}

/// Where one image's time goes in huelab's pipeline, microseconds per image on one thread,
/// timed inside the pipeline's code over the first [`BREAKDOWN_IMAGES`] images.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StageBreakdown {
    pub images: usize,
    pub read_us: f64,
    pub decode_us: f64,
    pub crop_resize_us: f64,
    /// Interleaved → planar bytes with the flip.
    pub layout_flip_us: f64,
    /// Bytes → standardised float32 (the consumer's one pass), per image.
    pub to_float_us: f64,
    /// Everything else of a batch on one thread (batch tensors, labels), per image.
    pub batching_us: f64,
}

impl StageBreakdown {
    pub fn total_us(&self) -> f64 {
        self.read_us + self.decode_us + self.crop_resize_us + self.layout_flip_us + self.to_float_us + self.batching_us
    }
}

/// Writes `images` JPEG photos (about 500 × 375, quality 90) in `classes` class folders into
/// `dir`, made deterministically from the bundled photographs: a random crop of a class's
/// source, resized, flipped at random, with a brightness change. Skips the work when `dir`
/// already holds the same set.
pub fn make_photo_folder(dir: &Path, images: usize, classes: usize, seed: u64) -> Result<()> {
    let marker = dir.join(".complete");
    let description = format!("{images} images, {classes} classes, seed {seed}");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == description) {
        return Ok(());
    }
    if !(2..=SOURCES.len()).contains(&classes) {
        return Err(Error::invalid_option("classes", format!("must be in 2..={}, got {classes}", SOURCES.len())));
    }
    let sources = SOURCES[..classes]
        .iter()
        .map(|name| {
            let path = crate::cache::cached(&format!("skimage/{name}.png"))?;
            Ok((name.to_string(), crate::data::decode(&path)?.to_rgb8()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let progress = crate::progress::images_bar("making photos", images);
    for i in 0..images {
        let (name, source) = &sources[i % classes];
        let class_dir = dir.join(name);
        std::fs::create_dir_all(&class_dir).map_err(|e| Error::io(&class_dir, e))?;
        let (sw, sh) = source.dimensions();
        let landscape = rng.random_bool(0.75);
        let (w, h) = if landscape { (500, 375) } else { (375, 500) };
        let scale = rng.random_range(0.4..1.0);
        let cw = ((sw as f64 * scale) as u32).clamp(16, sw);
        let ch = ((cw as f64 * h as f64 / w as f64) as u32).clamp(16, sh);
        let (x, y) = (rng.random_range(0..=sw - cw), rng.random_range(0..=sh - ch));
        let mut photo = image::imageops::resize(&image::imageops::crop_imm(source, x, y, cw, ch).to_image(), w, h, FilterType::Triangle);
        if rng.random_bool(0.5) {
            image::imageops::flip_horizontal_in_place(&mut photo);
        }
        let gain: f32 = rng.random_range(0.8..1.2);
        for p in photo.pixels_mut() {
            for c in p.0.iter_mut() {
                *c = (*c as f32 * gain).min(255.0) as u8;
            }
        }
        let path = class_dir.join(format!("{i:06}.jpg"));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&photo)
            .map_err(|e| Error::msg(format!("JPEG encoding failed: {e}")))?;
        crate::files::write_atomic(&path, &bytes)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    crate::files::write_atomic(&marker, description.as_bytes())
}

/// The resident memory of this process (bytes), from /proc.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}

/// Samples this process's resident memory every 20 ms until dropped; `peak()` is the largest.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start() -> Self {
        let (peak, stop) = (Arc::new(AtomicU64::new(resident_bytes())), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(resident_bytes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        RssSampler { peak, stop, thread: Some(thread) }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(resident_bytes())
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One training epoch's batches of the folder through huelab's pipeline: shuffled, decoded and
/// RandomResizedCrop'ed on `workers` threads, flipped, standardised with ImageNet statistics.
pub fn huelab_pass(data: &ImageDataset, b: &DataBench, epoch: u64) -> Result<Pass> {
    let augment = crate::data::Augment { flip: true, crop_padding: 0 };
    let mut order: Vec<i64> = (0..data.len() as i64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch);
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
    let drawn = augment.draw(order.len(), &mut rng);
    // Standardised by the stream, as a CPU training run's batches are.
    let plan = BatchPlan { order, batch_size: b.batch, augment, drawn, mode: Some(Mode::Train { seed: 0, epoch }), skip: 0, standardise: Some(IMAGENET_STATS.to_vec()) };
    let baseline = resident_bytes();
    let sampler = RssSampler::start();
    let started = Instant::now();
    let mut images = 0usize;
    for batch in BatchStream::new(data, plan, b.workers)? {
        let (x, _) = batch?;
        images += x.size()[0] as usize;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Pass { images_per_second: images as f64 / seconds, seconds, peak_rss_bytes: sampler.peak(), baseline_rss_bytes: baseline })
}

fn torchvision_pass(python: &Path, folder: &Path, b: &DataBench) -> Result<Pass> {
    let args: Vec<String> = [
        ("--folder", folder.display().to_string()),
        ("--batch", b.batch.to_string()),
        ("--workers", b.workers.to_string()),
        ("--size", b.size.to_string()),
        ("--threads", b.workers.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect();
    let value = super::run_python_twin(python, TORCHVISION_TWIN, &args)?;
    let field = |k: &str| value[k].as_f64().ok_or_else(|| Error::msg(format!("the torchvision twin's output lacks '{k}'")));
    Ok(Pass { images_per_second: field("images_per_second")?, seconds: field("seconds")?, peak_rss_bytes: field("peak_rss_bytes")? as u64, baseline_rss_bytes: field("baseline_rss_bytes")? as u64 })
}

/// Every file of the folder read and decoded once (no resize) on `workers` threads, files
/// dealt round-robin; images/s.
fn huelab_decode_only(files: &ImageFiles, workers: usize) -> Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    (w..files.len()).step_by(workers).try_for_each(|i| files.read_and_decode(i, &mut scratch))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| Error::msg("a decoding thread panicked"))?)
    })?;
    Ok(files.len() as f64 / started.elapsed().as_secs_f64())
}

fn turbojpeg_decode_only(python: &Path, folder: &Path, workers: usize) -> Result<f64> {
    let args = vec!["--folder".to_owned(), folder.display().to_string(), "--workers".to_owned(), workers.to_string()];
    let value = super::run_python_twin(python, TURBOJPEG_TWIN, &args)?;
    value["images_per_second"].as_f64().ok_or_else(|| Error::msg("the libjpeg-turbo twin's output lacks 'images_per_second'"))
}

/// One thread through the pipeline's stages for the first images of the folder, batch by
/// batch as a worker and the consumer do it: [`ImageFiles::load_timed`] times read, decode,
/// crop + resize and layout inside the pipeline's code; the consumer's conversion to
/// standardised float32 is timed around [`ByteToFloat::apply`]; the rest of each batch's wall
/// time is batching.
fn stage_breakdown(files: &ImageFiles, b: &DataBench) -> Result<StageBreakdown> {
    let n = files.len().min(BREAKDOWN_IMAGES);
    let to_float = ByteToFloat::new(3, Some(&IMAGENET_STATS))?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut times, mut scratch) = (StageTimes::default(), Scratch::default());
    let (mut load_wall, mut to_float_wall) = (0.0, 0.0);
    let indices: Vec<i64> = (0..n as i64).collect();
    for batch in indices.chunks(b.batch) {
        let flips: Vec<bool> = batch.iter().map(|_| rng.random_bool(0.5)).collect();
        let started = Instant::now();
        let raw = files.load_timed(batch, Mode::Train { seed: 0, epoch: 0 }, &flips, &mut scratch, Some(&mut times))?;
        load_wall += started.elapsed().as_secs_f64();
        let started = Instant::now();
        drop(to_float.apply(&raw)?);
        to_float_wall += started.elapsed().as_secs_f64();
    }
    let per_image = |seconds: f64| seconds * 1e6 / n as f64;
    let staged = times.read + times.decode + times.resize + times.layout;
    Ok(StageBreakdown {
        images: n,
        read_us: per_image(times.read.as_secs_f64()),
        decode_us: per_image(times.decode.as_secs_f64()),
        crop_resize_us: per_image(times.resize.as_secs_f64()),
        layout_flip_us: per_image(times.layout.as_secs_f64()),
        to_float_us: per_image(to_float_wall),
        batching_us: per_image((load_wall - staged.as_secs_f64()).max(0.0)),
    })
}

pub fn bench_data(python: &Path, folder: &Path, b: &DataBench, progress: impl Fn(&str)) -> Result<DataBenchResult> {
    if b.batch == 0 || b.workers == 0 || b.rounds == 0 || b.images < b.batch {
        return Err(Error::invalid_option("bench data", "batch, workers and rounds must be at least 1, and images at least one batch"));
    }
    progress(&format!("making {} photos in {}", b.images, folder.display()));
    make_photo_folder(folder, b.images, SOURCES.len(), 0)?;
    let config = ImageFolderConfig { size: (b.size, b.size), channels: 3, transform: FolderTransform::Imagenet, workers: b.workers };
    let data = load_image_folder("bench photos", folder, config)?;
    let files = data.files().ok_or_else(|| Error::msg("the bench's photo folder opened as an in-memory data set"))?;
    // The pipeline's batches are used by training, which tunes malloc this way.
    crate::alloc::tune_for_training();
    let (mut ours, mut theirs, mut turbojpeg, mut decoder) = (vec![], vec![], vec![], vec![]);
    for round in 0..b.rounds {
        progress(&format!("round {}/{}: huelab", round + 1, b.rounds));
        ours.push(huelab_pass(&data, b, round as u64)?);
        progress(&format!("round {}/{}: decoding alone (huelab's decoder)", round + 1, b.rounds));
        decoder.push(huelab_decode_only(files, b.workers)?);
        if !b.skip_reference {
            progress(&format!("round {}/{}: torchvision", round + 1, b.rounds));
            theirs.push(torchvision_pass(python, folder, b)?);
            progress(&format!("round {}/{}: decoding alone (libjpeg-turbo)", round + 1, b.rounds));
            turbojpeg.push(turbojpeg_decode_only(python, folder, b.workers)?);
        }
    }
    // Last, so that its single-threaded allocations do not shape the passes' resident memory.
    progress(&format!("stage breakdown on one thread ({} images)", files.len().min(BREAKDOWN_IMAGES)));
    let breakdown = stage_breakdown(files, b)?;
    let speeds = |v: &[Pass]| v.iter().map(|p| p.images_per_second).collect::<Vec<_>>();
    let median_of = |v: &[Pass]| if v.is_empty() { f64::NAN } else { super::median(&speeds(v)) };
    let iqr_of = |v: &[Pass]| if v.is_empty() { (f64::NAN, f64::NAN) } else { super::quartiles(&speeds(v)) };
    let (h, t) = (median_of(&ours), median_of(&theirs));
    Ok(DataBenchResult {
        bench: b.clone(),
        folder: folder.to_owned(),
        float32_bytes: (b.images as u64) * 3 * (b.size as u64).pow(2) * 4,
        huelab_median: h,
        huelab_iqr: iqr_of(&ours),
        torchvision_median: t,
        torchvision_iqr: iqr_of(&theirs),
        ratio: h / t,
        huelab_peak_rss_bytes: ours.iter().map(|p| p.peak_rss_bytes).max().unwrap_or(0),
        torchvision_peak_rss_bytes: theirs.iter().map(|p| p.peak_rss_bytes).max().unwrap_or(0),
        huelab: ours,
        torchvision: theirs,
        ceiling_turbojpeg_median: if turbojpeg.is_empty() { f64::NAN } else { super::median(&turbojpeg) },
        ceiling_huelab_decoder_median: super::median(&decoder),
        fraction_of_ceiling: if turbojpeg.is_empty() { f64::NAN } else { h / super::median(&turbojpeg) },
        ceiling_turbojpeg: turbojpeg,
        ceiling_huelab_decoder: decoder,
        breakdown,
    })
}

