//! One training step, the function `train` runs for every batch and `huelab bench train` times:
//! forward, the loss with its parts, backward, the optimiser step, and the bookkeeping of the
//! epoch's sums. The sums stay on the model's device and are read on the host only when asked
//! ([`EpochSums::read`]: the progress bar, the end of an epoch, a checkpoint), so a GPU never
//! waits on the host between batches.
use tch::{Device, Kind, Tensor};

use super::Optimizer;
use crate::error::Result;
use crate::models::HueNet;
use crate::nn::Loss;
use crate::precision::Precision;

/// Running sums of an epoch's batches, on the device.
#[derive(Debug)]
pub struct EpochSums {
    /// Images and batches seen (known on the host without reading the device).
    pub images: i64,
    pub batches: usize,
    /// `Σ loss · n` and `Σ part · n` (float64), correct predictions (int64).
    loss: Tensor,
    parts: Vec<Tensor>,
    correct: Tensor,
    /// Batches whose loss was NaN or infinite, and the first of them (counted from 1).
    nonfinite: Tensor,
    first_nonfinite: Tensor,
}

/// [`EpochSums`] read on the host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostSums {
    pub images: i64,
    pub batches: usize,
    pub loss: f64,
    pub parts: Vec<f64>,
    pub correct: f64,
    pub nonfinite: i64,
    /// The first batch (from 1) with a non-finite loss, when `nonfinite > 0`.
    pub first_nonfinite: i64,
}

const NO_BATCH: i64 = i64::MAX;

impl EpochSums {
    pub fn new(parts: usize, device: Device) -> Self {
        let zero = |kind| Tensor::zeros([], (kind, device));
        EpochSums {
            images: 0,
            batches: 0,
            loss: zero(Kind::Double),
            parts: (0..parts).map(|_| zero(Kind::Double)).collect(),
            correct: zero(Kind::Int64),
            nonfinite: zero(Kind::Int64),
            first_nonfinite: Tensor::full([], NO_BATCH, (Kind::Int64, device)),
        }
    }

    /// Sums that continue from `saved` (a checkpoint taken inside an epoch).
    pub fn resume(saved: &HostSums, device: Device) -> Self {
        let scalar = |v: f64| Tensor::from(v).to_kind(Kind::Double).to_device(device);
        EpochSums {
            images: saved.images,
            batches: saved.batches,
            loss: scalar(saved.loss),
            parts: saved.parts.iter().map(|&p| scalar(p)).collect(),
            correct: Tensor::from(saved.correct as i64).to_device(device),
            nonfinite: Tensor::from(saved.nonfinite).to_device(device),
            first_nonfinite: Tensor::from(if saved.nonfinite > 0 { saved.first_nonfinite } else { NO_BATCH }).to_device(device),
        }
    }

    fn add(&mut self, total: &Tensor, parts: &[Tensor], correct: &Tensor, n: i64) {
        self.images += n;
        self.batches += 1;
        let n = n as f64;
        self.loss += total.detach().to_kind(Kind::Double) * n;
        for (sum, part) in self.parts.iter_mut().zip(parts) {
            *sum += part.detach().to_kind(Kind::Double) * n;
        }
        self.correct += correct;
        let bad = total.isfinite().logical_not();
        self.nonfinite += bad.to_kind(Kind::Int64);
        let here = Tensor::full([], self.batches as i64, (Kind::Int64, total.device()));
        let candidate = here.where_self(&bad, &Tensor::full([], NO_BATCH, (Kind::Int64, total.device())));
        self.first_nonfinite = self.first_nonfinite.minimum(&candidate);
    }

    /// One read of every sum (a device synchronisation).
    pub fn read(&self) -> Result<HostSums> {
        Ok(HostSums {
            images: self.images,
            batches: self.batches,
            loss: self.loss.f_double_value(&[])?,
            parts: self.parts.iter().map(|p| p.f_double_value(&[])).collect::<Result<_, _>>()?,
            correct: self.correct.f_int64_value(&[])? as f64,
            nonfinite: self.nonfinite.f_int64_value(&[])?,
            first_nonfinite: self.first_nonfinite.f_int64_value(&[])?,
        })
    }
}

/// The model, optimiser and loss of a run, stepped batch by batch.
pub struct TrainStep<'a> {
    pub net: &'a HueNet,
    pub optimizer: &'a mut Optimizer,
    pub loss: &'a dyn Loss,
    /// `bf16`: the forward pass runs under bf16 autocast; the loss, backward pass and
    /// optimiser step see float32 outputs and weights.
    pub precision: Precision,
}

impl TrainStep<'_> {
    /// One step on the batch `x` (on the model's device, standardised) with labels `y`, its
    /// loss, parts and correct predictions added to `sums`.
    pub fn run(&mut self, x: &Tensor, y: &Tensor, sums: &mut EpochSums) -> Result<()> {
        let out = {
            let _autocast = self.precision.autocast(x.device())?;
            self.net.forward_t(x, true)?
        }
        .to_float32();
        let parts = self.loss.compute(&out, y)?;
        let total = parts[1..].iter().fold(parts[0].shallow_clone(), |sum, part| sum + part);
        let correct = out.logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64);
        sums.add(&total, &parts, &correct, y.size()[0]);
        self.optimizer.try_backward_step(&total)
    }
}
