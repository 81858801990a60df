use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::TrainConfig;
use crate::data::{DatasetSummary, Split};
use crate::models::ModelSpec;

/// One epoch of training. Losses are means over the epoch's training images.
///
/// In JSON (manifests, checkpoints, scripts) each loss part is a field of its own,
/// `train_<part>_loss`, e.g. `train_onehot_loss` and `train_hue_loss`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// The optimised loss: the sum of the parts.
    pub train_loss: f64,
    /// Each part of the loss by its key (`onehot`, `hue`, …), in the loss's order.
    pub train_parts: Vec<(String, f64)>,
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub val_hue_accuracy: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

impl EpochMetrics {
    /// The epoch mean of the loss part `key`, if the run's loss has it.
    pub fn train_part(&self, key: &str) -> Option<f64> {
        self.train_parts.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// `train_<key>_loss` ↔ `key`.
fn part_field(key: &str) -> String {
    format!("train_{key}_loss")
}

fn part_key(field: &str) -> Option<&str> {
    field.strip_prefix("train_")?.strip_suffix("_loss").filter(|k| !k.is_empty())
}

impl Serialize for EpochMetrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("epoch", &self.epoch)?;
        m.serialize_entry("train_loss", &self.train_loss)?;
        for (key, value) in &self.train_parts {
            m.serialize_entry(&part_field(key), value)?;
        }
        m.serialize_entry("train_accuracy", &self.train_accuracy)?;
        m.serialize_entry("val_accuracy", &self.val_accuracy)?;
        m.serialize_entry("val_hue_accuracy", &self.val_hue_accuracy)?;
        m.serialize_entry("lr", &self.lr)?;
        m.serialize_entry("seconds", &self.seconds)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for EpochMetrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = EpochMetrics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the metrics of an epoch")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EpochMetrics, A::Error> {
                use serde::de::Error;
                let (mut epoch, mut train_loss, mut train_accuracy, mut lr, mut seconds) = (None, None, None, None, None);
                let (mut val_accuracy, mut val_hue_accuracy, mut train_parts) = (None, None, Vec::new());
                while let Some(field) = map.next_key::<String>()? {
                    match field.as_str() {
                        "epoch" => epoch = Some(map.next_value()?),
                        "train_loss" => train_loss = Some(map.next_value()?),
                        "train_accuracy" => train_accuracy = Some(map.next_value()?),
                        "val_accuracy" => val_accuracy = map.next_value()?,
                        "val_hue_accuracy" => val_hue_accuracy = map.next_value()?,
                        "lr" => lr = Some(map.next_value()?),
                        "seconds" => seconds = Some(map.next_value()?),
                        other => match part_key(other) {
                            // A part the run's loss does not have was written as null by
                            // huelab before losses had named parts.
                            Some(key) => {
                                if let Some(v) = map.next_value::<Option<f64>>()? {
                                    train_parts.push((key.to_owned(), v));
                                }
                            }
                            None => return Err(A::Error::unknown_field(other, &["epoch", "train_loss", "train_<part>_loss", "train_accuracy", "val_accuracy", "val_hue_accuracy", "lr", "seconds"])),
                        },
                    }
                }
                Ok(EpochMetrics {
                    epoch: epoch.ok_or_else(|| A::Error::missing_field("epoch"))?,
                    train_loss: train_loss.ok_or_else(|| A::Error::missing_field("train_loss"))?,
                    train_parts,
                    train_accuracy: train_accuracy.ok_or_else(|| A::Error::missing_field("train_accuracy"))?,
                    val_accuracy,
                    val_hue_accuracy,
                    lr: lr.ok_or_else(|| A::Error::missing_field("lr"))?,
                    seconds: seconds.ok_or_else(|| A::Error::missing_field("seconds"))?,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Accuracy of the class head, accuracy of the hue head (the class whose angle is nearest to
/// `θ'` is the true class) and the mean one-hot loss, over `count` images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalMetrics {
    pub count: usize,
    pub accuracy: f64,
    pub hue_accuracy: f64,
    pub onehot_loss: f64,
}

/// The sizes of the three parts of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitSizes {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

impl From<&Split> for SplitSizes {
    fn from(s: &Split) -> Self {
        SplitSizes { train: s.train.len(), val: s.val.len(), test: s.test.len() }
    }
}

/// Everything a finished run produced, and everything needed to say how.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub config: TrainConfig,
    pub model: ModelSpec,
    /// Numbers the loss derives from its options for this data (e.g. `hue_scale`, the hue
    /// distance scale in force), recorded beside the options.
    #[serde(flatten)]
    pub loss_derived: Map<String, Value>,
    pub data: DatasetSummary,
    pub split_seed: u64,
    pub split_sizes: SplitSizes,
    pub device: String,
    /// The training precision (also in `config` when not fp32), recorded for every run so a
    /// manifest says it outright.
    pub precision: crate::precision::Precision,
    /// Per channel `(mean, sd)` of the training part, when `normalize` is on.
    pub normalization: Option<Vec<(f64, f64)>>,
    /// Whether kernels and batches were channels-last (the `channels_last` option, or the
    /// architecture's default on the device).
    pub channels_last: bool,
    pub epochs: Vec<EpochMetrics>,
    pub test: Option<EvalMetrics>,
    /// Training time, summed over the sessions of a resumed run.
    pub wall_seconds: f64,
    /// The epoch of the checkpoint this run resumed from, if it did.
    pub resumed_after_epoch: Option<usize>,
    /// Stopped before its last epoch (Ctrl-C, a notebook's interrupt): the epochs it finished,
    /// no test metrics. Left out of the JSON when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl TrainReport {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The report of a run that did not run here (a cluster run's unit, while planning or in
    /// another unit's task): its options, data and split, no metrics.
    pub fn pending(config: &TrainConfig, data: &crate::data::ImageDataset, split: &Split) -> Self {
        let [c, h, w] = data.image_shape();
        TrainReport {
            config: config.clone(),
            model: ModelSpec { arch: config.arch, in_channels: c, num_classes: data.num_classes() as i64, input_size: (h, w), stem: config.stem, hue_head: config.hue_head },
            // A config whose loss cannot be built fails when its unit runs; nothing to record.
            loss_derived: config.loss.build(data.num_classes(), config.label_smoothing).map(|loss| loss.derived()).unwrap_or_default(),
            data: data.summary(),
            split_seed: split.config.seed,
            split_sizes: SplitSizes::from(split),
            device: "pending (a cluster unit)".into(),
            precision: config.precision,
            normalization: None,
            channels_last: config.channels_last.unwrap_or(false),
            epochs: vec![],
            test: None,
            wall_seconds: 0.0,
            resumed_after_epoch: None,
            interrupted: false,
        }
    }
}
