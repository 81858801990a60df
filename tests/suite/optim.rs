//! huelab's Adam, AdamW and SGD follow PyTorch's update rules: checked step by step against
//! tch's built-in optimisers (libtorch's C++ torch::optim) on the same model and batches.
use huelab::train::{OptimizerKind, Optimizer};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn model(vs: &nn::VarStore) -> nn::Sequential {
    let p = vs.root();
    nn::seq().add(nn::linear(&p / "a", 6, 8, Default::default())).add_fn(|x| x.relu()).add(nn::linear(&p / "b", 8, 3, Default::default()))
}

/// Inputs from a formula, not the global generator, which other tests in this binary share.
fn batch() -> (Tensor, Tensor) {
    let xs = (Tensor::arange(16 * 6, (Kind::Float, Device::Cpu)).view([16, 6]) * 0.37).sin();
    let ys = Tensor::arange(16, (Kind::Int64, Device::Cpu)).remainder(3);
    (xs, ys)
}

fn flat_parameters(vs: &nn::VarStore) -> Vec<f32> {
    let mut named: Vec<_> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect()
}

/// Trains a copy of `initial` for 25 steps (halving the rate after 10) with our optimiser or
/// libtorch's, and returns the final parameters.
fn run(initial: &nn::VarStore, kind: OptimizerKind, ours: bool) -> Vec<f32> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = model(&vs);
    vs.copy(initial).unwrap();
    let (xs, ys) = batch();
    let lr = 0.01;
    enum Either {
        Ours(Optimizer),
        Libtorch(nn::Optimizer),
    }
    let mut optimizer = if ours {
        Either::Ours(Optimizer::new(&vs, kind, lr))
    } else {
        Either::Libtorch(match kind {
            OptimizerKind::Adam => nn::Adam::default().build(&vs, lr).unwrap(),
            OptimizerKind::AdamW { weight_decay } => nn::AdamW { wd: weight_decay, ..Default::default() }.build(&vs, lr).unwrap(),
            OptimizerKind::Sgd { momentum, weight_decay, nesterov } => {
                nn::Sgd { momentum, dampening: 0.0, wd: weight_decay, nesterov }.build(&vs, lr).unwrap()
            }
        })
    };
    for step in 0..25 {
        let loss = net.forward(&xs).cross_entropy_for_logits(&ys);
        let rate = if step >= 10 { lr / 2.0 } else { lr };
        match &mut optimizer {
            Either::Ours(o) => {
                o.set_lr(rate);
                o.backward_step(&loss)
            }
            Either::Libtorch(o) => {
                o.set_lr(rate);
                o.backward_step(&loss)
            }
        }
    }
    flat_parameters(&vs)
}

#[test]
fn matches_libtorch_optimizers() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let initial = nn::VarStore::new(Device::Cpu);
    let _ = model(&initial);
    let start = flat_parameters(&initial);
    for kind in [
        OptimizerKind::Adam,
        OptimizerKind::AdamW { weight_decay: 0.05 },
        OptimizerKind::Sgd { momentum: 0.9, weight_decay: 1e-3, nesterov: false },
        OptimizerKind::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: true },
    ] {
        let (ours, reference) = (run(&initial, kind, true), run(&initial, kind, false));
        let worst = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "{kind:?}: parameters differ by up to {worst}");
        let moved = ours.iter().zip(&start).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(moved > 1e-2, "{kind:?}: the parameters moved (by up to {moved})");
    }
}

#[test]
fn state_round_trips() {
    // Builds or draws from libtorch's global generator: held, beside other tests' training runs.
    let _generator = huelab::rng::lock();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = model(&vs);
    let mut opt = Optimizer::new(&vs, OptimizerKind::Adam, 0.01);
    let (xs, _) = batch();
    opt.backward_step(&net.forward(&xs).sum(Kind::Float));
    let saved: std::collections::BTreeMap<String, Tensor> = opt.state_tensors().into_iter().collect();
    assert_eq!(saved.len(), 2 * 4, "exp_avg and exp_avg_sq for 4 variables");
    assert!(saved.contains_key("exp_avg_sq/a.weight"));
    let mut fresh = Optimizer::new(&vs, OptimizerKind::Adam, 0.01);
    fresh.load_state(&saved, opt.steps(), None).unwrap();
    assert_eq!(fresh.steps(), 1);
    let partial: std::collections::BTreeMap<String, Tensor> = saved.into_iter().filter(|(k, _)| k != "exp_avg/a.bias").collect();
    assert!(fresh.load_state(&partial, 1, None).unwrap_err().to_string().contains("a.bias"));
}
