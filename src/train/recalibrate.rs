//! Batch-norm recalibration before evaluation: the running statistics a network evaluates with
//! are an exponential average over the last training batches, taken while stochastic depth
//! dropped residual branches; with few batches per epoch (small data sets) they can differ so
//! much from what the full network produces that evaluation collapses to chance while training
//! accuracy is high. Recalibrating recomputes every batch norm's mean and variance as the plain
//! average over the training images, in training mode without stochastic depth (as
//! `torch.optim.swa_utils.update_bn` does), leaving the weights untouched.
use std::collections::BTreeMap;

use tch::{nn, Tensor};

use crate::data::{BatchPlan, BatchStream, ImageDataset};
use crate::error::{Error, Result};
use crate::models::{without_stochastic_depth, HueNet};

/// The batch norms' running statistics of a model: `(running_mean, running_var)` per layer.
fn batch_norm_buffers(vs: &nn::VarStore) -> Vec<(Tensor, Tensor)> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    variables
        .iter()
        .filter_map(|(name, mean)| {
            let prefix = name.strip_suffix(".running_mean")?;
            let var = variables.get(&format!("{prefix}.running_var"))?;
            Some((mean.shallow_clone(), var.shallow_clone()))
        })
        .collect()
}

/// Copies of the statistics, to restore after an evaluation.
pub fn snapshot(vs: &nn::VarStore) -> Vec<(Tensor, Tensor)> {
    batch_norm_buffers(vs).into_iter().map(|(m, v)| (m.copy(), v.copy())).collect()
}

pub fn restore(vs: &nn::VarStore, saved: &[(Tensor, Tensor)]) -> Result<()> {
    tch::no_grad(|| {
        for ((mut m, mut v), (sm, sv)) in batch_norm_buffers(vs).into_iter().zip(saved) {
            m.f_copy_(sm)?;
            v.f_copy_(sv)?;
        }
        Ok(())
    })
}

/// Batch norm's update rule `new = (1 − m)·old + m·batch` with PyTorch's default momentum.
const MOMENTUM: f64 = 0.1;

/// Sets every batch norm's statistics to their average over the images at `indices` (batches
/// of `batch_size`, through `prepare`, no augmentation).
pub fn recalibrate(
    net: &HueNet,
    vs: &nn::VarStore,
    data: &ImageDataset,
    indices: &[i64],
    batch_size: usize,
    workers: usize,
    prepare: &dyn Fn((Tensor, Tensor)) -> Result<(Tensor, Tensor)>,
) -> Result<()> {
    let buffers = batch_norm_buffers(vs);
    if buffers.is_empty() {
        return Ok(());
    }
    let mut averages: Vec<(Tensor, Tensor)> = buffers.iter().map(|(m, v)| (m.zeros_like(), v.zeros_like())).collect();
    let mut batches = 0f64;
    tch::no_grad(|| -> Result<()> {
        for batch in BatchStream::new(data, BatchPlan::eval(indices.to_vec(), batch_size), workers)? {
            let (x, _) = prepare(batch?)?;
            let before: Vec<(Tensor, Tensor)> = buffers.iter().map(|(m, v)| (m.copy(), v.copy())).collect();
            without_stochastic_depth(|| net.forward_t(&x, true))?;
            batches += 1.0;
            for (((m, v), (m0, v0)), (am, av)) in buffers.iter().zip(&before).zip(averages.iter_mut()) {
                // The batch's own statistics, recovered from the update, averaged over batches.
                let batch_mean = (m - m0 * (1.0 - MOMENTUM)) / MOMENTUM;
                let batch_var = (v - v0 * (1.0 - MOMENTUM)) / MOMENTUM;
                *am += (batch_mean - &*am) / batches;
                *av += (batch_var - &*av) / batches;
            }
        }
        if batches == 0.0 {
            return Err(Error::msg("batch-norm recalibration saw no training images"));
        }
        for ((mut m, mut v), (am, av)) in buffers.into_iter().zip(&averages) {
            m.f_copy_(am)?;
            v.f_copy_(&av.clamp_min(0.0))?;
        }
        Ok(())
    })
}
