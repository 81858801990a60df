use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::options::{OptionDoc, Options};

/// The indices of each class in class order, each list shuffled by one ChaCha generator seeded
/// from `seed` (class 0 first), so every stratified operation draws the same way.
fn shuffled_classes(labels: &[i64], num_classes: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..num_classes as i64)
        .map(|class| {
            let mut members: Vec<i64> = (0..labels.len() as i64).filter(|&i| labels[i as usize] == class).collect();
            members.shuffle(&mut rng);
            members
        })
        .collect()
}

/// Fractions of each class that go to train, validation and test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    pub train: f64,
    pub val: f64,
    pub test: f64,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { train: 0.7, val: 0.15, test: 0.15, seed: 0 }
    }
}

impl SplitConfig {
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("train", "float", "0.7", "fraction of each class for training (the three sum to 1)"),
        OptionDoc::new("val", "float", "0.15", "fraction for validation"),
        OptionDoc::new("test", "float", "0.15", "fraction for testing"),
        OptionDoc::new("seed", "int", "0", "seeds the stratified shuffle"),
    ];

    /// A config from an options map; keys in [`Self::OPTIONS`].
    pub fn from_options(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "split options", Self::OPTIONS)?;
        let d = SplitConfig::default();
        let config = SplitConfig {
            train: o.float("train")?.unwrap_or(d.train),
            val: o.float("val")?.unwrap_or(d.val),
            test: o.float("test")?.unwrap_or(d.test),
            seed: o.count("seed")?.unwrap_or(d.seed),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        for (name, f) in [("train", self.train), ("val", self.val), ("test", self.test)] {
            if !(0.0..=1.0).contains(&f) {
                return Err(Error::invalid_option(name, format!("a split fraction must be in [0, 1], got {f}")));
            }
        }
        let total = self.train + self.val + self.test;
        if (total - 1.0).abs() > 1e-6 {
            return Err(Error::invalid_option("train", format!("train + val + test must be 1, got {total}")));
        }
        if self.train == 0.0 {
            return Err(Error::invalid_option("train", "the train fraction must be above 0"));
        }
        Ok(())
    }
}

/// A seeded stratified subset: `per_class` images of every class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsetConfig {
    pub per_class: usize,
    pub seed: u64,
}

impl SubsetConfig {
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("per_class", "int", "(required)", "images of every class, at least 1"),
        OptionDoc::new("seed", "int", "0", "seeds which images are chosen"),
    ];

    /// A config from an options map; keys in [`Self::OPTIONS`].
    pub fn from_options(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "subset options", Self::OPTIONS)?;
        let per_class = o.count("per_class")?.ok_or_else(|| Error::invalid_option("per_class", "is required"))?;
        if per_class == 0 {
            return Err(Error::invalid_option("per_class", "must be at least 1"));
        }
        Ok(SubsetConfig { per_class: usize::try_from(per_class).unwrap_or(usize::MAX), seed: o.count("seed")?.unwrap_or(0) })
    }
}

/// Which data set a split indexes: its length and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    pub len: usize,
    pub sha256: String,
}

/// Indices into a data set. Disjoint, and every class is represented in proportion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub config: SplitConfig,
    pub train: Vec<i64>,
    pub val: Vec<i64>,
    pub test: Vec<i64>,
    /// The data set the split was made on, when known; training checks it, so a split of one
    /// set is never used on another.
    #[serde(skip)]
    pub data: Option<DataIdentity>,
}

impl Split {
    pub fn new(config: SplitConfig, train: Vec<i64>, val: Vec<i64>, test: Vec<i64>) -> Self {
        Split { config, train, val, test, data: None }
    }

    /// The split, marked as one of the data set `identity`.
    pub fn of_data(self, identity: DataIdentity) -> Self {
        Split { data: Some(identity), ..self }
    }

    /// Every index of the split.
    pub fn indices(&self) -> impl Iterator<Item = &i64> {
        self.train.iter().chain(&self.val).chain(&self.test)
    }

    /// An error unless the split fits a data set of `identity`: the same set when the split
    /// knows its set, else at least indices within its length.
    pub fn check_fits(&self, identity: &DataIdentity, data_name: &str) -> Result<()> {
        if let Some(own) = &self.data {
            if own != identity {
                return Err(Error::msg(format!(
                    "this split was made on another data set ({} images, content {}…) than '{data_name}' ({} images, content {}…); make the split from the data it is used with",
                    own.len,
                    &own.sha256[..own.sha256.len().min(12)],
                    identity.len,
                    &identity.sha256[..identity.sha256.len().min(12)]
                )));
            }
        }
        if let Some(bad) = self.indices().find(|&&i| i < 0 || i as usize >= identity.len) {
            return Err(Error::msg(format!("the split holds image {bad}, but '{data_name}' has {} images", identity.len)));
        }
        Ok(())
    }
}

/// Splits each class separately (so class proportions hold in every part), shuffled by a
/// generator seeded from `config.seed` alone: the same labels and seed give the same split.
pub fn stratified_split(labels: &[i64], num_classes: usize, config: SplitConfig) -> Result<Split> {
    config.validate()?;
    let mut split = Split::new(config, vec![], vec![], vec![]);
    for mut members in shuffled_classes(labels, num_classes, config.seed) {
        let n = members.len() as f64;
        let n_test = (config.test * n).round() as usize;
        let n_val = (config.val * n).round() as usize;
        split.test.extend(members.drain(..n_test.min(members.len())));
        split.val.extend(members.drain(..n_val.min(members.len())));
        split.train.extend(members);
    }
    if split.test.is_empty() && config.test > 0.0 {
        return Err(Error::invalid_option("test", format!("a test fraction of {} leaves no test images", config.test)));
    }
    Ok(split)
}

/// `per_class` indices of every class that has images, drawn by a generator seeded from `seed`
/// alone, returned in ascending order. A class with fewer images than `per_class` is an error
/// naming it: taking all of it would make a subset that is silently not stratified (or, with a
/// `per_class` beyond every class, silently the whole data set).
pub fn stratified_subset(labels: &[i64], class_names: &[String], per_class: usize, seed: u64) -> Result<Vec<i64>> {
    if per_class == 0 {
        return Err(Error::invalid_option("per_class", "must be at least 1"));
    }
    let classes = shuffled_classes(labels, class_names.len(), seed);
    let smallest = classes.iter().enumerate().filter(|(_, members)| !members.is_empty()).min_by_key(|(_, members)| members.len());
    if let Some((class, members)) = smallest.filter(|(_, members)| members.len() < per_class) {
        return Err(Error::invalid_option(
            "per_class",
            format!("{per_class} images of every class, but class '{}' has only {} (at most {} can be drawn from every class)", class_names[class], members.len(), members.len()),
        ));
    }
    let mut chosen = Vec::with_capacity(per_class.saturating_mul(class_names.len()).min(labels.len()));
    for members in classes {
        chosen.extend(members.into_iter().take(per_class));
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Stratified k-fold: each class's images, shuffled by a generator seeded from `seed`, are dealt
/// round-robin into `k` folds, so every fold holds each class in proportion.
pub fn stratified_kfold(labels: &[i64], num_classes: usize, k: usize, seed: u64) -> Result<Vec<Vec<i64>>> {
    if k < 2 {
        return Err(Error::invalid_option("folds", format!("k-fold needs at least 2 folds, got {k}")));
    }
    // Before `k` sizes anything: more folds than images cannot all be filled.
    if k > labels.len() {
        return Err(Error::invalid_option("folds", format!("{k} folds of {} images leave empty folds", labels.len())));
    }
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for members in shuffled_classes(labels, num_classes, seed) {
        for index in members {
            folds[next % k].push(index);
            next += 1;
        }
    }
    if let Some(smallest) = folds.iter().map(Vec::len).min().filter(|&n| n == 0) {
        return Err(Error::invalid_option("folds", format!("{k} folds of {} images leave a fold with {smallest} images", labels.len())));
    }
    Ok(folds)
}

/// Fold `fold` of `folds` as the test part; the rest split into train and validation
/// (stratified, `val` of it to validation, seeded by `seed` and the fold).
pub fn kfold_split(labels: &[i64], num_classes: usize, folds: &[Vec<i64>], fold: usize, val: f64, seed: u64) -> Result<Split> {
    let test = folds[fold].clone();
    let rest: Vec<i64> = folds.iter().enumerate().filter(|(f, _)| *f != fold).flat_map(|(_, ids)| ids.iter().copied()).collect();
    let rest_labels: Vec<i64> = rest.iter().map(|&i| labels[i as usize]).collect();
    let inner = stratified_split(&rest_labels, num_classes, SplitConfig { train: 1.0 - val, val, test: 0.0, seed: seed.wrapping_add(fold as u64) })?;
    let map = |ids: Vec<i64>| ids.into_iter().map(|i| rest[i as usize]).collect();
    Ok(Split::new(SplitConfig { train: 1.0 - val, val, test: 0.0, seed }, map(inner.train), map(inner.val), test))
}
