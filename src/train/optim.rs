//! Adam, AdamW and SGD written over tch tensors, following PyTorch's update rules exactly
//! (`torch.optim.Adam`, `AdamW`, `SGD`), because their state has to be saved in checkpoints and
//! tch's optimisers keep theirs inside libtorch out of reach. Adam and AdamW run libtorch's fused
//! kernels (`fused=True` in PyTorch: one pass over each parameter's memory, through the C++ shim
//! `fused_adam.cpp`); a parameter those kernels cannot take (not one dense block of memory) gets
//! the single-tensor update, which computes the same rule in eight kernels.
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
        self.apply(&grads)
    }

    /// One step with the gradients accumulated in the variables (`loss.backward()` before).
    pub fn step(&mut self) -> Result<()> {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.apply(&grads)
    }

    /// One step with `grads[i]` the gradient of the i-th variable (undefined: not reached).
    fn apply(&mut self, grads: &[Tensor]) -> Result<()> {
        self.step += 1;
        let lr = self.lr;
        tch::no_grad(|| match self.kind {
            OptimizerKind::Adam => self.adam(grads, 0.0, false),
            OptimizerKind::AdamW { weight_decay } => self.adam(grads, weight_decay, true),
            OptimizerKind::Sgd { momentum, weight_decay, nesterov } => {
                for ((name, p), grad) in self.params.iter_mut().zip(grads).filter(|(_, g)| g.defined()) {
                    let state = self.state.entry(name.clone()).or_default();
                    sgd_update(p, grad, state, lr, momentum, weight_decay, nesterov);
                }
                Ok(())
            }
        })
    }

    /// Adam (`decoupled` false, no weight decay) or AdamW: the parameters whose memory is one
    /// dense block in one fused call, any other one by the single-tensor rule.
    fn adam(&mut self, grads: &[Tensor], weight_decay: f64, decoupled: bool) -> Result<()> {
        let (lr, step) = (self.lr, self.step);
        let mut fused = FusedAdamBatch::default();
        for ((name, p), grad) in self.params.iter_mut().zip(grads).filter(|(_, g)| g.defined()) {
            let state = self.state.entry(name.clone()).or_default();
            if state.is_empty() {
                state.push(p.zeros_like());
                state.push(p.zeros_like());
            }
            if is_dense(p) && grad.kind() == p.kind() && grad.device() == p.device() {
                // The fused kernels index all four tensors by one flat offset: the gradient and
                // moments must have the parameter's strides (a checkpoint's moments are read
                // back contiguous, and a gradient's layout is whatever its kernel chose).
                let grad = in_layout_of(p, grad);
                for moment in state.iter_mut() {
                    *moment = in_layout_of(p, moment);
                }
                fused.push(p, grad, state);
            } else {
                if decoupled {
                    // Decoupled decay: p ← p · (1 − lr·wd), then plain Adam.
                    *p *= 1.0 - lr * weight_decay;
                }
                adam_update(p, grad, state, lr, step);
            }
        }
        fused.run(step, lr, weight_decay, decoupled)
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

/// The parameters of one fused Adam call, with their gradients and moments (tch handles).
#[derive(Default)]
struct FusedAdamBatch {
    params: Vec<Tensor>,
    grads: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
}

impl FusedAdamBatch {
    fn push(&mut self, p: &Tensor, grad: Tensor, state: &[Tensor]) {
        self.params.push(p.shallow_clone());
        self.grads.push(grad);
        self.exp_avgs.push(state[0].shallow_clone());
        self.exp_avg_sqs.push(state[1].shallow_clone());
    }

    /// libtorch's `_fused_adam_` (or `_fused_adamw_`) over all of them, in place.
    fn run(&self, step: i64, lr: f64, weight_decay: f64, decoupled: bool) -> Result<()> {
        let handles = |ts: &[Tensor]| ts.iter().map(|t| t.as_ptr() as *const std::ffi::c_void).collect::<Vec<_>>();
        let (p, g, m, v) = (handles(&self.params), handles(&self.grads), handles(&self.exp_avgs), handles(&self.exp_avg_sqs));
        let mut error = [0 as std::os::raw::c_char; 512];
        // SAFETY: the four arrays hold `len` live tensor handles each (tch's `Tensor` owns a
        // `torch::Tensor*`, kept alive by `self` for the call); the shim checks their layouts,
        // catches every C++ exception and writes at most `error.len()` bytes, NUL included.
        let rc = unsafe {
            ffi::huelab_fused_adam(p.as_ptr(), g.as_ptr(), m.as_ptr(), v.as_ptr(), p.len(), step as f64, lr, BETA1, BETA2, EPS, weight_decay, decoupled as i32, error.as_mut_ptr(), error.len())
        };
        if rc != 0 {
            // SAFETY: the shim wrote a NUL-terminated message into `error`.
            let message = unsafe { std::ffi::CStr::from_ptr(error.as_ptr()) }.to_string_lossy().into_owned();
            return Err(Error::msg(format!("the optimizer step failed in libtorch: {message}")));
        }
        Ok(())
    }
}

mod ffi {
    use std::ffi::c_void;
    use std::os::raw::{c_char, c_int};
    extern "C" {
        pub fn huelab_fused_adam(
            params: *const *const c_void,
            grads: *const *const c_void,
            exp_avgs: *const *const c_void,
            exp_avg_sqs: *const *const c_void,
            n: usize,
            step: f64,
            lr: f64,
            beta1: f64,
            beta2: f64,
            eps: f64,
            weight_decay: f64,
            decoupled: c_int,
            error: *mut c_char,
            error_len: usize,
        ) -> c_int;
    }
}

/// Whether `t`'s elements fill one block of memory without gaps or overlaps, in any order of
/// dimensions (contiguous, channels-last, …): what the fused kernels can walk as a flat array.
fn is_dense(t: &Tensor) -> bool {
    let mut dims: Vec<(i64, i64)> = t.size().into_iter().zip(t.stride()).filter(|&(size, _)| size != 1).collect();
    if dims.iter().any(|&(size, _)| size == 0) {
        return true;
    }
    dims.sort_by_key(|&(_, stride)| stride);
    let mut expected = 1;
    for (size, stride) in dims {
        if stride != expected {
            return false;
        }
        expected *= size;
    }
    true
}

/// `t`, or a copy of it with `like`'s strides when its own differ.
fn in_layout_of(like: &Tensor, t: &Tensor) -> Tensor {
    if t.stride() == like.stride() {
        return t.shallow_clone();
    }
    let mut copy = like.empty_like();
    copy.copy_(t);
    copy
}

/// `torch.optim.Adam` for one tensor, in place as PyTorch's single-tensor Adam computes it:
/// 8 kernels and 3 parameter-sized temporaries instead of the 13 and 8 of the textbook form.
/// `state` holds the two moments.
fn adam_update(p: &mut Tensor, grad: &Tensor, state: &mut [Tensor], lr: f64, step: i64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// `t` laid out channels-last (NHWC strides), as a channels-last model's weights are.
    fn channels_last(t: &Tensor) -> Tensor {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.contiguous().flatten(0, -1)).unwrap()
    }

    /// Three steps of `kind` on one parameter through the optimiser (the fused kernels where the
    /// layouts allow), against the single-tensor rule applied by hand to a copy.
    fn check(kind: OptimizerKind, param: Tensor, grads: &[Tensor]) {
        let (lr, weight_decay) = (0.05, match kind {
            OptimizerKind::AdamW { weight_decay } => weight_decay,
            _ => 0.0,
        });
        let (mut reference, initial) = (param.copy(), values(&param));
        let mut optimizer = Optimizer { kind, lr, step: 0, params: vec![("w".into(), param.shallow_clone())], state: BTreeMap::new() };
        let mut moments = vec![param.zeros_like(), param.zeros_like()];
        for (step, grad) in grads.iter().enumerate() {
            optimizer.apply(&[grad.shallow_clone()]).unwrap();
            tch::no_grad(|| {
                reference *= 1.0 - lr * weight_decay;
                adam_update(&mut reference, grad, &mut moments, lr, step as i64 + 1);
            });
        }
        let worst = values(&param).iter().zip(values(&reference)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "{kind:?}, param strides {:?}: differs from the single-tensor rule by {worst}", param.stride());
        assert!(values(&param) != initial, "the parameter moved");
    }

    #[test]
    fn fused_adam_matches_the_single_tensor_rule_whatever_the_layouts() {
        let draw = |seed: i64| (Tensor::arange(4 * 3 * 5 * 5, (Kind::Float, Device::Cpu)) * (0.37 + seed as f64)).sin().view([4, 3, 5, 5]);
        let grads_contiguous: Vec<Tensor> = (1..4).map(draw).collect();
        let grads_channels_last: Vec<Tensor> = grads_contiguous.iter().map(channels_last).collect();
        for kind in [OptimizerKind::Adam, OptimizerKind::AdamW { weight_decay: 0.1 }] {
            // Channels-last weights with gradients in the other layout: a flat walk over both
            // would pair the wrong elements.
            check(kind, channels_last(&draw(0)), &grads_contiguous);
            check(kind, draw(0), &grads_channels_last);
            check(kind, channels_last(&draw(0)), &grads_channels_last);
            // Not one dense block (every other column of a larger tensor): the single-tensor
            // update, in place in the larger tensor.
            let wide = Tensor::zeros([4, 3, 5, 10], (Kind::Float, Device::Cpu));
            let mut strided = wide.slice(3, 0, 10, 2);
            strided.copy_(&draw(0));
            check(kind, strided.shallow_clone(), &grads_contiguous);
            assert!(!is_dense(&strided) && values(&wide.slice(3, 0, 10, 2)) == values(&strided));
        }
    }

    #[test]
    fn dense_layouts_are_told_from_strided_views() {
        let t = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        assert!(is_dense(&t) && is_dense(&channels_last(&t)) && is_dense(&t.transpose(0, 3)));
        assert!(!is_dense(&t.slice(3, 0, 4, 1)) && !is_dense(&t.slice(1, 0, 3, 2)));
        assert!(is_dense(&t.slice(0, 0, 1, 1)), "a leading slice is still one block");
        assert!(is_dense(&Tensor::zeros([0, 3], (Kind::Float, Device::Cpu))));
    }
}
