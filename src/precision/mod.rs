//! The arithmetic precision of training: `fp32` (everything in float32) or `bf16` (mixed
//! precision with libtorch's autocast: convolutions and matrix multiplies of the forward pass in
//! bfloat16; weights, gradients, optimiser state and the loss stay in float32). libtorch's
//! autocast switches are reached through a small C++ shim (`autocast.cpp`, built by build.rs)
//! because tch 0.24 binds only CUDA's float16 autocast.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub const NAMES: &'static [&'static str] = &["fp32", "bf16"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    /// Enters this precision's autocast region on `device` for the calling thread; the region
    /// ends when the guard is dropped. `fp32` enters nothing.
    pub fn autocast(self, device: tch::Device) -> Result<Option<Autocast>> {
        match self {
            Precision::Fp32 => Ok(None),
            Precision::Bf16 => Autocast::enter_bf16(device).map(Some),
        }
    }
}

/// Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX). Without either,
/// oneDNN emulates bf16 and a bf16 step is many times slower than fp32 (measured: ResNet-18
/// ~25× slower on an AVX2-only AMD EPYC).
pub fn cpu_has_bf16() -> bool {
    cpu_flags().iter().any(|f| f == "avx512_bf16" || f == "amx_bf16")
}

/// The first CPU's feature flags from /proc/cpuinfo (empty where there is none).
pub fn cpu_flags() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo.lines().find_map(|l| l.strip_prefix("flags")).map_or_else(Vec::new, |v| v.split_whitespace().map(str::to_owned).collect())
}

/// Says once per process that bf16 on this CPU is emulated (a run asked for it on the CPU).
pub fn warn_if_emulated(device: tch::Device) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if device == tch::Device::Cpu && !cpu_has_bf16() {
        WARNED.call_once(|| {
            eprintln!("warning: precision bf16 on a CPU without bf16 instructions (avx512_bf16, amx_bf16): libtorch emulates it, and training is many times slower than fp32");
        });
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::invalid_option("precision", format!("expected {}, got \"{other}\"", Precision::NAMES.join(" or ")))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

mod ffi {
    use std::os::raw::c_int;
    extern "C" {
        pub fn huelab_autocast_enter_bf16(cuda: c_int, was_enabled: *mut c_int, was_dtype: *mut c_int) -> c_int;
        pub fn huelab_autocast_exit(cuda: c_int, was_enabled: c_int, was_dtype: c_int) -> c_int;
        pub fn huelab_autocast_enabled(cuda: c_int) -> c_int;
    }
}

/// An autocast region of the calling thread; dropping it restores the state it replaced and
/// clears autocast's cache of cast weights. Not `Send`: libtorch's autocast state is per thread.
#[derive(Debug)]
pub struct Autocast {
    cuda: i32,
    was_enabled: i32,
    was_dtype: i32,
    _per_thread: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    fn enter_bf16(device: tch::Device) -> Result<Self> {
        let cuda = match device {
            tch::Device::Cpu => 0,
            tch::Device::Cuda(_) => 1,
            other => return Err(Error::invalid_option("precision", format!("bf16 autocast runs on the CPU or CUDA, not on {other:?}"))),
        };
        let (mut was_enabled, mut was_dtype) = (0, 0);
        // SAFETY: the shim only flips libtorch's thread-local autocast state; the two pointers
        // are valid for the call.
        let rc = unsafe { ffi::huelab_autocast_enter_bf16(cuda, &mut was_enabled, &mut was_dtype) };
        if rc != 0 {
            return Err(Error::msg("libtorch refused to enter a bf16 autocast region"));
        }
        Ok(Autocast { cuda, was_enabled, was_dtype, _per_thread: std::marker::PhantomData })
    }

    /// Whether autocast is on for the calling thread on the CPU (`cuda` false) or CUDA.
    pub fn is_enabled(cuda: bool) -> bool {
        // SAFETY: a read of libtorch's thread-local state.
        unsafe { ffi::huelab_autocast_enabled(cuda as i32) == 1 }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores what enter_bf16 read on this same thread (the guard is not Send).
        // It cannot fail for the CPU or CUDA device types enter_bf16 accepted.
        unsafe {
            ffi::huelab_autocast_exit(self.cuda, self.was_enabled, self.was_dtype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn bf16_region_casts_matmuls_and_ends_with_the_guard() {
        let a = Tensor::ones([4, 8], (Kind::Float, Device::Cpu));
        assert!(!Autocast::is_enabled(false));
        {
            let _guard = Precision::Bf16.autocast(Device::Cpu).unwrap();
            assert!(Autocast::is_enabled(false));
            assert_eq!(a.matmul(&a.tr()).kind(), Kind::BFloat16);
            // Elementwise work is left in the input's precision.
            assert_eq!((&a + 1.0).kind(), Kind::Float);
        }
        assert!(!Autocast::is_enabled(false));
        assert_eq!(a.matmul(&a.tr()).kind(), Kind::Float);
        assert!(Precision::Fp32.autocast(Device::Cpu).unwrap().is_none());
    }

    #[test]
    fn a_changed_weight_is_seen_by_the_next_region() {
        // Autocast caches bf16 copies of leaf tensors that require grad; leaving the region
        // must drop them, or a step would see the weights of the step before.
        let w = Tensor::ones([3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::ones([1, 3], (Kind::Float, Device::Cpu));
        let first = {
            let _guard = Precision::Bf16.autocast(Device::Cpu).unwrap();
            x.matmul(&w).sum(Kind::Float).double_value(&[])
        };
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(2.0);
        });
        let second = {
            let _guard = Precision::Bf16.autocast(Device::Cpu).unwrap();
            x.matmul(&w).sum(Kind::Float).double_value(&[])
        };
        assert_eq!((first, second), (9.0, 18.0));
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!("fp32".parse::<Precision>().unwrap(), Precision::Fp32);
        let e = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("precision") && e.contains("fp16"), "{e}");
    }
}
