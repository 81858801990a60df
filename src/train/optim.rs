//! Adam, AdamW and SGD written over tch tensors, following PyTorch's update rules exactly
//! (`torch.optim.Adam`, `AdamW`, `SGD`, single-tensor versions), because their state has to be
//! saved in checkpoints and tch's optimisers keep theirs inside libtorch out of reach.
use std::collections::BTreeMap;

use tch::{nn, Tensor};

use super::OptimizerKind;
use crate::error::{Error, Result};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct Optimizer {
    kind: OptimizerKind,
    lr: f64,
    /// Steps taken so far (Adam's bias correction needs it).
    step: i64,
    /// Trainable variables by name, in name order.
    params: Vec<(String, Tensor)>,
    /// Per variable: Adam's `exp_avg` and `exp_avg_sq`, or SGD's `momentum_buffer`.
    state: BTreeMap<String, Vec<Tensor>>,
}

impl Optimizer {
    pub fn new(vs: &nn::VarStore, kind: OptimizerKind, lr: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Optimizer { kind, lr, step: 0, params, state: BTreeMap::new() }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn steps(&self) -> i64 {
        self.step
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Backward from `loss` and one step. Panics if `loss` has no graph to differentiate (a
    /// programming error); [`Self::try_backward_step`] returns it as an error.
    pub fn backward_step(&mut self, loss: &Tensor) {
        if let Err(e) = self.try_backward_step(loss) {
            panic!("backward_step: {e}");
        }
    }

    /// Backward from `loss` and one step. The gradients come straight from autograd, fresh for
    /// every step (PyTorch's `zero_grad(set_to_none=True)`): nothing is zero-filled and
    /// accumulated into, and a variable the loss does not reach gets no update.
    pub fn try_backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let variables: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &variables, false, false)?;
        self.apply(&grads);
        Ok(())
    }

    /// One step with the gradients accumulated in the variables (`loss.backward()` before).
    pub fn step(&mut self) {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.apply(&grads);
    }

    /// One step with `grads[i]` the gradient of the i-th variable (undefined: not reached).
    fn apply(&mut self, grads: &[Tensor]) {
        self.step += 1;
        let step = self.step;
        let (lr, kind) = (self.lr, self.kind);
        tch::no_grad(|| {
            for ((name, p), grad) in self.params.iter_mut().zip(grads) {
                if !grad.defined() {
                    continue;
                }
                let state = self.state.entry(name.clone()).or_default();
                match kind {
                    OptimizerKind::Adam => adam_update(p, grad, state, lr, step),
                    OptimizerKind::AdamW { weight_decay } => {
                        // Decoupled decay: p ← p · (1 − lr·wd), then plain Adam.
                        *p *= 1.0 - lr * weight_decay;
                        adam_update(p, grad, state, lr, step)
                    }
                    OptimizerKind::Sgd { momentum, weight_decay, nesterov } => sgd_update(p, grad, state, lr, momentum, weight_decay, nesterov),
                }
            }
        });
    }

    /// The state as named tensors (`exp_avg/<var>`, `exp_avg_sq/<var>` or
    /// `momentum_buffer/<var>`) for a checkpoint; the step count is saved beside it.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let names = self.state_names();
        self.state
            .iter()
            .flat_map(|(var, tensors)| tensors.iter().zip(names).map(move |(t, n)| (format!("{n}/{var}"), t.shallow_clone())))
            .collect()
    }

    /// Restores what [`state_tensors`](Self::state_tensors) saved. `expected`, when the
    /// checkpoint lists them, names the variables that must have state; every state tensor must
    /// have its variable's shape and dtype, and none may be left over.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, steps: i64, expected: Option<&[String]>) -> Result<()> {
        let names = self.state_names();
        if steps < 0 {
            return Err(Error::msg(format!("the optimizer step count is {steps}")));
        }
        self.state.clear();
        let mut used = 0;
        for (var, param) in &self.params {
            let mine: Vec<Tensor> = names.iter().filter_map(|n| tensors.get(&format!("{n}/{var}")).map(Tensor::shallow_clone)).collect();
            let must = expected.is_some_and(|e| e.iter().any(|v| v == var));
            match mine.len() {
                0 if must => return Err(Error::msg(format!("the optimizer state of '{var}' is missing"))),
                0 => {}
                n if n == names.len() => {
                    if let Some(t) = mine.iter().find(|t| t.size() != param.size() || t.kind() != param.kind()) {
                        return Err(Error::msg(format!("the optimizer state of '{var}' is {:?} {:?}, the variable is {:?} {:?}", t.kind(), t.size(), param.kind(), param.size())));
                    }
                    used += n;
                    self.state.insert(var.clone(), mine);
                }
                _ => return Err(Error::msg(format!("the checkpoint's optimizer state for '{var}' is incomplete"))),
            }
        }
        if used != tensors.len() {
            let known: Vec<String> = self.params.iter().flat_map(|(v, _)| names.iter().map(move |n| format!("{n}/{v}"))).collect();
            let extra = tensors.keys().find(|k| !known.contains(k)).cloned().unwrap_or_default();
            return Err(Error::msg(format!("optimizer state 'optim/{extra}' belongs to no variable of this model and optimizer")));
        }
        self.step = steps;
        Ok(())
    }

    fn state_names(&self) -> &'static [&'static str] {
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
            OptimizerKind::Sgd { .. } => &["momentum_buffer"],
        }
    }
}

/// `torch.optim.Adam` for one tensor, in place as PyTorch's single-tensor Adam computes it:
/// 8 kernels and 3 parameter-sized temporaries instead of the 13 and 8 of the textbook form.
fn adam_update(p: &mut Tensor, grad: &Tensor, state: &mut Vec<Tensor>, lr: f64, step: i64) {
    if state.is_empty() {
        state.push(p.zeros_like());
        state.push(p.zeros_like());
    }
    let (exp_avg, exp_avg_sq) = state.split_at_mut(1);
    let (m, v) = (&mut exp_avg[0], &mut exp_avg_sq[0]);
    // m ← m + (1 − β1)(g − m) = β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
    let _ = m.lerp_(grad, 1.0 - BETA1);
    let _ = v.lerp_(&grad.square(), 1.0 - BETA2);
    let bias_correction1 = 1.0 - BETA1.powi(step as i32);
    let bias_correction2_sqrt = (1.0 - BETA2.powi(step as i32)).sqrt();
    // p ← p − (lr / bc1) · m / (√v / √bc2 + ε)
    let mut denom = v.sqrt();
    let _ = denom.g_div_scalar_(bias_correction2_sqrt);
    let _ = denom.g_add_scalar_(EPS);
    let _ = p.addcdiv_(&(&*m * (-lr / bias_correction1)), &denom);
}

/// `torch.optim.SGD` for one tensor (dampening 0).
fn sgd_update(p: &mut Tensor, grad: &Tensor, state: &mut Vec<Tensor>, lr: f64, momentum: f64, wd: f64, nesterov: bool) {
    let mut d_p = if wd != 0.0 { grad + &*p * wd } else { grad.shallow_clone() };
    if momentum != 0.0 {
        match state.first_mut() {
            None => state.push(d_p.copy()),
            Some(buffer) => {
                *buffer *= momentum;
                *buffer += &d_p;
            }
        }
        d_p = if nesterov { d_p + &state[0] * momentum } else { state[0].shallow_clone() };
    }
    *p -= d_p * lr;
}
