//! Script options maps → the library's config structs. Each reader lists its valid keys, so an
//! unknown key is an error naming the valid ones.
use rhai::Map;

use super::options::Options;
use crate::compare::{Arm, CompareConfig};
use crate::data::{ImageFolderConfig, NpyLayout, SplitConfig};
use crate::error::{Error, Result};
use crate::nn::{AngleAssignment, HueHeadConfig, HueLossConfig};
use crate::data::Augment;
use crate::train::{LossKind, OptimizerKind, Schedule, TrainConfig};

pub const HUE_KEYS: &[&str] = &["scale", "project", "weight", "assignment", "seed"];
pub const SPLIT_KEYS: &[&str] = &["train", "val", "test", "seed"];
pub const TRAIN_KEYS: &[&str] = &[
    "name", "model", "stem", "loss", "hue", "hue_hidden", "label_smoothing", "epochs", "batch_size", "lr", "optimizer",
    "weight_decay", "momentum", "nesterov", "schedule", "min_lr", "step_every", "step_gamma", "flip", "crop_padding",
    "normalize", "seed", "device", "channels_last", "progress", "checkpoint", "resume",
];

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
    let optimizer = optimizer_config(&mut o)?;
    let schedule = schedule_config(&mut o)?;
    let config = TrainConfig {
        optimizer,
        schedule,
        label_smoothing: o.float("label_smoothing")?.unwrap_or(d.label_smoothing),
        augment: Augment {
            flip: o.bool("flip")?.unwrap_or(d.augment.flip),
            crop_padding: o.int("crop_padding")?.unwrap_or(d.augment.crop_padding),
        },
        normalize: o.bool("normalize")?.unwrap_or(d.normalize),
        name: o.string("name")?.unwrap_or(loss_name.clone()),
        arch: o.string("model")?.map(|m| m.parse()).transpose()?.unwrap_or(d.arch),
        stem: o.string("stem")?.map(|s| s.parse()).transpose()?.unwrap_or(d.stem),
        hue_head: HueHeadConfig { hidden: o.int("hue_hidden")?.filter(|&h| h != 0) },
        loss: LossKind::from_name(&loss_name, hue)?,
        epochs: o.count("epochs")?.map_or(d.epochs, |v| v as usize),
        batch_size: o.count("batch_size")?.map_or(d.batch_size, |v| v as usize),
        lr: o.float("lr")?.unwrap_or(d.lr),
        seed: o.count("seed")?.unwrap_or(d.seed),
        device: o.device()?.unwrap_or(d.device),
        progress: o.bool("progress")?.unwrap_or(d.progress),
        checkpoint: o.string("checkpoint")?.map(std::path::PathBuf::from),
        resume: o.bool("resume")?.unwrap_or(d.resume),
        channels_last: o.bool("channels_last")?.unwrap_or(d.channels_last),
    };
    config.validate()?;
    Ok(config)
}

pub const SUBSET_KEYS: &[&str] = &["per_class", "seed"];
pub const NPY_KEYS: &[&str] = &["layout", "class_names", "name"];
pub const IDX_KEYS: &[&str] = &["class_names", "name"];
pub const IMAGE_FOLDER_KEYS: &[&str] = &["size", "channels", "name"];

/// `optimizer` ("adam", "adamw", "sgd") with the keys that belong to it: `weight_decay` (adamw:
/// 0.01, sgd: 0), `momentum` (sgd: 0.9), `nesterov` (sgd: false). A key that does not belong to
/// the chosen optimiser is an error.
fn optimizer_config(o: &mut Options) -> Result<OptimizerKind> {
    let name = o.string("optimizer")?.unwrap_or_else(|| "adam".into());
    let (weight_decay, momentum, nesterov) = (o.float("weight_decay")?, o.float("momentum")?, o.bool("nesterov")?);
    let unused = |key: &str, given: bool| -> Result<()> {
        if given {
            return Err(Error::invalid_option(key, format!("does not apply to the {name} optimizer")));
        }
        Ok(())
    };
    match name.as_str() {
        "adam" => {
            unused("weight_decay", weight_decay.is_some())?;
            unused("momentum", momentum.is_some())?;
            unused("nesterov", nesterov.is_some())?;
            Ok(OptimizerKind::Adam)
        }
        "adamw" => {
            unused("momentum", momentum.is_some())?;
            unused("nesterov", nesterov.is_some())?;
            Ok(OptimizerKind::AdamW { weight_decay: weight_decay.unwrap_or(0.01) })
        }
        "sgd" => Ok(OptimizerKind::Sgd {
            momentum: momentum.unwrap_or(0.9),
            weight_decay: weight_decay.unwrap_or(0.0),
            nesterov: nesterov.unwrap_or(false),
        }),
        other => Err(Error::invalid_option(
            "optimizer",
            format!("unknown optimizer \"{other}\"; valid: {}", OptimizerKind::NAMES.join(", ")),
        )),
    }
}

/// `schedule` ("constant", "cosine", "step") with `min_lr` (cosine: 0), `step_every` (step:
/// required) and `step_gamma` (step: 0.1).
fn schedule_config(o: &mut Options) -> Result<Schedule> {
    let name = o.string("schedule")?.unwrap_or_else(|| "constant".into());
    let (min_lr, every, gamma) = (o.float("min_lr")?, o.count("step_every")?, o.float("step_gamma")?);
    let misplaced = |key: &str| Error::invalid_option(key, format!("does not apply to the {name} schedule"));
    match name.as_str() {
        "constant" if min_lr.is_some() => Err(misplaced("min_lr")),
        "constant" | "cosine" if every.is_some() => Err(misplaced("step_every")),
        "constant" | "cosine" if gamma.is_some() => Err(misplaced("step_gamma")),
        "step" if min_lr.is_some() => Err(misplaced("min_lr")),
        "constant" => Ok(Schedule::Constant),
        "cosine" => Ok(Schedule::Cosine { min_lr: min_lr.unwrap_or(0.0) }),
        "step" => Ok(Schedule::Step {
            every: every.ok_or_else(|| Error::invalid_option("step_every", "the step schedule needs it"))? as usize,
            gamma: gamma.unwrap_or(0.1),
        }),
        other => Err(Error::invalid_option("schedule", format!("unknown schedule \"{other}\"; valid: {}", Schedule::NAMES.join(", ")))),
    }
}

/// `(per_class, seed)`; `per_class` is required.
pub fn subset_config(map: Map) -> Result<(usize, u64)> {
    let mut o = Options::new(map, "subset options", SUBSET_KEYS)?;
    let per_class = o.count("per_class")?.ok_or_else(|| Error::invalid_option("per_class", "is required"))?;
    Ok((per_class as usize, o.count("seed")?.unwrap_or(0)))
}

/// Options of the file loaders: the data set's name, its class names and, for `.npy`, the layout.
pub struct LoaderOptions {
    pub name: Option<String>,
    pub class_names: Option<Vec<String>>,
    pub layout: NpyLayout,
}

pub fn npy_options(map: Map) -> Result<LoaderOptions> {
    let mut o = Options::new(map, "load_npy options", NPY_KEYS)?;
    Ok(LoaderOptions {
        name: o.string("name")?,
        class_names: o.strings("class_names")?,
        layout: o.string("layout")?.map(|l| l.parse()).transpose()?.unwrap_or_default(),
    })
}

pub fn idx_options(map: Map) -> Result<LoaderOptions> {
    let mut o = Options::new(map, "load_idx options", IDX_KEYS)?;
    Ok(LoaderOptions { name: o.string("name")?, class_names: o.strings("class_names")?, layout: NpyLayout::default() })
}

/// The folder config and an optional data set name.
pub fn image_folder_options(map: Map) -> Result<(ImageFolderConfig, Option<String>)> {
    let mut o = Options::new(map, "load_image_folder options", IMAGE_FOLDER_KEYS)?;
    let d = ImageFolderConfig::default();
    let channels = match o.count("channels")? {
        None => d.channels,
        Some(c @ (1 | 3)) => c as u8,
        Some(c) => return Err(Error::invalid_option("channels", format!("must be 1 or 3, got {c}"))),
    };
    Ok((ImageFolderConfig { size: o.size("size")?.unwrap_or(d.size), channels }, o.string("name")?))
}

pub const COMPARE_KEYS: &[&str] = &["seeds", "folds", "val", "split_seed"];

/// Keys: `seeds` (array of ints; default [0, 1]), `folds` (3), `val` (0.1), `split_seed` (0).
pub fn compare_config(map: Map) -> Result<CompareConfig> {
    let mut o = Options::new(map, "compare options", COMPARE_KEYS)?;
    let d = CompareConfig::default();
    let seeds = match o.ints("seeds")? {
        None => d.seeds,
        Some(seeds) => seeds
            .into_iter()
            .map(|s| u64::try_from(s).map_err(|_| Error::invalid_option("seeds", format!("seeds must be >= 0, got {s}"))))
            .collect::<Result<_>>()?,
    };
    Ok(CompareConfig {
        seeds,
        folds: o.count("folds")?.map_or(d.folds, |f| f as usize),
        val: o.float("val")?.unwrap_or(d.val),
        split_seed: o.count("split_seed")?.unwrap_or(d.split_seed),
    })
}

/// An arm is a train options map; its `name` (default: the loss) names it in tables.
pub fn arm_config(map: Map) -> Result<Arm> {
    if map.contains_key("seed") {
        return Err(Error::invalid_option("seed", "an arm takes its seeds from the comparison's `seeds`"));
    }
    let config = train_config(map)?;
    Ok(Arm { name: config.name.clone(), config })
}

pub const EXTRACTOR_KEYS: &[&str] = &["weights", "layer", "size", "device"];
pub const ACTIVATION_KEYS: &[&str] = &["batch_size"];
pub const MEMORY_KEYS: &[&str] = &["descriptor", "index", "pca", "backend", "train_size", "add_batch", "nprobe", "ef_search", "seed", "device"];
pub const CLASSIFY_KEYS: &[&str] = &["name", "k", "eps", "vote", "batch_images", "observe"];
pub const OBSERVE_KEYS: &[&str] = &["cells", "angle_bins"];

/// Options of `pretrained`, `trained_model` and `torchscript`: `weights` (path), `layer`
/// ("bottleneck"), `size` (input side in pixels), `device`.
pub struct ExtractorOptions {
    pub weights: Option<String>,
    pub layer: String,
    pub size: Option<i64>,
    pub device: tch::Device,
}

pub fn extractor_options(map: Map, context: &str, allowed: &[&str]) -> Result<ExtractorOptions> {
    let mut o = Options::new(map, context, allowed)?;
    let size = o.int("size")?;
    if let Some(s) = size.filter(|&s| s < 1) {
        return Err(Error::invalid_option("size", format!("must be positive, got {s}")));
    }
    Ok(ExtractorOptions {
        weights: o.string("weights")?,
        layer: o.string("layer")?.unwrap_or_else(|| "bottleneck".into()),
        size,
        device: o.device()?.unwrap_or_default().resolve()?,
    })
}

/// `batch_size` (32) of `activations`.
pub fn activation_options(map: Map) -> Result<usize> {
    let mut o = Options::new(map, "activations options", ACTIVATION_KEYS)?;
    match o.count("batch_size")? {
        Some(0) => Err(Error::invalid_option("batch_size", "must be at least 1")),
        Some(n) => Ok(n as usize),
        None => Ok(32),
    }
}

pub fn memory_config(map: Map) -> Result<(crate::knn::MemoryConfig, tch::Device)> {
    use crate::knn::{Descriptor, MemoryConfig};
    let mut o = Options::new(map, "pixel_memory options", MEMORY_KEYS)?;
    let d = MemoryConfig::default();
    let positive = |key: &str, v: Option<u64>| match v {
        Some(0) => Err(Error::invalid_option(key, "must be at least 1")),
        other => Ok(other.map(|n| n as usize)),
    };
    let config = MemoryConfig {
        descriptor: o.string("descriptor")?.map(|s| Descriptor::parse(&s)).transpose()?.unwrap_or(d.descriptor),
        index: o.string("index")?.unwrap_or(d.index),
        pca: positive("pca", o.count("pca")?)?,
        backend: o.string("backend")?.map(|s| s.parse()).transpose()?.unwrap_or(d.backend),
        train_size: positive("train_size", o.count("train_size")?)?.unwrap_or(d.train_size),
        add_batch: positive("add_batch", o.count("add_batch")?)?.unwrap_or(d.add_batch),
        nprobe: positive("nprobe", o.count("nprobe")?)?,
        ef_search: positive("ef_search", o.count("ef_search")?)?,
        seed: o.count("seed")?.unwrap_or(d.seed),
    };
    let device = o.device()?.unwrap_or_default().resolve()?;
    Ok((config, device))
}

/// Options of `knn_classify`: `name`, `k` (10), `eps` (1e-6), `vote` ("kernel" or
/// "majority"), `batch_images` (64), `observe` (#{ cells: [[x, y], …], angle_bins: 16 }).
pub fn classify_config(map: Map) -> Result<(String, crate::knn::ClassifyConfig)> {
    use crate::knn::{ClassifyConfig, ObserveConfig};
    let mut o = Options::new(map, "knn_classify options", CLASSIFY_KEYS)?;
    let d = ClassifyConfig::default();
    let observe = match o.map("observe")? {
        None => None,
        Some(map) => {
            let mut ob = Options::new(map, "observe options", OBSERVE_KEYS)?;
            let cells = match ob.array_of_arrays("cells")? {
                None => vec![],
                Some(cells) => cells
                    .into_iter()
                    .map(|c| match c.as_slice() {
                        [x, y] => Ok((*x, *y)),
                        _ => Err(Error::invalid_option("cells", "each cell must be [x, y]")),
                    })
                    .collect::<Result<_>>()?,
            };
            Some(ObserveConfig { query_cells: cells, angle_bins: ob.count("angle_bins")?.unwrap_or(16) as usize })
        }
    };
    let vote: crate::knn::Vote = o.string("vote")?.map(|s| s.parse()).transpose()?.unwrap_or(d.vote);
    let config = ClassifyConfig {
        k: o.count("k")?.map_or(d.k, |k| k as usize),
        eps: o.float("eps")?.unwrap_or(d.eps),
        vote,
        batch_images: o.count("batch_images")?.map_or(d.batch_images, |n| n as usize),
        observe,
    };
    if config.eps.is_nan() || config.eps <= 0.0 {
        return Err(Error::invalid_option("eps", format!("must be positive, got {}", config.eps)));
    }
    let name = o.string("name")?.unwrap_or_else(|| if vote == crate::knn::Vote::Kernel { "kernel".into() } else { "majority".into() });
    Ok((name, config))
}
