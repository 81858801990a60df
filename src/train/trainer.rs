use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self, PartialEpoch};
use super::recalibrate;
use super::saved_model::{save_model, SavedModelInfo};
use super::step::{EpochSums, HostSums, TrainStep};
use super::{evaluate_stream, EpochMetrics, Optimizer, SplitSizes, TrainConfig, TrainReport};
use crate::data::{BatchPlan, BatchStream, ImageDataset, Mode, Split};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::files::DirLock;
use crate::models::{HueNet, ModelSpec};
use crate::nn::HueLabels;

/// Salt that separates the augmentation generator from the batch-order generator of a seed.
const AUGMENT_STREAM_SALT: u64 = 0x6875_655f_6175_6721;

/// Seconds between two progress-bar refreshes (each reads the device's running sums once).
const PROGRESS_EVERY_SECONDS: f64 = 0.5;

/// How a run's inputs are standardised: `(mean, sd)` as `[1, C, 1, 1]` tensors on the device.
type Standardisation = Option<(Tensor, Tensor)>;

/// Trains a fresh model on `split.train`, reports validation metrics every epoch and test
/// metrics at the end.
///
/// The model is built right after seeding libtorch with `config.seed`, and it always has its
/// hue head (trained or not), so two runs with the same seed start from identical weights.
/// The batch order of epoch `e` comes from a ChaCha generator on stream `e` of that seed, and
/// its augmentation from a second generator, so both are the same for every arm of a seed;
/// libtorch's generator is reseeded from (seed, epoch, batch) before every batch, so a run
/// resumed at a batch boundary continues exactly.
pub fn train(data: &ImageDataset, split: &Split, config: &TrainConfig) -> Result<TrainReport> {
    crate::firewall::catch(&format!("training '{}'", config.name), || train_checked(data, split, config))
}

fn train_checked(data: &ImageDataset, split: &Split, config: &TrainConfig) -> Result<TrainReport> {
    config.validate()?;
    split.check_fits(&data.identity(), data.name())?;
    if split.train.is_empty() {
        return Err(Error::msg("the split has no training images"));
    }
    crate::alloc::tune_for_training();
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
    let _lock = config.checkpoint.as_deref().map(DirLock::acquire).transpose()?;
    // Held from seeding to the last step: no other thread's draws interleave with this run's.
    let _generator = crate::rng::lock();
    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let net = HueNet::new(&vs.root(), &spec)?;
    let mut optimizer = Optimizer::new(&vs, config.optimizer, config.lr);

    let mut epochs = Vec::with_capacity(config.epochs);
    let mut previous_seconds = 0.0;
    let mut partial: Option<PartialEpoch> = None;
    if let Some(dir) = &config.checkpoint {
        match (checkpoint::exists(dir), config.resume) {
            (true, true) => {
                let resumed = checkpoint::load(dir, config, (data, split), (&mut vs, &mut optimizer))?;
                let at = match &resumed.partial {
                    Some(p) => format!("epoch {}, batch {}", resumed.epochs.len(), p.sums.batches),
                    None => format!("epoch {}", resumed.epochs.len()),
                };
                eprintln!("{}: resuming after {at} from {}", config.name, dir.display());
                epochs = resumed.epochs;
                previous_seconds = resumed.wall_seconds;
                partial = resumed.partial;
            }
            (true, false) => {
                return Err(Error::Data {
                    path: dir.clone(),
                    message: "holds a checkpoint already; pass resume: true to continue it, or choose another directory".into(),
                })
            }
            (false, _) => {}
        }
    }
    let resumed_after_epoch = (!epochs.is_empty() || partial.is_some()).then_some(epochs.len());

    let loss = config.loss.build(data.num_classes(), config.label_smoothing)?;
    // Runs whose loss does not train the hue head still report its accuracy, against the
    // default angles: a chance-level reference for the untrained head.
    let hue_labels = HueLabels::new(data.num_classes(), config.loss.head_angles())?;
    let normalization = normalization(data, &split.train, config)?;
    let standardise: Standardisation = normalization.as_ref().map(|stats| stats_tensors(stats, device));
    let prepare = |(x, y): (Tensor, Tensor)| prepare_batch(x, y, &standardise, config.channels_last, device);
    let workers = pipeline_workers(data);

    let batches_per_epoch = split.train.len().div_ceil(config.batch_size);
    let progress = progress_bar(config, batches_per_epoch);
    progress.inc((epochs.len() * batches_per_epoch + partial.as_ref().map_or(0, |p| p.sums.batches)) as u64);

    for epoch in epochs.len() + 1..=config.epochs {
        let resumed_part = partial.take().filter(|p| p.epoch == epoch);
        let epoch_started = Instant::now();
        let lr = config.schedule.lr(config.lr, epoch - 1, config.epochs);
        optimizer.set_lr(lr);
        let plan = epoch_plan(config, split, epoch, resumed_part.as_ref().map_or(0, |p| p.sums.batches));
        let mut sums = match &resumed_part {
            Some(p) => EpochSums::resume(&p.sums, device),
            None => EpochSums::new(loss.parts().len(), device),
        };
        let earlier_seconds = resumed_part.as_ref().map_or(0.0, |p| p.seconds);
        let mut step = TrainStep { net: &net, optimizer: &mut optimizer, loss: loss.as_ref(), precision: config.precision };
        let mut last_report = Instant::now();
        for batch in BatchStream::new(data, plan, workers)? {
            let batch = batch?;
            // Before the batch: libtorch's generator (stochastic depth) depends only on
            // (seed, epoch, batch), wherever the run started.
            tch::manual_seed(batch_seed(config.seed, epoch, sums.batches + 1));
            let (x, y) = prepare(batch)?;
            step.run(&x, &y, &mut sums)?;
            progress.inc(1);
            if last_report.elapsed().as_secs_f64() >= PROGRESS_EVERY_SECONDS && !progress.is_hidden() {
                let now = read_checked(&sums, config, epoch, lr)?;
                progress.set_message(format!("{} epoch {epoch}/{} loss {:.4} acc {:.3}", config.name, config.epochs, now.loss / now.images as f64, now.correct / now.images as f64));
                last_report = Instant::now();
            }
            if crate::interrupt::requested() {
                // The last finished epoch's checkpoint stays as it is.
                progress.abandon();
                return Err(Error::Interrupted);
            }
            if crate::interrupt::checkpoint_requested() {
                if let Some(dir) = &config.checkpoint {
                    let done = read_checked(&sums, config, epoch, lr)?;
                    let seconds = earlier_seconds + epoch_started.elapsed().as_secs_f64();
                    let part = PartialEpoch { epoch, sums: done, seconds };
                    let elapsed = previous_seconds + started.elapsed().as_secs_f64();
                    checkpoint::save(dir, config, (data, split), (&vs, step.optimizer), &epochs, elapsed, Some(&part))?;
                    progress.abandon();
                    return Err(Error::Preempted { checkpoint: dir.clone() });
                }
            }
        }
        let totals = read_checked(&sums, config, epoch, lr)?;
        if totals.images == 0 {
            return Err(Error::msg(format!("run '{}': epoch {epoch} saw no training images", config.name)));
        }
        let val = if split.val.is_empty() {
            None
        } else if config.bn_recalibrate {
            // Evaluate with recalibrated statistics, then train on with the running ones, so
            // training is the same as without the option.
            let running = recalibrate::snapshot(&vs);
            recalibrate::recalibrate(&net, &vs, data, &split.train, config.batch_size, workers, &prepare)?;
            let val = evaluate_stream(&net, data, &split.val, &hue_labels, workers, &prepare)?;
            recalibrate::restore(&vs, &running)?;
            Some(val)
        } else {
            Some(evaluate_stream(&net, data, &split.val, &hue_labels, workers, &prepare)?)
        };
        let images = totals.images as f64;
        let metrics = EpochMetrics {
            epoch,
            train_loss: totals.loss / images,
            train_parts: loss.parts().iter().zip(&totals.parts).map(|(part, sum)| (part.key.to_owned(), sum / images)).collect(),
            train_accuracy: totals.correct / images,
            val_accuracy: val.map(|v| v.accuracy),
            val_hue_accuracy: val.map(|v| v.hue_accuracy),
            lr,
            seconds: earlier_seconds + epoch_started.elapsed().as_secs_f64(),
        };
        report_epoch(&progress, config, &metrics);
        epochs.push(metrics);
        if let Some(dir) = &config.checkpoint {
            let elapsed = previous_seconds + started.elapsed().as_secs_f64();
            checkpoint::save(dir, config, (data, split), (&vs, &optimizer), &epochs, elapsed, None)?;
        }
    }
    progress.finish_and_clear();

    if config.bn_recalibrate {
        // The saved model keeps these statistics: what it is evaluated with.
        recalibrate::recalibrate(&net, &vs, data, &split.train, config.batch_size, workers, &prepare)?;
    }
    let test = if split.test.is_empty() { None } else { Some(evaluate_stream(&net, data, &split.test, &hue_labels, workers, &prepare)?) };
    if let Some(dir) = &config.checkpoint {
        let info = SavedModelInfo {
            format: 1,
            spec: net.spec().clone(),
            normalization: normalization.clone(),
            class_names: data.class_names().to_vec(),
            run_name: config.name.clone(),
            // save_model records the digest of the tensors it writes.
            tensors_sha256: None,
        };
        save_model(dir, &vs, &info)?;
    }
    Ok(TrainReport {
        config: config.clone(),
        loss_derived: config.loss.derived(data.num_classes()),
        model: net.spec().clone(),
        data: data.summary(),
        split_seed: split.config.seed,
        split_sizes: SplitSizes::from(split),
        device: device_name(device),
        precision: config.precision,
        normalization,
        epochs,
        test,
        wall_seconds: previous_seconds + started.elapsed().as_secs_f64(),
        resumed_after_epoch,
    })
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
    BatchPlan { order, batch_size: config.batch_size, augment: config.augment, drawn, mode: Some(Mode::Train { seed: config.seed, epoch: epoch as u64 }), skip }
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
    let x = if channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
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
