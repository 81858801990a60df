//! Checkpoints: model variables, optimiser state and the metrics so far, after every epoch and,
//! when a stop for preemption is requested, at a batch boundary inside an epoch. Written so
//! that a run killed at any moment leaves the last complete checkpoint intact: the tensors go to
//! `checkpoint-epoch-<k>[-batch-<b>].safetensors` (a temporary file, flushed and renamed), then
//! `checkpoint.json` (atomically) names that file; only then is the previous file removed.
//! Batch order, augmentation and libtorch's generator are derived from (seed, epoch, batch), so
//! a resumed run continues exactly as the uninterrupted run would, from either kind of
//! checkpoint. Loading checks everything against the run that loads it: options, data, split,
//! and every tensor's name, shape and dtype, naming the offending one.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{nn, Tensor};

use super::step::HostSums;
use super::{EpochMetrics, Optimizer, TrainConfig};
use crate::data::{ImageDataset, Split};
use crate::error::{Error, Result};
use crate::files::{check_digest, file_digest, write_atomic, write_then_rename};

const MANIFEST: &str = "checkpoint.json";
const FORMAT: u32 = 1;

/// An epoch stopped at a batch boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// The epoch in progress (from 1).
    pub epoch: usize,
    /// Its sums over the batches done (`sums.batches` of them).
    pub sums: HostSums,
    /// Seconds spent in it so far.
    pub seconds: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointManifest {
    format: u32,
    /// The run's options as JSON; a resume must use the same.
    config: serde_json::Value,
    data_sha256: String,
    split_sha256: String,
    /// The last finished epoch.
    epoch: usize,
    optimizer_steps: i64,
    wall_seconds: f64,
    epochs: Vec<EpochMetrics>,
    /// The file of tensors, inside the checkpoint directory.
    tensors: String,
    /// SHA-256 of the tensors file; absent in checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tensors_sha256: Option<String>,
    /// The variables that have optimiser state (those that have had a gradient); absent in
    /// checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    optimizer_state: Option<Vec<String>>,
    /// Set when the checkpoint was taken inside an epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partial: Option<PartialEpoch>,
}

/// Where a resumed run picks up (the default: a fresh run, from nothing).
#[derive(Debug, Default)]
pub struct Resumed {
    pub epochs: Vec<EpochMetrics>,
    pub wall_seconds: f64,
    pub partial: Option<PartialEpoch>,
}

/// How far the run in a checkpoint directory got.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Finished epochs, and the run's epoch count.
    pub epoch: usize,
    pub epochs: usize,
    /// The batch an epoch stopped at, for a checkpoint inside an epoch.
    pub partial_batch: Option<usize>,
    /// Whether the finished model was saved (the run completed).
    pub finished: bool,
}

pub fn split_hash(split: &Split) -> String {
    let mut h = Sha256::new();
    for part in [&split.train, &split.val, &split.test] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>());
    }
    format!("{:x}", h.finalize())
}

fn config_json(config: &TrainConfig) -> Result<serde_json::Value> {
    serde_json::to_value(config).map_err(|e| Error::msg(format!("cannot serialise the config: {e}")))
}

#[allow(clippy::too_many_arguments)]
pub fn save(
    dir: &Path,
    config: &TrainConfig,
    (data, split): (&ImageDataset, &Split),
    (vs, optimizer): (&nn::VarStore, &Optimizer),
    epochs: &[EpochMetrics],
    wall_seconds: f64,
    partial: Option<&PartialEpoch>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let epoch = epochs.last().map_or(0, |e| e.epoch);
    let tensors_name = match partial {
        Some(p) => format!("checkpoint-epoch-{}-batch-{}.safetensors", p.epoch, p.sums.batches),
        None => format!("checkpoint-epoch-{epoch}.safetensors"),
    };
    // Contiguous copies of channels-last tensors: the file is the same in either layout.
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model/{n}"), t.contiguous())).collect();
    let state = optimizer.state_tensors();
    let with_state: BTreeSet<String> = state.iter().filter_map(|(n, _)| n.split_once('/').map(|(_, var)| var.to_owned())).collect();
    named.extend(state.into_iter().map(|(n, t)| (format!("optim/{n}"), t.contiguous())));
    let mut tensors_sha256 = None;
    write_then_rename(&dir.join(&tensors_name), |partial_path| {
        Tensor::write_safetensors(&named, partial_path)?;
        tensors_sha256 = Some(file_digest(partial_path)?.1);
        Ok(())
    })?;

    let previous = read_manifest(dir).ok().map(|m| m.tensors);
    let manifest = CheckpointManifest {
        format: FORMAT,
        config: config_json(config)?,
        data_sha256: data.summary().sha256,
        split_sha256: split_hash(split),
        epoch,
        optimizer_steps: optimizer.steps(),
        wall_seconds,
        epochs: epochs.to_vec(),
        tensors: tensors_name.clone(),
        tensors_sha256,
        optimizer_state: Some(with_state.into_iter().collect()),
        partial: partial.cloned(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&dir.join(MANIFEST), &json)?;
    if let Some(old) = previous.filter(|old| *old != tensors_name && is_plain_file_name(old)) {
        // Best effort: a leftover file wastes space but never confuses a resume.
        let _ = std::fs::remove_file(dir.join(old));
    }
    remove_orphaned_tensors(dir, &tensors_name);
    Ok(())
}

/// Removes `checkpoint-epoch-*.safetensors` files other than `current`: a run killed between
/// writing checkpoint.json and removing the previous tensors leaves one behind, and only the
/// next save can notice it. Best effort, like the removal of the previous file.
fn remove_orphaned_tensors(dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != current && name.starts_with("checkpoint-epoch-") && name.ends_with(".safetensors") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub fn exists(dir: &Path) -> bool {
    dir.join(MANIFEST).exists()
}

/// How far the run checkpointed in `dir` got; `None` without a readable checkpoint.
pub fn progress(dir: &Path) -> Option<Progress> {
    let manifest = read_manifest(dir).ok()?;
    let epochs = manifest.config.get("epochs").and_then(|e| e.as_u64()).unwrap_or(0) as usize;
    Some(Progress {
        epoch: manifest.epoch,
        epochs,
        partial_batch: manifest.partial.as_ref().map(|p| p.sums.batches),
        finished: manifest.partial.is_none() && manifest.epoch >= epochs && dir.join(super::saved_model::MODEL_JSON).exists(),
    })
}

/// A name inside the checkpoint directory: no separators, no `..`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn read_manifest(dir: &Path) -> Result<CheckpointManifest> {
    let path = dir.join(MANIFEST);
    let bytes = crate::input::read(&path, crate::input::limits::JSON)?;
    let manifest: CheckpointManifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::Data { path: path.clone(), message: format!("not a huelab checkpoint: {e}") })?;
    let bad = |message: String| Error::Data { path: path.clone(), message };
    if manifest.format != FORMAT {
        return Err(bad(format!("checkpoint format {} is not supported (expected {FORMAT})", manifest.format)));
    }
    if !is_plain_file_name(&manifest.tensors) {
        return Err(bad(format!("'tensors' must name a file inside the checkpoint directory, got '{}'", manifest.tensors)));
    }
    if manifest.optimizer_steps < 0 {
        return Err(bad(format!("optimizer_steps is {}", manifest.optimizer_steps)));
    }
    let numbered = manifest.epochs.iter().enumerate().all(|(i, e)| e.epoch == i + 1);
    if !numbered || manifest.epochs.len() != manifest.epoch {
        return Err(bad(format!("epoch {} does not match its {} epochs of metrics", manifest.epoch, manifest.epochs.len())));
    }
    if let Some(p) = &manifest.partial {
        if p.epoch != manifest.epoch + 1 || p.sums.batches == 0 || p.sums.parts.iter().chain([&p.sums.loss, &p.sums.correct]).any(|v| !v.is_finite()) {
            return Err(bad(format!("the partial epoch {} (after epoch {}, {} batches) is inconsistent", p.epoch, manifest.epoch, p.sums.batches)));
        }
    }
    Ok(manifest)
}

/// The checkpoint's record of its progress against what the run can have done: metrics in
/// their ranges, one optimiser step per batch, a partial epoch inside an epoch.
fn check_progress(manifest: &CheckpointManifest, batches_per_epoch: usize, batch_size: usize) -> std::result::Result<(), String> {
    let fraction = |name: &str, epoch: usize, v: f64| if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("epoch {epoch}: {name} is {v}, outside [0, 1]")) };
    for e in &manifest.epochs {
        fraction("train_accuracy", e.epoch, e.train_accuracy)?;
        for (name, v) in [("val_accuracy", e.val_accuracy), ("val_hue_accuracy", e.val_hue_accuracy)] {
            v.map_or(Ok(()), |v| fraction(name, e.epoch, v))?;
        }
        if !(e.lr.is_finite() && e.lr >= 0.0) || !(e.seconds.is_finite() && e.seconds >= 0.0) {
            return Err(format!("epoch {}: lr {} or seconds {} is not a non-negative number", e.epoch, e.lr, e.seconds));
        }
        if let Some((key, v)) = std::iter::once(("loss", &e.train_loss)).chain(e.train_parts.iter().map(|(k, v)| (k.as_str(), v))).find(|(_, v)| !v.is_finite()) {
            return Err(format!("epoch {}: the {key} loss is {v}", e.epoch));
        }
    }
    if !(manifest.wall_seconds.is_finite() && manifest.wall_seconds >= 0.0) {
        return Err(format!("wall_seconds is {}", manifest.wall_seconds));
    }
    let partial_batches = manifest.partial.as_ref().map_or(0, |p| p.sums.batches);
    if let Some(p) = &manifest.partial {
        let images = p.sums.images;
        if partial_batches >= batches_per_epoch || images < 0 || images as u128 > (partial_batches as u128) * batch_size as u128 || !(0.0..=images as f64).contains(&p.sums.correct) || !(p.seconds.is_finite() && p.seconds >= 0.0) {
            return Err(format!(
                "the partial epoch's {partial_batches} batches, {images} images and {} correct do not fit an epoch of {batches_per_epoch} batches of {batch_size}",
                p.sums.correct
            ));
        }
    }
    let expected_steps = (manifest.epoch as u128) * batches_per_epoch as u128 + partial_batches as u128;
    if manifest.optimizer_steps as u128 != expected_steps {
        return Err(format!("optimizer_steps is {}, but {} epochs of {batches_per_epoch} batches and {partial_batches} more make {expected_steps}", manifest.optimizer_steps, manifest.epoch));
    }
    Ok(())
}

/// Loads the checkpoint in `dir` into `vs` and `optimizer`, after checking it was made by the
/// same options, data and split, and that its tensors are the model's.
pub fn load(
    dir: &Path,
    config: &TrainConfig,
    (data, split): (&ImageDataset, &Split),
    (vs, optimizer): (&mut nn::VarStore, &mut Optimizer),
) -> Result<Resumed> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(MANIFEST);
    let mismatch = |what: &str| Error::Data { path: path.clone(), message: format!("this checkpoint was made with another {what}; resume with the same, or use another checkpoint directory") };
    // Where the run trains (the device) may change between sessions; what it is may not.
    let current = config.identity()?;
    let saved = super::config::identity_of(&manifest.config);
    if saved != current {
        let differing: Vec<String> = match (&saved, &current) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
                keys.sort();
                keys.dedup();
                keys
            }
            _ => vec![],
        };
        return Err(mismatch(&format!("configuration (differs in: {})", differing.join(", "))));
    }
    if manifest.data_sha256 != data.summary().sha256 {
        return Err(mismatch("data set"));
    }
    if manifest.split_sha256 != split_hash(split) {
        return Err(mismatch("split"));
    }
    if manifest.epoch > config.epochs {
        return Err(Error::Data { path: path.clone(), message: format!("holds {} epochs, the run has {}", manifest.epoch, config.epochs) });
    }
    let batches_per_epoch = split.train.len().div_ceil(config.batch_size.max(1));
    check_progress(&manifest, batches_per_epoch, config.batch_size).map_err(|message| Error::Data { path: path.clone(), message })?;
    let tensors_path: PathBuf = dir.join(&manifest.tensors);
    let bad = |message: String| Error::Data { path: tensors_path.clone(), message };
    // The model, and at most three optimiser tensors per variable (Adam's moments, its
    // max-moment with AMSGrad), and a little for the header's alignment.
    crate::input::safetensors(&tensors_path, crate::models::variable_bytes(vs).saturating_mul(4) + (1 << 20))?;
    if let Some(sha) = &manifest.tensors_sha256 {
        check_digest(&tensors_path, sha)?;
    }
    let mut tensors: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(&tensors_path).map_err(|e| bad(format!("unreadable checkpoint tensors: {}", crate::error::torch_message(&e))))?.into_iter().collect();
    let listed: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    crate::models::check_state(&listed).map_err(bad)?;
    tch::no_grad(|| -> Result<()> {
        for (name, mut variable) in vs.variables() {
            let key = format!("model/{name}");
            let saved = tensors.remove(&key).ok_or_else(|| bad(format!("missing variable '{name}'")))?;
            if saved.size() != variable.size() || saved.kind() != variable.kind() {
                return Err(bad(format!("'{name}' is {:?} {:?} in the file, the model has {:?} {:?}", saved.kind(), saved.size(), variable.kind(), variable.size())));
            }
            variable.f_copy_(&saved)?;
        }
        Ok(())
    })?;
    if let Some(extra) = tensors.keys().find(|k| !k.starts_with("optim/")) {
        return Err(bad(format!("'{extra}' is not a variable of this model")));
    }
    let optimizer_state: BTreeMap<String, Tensor> =
        tensors.into_iter().filter_map(|(n, t)| n.strip_prefix("optim/").map(|n| (n.to_owned(), t.to_device(vs.device())))).collect();
    optimizer.load_state(&optimizer_state, manifest.optimizer_steps, manifest.optimizer_state.as_deref()).map_err(|e| bad(e.to_string()))?;
    Ok(Resumed { epochs: manifest.epochs, wall_seconds: manifest.wall_seconds, partial: manifest.partial })
}
