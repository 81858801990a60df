//! Script options maps → the library's config structs. Each reader lists its valid keys, so an
//! unknown key is an error naming the valid ones.
use rhai::Map;

use super::options::Options;
use crate::data::SplitConfig;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::nn::{AngleAssignment, HueHeadConfig, HueLossConfig};
use crate::train::{LossKind, TrainConfig};

pub const HUE_KEYS: &[&str] = &["scale", "project", "weight", "assignment", "seed"];
pub const SPLIT_KEYS: &[&str] = &["train", "val", "test", "seed"];
pub const TRAIN_KEYS: &[&str] =
    &["name", "model", "loss", "hue", "hue_hidden", "epochs", "batch_size", "lr", "seed", "device", "progress"];

/// Keys: `scale` (number; default 1/(2M)), `project` (bool; default false), `weight` (number;
/// default 1), `assignment` ("random" or "ordered"; default "random"), `seed` (int; seeds the
/// random assignment; default 0).
pub fn hue_config(map: Map) -> Result<HueLossConfig> {
    let mut o = Options::new(map, "hue options", HUE_KEYS)?;
    let defaults = HueLossConfig::default();
    let seed = o.count("seed")?;
    let assignment = match o.string("assignment")?.as_deref() {
        None | Some("random") => AngleAssignment::Random { seed: seed.unwrap_or(0) },
        Some("ordered") if seed.is_some() => {
            return Err(Error::invalid_option("seed", "only a random assignment takes a seed"));
        }
        Some("ordered") => AngleAssignment::Ordered,
        Some(other) => {
            return Err(Error::invalid_option("assignment", format!("expected \"random\" or \"ordered\", got \"{other}\"")));
        }
    };
    let config = HueLossConfig {
        scale: o.float("scale")?,
        project: o.bool("project")?.unwrap_or(defaults.project),
        weight: o.float("weight")?.unwrap_or(defaults.weight),
        assignment,
    };
    config.validate()?;
    Ok(config)
}

pub fn split_config(map: Map) -> Result<SplitConfig> {
    let mut o = Options::new(map, "split options", SPLIT_KEYS)?;
    let d = SplitConfig::default();
    Ok(SplitConfig {
        train: o.float("train")?.unwrap_or(d.train),
        val: o.float("val")?.unwrap_or(d.val),
        test: o.float("test")?.unwrap_or(d.test),
        seed: o.count("seed")?.unwrap_or(d.seed),
    })
}

pub fn train_config(map: Map) -> Result<TrainConfig> {
    let mut o = Options::new(map, "train options", TRAIN_KEYS)?;
    let d = TrainConfig::default();
    let hue_map = o.map("hue")?;
    let loss_name = o.string("loss")?.unwrap_or_else(|| d.loss.name().to_owned());
    if hue_map.is_some() && loss_name == "onehot" {
        return Err(Error::invalid_option("hue", "hue options were given, but loss is \"onehot\""));
    }
    let hue = hue_map.map(hue_config).transpose()?.unwrap_or_default();
    let config = TrainConfig {
        name: o.string("name")?.unwrap_or(loss_name.clone()),
        arch: o.string("model")?.map(|m| m.parse()).transpose()?.unwrap_or(d.arch),
        hue_head: HueHeadConfig { hidden: o.int("hue_hidden")?.filter(|&h| h != 0) },
        loss: LossKind::from_name(&loss_name, hue)?,
        epochs: o.count("epochs")?.map_or(d.epochs, |v| v as usize),
        batch_size: o.count("batch_size")?.map_or(d.batch_size, |v| v as usize),
        lr: o.float("lr")?.unwrap_or(d.lr),
        seed: o.count("seed")?.unwrap_or(d.seed),
        device: o.string("device")?.map(|s| s.parse::<DeviceChoice>()).transpose()?.unwrap_or(d.device),
        progress: o.bool("progress")?.unwrap_or(d.progress),
    };
    config.validate()?;
    Ok(config)
}
