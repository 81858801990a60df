//! Which device a computation runs on, as a user writes it: `auto`, `cpu`, `cuda` or `cuda:N`.
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The first CUDA device when there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid_option("device", format!("expected auto, cpu, cuda or cuda:N, got '{s}'"));
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(DeviceChoice::Cuda).ok_or_else(bad),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<tch::Device> {
        if self != DeviceChoice::Cpu {
            crate::cuda::load_cuda_backend();
        }
        let cuda_devices = tch::Cuda::device_count() as usize;
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto if cuda_devices > 0 => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Auto => Ok(tch::Device::Cpu),
            DeviceChoice::Cuda(n) if n < cuda_devices => Ok(tch::Device::Cuda(n)),
            DeviceChoice::Cuda(n) => Err(Error::invalid_option(
                "device",
                format!("cuda:{n} asked for, but libtorch sees {cuda_devices} CUDA device(s) ({})", crate::cuda::load_cuda_backend()),
            )),
        }
    }
}

/// `#[serde(serialize_with = "…")]` for a resolved device: its readable name.
pub fn serialize_device<S: Serializer>(device: &tch::Device, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&device_name(*device))
}

/// As [`serialize_device`], for an optional device (`null` when absent).
pub fn serialize_optional_device<S: Serializer>(device: &Option<tch::Device>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match device {
        Some(d) => serialize_device(d, s),
        None => s.serialize_none(),
    }
}

/// A readable name for a resolved device, for manifests.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
