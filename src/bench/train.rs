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
    /// Model weights and batches channels-last (NHWC strides) on this side.
    pub channels_last: bool,
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
    if b.channels_last {
        crate::models::to_channels_last(&vs)?;
    }
    let mut optimizer = Optimizer::new(&vs, OptimizerKind::Adam, 1e-3);
    let loss = LossKind::OneHotHue { hue: HueLossConfig { assignment: AngleAssignment::Ordered, ..Default::default() } }.build(b.classes as usize, 0.0)?;
    let x = Tensor::rand([b.batch, b.channels, b.size, b.size], (Kind::Float, b.device));
    let x = if b.channels_last { crate::models::channels_last(&x) } else { x };
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
        ("--memory-format", (if b.channels_last { "channels_last" } else { "contiguous" }).to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect();
    let value = super::run_python_twin(python, PYTORCH_TWIN, &args)?;
    let field = |k: &str| value[k].as_f64().ok_or_else(|| Error::msg(format!("the PyTorch twin's output lacks '{k}'")));
    Ok(Throughput { images_per_second: field("images_per_second")?, steps: b.steps, seconds: field("seconds")?, peak_rss_bytes: None })
}

/// One model's result: the median of `rounds` alternating measurements of each side, each
/// side in both memory layouts. huelab's row is the layout `train` uses for the architecture
/// (`Arch::trains_channels_last`); PyTorch's reference is the better of its two layouts.
#[derive(Debug, Clone, Serialize)]
pub struct TrainComparison {
    pub bench: TrainBench,
    /// huelab in the layout `train` uses for this architecture, and in the other one.
    pub huelab: Vec<Throughput>,
    pub huelab_other_layout: Vec<Throughput>,
    /// PyTorch eager, contiguous (NCHW) and channels-last.
    pub pytorch: Vec<Throughput>,
    pub pytorch_channels_last: Vec<Throughput>,
    pub huelab_median: f64,
    pub huelab_other_layout_median: f64,
    pub pytorch_median: f64,
    pub pytorch_channels_last_median: f64,
    /// huelab's median over the better of PyTorch's two medians.
    pub ratio: f64,
    /// The quartiles of the per-round ratios (each round's sides ran back to back; each
    /// against that round's better PyTorch layout).
    pub ratio_iqr: (f64, f64),
}

impl TrainComparison {
    /// PyTorch's better median: `(images/s, channels_last)`.
    pub fn pytorch_best(&self) -> (f64, bool) {
        if self.pytorch_channels_last_median > self.pytorch_median {
            (self.pytorch_channels_last_median, true)
        } else {
            (self.pytorch_median, false)
        }
    }
}

/// `bench` (its layout ignored) measured in `rounds` rounds of: huelab in the layout `train`
/// uses, huelab in the other, PyTorch contiguous, PyTorch channels-last.
pub fn compare_train_throughput(python: &Path, bench: TrainBench, rounds: usize, progress: impl Fn(&str)) -> Result<TrainComparison> {
    let trained = TrainBench { channels_last: bench.arch.trains_channels_last(bench.device, bench.precision), ..bench };
    let other = TrainBench { channels_last: !trained.channels_last, ..bench };
    let layout = |b: &TrainBench| if b.channels_last { "channels-last" } else { "contiguous" };
    let (mut ours, mut ours_other, mut theirs, mut theirs_cl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let rounds = rounds.max(1);
    let what = format!("{} {}", bench.arch.name(), bench.precision);
    for round in 1..=rounds {
        progress(&format!("{what} round {round}/{rounds}: huelab {}", layout(&trained)));
        ours.push(huelab_train_throughput(&trained)?);
        progress(&format!("{what} round {round}/{rounds}: huelab {}", layout(&other)));
        ours_other.push(huelab_train_throughput(&other)?);
        progress(&format!("{what} round {round}/{rounds}: PyTorch contiguous"));
        theirs.push(pytorch_train_throughput(python, &TrainBench { channels_last: false, ..bench })?);
        progress(&format!("{what} round {round}/{rounds}: PyTorch channels-last"));
        theirs_cl.push(pytorch_train_throughput(python, &TrainBench { channels_last: true, ..bench })?);
    }
    let images_per_second = |v: &[Throughput]| v.iter().map(|t| t.images_per_second).collect::<Vec<_>>();
    let median = |v: &[Throughput]| super::median(&images_per_second(v));
    let per_round: Vec<f64> = (0..rounds).map(|r| ours[r].images_per_second / theirs[r].images_per_second.max(theirs_cl[r].images_per_second)).collect();
    let (h, p, pcl) = (median(&ours), median(&theirs), median(&theirs_cl));
    Ok(TrainComparison {
        bench: trained,
        huelab_other_layout_median: median(&ours_other),
        huelab: ours,
        huelab_other_layout: ours_other,
        pytorch: theirs,
        pytorch_channels_last: theirs_cl,
        huelab_median: h,
        pytorch_median: p,
        pytorch_channels_last_median: pcl,
        ratio: h / p.max(pcl),
        ratio_iqr: super::quartiles(&per_round),
    })
}
