use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self, PartialEpoch, Resumed};
use super::recalibrate;
use super::saved_model::{save_model, SavedModelInfo, TrainedModel};
use super::step::{EpochSums, HostSums, TrainStep};
use super::{evaluate_stream, EpochMetrics, EvalMetrics, Optimizer, SplitSizes, TrainConfig, TrainReport};
use crate::data::{BatchPlan, BatchStream, ImageDataset, Mode, Split};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::files::DirLock;
use crate::interrupt::StopPoint;
use crate::models::{HueNet, ModelSpec};
use crate::nn::{HueLabels, HueLossConfig, Loss};

/// Salt that separates the augmentation generator from the batch-order generator of a seed.
const AUGMENT_STREAM_SALT: u64 = 0x6875_655f_6175_6721;

/// Seconds between two progress-bar refreshes (each reads the device's running sums once).
const PROGRESS_EVERY_SECONDS: f64 = 0.5;

/// How a run's inputs are standardised: `(mean, sd)` as `[1, C, 1, 1]` tensors on the device.
type Standardisation = Option<(Tensor, Tensor)>;

/// A run being trained: what setup builds once and every epoch uses.
struct Run<'a> {
    config: &'a TrainConfig,
    data: &'a ImageDataset,
    split: &'a Split,
    device: Device,
    vs: nn::VarStore,
    net: HueNet,
    optimizer: Optimizer,
    loss: Box<dyn Loss>,
    /// The angles the model's hue head is scored against (its accuracy is reported for every
    /// loss: against the default angles, a chance-level reference, when the loss has no hue term).
    hue_labels: HueLabels,
    normalization: Option<Vec<(f64, f64)>>,
    standardise: Standardisation,
    /// Kernels and batches channels-last.
    channels_last: bool,
    workers: usize,
    progress: ProgressBar,
    batches_per_epoch: usize,
    started: Instant,
}

/// Trains a fresh model on `split.train`, reports validation metrics every epoch and test
/// metrics at the end.
///
/// The model is built right after seeding libtorch with `config.seed`, and it always has its
/// hue head (trained or not), so two runs with the same seed start from identical weights.
/// The batch order of epoch `e` comes from a ChaCha generator on stream `e` of that seed, and
/// its augmentation from a second generator, so both are the same for every arm of a seed;
/// libtorch's generator is reseeded from (seed, epoch, batch) before every batch, so a run
/// resumed at a batch boundary continues exactly.
///
/// No panic firewall here: the entry points have theirs (see [`crate::firewall`]), and a
/// libtorch failure in a forward pass is already an error ([`crate::models::forward_pass`]).
pub fn train(data: &ImageDataset, split: &Split, config: &TrainConfig) -> Result<TrainReport> {
    train_watched(data, split, config, None)
}

/// What watches a run: called with the report so far after every epoch (a notebook's live
/// curves), and once more, marked `interrupted`, when the run is interrupted (what it did
/// stays reachable: `last_run()` in a script).
pub type Watcher<'w> = &'w mut dyn FnMut(&TrainReport);

/// A run that ended, finished or interrupted, with its model.
pub struct TrainedRun {
    /// `interrupted` when a stop request ended it: its finished epochs, no test metrics.
    pub report: TrainReport,
    /// The weights as they were when the run ended (an interrupted run's: after its last
    /// finished batch).
    pub model: TrainedModel,
}

/// [`train`], with `watch` told of every epoch and of an interruption.
pub fn train_watched(data: &ImageDataset, split: &Split, config: &TrainConfig, watch: Option<Watcher>) -> Result<TrainReport> {
    let ended = train_model(data, split, config, watch)?;
    if ended.report.interrupted {
        return Err(Error::Interrupted);
    }
    Ok(ended.report)
}

/// [`train_watched`], keeping the model, and ending an interrupted run with what it did (its
/// report marked `interrupted`) instead of an error: a notebook keeps both.
pub fn train_model(data: &ImageDataset, split: &Split, config: &TrainConfig, mut watch: Option<Watcher>) -> Result<TrainedRun> {
    config.validate()?;
    split.check_fits(&data.identity(), data.name())?;
    if split.train.is_empty() {
        return Err(Error::msg("the split has no training images"));
    }
    crate::alloc::tune_for_training();
    let _lock = config.checkpoint.as_deref().map(DirLock::acquire).transpose()?;
    // Held from seeding to the last step: no other thread's draws interleave with this run's.
    let _generator = crate::rng::lock();
    let (mut run, resumed) = Run::set_up(data, split, config)?;
    let resumed_after_epoch = (!resumed.epochs.is_empty() || resumed.partial.is_some()).then_some(resumed.epochs.len());
    let Resumed { mut epochs, wall_seconds: previous_seconds, mut partial } = resumed;
    run.progress.inc((epochs.len() * run.batches_per_epoch + partial.as_ref().map_or(0, |p| p.sums.batches)) as u64);
    for epoch in epochs.len() + 1..=config.epochs {
        let resumed_part = partial.take().filter(|p| p.epoch == epoch);
        let finished = run.epoch(epoch, resumed_part, &epochs, previous_seconds).and_then(|metrics| {
            report_epoch(&run.progress, config, &metrics);
            epochs.push(metrics);
            if let Some(dir) = &config.checkpoint {
                let elapsed = previous_seconds + run.started.elapsed().as_secs_f64();
                checkpoint::save(dir, config, (data, split), (&run.vs, &run.optimizer), &epochs, elapsed, None)?;
            }
            if let Some(watch) = watch.as_mut() {
                watch(&run.report(epochs.clone(), None, previous_seconds, resumed_after_epoch));
            }
            run.stop_after_epoch()
        });
        match finished {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                let mut so_far = run.report(epochs, None, previous_seconds, resumed_after_epoch);
                so_far.interrupted = true;
                if let Some(watch) = watch.as_mut() {
                    watch(&so_far);
                }
                return Ok(TrainedRun { report: so_far, model: run.into_model() });
            }
            Err(e) => return Err(e),
        }
    }
    run.progress.finish_and_clear();
    run.finish(epochs, previous_seconds, resumed_after_epoch)
}

impl<'a> Run<'a> {
    /// The model seeded with `config.seed`, its optimiser, and the state of a checkpoint to
    /// resume; the loss, hue labels, input statistics and progress bar.
    fn set_up(data: &'a ImageDataset, split: &'a Split, config: &'a TrainConfig) -> Result<(Self, Resumed)> {
        let started = Instant::now();
        let device = config.device.resolve()?;
        if config.precision == crate::precision::Precision::Bf16 {
            crate::precision::warn_if_emulated(device);
        }
        let [channels, height, width] = data.image_shape();
        let spec = ModelSpec {
            arch: config.arch,
            in_channels: channels,
            num_classes: data.num_classes() as i64,
            input_size: (height, width),
            stem: config.stem,
            hue_head: config.hue_head,
        };
        tch::manual_seed(config.seed as i64);
        let mut vs = nn::VarStore::new(device);
        let net = HueNet::new(&vs.root(), &spec)?;
        // Before the optimiser is made, so its state takes the kernels' layout; a checkpoint's
        // values are copied into the variables, which keeps it.
        let channels_last = config.channels_last.unwrap_or_else(|| config.arch.trains_channels_last(device, config.precision));
        if channels_last {
            crate::models::to_channels_last(&vs)?;
        }
        let mut optimizer = Optimizer::new(&vs, config.optimizer, config.lr);
        let resumed = resume(config, (data, split), (&mut vs, &mut optimizer))?;
        let loss = config.loss.build(data.num_classes(), config.label_smoothing)?;
        let hue_labels = HueLabels::new(data.num_classes(), loss.head_angles().unwrap_or(HueLossConfig::default().assignment))?;
        let normalization = normalization(data, &split.train, config)?;
        let standardise: Standardisation = normalization.as_ref().map(|stats| stats_tensors(stats, device));
        let batches_per_epoch = split.train.len().div_ceil(config.batch_size);
        let progress = progress_bar(config, batches_per_epoch);
        let workers = pipeline_workers(data);
        let run = Run { config, data, split, device, vs, net, optimizer, loss, hue_labels, normalization, standardise, channels_last, workers, progress, batches_per_epoch, started };
        Ok((run, resumed))
    }

    /// A batch as the model takes it.
    fn prepare(&self, (x, y): (Tensor, Tensor)) -> Result<(Tensor, Tensor)> {
        prepare_batch(x, y, &self.standardise, self.channels_last, self.device)
    }

    /// On the CPU the training stream standardises its batches itself, in the same pass that
    /// makes them float32; on a GPU batches cross as `[0, 1]` floats and are standardised there.
    fn stream_standardises(&self) -> bool {
        !self.device.is_cuda()
    }

    /// A training batch as the model takes it (the stream may have standardised it).
    fn prepare_streamed(&self, (x, y): (Tensor, Tensor)) -> Result<(Tensor, Tensor)> {
        let standardise = if self.stream_standardises() { &None } else { &self.standardise };
        prepare_batch(x, y, standardise, self.channels_last, self.device)
    }

    /// One epoch (from 1), continuing `resumed_part` when a checkpoint stopped inside it; stops
    /// with `Interrupted`, or `Preempted` after a checkpoint of the partial epoch.
    fn epoch(&mut self, epoch: usize, resumed_part: Option<PartialEpoch>, done: &[EpochMetrics], previous_seconds: f64) -> Result<EpochMetrics> {
        let config = self.config;
        let epoch_started = Instant::now();
        let lr = config.schedule.lr(config.lr, epoch - 1, config.epochs);
        self.optimizer.set_lr(lr);
        let mut plan = epoch_plan(config, self.split, epoch, resumed_part.as_ref().map_or(0, |p| p.sums.batches));
        if self.stream_standardises() {
            plan.standardise = self.normalization.clone();
        }
        let mut sums = match &resumed_part {
            Some(p) => EpochSums::resume(&p.sums, self.device),
            None => EpochSums::new(self.loss.parts().len(), self.device),
        };
        let earlier_seconds = resumed_part.as_ref().map_or(0.0, |p| p.seconds);
        let mut last_report = Instant::now();
        for batch in BatchStream::new(self.data, plan, self.workers)? {
            // Before the batch: libtorch's generator (stochastic depth) depends only on
            // (seed, epoch, batch), wherever the run started.
            tch::manual_seed(batch_seed(config.seed, epoch, sums.batches + 1));
            let (x, y) = self.prepare_streamed(batch?)?;
            let mut step = TrainStep { net: &self.net, optimizer: &mut self.optimizer, loss: self.loss.as_ref(), precision: config.precision };
            step.run(&x, &y, &mut sums)?;
            self.progress.inc(1);
            if last_report.elapsed().as_secs_f64() >= PROGRESS_EVERY_SECONDS && !self.progress.is_hidden() {
                let now = read_checked(&sums, config, epoch, lr)?;
                self.progress.set_message(format!("{} epoch {epoch}/{} loss {:.4} acc {:.3}", config.name, config.epochs, now.loss / now.images as f64, now.correct / now.images as f64));
                last_report = Instant::now();
            }
            crate::interrupt::reached(StopPoint::AfterBatch { epoch, batch: sums.batches })?;
            self.stop_if_asked(epoch, (&sums, lr), earlier_seconds + epoch_started.elapsed().as_secs_f64(), (done, previous_seconds))?;
        }
        let totals = read_checked(&sums, config, epoch, lr)?;
        if totals.images == 0 {
            return Err(Error::msg(format!("run '{}': epoch {epoch} saw no training images", config.name)));
        }
        let val = self.validate()?;
        crate::interrupt::reached(StopPoint::Validated { epoch })?;
        let images = totals.images as f64;
        Ok(EpochMetrics {
            epoch,
            train_loss: totals.loss / images,
            train_parts: self.loss.parts().iter().zip(&totals.parts).map(|(part, sum)| (part.key.to_owned(), sum / images)).collect(),
            train_accuracy: totals.correct / images,
            val_accuracy: val.map(|v| v.accuracy),
            val_hue_accuracy: val.map(|v| v.hue_accuracy),
            lr,
            seconds: earlier_seconds + epoch_started.elapsed().as_secs_f64(),
        })
    }

    /// After a batch: Ctrl-C stops the run (the last finished epoch's checkpoint stays as it
    /// is); a cluster's warning checkpoints the epoch so far and stops it as preempted.
    ///
    /// After the epoch's last batch, a warning waits for the epoch's end instead: its training
    /// part is done, and what is left (validation) belongs to the epoch's record. Stopping here
    /// would checkpoint an epoch with every batch done but no metrics, a state no resume can
    /// tell from a finished one; [`Run::stop_after_epoch`] stops once the epoch is recorded.
    fn stop_if_asked(&self, epoch: usize, (sums, lr): (&EpochSums, f64), epoch_seconds: f64, (done, previous_seconds): (&[EpochMetrics], f64)) -> Result<()> {
        if crate::interrupt::requested() {
            self.progress.abandon();
            return Err(Error::Interrupted);
        }
        match &self.config.checkpoint {
            Some(dir) if crate::interrupt::checkpoint_requested() && sums.batches < self.batches_per_epoch => {
                let part = PartialEpoch { epoch, sums: read_checked(sums, self.config, epoch, lr)?, seconds: epoch_seconds };
                let elapsed = previous_seconds + self.started.elapsed().as_secs_f64();
                checkpoint::save(dir, self.config, (self.data, self.split), (&self.vs, &self.optimizer), done, elapsed, Some(&part))?;
                self.progress.abandon();
                Err(Error::Preempted { checkpoint: dir.clone() })
            }
            _ => Ok(()),
        }
    }

    /// After an epoch is recorded (and checkpointed, with a checkpoint directory): a stop asked
    /// meanwhile (during its last batch or its validation) ends the run here, its checkpoint
    /// holding whole epochs.
    fn stop_after_epoch(&self) -> Result<()> {
        if crate::interrupt::requested() {
            self.progress.abandon();
            return Err(Error::Interrupted);
        }
        match &self.config.checkpoint {
            Some(dir) if crate::interrupt::checkpoint_requested() => {
                self.progress.abandon();
                Err(Error::Preempted { checkpoint: dir.clone() })
            }
            _ => Ok(()),
        }
    }

    /// The validation part's metrics, with recalibrated batch-norm statistics when asked.
    fn validate(&self) -> Result<Option<EvalMetrics>> {
        if self.split.val.is_empty() {
            return Ok(None);
        }
        let prepare = |batch| self.prepare(batch);
        if !self.config.bn_recalibrate {
            return Ok(Some(evaluate_stream(&self.net, self.data, &self.split.val, &self.hue_labels, self.workers, &prepare)?));
        }
        // Evaluate with recalibrated statistics, then train on with the running ones, so
        // training is the same as without the option.
        let running = recalibrate::snapshot(&self.vs);
        recalibrate::recalibrate(&self.net, &self.vs, self.data, &self.split.train, self.config.batch_size, self.workers, &prepare)?;
        let val = evaluate_stream(&self.net, self.data, &self.split.val, &self.hue_labels, self.workers, &prepare)?;
        recalibrate::restore(&self.vs, &running)?;
        Ok(Some(val))
    }

    /// After the last epoch: the test part's metrics, the saved model, the report.
    fn finish(self, epochs: Vec<EpochMetrics>, previous_seconds: f64, resumed_after_epoch: Option<usize>) -> Result<TrainedRun> {
        let (config, data, split) = (self.config, self.data, self.split);
        let prepare = |batch| self.prepare(batch);
        if config.bn_recalibrate {
            // The saved model keeps these statistics: what it is evaluated with.
            recalibrate::recalibrate(&self.net, &self.vs, data, &split.train, config.batch_size, self.workers, &prepare)?;
        }
        // A stop asked from here on lets the run finish: the test part and the saved model take
        // seconds, and a resume would redo them from the last epoch's checkpoint anyway.
        crate::interrupt::reached(StopPoint::Testing)?;
        let test = if split.test.is_empty() { None } else { Some(evaluate_stream(&self.net, data, &split.test, &self.hue_labels, self.workers, &prepare)?) };
        if let Some(dir) = &config.checkpoint {
            crate::interrupt::reached(StopPoint::SavingModel)?;
            save_model(dir, &self.vs, &self.model_info())?;
        }
        let report = self.report(epochs, test, previous_seconds, resumed_after_epoch);
        Ok(TrainedRun { report, model: self.into_model() })
    }

    /// What a saved model records of this run.
    fn model_info(&self) -> SavedModelInfo {
        SavedModelInfo {
            format: 1,
            spec: self.net.spec().clone(),
            normalization: self.normalization.clone(),
            class_names: self.data.class_names().to_vec(),
            run_name: self.config.name.clone(),
            // save_model records the digest of the tensors it writes.
            tensors_sha256: None,
        }
    }

    /// The model as trained so far.
    fn into_model(self) -> TrainedModel {
        let info = self.model_info();
        TrainedModel::trained(self.net, self.vs, info)
    }

    /// The run's report with `epochs` and `test` (the report so far, before the end).
    fn report(&self, epochs: Vec<EpochMetrics>, test: Option<EvalMetrics>, previous_seconds: f64, resumed_after_epoch: Option<usize>) -> TrainReport {
        TrainReport {
            config: self.config.clone(),
            loss_derived: self.loss.derived(),
            model: self.net.spec().clone(),
            data: self.data.summary(),
            split_seed: self.split.config.seed,
            split_sizes: SplitSizes::from(self.split),
            device: device_name(self.device),
            precision: self.config.precision,
            normalization: self.normalization.clone(),
            channels_last: self.channels_last,
            epochs,
            test,
            wall_seconds: previous_seconds + self.started.elapsed().as_secs_f64(),
            resumed_after_epoch,
            interrupted: false,
        }
    }
}

/// The state of the checkpoint in `config.checkpoint` when the run resumes it (loaded into the
/// weights and the optimiser); an error when one is there and `resume` is not set.
fn resume(config: &TrainConfig, (data, split): (&ImageDataset, &Split), (vs, optimizer): (&mut nn::VarStore, &mut Optimizer)) -> Result<Resumed> {
    let Some(dir) = &config.checkpoint else { return Ok(Resumed::default()) };
    match (checkpoint::exists(dir), config.resume) {
        (true, true) => {
            let resumed = checkpoint::load(dir, config, (data, split), (vs, optimizer))?;
            let at = match &resumed.partial {
                Some(p) => format!("epoch {}, batch {}", resumed.epochs.len(), p.sums.batches),
                None => format!("epoch {}", resumed.epochs.len()),
            };
            eprintln!("{}: resuming after {at} from {}", config.name, dir.display());
            Ok(resumed)
        }
        (true, false) => Err(Error::Data {
            path: dir.clone(),
            message: "holds a checkpoint already; pass resume: true to continue it, or choose another directory".into(),
        }),
        (false, _) => Ok(Resumed::default()),
    }
}

/// The batches of one epoch: the training images in the order of stream `epoch` of the seed,
/// each image's augmentation drawn in that order from the augmentation stream (so the draws
/// are the same however many workers decode, and skipping the batches done before a resume
/// changes nothing about the rest).
fn epoch_plan(config: &TrainConfig, split: &Split, epoch: usize, skip: usize) -> BatchPlan {
    let mut order = split.train.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    let mut augment_rng = ChaCha8Rng::seed_from_u64(config.seed ^ AUGMENT_STREAM_SALT);
    augment_rng.set_stream(epoch as u64);
    let drawn = if config.augment.is_identity() { vec![] } else { config.augment.draw(order.len(), &mut augment_rng) };
    BatchPlan { order, batch_size: config.batch_size, augment: config.augment, drawn, mode: Some(Mode::Train { seed: config.seed, epoch: epoch as u64 }), skip, standardise: None }
}

/// The sums read on the host, and an error naming the epoch and batch if the loss stopped
/// being a finite number.
fn read_checked(sums: &EpochSums, config: &TrainConfig, epoch: usize, lr: f64) -> Result<HostSums> {
    let totals = sums.read()?;
    if totals.nonfinite > 0 {
        return Err(Error::msg(format!(
            "run '{}': the loss became NaN or infinite at epoch {epoch}, batch {} (lr {lr}); stopping",
            config.name, totals.first_nonfinite
        )));
    }
    Ok(totals)
}

/// Threads decoding batches: one for in-memory data (selection is cheap), the folder's setting
/// (default: one per core) for image files.
pub(crate) fn pipeline_workers(data: &ImageDataset) -> usize {
    match data.files() {
        None => 1,
        Some(files) if files.config.workers > 0 => files.config.workers,
        Some(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// A batch as the model takes it: on the device, standardised, in the requested memory layout.
/// On a GPU, batches go through pinned (page-locked) memory so the copy can overlap.
pub(crate) fn prepare_batch(x: Tensor, y: Tensor, standardise: &Standardisation, channels_last: bool, device: Device) -> Result<(Tensor, Tensor)> {
    let x = if channels_last { crate::models::channels_last(&x) } else { x };
    let x = match standardise {
        Some((mean, sd)) if !device.is_cuda() => (x - mean) / sd,
        _ => x,
    };
    if device.is_cuda() {
        let pinned = |t: Tensor| t.pin_memory(device).to_device_(device, t.kind(), true, false);
        let x = pinned(x);
        let x = match standardise {
            Some((mean, sd)) => (x - mean) / sd,
            None => x,
        };
        Ok((x, pinned(y)))
    } else {
        Ok((x, y))
    }
}

fn stats_tensors(stats: &[(f64, f64)], device: Device) -> (Tensor, Tensor) {
    let c = stats.len() as i64;
    let column = |f: fn(&(f64, f64)) -> f64| Tensor::from_slice(&stats.iter().map(f).collect::<Vec<f64>>()).view([1, c, 1, 1]).to_kind(Kind::Float).to_device(device);
    (column(|s| s.0), column(|s| s.1))
}

/// The per-channel `(mean, sd)` the run standardises with: the options' fixed statistics, or
/// those of the training part.
fn normalization(data: &ImageDataset, train: &[i64], config: &TrainConfig) -> Result<Option<Vec<(f64, f64)>>> {
    if let Some(fixed) = &config.normalize_stats {
        if fixed.len() as i64 != data.image_shape()[0] {
            return Err(Error::invalid_option("normalize", format!("{} channel statistics for images of {} channels", fixed.len(), data.image_shape()[0])));
        }
        return Ok(Some(fixed.clone()));
    }
    if !config.normalize {
        return Ok(None);
    }
    Ok(Some(channel_statistics(data, train)?))
}

/// Per-channel mean and sd of the images at `indices`, computed in float64 (and rounded to
/// float32, the images' kind, as standardised batches are float32). In-memory sets are
/// computed in one pass; image files stream, a batch at a time, so nothing is held whole.
fn channel_statistics(data: &ImageDataset, indices: &[i64]) -> Result<Vec<(f64, f64)>> {
    let round = |v: f64| v as f32 as f64;
    if data.is_in_memory() {
        let (images, _) = data.select(indices)?;
        let images = images.to_kind(Kind::Double);
        let dims: &[i64] = &[0, 2, 3];
        let mean = images.mean_dim(dims, true, Kind::Double);
        let sd = images.std_dim(dims, true, true).clamp_min(1e-6);
        let values = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Float).to_kind(Kind::Double).flatten(0, -1));
        return Ok(values(mean)?.into_iter().zip(values(sd)?).collect());
    }
    let channels = data.image_shape()[0] as usize;
    let (mut sum, mut sum_sq, mut count) = (vec![0f64; channels], vec![0f64; channels], 0f64);
    let progress = crate::progress::images_bar("channel statistics", indices.len());
    for batch in BatchStream::new(data, BatchPlan::eval(indices.to_vec(), 64), pipeline_workers(data))? {
        let (x, _) = batch?;
        let x = x.to_kind(Kind::Double);
        let dims: &[i64] = &[0, 2, 3];
        let s: Vec<f64> = Vec::try_from(x.sum_dim_intlist(dims, false, Kind::Double))?;
        let s2: Vec<f64> = Vec::try_from(x.square().sum_dim_intlist(dims, false, Kind::Double))?;
        let size = x.size();
        count += (size[0] * size[2] * size[3]) as f64;
        for c in 0..channels {
            sum[c] += s[c];
            sum_sq[c] += s2[c];
        }
        progress.inc(size[0] as u64);
    }
    progress.finish_and_clear();
    Ok((0..channels)
        .map(|c| {
            let mean = sum[c] / count;
            let var = ((sum_sq[c] - count * mean * mean) / (count - 1.0).max(1.0)).max(0.0);
            (round(mean), round(var.sqrt().max(1e-6)))
        })
        .collect())
}

/// The libtorch seed of a batch: a mix of the run's seed, the epoch and the batch (from 1).
fn batch_seed(seed: u64, epoch: usize, batch: usize) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ (batch as u64).wrapping_mul(0x1656_67B1_9E37_79F9)) as i64
}

fn progress_bar(config: &TrainConfig, batches_per_epoch: usize) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = crate::progress::new_bar((batches_per_epoch * config.epochs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} batches [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("the template is valid"),
    );
    bar
}

/// One line per epoch: above the bar on a terminal, plainly on stderr otherwise (CI logs).
fn report_epoch(progress: &ProgressBar, config: &TrainConfig, m: &EpochMetrics) {
    if !config.progress {
        return;
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    let parts: Vec<String> = config.loss.parts().iter().map(|p| format!("{} {}", p.label, fmt(m.train_part(p.key)))).collect();
    let line = format!(
        "{} epoch {:>3}/{}: loss {:.4} ({}) train acc {:.4} val acc {} val hue acc {} [{:.1}s]",
        config.name,
        m.epoch,
        config.epochs,
        m.train_loss,
        parts.join(", "),
        m.train_accuracy,
        fmt(m.val_accuracy),
        fmt(m.val_hue_accuracy),
        m.seconds
    );
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
}
