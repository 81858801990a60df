//! Per-epoch checkpoints: model variables, optimiser state and the metrics so far, written so
//! that a run killed at any moment leaves the last complete checkpoint intact. The tensors go to
//! `checkpoint-epoch-<k>.safetensors` (written under a temporary name, then renamed), then
//! `checkpoint.json` (atomically) names that file; only then is the previous epoch's file removed.
//! Batch order and augmentation are derived from (seed, epoch), and libtorch's generator is
//! reseeded every epoch, so a resumed run continues exactly as the uninterrupted run would.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{nn, Tensor};

use super::{EpochMetrics, Optimizer, TrainConfig};
use crate::data::{ImageDataset, Split};
use crate::error::{Error, Result};
use crate::files::{write_atomic, write_then_rename};

const MANIFEST: &str = "checkpoint.json";
const FORMAT: u32 = 1;

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
    tensors: String,
}

/// Where a resumed run picks up.
pub struct Resumed {
    pub epochs: Vec<EpochMetrics>,
    pub wall_seconds: f64,
}

fn split_hash(split: &Split) -> String {
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

pub fn save(
    dir: &Path,
    config: &TrainConfig,
    (data, split): (&ImageDataset, &Split),
    (vs, optimizer): (&nn::VarStore, &Optimizer),
    epochs: &[EpochMetrics],
    wall_seconds: f64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let epoch = epochs.last().map_or(0, |e| e.epoch);
    let tensors_name = format!("checkpoint-epoch-{epoch}.safetensors");
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model/{n}"), t)).collect();
    named.extend(optimizer.state_tensors().into_iter().map(|(n, t)| (format!("optim/{n}"), t)));
    write_then_rename(&dir.join(&tensors_name), |partial| Ok(Tensor::write_safetensors(&named, partial)?))?;

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
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&dir.join(MANIFEST), &json)?;
    if let Some(old) = previous.filter(|old| *old != tensors_name) {
        // Best effort: a leftover file wastes space but never confuses a resume.
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(())
}

pub fn exists(dir: &Path) -> bool {
    dir.join(MANIFEST).exists()
}

fn read_manifest(dir: &Path) -> Result<CheckpointManifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: CheckpointManifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::Data { path: path.clone(), message: format!("not a huelab checkpoint: {e}") })?;
    if manifest.format != FORMAT {
        return Err(Error::Data { path, message: format!("checkpoint format {} is not supported (expected {FORMAT})", manifest.format) });
    }
    Ok(manifest)
}

/// Loads the checkpoint in `dir` into `vs` and `optimizer`, after checking it was made by the
/// same options, data and split.
pub fn load(
    dir: &Path,
    config: &TrainConfig,
    (data, split): (&ImageDataset, &Split),
    (vs, optimizer): (&mut nn::VarStore, &mut Optimizer),
) -> Result<Resumed> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(MANIFEST);
    let mismatch = |what: &str| Error::Data { path: path.clone(), message: format!("this checkpoint was made with another {what}; resume with the same, or use another checkpoint directory") };
    let current = config_json(config)?;
    if manifest.config != current {
        let differing: Vec<String> = match (&manifest.config, &current) {
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
    let tensors_path: PathBuf = dir.join(&manifest.tensors);
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&tensors_path)
        .map_err(|e| Error::Data { path: tensors_path.clone(), message: format!("unreadable checkpoint tensors: {e}") })?
        .into_iter()
        .collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut variable) in vs.variables() {
            let saved = tensors
                .get(&format!("model/{name}"))
                .ok_or_else(|| Error::Data { path: tensors_path.clone(), message: format!("missing variable '{name}'") })?;
            variable.f_copy_(saved)?;
        }
        Ok(())
    })?;
    let optimizer_state: BTreeMap<String, Tensor> =
        tensors.iter().filter_map(|(n, t)| n.strip_prefix("optim/").map(|n| (n.to_owned(), t.to_device(vs.device())))).collect();
    optimizer.load_state(&optimizer_state, manifest.optimizer_steps)?;
    Ok(Resumed { epochs: manifest.epochs, wall_seconds: manifest.wall_seconds })
}
