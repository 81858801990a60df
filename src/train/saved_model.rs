//! The trained model of a checkpointed run, kept for later use (activations, pixel memories):
//! `model.safetensors` (the variables) and `model.json` (the model spec, the input
//! normalisation and the class names), written when training ends.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::error::{Error, Result};
use crate::models::{HueNet, ModelSpec};
use crate::files::{check_digest, file_digest, write_atomic, write_then_rename};

pub(super) const MODEL_JSON: &str = "model.json";
const MODEL_TENSORS: &str = "model.safetensors";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedModelInfo {
    pub format: u32,
    pub spec: ModelSpec,
    /// Per channel `(mean, sd)` the inputs were standardised with, if any.
    pub normalization: Option<Vec<(f64, f64)>>,
    pub class_names: Vec<String>,
    pub run_name: String,
    /// SHA-256 of `model.safetensors`; absent in models of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors_sha256: Option<String>,
}

/// A trained [`HueNet`] with its variables and input standardisation.
#[derive(Debug)]
pub struct TrainedModel {
    pub net: HueNet,
    pub info: SavedModelInfo,
    vs: nn::VarStore,
}

pub fn save_model(dir: &Path, vs: &nn::VarStore, info: &SavedModelInfo) -> Result<()> {
    // Contiguous copies of channels-last kernels: the file is the same in either layout.
    let variables: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    let mut info = info.clone();
    write_then_rename(&dir.join(MODEL_TENSORS), |partial| {
        Tensor::write_safetensors(&variables, partial)?;
        info.tensors_sha256 = Some(file_digest(partial)?.1);
        Ok(())
    })?;
    let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&dir.join(MODEL_JSON), &json)
}

impl TrainedModel {
    /// Loads the model a checkpointed run saved in `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let json_path = dir.join(MODEL_JSON);
        if !json_path.exists() {
            return Err(Error::Data { path: json_path, message: "not found (a run writes it when it finishes with a checkpoint directory)".into() });
        }
        let bytes = crate::input::read(&json_path, crate::input::limits::JSON)?;
        let info: SavedModelInfo =
            serde_json::from_slice(&bytes).map_err(|e| Error::Data { path: json_path.clone(), message: format!("not a huelab model: {e}") })?;
        if info.format != FORMAT {
            return Err(Error::Data { path: json_path, message: format!("model format {} is not supported (expected {FORMAT})", info.format) });
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = crate::rng::with_generator(|| HueNet::new(&vs.root(), &info.spec)).map_err(|e| Error::Data { path: json_path.clone(), message: format!("its model spec: {e}") })?;
        if info.class_names.len() as i64 != info.spec.num_classes {
            return Err(Error::Data {
                path: json_path,
                message: format!("{} class names for a model of {} classes", info.class_names.len(), info.spec.num_classes),
            });
        }
        if let Some(stats) = &info.normalization {
            if stats.len() as i64 != info.spec.in_channels || stats.iter().any(|&(mean, sd)| !mean.is_finite() || !(sd.is_finite() && sd > 0.0)) {
                return Err(Error::Data {
                    path: json_path,
                    message: format!("normalization needs a finite (mean, sd > 0) for each of the {} input channels", info.spec.in_channels),
                });
            }
        }
        let tensors_path = dir.join(MODEL_TENSORS);
        crate::input::safetensors(&tensors_path, crate::models::variable_bytes(&vs) + (1 << 20))?;
        if let Some(sha) = &info.tensors_sha256 {
            check_digest(&tensors_path, sha)?;
        }
        let tensors = Tensor::read_safetensors(&tensors_path)
            .map_err(|e| Error::Data { path: tensors_path.clone(), message: format!("unreadable model tensors: {}", crate::error::torch_message(&e)) })?;
        crate::models::check_state(&tensors).map_err(|message| Error::Data { path: tensors_path.clone(), message })?;
        crate::models::load_into(&mut vs, tensors, &tensors_path)?;
        vs.set_device(device);
        vs.freeze();
        Ok(TrainedModel { net, info, vs })
    }

    /// The model a run just trained (not saved anywhere): its network and variables.
    pub(super) fn trained(net: HueNet, mut vs: nn::VarStore, info: SavedModelInfo) -> Self {
        vs.freeze();
        TrainedModel { net, info, vs }
    }

    /// A copy of the weights on `device` (the copy is what an extractor owns; the model stays
    /// as it is).
    pub fn copy_to(&self, device: Device) -> Result<Self> {
        let mut vs = nn::VarStore::new(device);
        let net = crate::rng::with_generator(|| HueNet::new(&vs.root(), &self.info.spec))?;
        vs.copy(&self.vs).map_err(|e| Error::msg(format!("copying the weights of run '{}': {}", self.info.run_name, crate::error::torch_message(&e))))?;
        vs.freeze();
        Ok(TrainedModel { net, info: self.info.clone(), vs })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// `images` (`[B, C, H, W]` in `[0, 1]`) standardised as in training.
    pub fn standardise(&self, images: &Tensor) -> Tensor {
        match &self.info.normalization {
            None => images.shallow_clone(),
            Some(stats) => {
                let channels = stats.len() as i64;
                let mean = Tensor::from_slice(&stats.iter().map(|s| s.0 as f32).collect::<Vec<_>>()).view([1, channels, 1, 1]);
                let sd = Tensor::from_slice(&stats.iter().map(|s| s.1 as f32).collect::<Vec<_>>()).view([1, channels, 1, 1]);
                (images - mean.to_device(images.device())) / sd.to_device(images.device())
            }
        }
    }
}
