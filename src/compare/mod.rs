//! Honest comparisons of training arms (e.g. one-hot vs one-hot + hue): every arm is trained on
//! every fold × seed, with the same split, initial weights, batch order and augmentation for all
//! arms of a pair, and summarised as mean ± sd with paired differences and paired tests.
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::{kfold_split, stratified_kfold, ImageDataset, Split};
use crate::error::{Error, Result};
use crate::options::{OptionDoc, Options};
use crate::stats::{mean_sd, paired_t_test, wilcoxon_signed_rank, MeanSd, PairedT, Wilcoxon};
use crate::train::{TrainConfig, TrainReport};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareConfig {
    /// Training seeds; every arm runs every seed on every fold.
    pub seeds: Vec<u64>,
    /// Stratified k-fold cross-validation: each fold is the test part once.
    pub folds: usize,
    /// Fraction of the non-test images held out for validation.
    pub val: f64,
    /// Seeds the folds and the train/validation splits (the same for every arm and seed).
    pub split_seed: u64,
    /// Use the split the data came with (a `train/` + `val/` + `test/` folder) instead of
    /// k-fold: one "fold", every seed on it. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub given_split: bool,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig { seeds: vec![0, 1], folds: 3, val: 0.1, split_seed: 0, given_split: false }
    }
}

impl CompareConfig {
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("seeds", "array", "[0, 1]", "training seeds; every arm runs each seed on each fold (paired)"),
        OptionDoc::new("folds", "int", "3", "stratified folds (k-fold cross-validation)"),
        OptionDoc::new("val", "float", "0.1", "fraction of each training fold held out for validation"),
        OptionDoc::new("split_seed", "int", "0", "seeds the folds"),
        OptionDoc::new("split", "string", "\"kfold\"", "k folds, or the split the data came with (leave out folds and val)").one_of(|| vec!["kfold", "given"]),
    ];

    /// A config from an options map ([`Self::OPTIONS`]).
    pub fn from_options(map: Map<String, Value>) -> Result<Self> {
        let mut o = Options::new(map, "compare options", Self::OPTIONS)?;
        let d = CompareConfig::default();
        let seeds = match o.ints("seeds")? {
            None => d.seeds,
            Some(seeds) => seeds
                .into_iter()
                .map(|s| u64::try_from(s).map_err(|_| Error::invalid_option("seeds", format!("seeds must be >= 0, got {s}"))))
                .collect::<Result<_>>()?,
        };
        let given_split = match o.string("split")?.as_deref() {
            None | Some("kfold") => false,
            Some("given") => true,
            Some(other) => return Err(Error::invalid_option("split", format!("expected \"kfold\" or \"given\", got \"{other}\""))),
        };
        if given_split && (o.contains("folds") || o.contains("val")) {
            return Err(Error::invalid_option("split", "a given split has its own parts: leave out folds and val"));
        }
        let config = CompareConfig {
            seeds,
            folds: if given_split { 1 } else { o.count("folds")?.map_or(d.folds, |f| usize::try_from(f).unwrap_or(usize::MAX)) },
            val: o.float("val")?.unwrap_or(d.val),
            split_seed: o.count("split_seed")?.unwrap_or(d.split_seed),
            given_split,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(Error::invalid_option("seeds", "give at least one seed"));
        }
        if let Some(s) = self.seeds.iter().enumerate().find_map(|(i, s)| self.seeds[..i].contains(s).then_some(s)) {
            return Err(Error::invalid_option("seeds", format!("seed {s} is given twice")));
        }
        if self.folds < 2 && !self.given_split {
            return Err(Error::invalid_option("folds", format!("k-fold needs at least 2 folds, got {}", self.folds)));
        }
        if !(0.0..1.0).contains(&self.val) {
            return Err(Error::invalid_option("val", format!("must be in [0, 1), got {}", self.val)));
        }
        Ok(())
    }
}

/// One arm: a name and its training config (its `seed` and `name` are set per run; a
/// `checkpoint` directory becomes the root of one sub-directory per arm, fold and seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    pub name: String,
    pub config: TrainConfig,
}

impl Arm {
    /// An arm from a train options map; its `name` (default: the loss) names it in tables. An
    /// arm takes no `seed`: the comparison's `seeds` are every arm's.
    pub fn from_options(map: Map<String, Value>) -> Result<Self> {
        if map.contains_key("seed") {
            return Err(Error::invalid_option("seed", "an arm takes its seeds from the comparison's `seeds`"));
        }
        let config = TrainConfig::from_options(map)?;
        Ok(Arm { name: config.name.clone(), config })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmRun {
    pub arm: String,
    pub fold: usize,
    pub seed: u64,
    pub report: TrainReport,
}

impl ArmRun {
    pub fn test_accuracy(&self) -> f64 {
        self.report.test.map_or(f64::NAN, |t| t.accuracy)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmSummary {
    pub arm: String,
    pub test_accuracy: MeanSd,
    pub test_hue_accuracy: MeanSd,
    pub train_seconds: f64,
}

/// `arm − baseline` over the pairs (same fold and seed).
#[derive(Debug, Clone, Serialize)]
pub struct PairedComparison {
    pub baseline: String,
    pub arm: String,
    pub differences: Vec<f64>,
    /// `None` when no pair has both runs finished.
    pub mean_difference: Option<f64>,
    pub t_test: Option<PairedT>,
    pub wilcoxon: Option<Wilcoxon>,
}

/// One unit of a comparison's work: one arm trained on one fold with one seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    /// The arm's index and name.
    pub arm_index: usize,
    pub arm: String,
    /// The fold (from 1; 1 for a given split) and the seed.
    pub fold: usize,
    pub seed: u64,
    /// The run's whole config: the arm's with this seed, name and checkpoint directory.
    pub config: TrainConfig,
}

/// A unit that did not produce a result (its run failed or never ran).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingUnit {
    pub arm: String,
    pub fold: usize,
    pub seed: u64,
    pub reason: String,
}

/// What runs a comparison's units: locally, one after another ([`TrainLocally`]), or as a
/// cluster's planning, task or gathering step.
pub trait UnitRunner {
    /// The unit's report, or `Ok(None)` when this runner does not produce it here (a plan
    /// records it; a task runs only its own unit).
    fn run(&mut self, unit: &Unit, data: &ImageDataset, split: &Split) -> Result<Option<TrainReport>>;

    /// Units whose result is missing after all ran, with the reason (reported, never dropped).
    fn missing(&self) -> Vec<MissingUnit> {
        vec![]
    }

    /// A unit's run was interrupted (Ctrl-C, a notebook's interrupt): the comparison as far as
    /// it got, its finished units summarised and every other unit missing (see [`compare_with`]).
    fn interrupted(&mut self, _so_far: Comparison) {}
}

/// Trains every unit here, one after another, printing a line per finished run; `watch` (a
/// notebook's live curves) hears of every unit's epochs.
#[derive(Default)]
pub struct TrainLocally<'w> {
    done: usize,
    watch: Option<crate::train::Watcher<'w>>,
    /// The interrupted unit's report as far as it got.
    stopped: Option<TrainReport>,
    /// The comparison as far as it got, when a unit was interrupted.
    pub so_far: Option<Comparison>,
}

impl<'w> TrainLocally<'w> {
    /// Units trained here with `watch` told of every epoch of each (see [`crate::train::train_watched`]).
    pub fn watched(watch: crate::train::Watcher<'w>) -> Self {
        TrainLocally { watch: Some(watch), ..TrainLocally::default() }
    }
}

impl UnitRunner for TrainLocally<'_> {
    fn run(&mut self, unit: &Unit, data: &ImageDataset, split: &Split) -> Result<Option<TrainReport>> {
        let (watch, stopped) = (&mut self.watch, &mut self.stopped);
        let report = crate::train::train_watched(
            data,
            split,
            &unit.config,
            Some(&mut |so_far: &TrainReport| {
                if so_far.interrupted {
                    *stopped = Some(so_far.clone());
                }
                if let Some(watch) = watch.as_mut() {
                    watch(so_far);
                }
            }),
        )?;
        self.done += 1;
        eprintln!("[{}] {}: test accuracy {:.4} ({:.0} s)", self.done, report.name(), report.test.map_or(f64::NAN, |t| t.accuracy), report.wall_seconds);
        Ok(Some(report))
    }

    fn interrupted(&mut self, mut so_far: Comparison) {
        // The interrupted unit is the first missing one; say how far it got.
        if let (Some(report), Some(unit)) = (&self.stopped, so_far.missing.first_mut()) {
            unit.reason = format!("interrupted after {} of {} epochs", report.epochs.len(), report.config.epochs);
        }
        so_far.interrupted_run = self.stopped.take();
        self.so_far = Some(so_far);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub data: crate::data::DatasetSummary,
    pub config: CompareConfig,
    pub arms: Vec<Arm>,
    pub runs: Vec<ArmRun>,
    pub summary: Vec<ArmSummary>,
    /// Every arm after the first against the first (the baseline), over the pairs whose runs
    /// all finished.
    pub paired: Vec<PairedComparison>,
    /// Units without a result: listed in tables and manifests, never silently dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingUnit>,
    /// Stopped by an interrupt: the finished units only, every other one in `missing`. Left out
    /// of the JSON when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The unit the interrupt stopped, as far as it got (its finished epochs; not in the
    /// statistics, nor in the JSON).
    #[serde(skip)]
    pub interrupted_run: Option<TrainReport>,
}

/// A unit's checkpoint directory under the arms' checkpoint root: `<root>/<arm>/fold<k>-seed<s>`.
pub fn unit_checkpoint(root: &std::path::Path, arm: &str, fold: usize, seed: u64) -> std::path::PathBuf {
    let arm_dir: String = arm.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    root.join(arm_dir).join(format!("fold{fold}-seed{seed}"))
}

/// The splits a comparison trains on: stratified k-fold (each fold the test part once, the
/// rest split into train and validation), or the split the data came with; each marked as a
/// split of `data`.
pub fn comparison_splits(data: &ImageDataset, config: &CompareConfig) -> Result<Vec<Split>> {
    if config.given_split {
        let split = data.given_split().ok_or_else(|| Error::invalid_option("split", format!("'{}' came with no split (a train/ + test/ folder has one)", data.name())))?;
        return Ok(vec![split.clone()]);
    }
    let folds = stratified_kfold(data.labels(), data.num_classes(), config.folds, config.split_seed)?;
    (0..folds.len()).map(|fold| Ok(kfold_split(data.labels(), data.num_classes(), &folds, fold, config.val, config.split_seed)?.of_data(data.identity()))).collect()
}

/// Every unit of a comparison, in the order fold, seed, arm (the runs of a pair adjacent).
/// `root` gives each unit a checkpoint directory when its arm has none.
pub fn comparison_units(arms: &[Arm], config: &CompareConfig, folds: usize, root: Option<&std::path::Path>) -> Vec<Unit> {
    let mut units = vec![];
    for fold in 1..=folds {
        for &seed in &config.seeds {
            for (arm_index, arm) in arms.iter().enumerate() {
                let checkpoint = arm.config.checkpoint.as_deref().or(root).map(|r| unit_checkpoint(r, &arm.name, fold, seed));
                let config = TrainConfig { seed, name: format!("{} fold {fold} seed {seed}", arm.name), checkpoint, ..arm.config.clone() };
                units.push(Unit { arm_index, arm: arm.name.clone(), fold, seed, config });
            }
        }
    }
    units
}

fn check_arms(arms: &[Arm], config: &CompareConfig) -> Result<()> {
    if arms.len() < 2 {
        return Err(Error::invalid_option("arms", format!("a comparison needs at least 2 arms, got {}", arms.len())));
    }
    if let Some(duplicate) = arms.iter().enumerate().find(|(i, a)| arms[..*i].iter().any(|b| b.name == a.name)) {
        return Err(Error::invalid_option("arms", format!("two arms are named '{}'", duplicate.1.name)));
    }
    config.validate()?;
    for arm in arms {
        arm.config.validate().map_err(|e| Error::msg(format!("arm '{}': {e}", arm.name)))?;
    }
    Ok(())
}

/// Runs every arm on every fold and seed here. The loop order is fold, seed, arm, so the runs
/// of a pair are adjacent.
pub fn compare(data: &ImageDataset, arms: &[Arm], config: &CompareConfig) -> Result<Comparison> {
    compare_with(data, arms, config, None, &mut TrainLocally::default())
}

/// [`compare`] with its units run by `runner`; `root` gives units a checkpoint directory when
/// their arm has none (a cluster run's).
pub fn compare_with(data: &ImageDataset, arms: &[Arm], config: &CompareConfig, root: Option<&std::path::Path>, runner: &mut dyn UnitRunner) -> Result<Comparison> {
    check_arms(arms, config)?;
    let splits = comparison_splits(data, config)?;
    let mut runs = Vec::new();
    let units = comparison_units(arms, config, splits.len(), root);
    for (index, unit) in units.iter().enumerate() {
        match runner.run(unit, data, &splits[unit.fold - 1]) {
            Ok(Some(report)) => runs.push(ArmRun { arm: unit.arm.clone(), fold: unit.fold, seed: unit.seed, report }),
            Ok(None) => {}
            Err(Error::Interrupted) => {
                let mut so_far = summarise(data.summary(), config.clone(), arms.to_vec(), runs);
                so_far.interrupted = true;
                so_far.missing = units[index..]
                    .iter()
                    .enumerate()
                    .map(|(i, u)| MissingUnit {
                        arm: u.arm.clone(),
                        fold: u.fold,
                        seed: u.seed,
                        reason: if i == 0 { "interrupted".into() } else { "not run: the comparison was interrupted".into() },
                    })
                    .collect();
                runner.interrupted(so_far);
                return Err(Error::Interrupted);
            }
            Err(e) => return Err(e),
        }
    }
    let mut comparison = summarise(data.summary(), config.clone(), arms.to_vec(), runs);
    comparison.missing = runner.missing();
    Ok(comparison)
}

/// The comparison of `runs`: all of its units, or the finished ones (a cluster gather's); an arm
/// with none is missing in every output, never a number.
pub fn summarise(data: crate::data::DatasetSummary, config: CompareConfig, arms: Vec<Arm>, runs: Vec<ArmRun>) -> Comparison {
    let of_arm = |name: &str| -> Vec<&ArmRun> { runs.iter().filter(|r| r.arm == name).collect() };
    let summary = arms
        .iter()
        .map(|arm| {
            let mine = of_arm(&arm.name);
            let accuracies: Vec<f64> = mine.iter().map(|r| r.test_accuracy()).collect();
            let hue: Vec<f64> = mine.iter().map(|r| r.report.test.map_or(f64::NAN, |t| t.hue_accuracy)).collect();
            ArmSummary {
                arm: arm.name.clone(),
                test_accuracy: mean_sd(&accuracies),
                test_hue_accuracy: mean_sd(&hue),
                train_seconds: mine.iter().map(|r| r.report.wall_seconds).sum(),
            }
        })
        .collect();
    let baseline = of_arm(&arms[0].name);
    let paired = arms[1..]
        .iter()
        .map(|arm| {
            // A pair is the same fold and seed; pairs with a missing run are left out.
            let differences: Vec<f64> = of_arm(&arm.name)
                .iter()
                .filter_map(|a| baseline.iter().find(|b| b.fold == a.fold && b.seed == a.seed).map(|b| a.test_accuracy() - b.test_accuracy()))
                .collect();
            PairedComparison {
                baseline: arms[0].name.clone(),
                arm: arm.name.clone(),
                mean_difference: mean_sd(&differences).mean,
                t_test: paired_t_test(&differences),
                wilcoxon: wilcoxon_signed_rank(&differences),
                differences,
            }
        })
        .collect();
    Comparison { data, config, arms, runs, summary, paired, missing: vec![], interrupted: false, interrupted_run: None }
}

impl Comparison {
    /// A plain-text table: per-arm mean ± sd, then each paired comparison with both tests.
    pub fn table(&self) -> String {
        let pm = |m: &MeanSd| match (m.mean, m.sd) {
            (None, _) => "MISSING (no finished run)".to_owned(),
            (Some(mean), Some(sd)) => format!("{mean:.4} ± {sd:.4}"),
            (Some(mean), None) => format!("{mean:.4}"),
        };
        let mut out = format!(
            "{}: {} images, {} folds × seeds {:?} (split seed {}, val {})\n{:<24} {:>3}  {:<18} {:<18}\n",
            self.data.name,
            self.data.len,
            self.config.folds,
            self.config.seeds,
            self.config.split_seed,
            self.config.val,
            "arm",
            "n",
            "test accuracy",
            "hue-head accuracy"
        );
        for s in &self.summary {
            out += &format!("{:<24} {:>3}  {:<18} {:<18}\n", s.arm, s.test_accuracy.n, pm(&s.test_accuracy), pm(&s.test_hue_accuracy));
        }
        for p in &self.paired {
            let t = p.t_test.map_or("t-test undefined (no spread)".to_owned(), |t| {
                format!("95% CI [{:+.4}, {:+.4}], t({}) = {:.2}, p = {:.3}", t.ci95.0, t.ci95.1, t.df, t.t, t.p)
            });
            let w = p.wilcoxon.map_or("Wilcoxon undefined (all differences 0)".to_owned(), |w| {
                format!("Wilcoxon W+ = {}, n = {}, p = {:.3} ({})", w.w_plus, w.n, w.p, w.method)
            });
            match p.mean_difference {
                Some(mean) => out += &format!("{} − {}: mean {mean:+.4} over {} pairs; {t}; {w}\n", p.arm, p.baseline, p.differences.len()),
                None => out += &format!("{} − {}: MISSING, no fold and seed with both runs finished\n", p.arm, p.baseline),
            }
        }
        if self.interrupted {
            out += &format!("INTERRUPTED after {} of {} units: the statistics above are over the finished ones\n", self.runs.len(), self.runs.len() + self.missing.len());
        }
        if !self.missing.is_empty() {
            out += &format!("MISSING {} unit(s), left out of the statistics above:\n", self.missing.len());
            for m in &self.missing {
                out += &format!("  {} fold {} seed {}: {}\n", m.arm, m.fold, m.seed, m.reason);
            }
        }
        out
    }
}
