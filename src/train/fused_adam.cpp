// libtorch's fused Adam and AdamW (`at::_fused_adam_`, `at::_fused_adamw_`: what
// `torch.optim.Adam(fused=True)` calls), which tch 0.24 does not bind. One pass over each
// parameter's memory instead of the eight kernels of the single-tensor update.
//
// The kernels index every tensor of a parameter by one flat offset, so they assume that the
// parameter, its gradient and its two moments share one dense layout; given a gradient in
// another layout they return a wrong answer, not an error (measured). src/train/optim.rs
// arranges that, and this shim checks it again before calling: a mismatch is an error here.
//
// The pointers are tch's tensor handles (torch-sys's `tensor` is a `torch::Tensor*`). Every
// entry point catches C++ exceptions, which must not cross into Rust, and writes the message.
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/full.h>

#include <cstdio>
#include <exception>
#include <vector>

namespace {

void write_error(char* error, size_t error_len, const char* message) {
  if (error_len > 0) {
    std::snprintf(error, error_len, "%s", message);
  }
}

bool same_dense_layout(const at::Tensor& param, const at::Tensor& other) {
  return other.defined() && other.device() == param.device() && other.scalar_type() == param.scalar_type() &&
         other.sizes() == param.sizes() && other.strides() == param.strides() && other.is_non_overlapping_and_dense();
}

}  // namespace

extern "C" {

// Updates the n parameters in place, with their gradients and moments (the i-th of each list
// belongs to the i-th parameter), as step number `step` (1 for the first). decoupled == 0: Adam
// (weight_decay must be 0: huelab's Adam has none); decoupled != 0: AdamW. Returns 0, or -1
// with a message in error.
int huelab_fused_adam(at::Tensor* const* params, at::Tensor* const* grads, at::Tensor* const* exp_avgs,
                      at::Tensor* const* exp_avg_sqs, size_t n, double step, double lr, double beta1, double beta2,
                      double eps, double weight_decay, int decoupled, char* error, size_t error_len) {
  try {
    if (n == 0) {
      return 0;
    }
    std::vector<at::Tensor> p, g, m, v;
    p.reserve(n), g.reserve(n), m.reserve(n), v.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const at::Tensor& param = *params[i];
      if (!param.is_non_overlapping_and_dense() || param.device() != params[0]->device() ||
          !same_dense_layout(param, *grads[i]) || !same_dense_layout(param, *exp_avgs[i]) ||
          !same_dense_layout(param, *exp_avg_sqs[i])) {
        write_error(error, error_len, "fused Adam: a parameter, its gradient and its moments differ in layout");
        return -1;
      }
      p.push_back(param), g.push_back(*grads[i]), m.push_back(*exp_avgs[i]), v.push_back(*exp_avg_sqs[i]);
    }
    // The kernels read the step count from a float tensor per parameter; one serves them all
    // (they read it, torch.optim increments it beforehand).
    at::Tensor count = at::full({}, step, at::TensorOptions().dtype(at::kFloat).device(p[0].device()));
    std::vector<at::Tensor> steps(n, count);
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
    return 0;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  } catch (...) {
    write_error(error, error_len, "fused Adam: an unknown C++ exception");
    return -1;
  }
}

}
