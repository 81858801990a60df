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
    /// PyTorch's side when profiled: the time per step inside the convolutions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convolution_seconds_per_step: Option<f64>,
}

impl Throughput {
    pub fn seconds_per_step(&self) -> f64 {
        self.seconds / self.steps.max(1) as f64
    }
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
    Ok(Throughput {
        images_per_second: (b.steps as i64 * b.batch) as f64 / seconds,
        steps: b.steps,
        seconds,
        peak_rss_bytes: Some(rss.peak()),
        convolution_seconds_per_step: None,
    })
}

/// The same step in PyTorch eager, run by `python` (which must have torch installed). With
/// `profile_convolutions`, the timed steps run under PyTorch's profiler and the result also has
/// the time per step inside the convolutions.
pub fn pytorch_train_throughput(python: &Path, b: &TrainBench, profile_convolutions: bool) -> Result<Throughput> {
    let mut args: Vec<String> = [
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
    if profile_convolutions {
        args.push("--profile-convolutions".to_owned());
    }
    let value = super::run_python_twin(python, PYTORCH_TWIN, &args)?;
    let field = |k: &str| value[k].as_f64().ok_or_else(|| Error::msg(format!("the PyTorch twin's output lacks '{k}'")));
    Ok(Throughput {
        images_per_second: field("images_per_second")?,
        steps: b.steps,
        seconds: field("seconds")?,
        peak_rss_bytes: None,
        convolution_seconds_per_step: if profile_convolutions { Some(field("convolution_seconds_per_step")?) } else { None },
    })
}

/// One profiled run of PyTorch's step in one layout: how much of a step the convolutions take.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConvolutionProfile {
    pub channels_last: bool,
    pub run: Throughput,
}

impl ConvolutionProfile {
    /// The convolutions' fraction of the profiled run's own step: a fraction, not seconds,
    /// because the machine's speed drifts between the rounds and this one run.
    pub fn convolution_fraction(&self) -> Option<f64> {
        Some(self.run.convolution_seconds_per_step? / self.run.seconds_per_step())
    }
}

/// What the convolutions leave to the rest of the step, from their profiled fraction of
/// PyTorch's step and each side's median step (s). The convolutions are the same library's
/// kernels on both sides (oneDNN on a CPU), so only the time outside them can differ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConvolutionShare {
    /// Seconds per step inside the convolutions, in PyTorch's better layout.
    pub convolutions: f64,
    pub pytorch_step: f64,
    /// huelab's step less the convolutions in huelab's layout.
    pub huelab_outside: f64,
    pub pytorch_outside: f64,
    /// PyTorch's step over the convolutions alone: huelab's ratio if everything else took no time.
    pub ceiling: f64,
}

impl ConvolutionShare {
    /// `huelab_convolutions` (s) in huelab's layout, `pytorch_convolutions` in PyTorch's better one.
    pub fn new(huelab_step: f64, huelab_convolutions: f64, pytorch_step: f64, pytorch_convolutions: f64) -> Self {
        ConvolutionShare {
            convolutions: pytorch_convolutions,
            pytorch_step,
            huelab_outside: huelab_step - huelab_convolutions,
            pytorch_outside: pytorch_step - pytorch_convolutions,
            ceiling: pytorch_step / pytorch_convolutions,
        }
    }

    /// The most time huelab's step may spend outside the convolutions for `ratio` × PyTorch's
    /// speed (negative when even nothing else would not reach it).
    pub fn outside_allowed_for(&self, ratio: f64) -> f64 {
        self.pytorch_step / ratio - self.convolutions
    }
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
    /// On a CPU: PyTorch's step profiled once after the rounds, in huelab's layout and, where
    /// that is not PyTorch's better one, in that one too.
    pub convolution_profiles: Vec<ConvolutionProfile>,
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

    /// The convolutions' share of the step (see [`ConvolutionShare`]); `None` where nothing
    /// was profiled (on a GPU, where the profiler's CPU times are kernel launches).
    pub fn convolution_share(&self) -> Option<ConvolutionShare> {
        let (pytorch_best, pytorch_layout) = self.pytorch_best();
        let fraction = |channels_last: bool| self.convolution_profiles.iter().find(|p| p.channels_last == channels_last).and_then(ConvolutionProfile::convolution_fraction);
        let step = |images_per_second: f64| self.bench.batch as f64 / images_per_second;
        // Seconds of convolutions in a layout: their profiled fraction of PyTorch's median step there.
        let pytorch_in_huelabs_layout = if self.bench.channels_last { self.pytorch_channels_last_median } else { self.pytorch_median };
        let huelab_convolutions = fraction(self.bench.channels_last)? * step(pytorch_in_huelabs_layout);
        let pytorch_convolutions = fraction(pytorch_layout)? * step(pytorch_best);
        Some(ConvolutionShare::new(step(self.huelab_median), huelab_convolutions, step(pytorch_best), pytorch_convolutions))
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
        theirs.push(pytorch_train_throughput(python, &TrainBench { channels_last: false, ..bench }, false)?);
        progress(&format!("{what} round {round}/{rounds}: PyTorch channels-last"));
        theirs_cl.push(pytorch_train_throughput(python, &TrainBench { channels_last: true, ..bench }, false)?);
    }
    let images_per_second = |v: &[Throughput]| v.iter().map(|t| t.images_per_second).collect::<Vec<_>>();
    let median = |v: &[Throughput]| super::median(&images_per_second(v));
    let per_round: Vec<f64> = (0..rounds).map(|r| ours[r].images_per_second / theirs[r].images_per_second.max(theirs_cl[r].images_per_second)).collect();
    let (h, p, pcl) = (median(&ours), median(&theirs), median(&theirs_cl));
    let mut comparison = TrainComparison {
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
        convolution_profiles: Vec::new(),
    };
    if bench.device == tch::Device::Cpu {
        let pytorch_layout = comparison.pytorch_best().1;
        let mut layouts = vec![trained.channels_last];
        if pytorch_layout != trained.channels_last {
            layouts.push(pytorch_layout);
        }
        for channels_last in layouts {
            let profiled = TrainBench { channels_last, ..bench };
            progress(&format!("{what}: PyTorch {} profiled (time inside the convolutions)", layout(&profiled)));
            comparison.convolution_profiles.push(ConvolutionProfile { channels_last, run: pytorch_train_throughput(python, &profiled, true)? });
        }
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(images_per_second: f64, convolutions: Option<f64>) -> Throughput {
        Throughput { images_per_second, steps: 10, seconds: 640.0 / images_per_second, peak_rss_bytes: None, convolution_seconds_per_step: convolutions }
    }

    fn comparison(huelab_channels_last: bool, pytorch: f64, pytorch_channels_last: f64, profiles: Vec<ConvolutionProfile>) -> TrainComparison {
        let bench = TrainBench {
            arch: Arch::ResNet18,
            batch: 64,
            channels: 1,
            size: 28,
            classes: 10,
            warmup: 1,
            steps: 10,
            threads: 2,
            device: tch::Device::Cpu,
            precision: Precision::Fp32,
            channels_last: huelab_channels_last,
        };
        TrainComparison {
            bench,
            huelab: vec![run(80.0, None)],
            huelab_other_layout: vec![run(70.0, None)],
            pytorch: vec![run(pytorch, None)],
            pytorch_channels_last: vec![run(pytorch_channels_last, None)],
            huelab_median: 80.0,
            huelab_other_layout_median: 70.0,
            pytorch_median: pytorch,
            pytorch_channels_last_median: pytorch_channels_last,
            ratio: 80.0 / pytorch.max(pytorch_channels_last),
            ratio_iqr: (1.0, 1.0),
            convolution_profiles: profiles,
        }
    }

    #[test]
    fn the_share_splits_each_step_at_the_convolutions() {
        // PyTorch 64 img/s: 1 s a step, 0.8 s of it convolutions; huelab 80 img/s: 0.8 s.
        let share = ConvolutionShare::new(0.8, 0.7, 1.0, 0.8);
        assert!((share.huelab_outside - 0.1).abs() < 1e-12);
        assert!((share.pytorch_outside - 0.2).abs() < 1e-12);
        assert!((share.ceiling - 1.25).abs() < 1e-12);
        // 1.25x PyTorch is a 0.8 s step: nothing left outside; 1.0x leaves PyTorch's 0.2 s.
        assert!(share.outside_allowed_for(1.25).abs() < 1e-12);
        assert!((share.outside_allowed_for(1.0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_share_takes_each_sides_convolutions_in_its_own_layout() {
        // Profiled runs at 32 img/s (2 s a step), slower than the rounds: only the fraction counts.
        let profile = |channels_last, seconds| ConvolutionProfile { channels_last, run: run(32.0, Some(seconds)) };
        // huelab trains contiguous (PyTorch 50 img/s there: 1.28 s a step, 0.5 of it
        // convolutions); PyTorch is faster channels-last (64 img/s: 1 s a step, 0.9 of it).
        let both = comparison(false, 50.0, 64.0, vec![profile(false, 1.0), profile(true, 1.8)]);
        let share = both.convolution_share().expect("both layouts were profiled");
        assert!((share.convolutions - 0.9).abs() < 1e-12);
        assert!((share.huelab_outside - (0.8 - 0.64)).abs() < 1e-12);
        assert!((share.pytorch_outside - (1.0 - 0.9)).abs() < 1e-12);
        assert!((share.ceiling - 1.0 / 0.9).abs() < 1e-12);
        // Without the profile in PyTorch's better layout there is no share to report.
        assert_eq!(comparison(false, 50.0, 64.0, vec![profile(false, 1.0)]).convolution_share(), None);
        assert_eq!(comparison(false, 50.0, 64.0, Vec::new()).convolution_share(), None);
    }
}
