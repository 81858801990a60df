//! Batches prepared ahead of the one being used, on worker threads: worker `w` makes batches
//! `w, w + W, w + 2W, …` into its own bounded channel and the consumer takes batch `b` from
//! channel `b mod W`, so batches arrive in plan order whatever the number of workers, and at
//! most `W × (PREFETCH + 1)` batches exist at once (memory bounded by batch size × prefetch,
//! not by the data set); 8-bit images stay `uint8` until the consumer takes a batch, which makes
//! them float32 (standardised when the plan says so) in one pass. Augmentation is drawn by the
//! caller for the whole plan, so a batch's content never depends on which worker made it; an
//! image file's flip is done while its pixels are laid out. A worker's error or panic reaches the
//! consumer as an error; the stream never ends early without saying why.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use tch::Tensor;

use super::augment::{Augment, ImageAugment};
use super::dataset::ImageDataset;
use super::to_float::ByteToFloat;
use super::folder::{ImageFiles, Mode, Scratch};
use crate::error::{Error, Result};

/// Batches each worker prepares ahead.
const PREFETCH: usize = 2;

/// What a stream delivers.
#[derive(Debug, Clone, Default)]
pub struct BatchPlan {
    /// Image indices in delivery order.
    pub order: Vec<i64>,
    pub batch_size: usize,
    pub augment: Augment,
    /// One drawn augmentation per entry of `order` (empty when `augment` is the identity).
    pub drawn: Vec<ImageAugment>,
    /// The transform of image files.
    pub mode: Option<Mode>,
    /// Batches of the plan not to deliver (the part of an epoch done before a resume).
    pub skip: usize,
    /// Per channel `(mean, sd)` to standardise the delivered batches with (none: `[0, 1]`).
    pub standardise: Option<Vec<(f64, f64)>>,
}

impl BatchPlan {
    /// Every image at `indices` in order, unaugmented, evaluation transform.
    pub fn eval(indices: Vec<i64>, batch_size: usize) -> Self {
        BatchPlan { order: indices, batch_size, mode: Some(Mode::Eval), ..Default::default() }
    }

    pub fn batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size.max(1))
    }
}

/// A worker's handle on the pixels.
enum Source {
    Tensor(Tensor),
    Files(ImageFiles),
}

// Tensors are Send; each worker holds its own shallow handle and only reads.
type Batch = std::result::Result<(Tensor, Tensor), Error>;

pub struct BatchStream {
    receivers: Vec<Receiver<Batch>>,
    to_float: ToFloat,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next: usize,
    total: usize,
    failed: bool,
}

impl BatchStream {
    /// Streams the plan's batches of `data` (float32 in `[0, 1]`, with int64 labels) using
    /// `workers` threads (at least 1).
    pub fn new(data: &ImageDataset, plan: BatchPlan, workers: usize) -> Result<Self> {
        if plan.batch_size == 0 {
            return Err(Error::invalid_option("batch_size", "must be at least 1"));
        }
        if !plan.augment.is_identity() && plan.drawn.len() != plan.order.len() {
            return Err(Error::msg(format!("batch plan: {} augmentations drawn for {} images", plan.drawn.len(), plan.order.len())));
        }
        if let Some(bad) = plan.order.iter().find(|&&i| i < 0 || i as usize >= data.len()) {
            return Err(Error::msg(format!("'{}': image index {bad} is out of range for {} images", data.name(), data.len())));
        }
        let total = plan.batches();
        let workers = workers.clamp(1, total.max(1));
        let to_float = ToFloat::new(data.image_shape()[0] as usize, plan.standardise.as_deref())?;
        let plan = Arc::new(plan);
        let labels: Arc<Vec<i64>> = Arc::new(data.labels().to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (sender, receiver) = sync_channel::<Batch>(PREFETCH);
            let source = match data.files() {
                Some(files) => Source::Files(files.clone()),
                None => Source::Tensor(raw_tensor(data)?),
            };
            let (plan, labels, stop) = (plan.clone(), labels.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("huelab-batches-{w}"))
                .spawn(move || {
                    let mut scratch = Scratch::default();
                    for b in (w..total).step_by(workers) {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if b < plan.skip {
                            continue;
                        }
                        let batch = crate::firewall::catch("preparing a batch", || make_batch(&source, &plan, &labels, b, &mut scratch));
                        let failed = batch.is_err();
                        if sender.send(batch).is_err() || failed {
                            return; // the consumer stopped early, or this batch failed
                        }
                    }
                })
                .map_err(|e| Error::msg(format!("cannot start a batch worker thread: {e}")))?;
            receivers.push(receiver);
            handles.push(handle);
        }
        Ok(BatchStream { receivers, to_float, workers: handles, stop, next: plan_skip(total, &plan), total, failed: false })
    }
}

fn plan_skip(total: usize, plan: &BatchPlan) -> usize {
    plan.skip.min(total)
}

/// The in-memory pixels of `data` as one tensor handle.
fn raw_tensor(data: &ImageDataset) -> Result<Tensor> {
    data.stored_tensor().ok_or_else(|| Error::msg("an in-memory data set without its tensor"))
}

fn make_batch(source: &Source, plan: &BatchPlan, labels: &[i64], b: usize, scratch: &mut Scratch) -> Result<(Tensor, Tensor)> {
    let start = b * plan.batch_size;
    let end = (start + plan.batch_size).min(plan.order.len());
    let indices = &plan.order[start..end];
    let drawn = if plan.augment.is_identity() { &[][..] } else { &plan.drawn[start..end] };
    // Augmented as stored (crops and flips only move pixels), so 8-bit images stay uint8 until
    // the consumer takes the batch: the queue holds a quarter of the bytes. Image files are
    // flipped as their pixels are laid out; only a padded crop takes another pass.
    let images = match source {
        Source::Files(files) if plan.augment.crop_padding == 0 => {
            let flips: Vec<bool> = drawn.iter().map(|a| a.flip).collect();
            files.load_timed(indices, plan.mode.unwrap_or(Mode::Eval), &flips, scratch, None)?
        }
        Source::Files(files) => plan.augment.apply_drawn(&files.load_timed(indices, plan.mode.unwrap_or(Mode::Eval), &[], scratch, None)?, drawn),
        Source::Tensor(t) => {
            let raw = t.f_index_select(0, &Tensor::from_slice(indices))?;
            if drawn.is_empty() { raw } else { plan.augment.apply_drawn(&raw, drawn) }
        }
    };
    let chosen: Vec<i64> = indices.iter().map(|&i| labels[i as usize]).collect();
    Ok((images, Tensor::from_slice(&chosen)))
}

impl Iterator for BatchStream {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total || self.failed {
            return None;
        }
        let receiver = &self.receivers[self.next % self.receivers.len()];
        self.next += 1;
        match receiver.recv() {
            Ok(Ok((images, labels))) => match self.to_float.apply(&images) {
                Ok(images) => Some(Ok((images, labels))),
                Err(e) => {
                    self.failed = true;
                    Some(Err(e))
                }
            },
            Ok(Err(e)) => {
                self.failed = true;
                Some(Err(e))
            }
            Err(_) => {
                self.failed = true;
                Some(Err(Error::msg(format!("the worker preparing batch {} stopped without delivering it", self.next))))
            }
        }
    }
}

/// How delivered batches become float32: stored bytes through [`ByteToFloat`]'s tables, float
/// pixels (already in `[0, 1]`) standardised by libtorch when asked.
struct ToFloat {
    bytes: ByteToFloat,
    /// `(mean, sd)` as `[1, C, 1, 1]` float32 tensors.
    stats: Option<(Tensor, Tensor)>,
}

impl ToFloat {
    fn new(channels: usize, stats: Option<&[(f64, f64)]>) -> Result<Self> {
        let bytes = ByteToFloat::new(channels, stats)?;
        let column = |values: Vec<f64>| Tensor::from_slice(&values).view([1, channels as i64, 1, 1]).to_kind(tch::Kind::Float);
        let stats = stats.map(|s| (column(s.iter().map(|p| p.0).collect()), column(s.iter().map(|p| p.1).collect())));
        Ok(ToFloat { bytes, stats })
    }

    fn apply(&self, images: &Tensor) -> Result<Tensor> {
        if images.kind() == tch::Kind::Uint8 {
            return self.bytes.apply(images);
        }
        Ok(match &self.stats {
            Some((mean, sd)) => (images - mean) / sd,
            None => images.shallow_clone(),
        })
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channels lets workers blocked on `send` finish.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
