// libtorch's autocast switches, which tch 0.24 does not bind (its `tch::autocast` only turns
// on CUDA's, in float16). Compiled by build.rs against the libtorch huelab links; every entry
// point catches C++ exceptions, which must not cross into Rust.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}

extern "C" {

// Enters an autocast region in bfloat16 on the CPU (cuda == 0) or on CUDA devices, for the
// calling thread (libtorch keeps autocast state per thread). The state it replaces is written
// to *was_enabled and *was_dtype for huelab_autocast_exit. Returns 0, or -1 on an exception.
int huelab_autocast_enter_bf16(int cuda, int* was_enabled, int* was_dtype) {
  try {
    auto device = device_type(cuda);
    *was_enabled = at::autocast::is_autocast_enabled(device) ? 1 : 0;
    *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(device));
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, at::kBFloat16);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Leaves the region: restores the previous state and, when the outermost region ends, drops
// autocast's cache of bfloat16 weight copies (as torch.autocast's __exit__ does). Without
// that, the next step would reuse copies of weights the optimiser has since changed.
int huelab_autocast_exit(int cuda, int was_enabled, int was_dtype) {
  try {
    auto device = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, was_enabled != 0);
    at::autocast::set_autocast_dtype(device, static_cast<at::ScalarType>(was_dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

// 1 when autocast is on for the calling thread on that device type, 0 when off, -1 on error.
int huelab_autocast_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

}
