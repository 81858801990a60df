use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Kind, Tensor};

use super::batches::BatchStream;
use super::saved_model::{save_model, SavedModelInfo};
use super::{checkpoint, evaluate, EpochMetrics, Optimizer, SplitSizes, TrainConfig, TrainReport};
use crate::data::{ImageDataset, Split};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::models::{HueNet, ModelSpec};
use crate::nn::HueLabels;

/// libtorch's random generator is global to the process: seeding, weight initialisation and
/// stochastic depth all draw from it. A run holds this lock from seeding to its last step, so
/// runs on other threads cannot interleave their draws and break reproducibility.
static TORCH_GENERATOR: Mutex<()> = Mutex::new(());

/// Salt that separates the augmentation generator from the batch-order generator of a seed.
const AUGMENT_STREAM_SALT: u64 = 0x6875_655f_6175_6721;

/// Trains a fresh model on `split.train`, reports validation metrics every epoch and test
/// metrics at the end.
///
/// The model is built right after seeding libtorch with `config.seed`, and it always has its
/// hue head (trained or not), so two runs with the same seed start from identical weights.
/// The batch order of epoch `e` comes from a ChaCha generator on stream `e` of that seed, and
/// its augmentation from a second generator, so both are the same for every arm of a seed.
pub fn train(data: &ImageDataset, split: &Split, config: &TrainConfig) -> Result<TrainReport> {
    config.validate()?;
    if split.train.is_empty() {
        return Err(Error::msg("the split has no training images"));
    }
    let started = Instant::now();
    let device = config.device.resolve()?;
    let [channels, height, width] = data.image_shape();
    let spec = ModelSpec {
        arch: config.arch,
        in_channels: channels,
        num_classes: data.num_classes() as i64,
        input_size: (height, width),
        stem: config.stem,
        hue_head: config.hue_head,
    };
    // A panic in another run cannot leave the generator in a state we rely on: we reseed here.
    let _generator = TORCH_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let net = HueNet::new(&vs.root(), &spec)?;
    let mut optimizer = Optimizer::new(&vs, config.optimizer, config.lr);

    let mut epochs = Vec::with_capacity(config.epochs);
    let mut previous_seconds = 0.0;
    if let Some(dir) = &config.checkpoint {
        match (checkpoint::exists(dir), config.resume) {
            (true, true) => {
                let resumed = checkpoint::load(dir, config, (data, split), (&mut vs, &mut optimizer))?;
                eprintln!("{}: resuming after epoch {} from {}", config.name, resumed.epochs.len(), dir.display());
                epochs = resumed.epochs;
                previous_seconds = resumed.wall_seconds;
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
    let resumed_after_epoch = (!epochs.is_empty()).then_some(epochs.len());

    let loss = config.loss.build(data.num_classes(), config.label_smoothing)?;
    // Runs whose loss does not train the hue head still report its accuracy, against the
    // default angles: a chance-level reference for the untrained head.
    let hue_labels = HueLabels::new(data.num_classes(), config.loss.head_angles())?;

    let normalization = config.normalize.then(|| channel_statistics(data, &split.train));
    let standardise = |x: Tensor| match &normalization {
        Some((mean, sd)) => (x - mean) / sd,
        None => x,
    };
    // On a GPU, batches go through pinned (page-locked) memory so the copy can overlap.
    let layout = |x: Tensor| if config.channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
    let to_device = |(x, y): (Tensor, Tensor)| {
        let x = layout(x);
        if device.is_cuda() {
            let pinned = |t: Tensor| t.pin_memory(device).to_device_(device, t.kind(), true, false);
            (pinned(standardise(x)), pinned(y))
        } else {
            (standardise(x), y)
        }
    };
    let (val_x, val_y) = to_device(data.select(&split.val));
    let batches_per_epoch = split.train.len().div_ceil(config.batch_size);
    let progress = progress_bar(config, batches_per_epoch);
    progress.inc((epochs.len() * batches_per_epoch) as u64);

    for epoch in epochs.len() + 1..=config.epochs {
        let epoch_started = Instant::now();
        // Stochastic depth draws from libtorch's generator: reseeding it per epoch makes an
        // epoch depend only on (seed, epoch) and the state at its start, as resume needs.
        tch::manual_seed(epoch_seed(config.seed, epoch));
        let lr = config.schedule.lr(config.lr, epoch - 1, config.epochs);
        optimizer.set_lr(lr);
        let mut order = split.train.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(epoch as u64);
        order.shuffle(&mut rng);
        let mut augment_rng = ChaCha8Rng::seed_from_u64(config.seed ^ AUGMENT_STREAM_SALT);
        augment_rng.set_stream(epoch as u64);

        let mut sums = EpochSums::default();
        let batches = BatchStream::new(data.images(), data.labels(), order, config.batch_size, config.augment, augment_rng);
        for (batch_index, batch) in batches.enumerate() {
            if crate::interrupt::requested() {
                // The last finished epoch's checkpoint stays as it is.
                progress.abandon();
                return Err(Error::Interrupted);
            }
            let (x, y) = to_device(batch);
            let out = net.forward_t(&x, true)?;
            let parts = loss.compute(&out, &y)?;
            let total = parts[1..].iter().fold(parts[0].shallow_clone(), |sum, part| sum + part);
            let total_value = total.double_value(&[]);
            if !total_value.is_finite() {
                progress.abandon();
                return Err(Error::msg(format!(
                    "run '{}': the loss became {total_value} at epoch {epoch}, batch {} (lr {lr}); stopping",
                    config.name,
                    batch_index + 1,
                )));
            }
            optimizer.backward_step(&total);

            let n = y.size()[0] as f64;
            sums.images += n;
            sums.loss += total_value * n;
            sums.parts.resize(parts.len(), 0.0);
            for (sum, part) in sums.parts.iter_mut().zip(&parts) {
                *sum += part.double_value(&[]) * n;
            }
            sums.correct += out.logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]) as f64;
            progress.inc(1);
            progress.set_message(format!(
                "{} epoch {epoch}/{} loss {:.4} acc {:.3}",
                config.name,
                config.epochs,
                sums.loss / sums.images,
                sums.correct / sums.images
            ));
        }

        let val = if split.val.is_empty() { None } else { Some(evaluate(&net, &val_x, &val_y, &hue_labels)?) };
        let metrics = EpochMetrics {
            epoch,
            train_loss: sums.loss / sums.images,
            train_parts: loss.parts().iter().zip(&sums.parts).map(|(part, sum)| (part.key.to_owned(), sum / sums.images)).collect(),
            train_accuracy: sums.correct / sums.images,
            val_accuracy: val.map(|v| v.accuracy),
            val_hue_accuracy: val.map(|v| v.hue_accuracy),
            lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        report_epoch(&progress, config, &metrics);
        epochs.push(metrics);
        if let Some(dir) = &config.checkpoint {
            let elapsed = previous_seconds + started.elapsed().as_secs_f64();
            checkpoint::save(dir, config, (data, split), (&vs, &optimizer), &epochs, elapsed)?;
        }
    }
    progress.finish_and_clear();

    let test = if split.test.is_empty() {
        None
    } else {
        let (test_x, test_y) = to_device(data.select(&split.test));
        Some(evaluate(&net, &test_x, &test_y, &hue_labels)?)
    };
    let normalization: Option<Vec<(f64, f64)>> = normalization.map(|(mean, sd)| {
        let values = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default();
        let (mean, sd) = (values(mean), values(sd));
        mean.into_iter().zip(sd).collect()
    });
    if let Some(dir) = &config.checkpoint {
        let info = SavedModelInfo {
            format: 1,
            spec: net.spec().clone(),
            normalization: normalization.clone(),
            class_names: data.class_names().to_vec(),
            run_name: config.name.clone(),
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
        normalization,
        epochs,
        test,
        wall_seconds: previous_seconds + started.elapsed().as_secs_f64(),
        resumed_after_epoch,
    })
}

/// Per-channel mean and sd (`[1, C, 1, 1]`) of the images at `indices`, computed in float64
/// and returned as float32, the images' kind, so standardised batches stay float32.
fn channel_statistics(data: &ImageDataset, indices: &[i64]) -> (Tensor, Tensor) {
    let (images, _) = data.select(indices);
    let images = images.to_kind(Kind::Double);
    let dims: &[i64] = &[0, 2, 3];
    let mean = images.mean_dim(dims, true, Kind::Double);
    let sd = images.std_dim(dims, true, true).clamp_min(1e-6);
    (mean.to_kind(Kind::Float), sd.to_kind(Kind::Float))
}

/// The libtorch seed of an epoch: a mix of the run's seed and the epoch number.
fn epoch_seed(seed: u64, epoch: usize) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)) as i64
}

#[derive(Default)]
struct EpochSums {
    images: f64,
    loss: f64,
    /// Per loss part, in the loss's order.
    parts: Vec<f64>,
    correct: f64,
}

fn progress_bar(config: &TrainConfig, batches_per_epoch: usize) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new((batches_per_epoch * config.epochs) as u64);
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

