//! `huelab bench train`: training throughput (images/s of forward + backward + optimiser step)
//! of huelab against PyTorch eager on the same model, batch, input and thread count, measured
//! alternately in one run so both see the same machine state. The PyTorch twin of the models is
//! `benches/train_pytorch.py`, compiled into the binary so the two cannot drift apart.
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tch::{nn, Kind, Tensor};

use crate::error::{Error, Result};
use crate::models::{Arch, HueNet, ModelSpec, Stem};
use crate::nn::{AngleAssignment, HueHeadConfig, HueLossConfig, LossKind};
use crate::precision::Precision;
use crate::train::{EpochSums, Optimizer, OptimizerKind, TrainStep};

const PYTORCH_TWIN: &str = include_str!("../../benches/train_pytorch.py");

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainBench {
    pub arch: Arch,
    pub batch: i64,
    pub channels: i64,
    pub size: i64,
    pub classes: i64,
    pub warmup: usize,
    pub steps: usize,
    pub threads: i32,
    #[serde(serialize_with = "crate::device::serialize_device")]
    pub device: tch::Device,
    /// fp32, or bf16 autocast on both sides.
    pub precision: Precision,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    pub images_per_second: f64,
    pub steps: usize,
    pub seconds: f64,
    /// huelab's side: the process's peak resident memory while it trained (sampled every
    /// 20 ms), which the malloc tuning trades against speed (`HUELAB_MALLOC_TUNING=0` to compare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// huelab's training step: [`TrainStep::run`], the function `train` runs for every batch
/// (forward, one-hot + hue loss with its parts, backward, Adam step, the epoch's device-side
/// sums), minus data loading, which the PyTorch twin leaves out too. The sums are read once at
/// the end, as `train` reads them at the end of an epoch.
pub fn huelab_train_throughput(b: &TrainBench) -> Result<Throughput> {
    crate::alloc::tune_for_training();
    tch::set_num_threads(b.threads);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(b.device);
    let spec = ModelSpec {
        arch: b.arch,
        in_channels: b.channels,
        num_classes: b.classes,
        input_size: (b.size, b.size),
        stem: Stem::Small,
        hue_head: HueHeadConfig::default(),
    };
    let net = HueNet::new(&vs.root(), &spec)?;
    let mut optimizer = Optimizer::new(&vs, OptimizerKind::Adam, 1e-3);
    let loss = LossKind::OneHotHue { hue: HueLossConfig { assignment: AngleAssignment::Ordered, ..Default::default() } }.build(b.classes as usize, 0.0)?;
    let x = Tensor::rand([b.batch, b.channels, b.size, b.size], (Kind::Float, b.device));
    let y = Tensor::randint(b.classes, [b.batch], (Kind::Int64, b.device));
    let mut sums = EpochSums::new(loss.parts().len(), b.device);
    let rss = super::RssSampler::start();
    let mut step = TrainStep { net: &net, optimizer: &mut optimizer, loss: loss.as_ref(), precision: b.precision };
    for _ in 0..b.warmup {
        step.run(&x, &y, &mut sums)?;
    }
    sums.read()?;
    let start = Instant::now();
    for _ in 0..b.steps {
        step.run(&x, &y, &mut sums)?;
    }
    sums.read()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput { images_per_second: (b.steps as i64 * b.batch) as f64 / seconds, steps: b.steps, seconds, peak_rss_bytes: Some(rss.peak()) })
}

/// The same step in PyTorch eager, run by `python` (which must have torch installed).
pub fn pytorch_train_throughput(python: &Path, b: &TrainBench) -> Result<Throughput> {
    let args: Vec<String> = [
        ("--model", b.arch.name().to_owned()),
        ("--batch", b.batch.to_string()),
        ("--size", b.size.to_string()),
        ("--channels", b.channels.to_string()),
        ("--classes", b.classes.to_string()),
        ("--warmup", b.warmup.to_string()),
        ("--steps", b.steps.to_string()),
        ("--threads", b.threads.to_string()),
        ("--device", crate::device::device_name(b.device)),
        ("--precision", b.precision.name().to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect();
    let value = super::run_python_twin(python, PYTORCH_TWIN, &args)?;
    let field = |k: &str| value[k].as_f64().ok_or_else(|| Error::msg(format!("the PyTorch twin's output lacks '{k}'")));
    Ok(Throughput { images_per_second: field("images_per_second")?, steps: b.steps, seconds: field("seconds")?, peak_rss_bytes: None })
}

/// One model's result: the median of `rounds` alternating measurements of each side.
#[derive(Debug, Clone, Serialize)]
pub struct TrainComparison {
    pub bench: TrainBench,
    pub huelab: Vec<Throughput>,
    pub pytorch: Vec<Throughput>,
    pub huelab_median: f64,
    pub pytorch_median: f64,
    /// huelab's median over PyTorch's.
    pub ratio: f64,
    /// The quartiles of the per-round ratios (each round's two sides ran back to back).
    pub ratio_iqr: (f64, f64),
}

pub fn compare_train_throughput(python: &Path, bench: TrainBench, rounds: usize, progress: impl Fn(&str)) -> Result<TrainComparison> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let rounds = rounds.max(1);
    let what = format!("{} {}", bench.arch.name(), bench.precision);
    for round in 1..=rounds {
        progress(&format!("{what} round {round}/{rounds}: huelab"));
        ours.push(huelab_train_throughput(&bench)?);
        progress(&format!("{what} round {round}/{rounds}: PyTorch"));
        theirs.push(pytorch_train_throughput(python, &bench)?);
    }
    let images_per_second = |v: &[Throughput]| v.iter().map(|t| t.images_per_second).collect::<Vec<_>>();
    let (h, p) = (super::median(&images_per_second(&ours)), super::median(&images_per_second(&theirs)));
    let per_round: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a.images_per_second / b.images_per_second).collect();
    let ratio_iqr = super::quartiles(&per_round);
    Ok(TrainComparison { bench, huelab: ours, pytorch: theirs, huelab_median: h, pytorch_median: p, ratio: h / p, ratio_iqr })
}
