//! What a comparison writes: `runs.csv` (one row per trained model), `summary.csv` (per arm,
//! with the paired tests against the baseline), `metrics.csv` (every epoch of every run),
//! `comparison.png` and `manifest.json`.
use std::path::Path;

use super::figures::plot_comparison;
use super::manifest::{write_manifest_of, ManifestBody, ScriptInfo};
use super::metrics::write_metrics_csv;
use crate::compare::Comparison;
use crate::error::Result;
use crate::files::{cell as opt, write_csv};

pub fn write_comparison(dir: &Path, comparison: &Comparison, script: Option<&ScriptInfo>) -> Result<()> {
    write_runs_csv(&dir.join("runs.csv"), comparison)?;
    write_summary_csv(&dir.join("summary.csv"), &[comparison])?;
    let reports: Vec<_> = comparison.runs.iter().map(|r| &r.report).collect();
    write_metrics_csv(&dir.join("metrics.csv"), &reports)?;
    plot_comparison(&dir.join("comparison.png"), comparison)?;
    write_manifest_of(&dir.join("manifest.json"), script, ManifestBody::Comparison(comparison))
}

/// One row per trained model: `data, arm, fold, seed, test_accuracy, test_hue_accuracy,
/// final_val_accuracy, epochs, train_seconds`.
pub fn write_runs_csv(path: &Path, comparison: &Comparison) -> Result<()> {
    let mut rows = vec![["data", "arm", "fold", "seed", "test_accuracy", "test_hue_accuracy", "final_val_accuracy", "epochs", "train_seconds"]
        .map(String::from)
        .to_vec()];
    for run in &comparison.runs {
        let test = run.report.test;
        rows.push(vec![
            comparison.data.name.clone(),
            run.arm.clone(),
            run.fold.to_string(),
            run.seed.to_string(),
            opt(test.map(|t| t.accuracy)),
            opt(test.map(|t| t.hue_accuracy)),
            opt(run.report.epochs.last().and_then(|e| e.val_accuracy)),
            run.report.epochs.len().to_string(),
            run.report.wall_seconds.to_string(),
        ]);
    }
    write_csv(path, rows)
}

/// One row per arm of every comparison: `data, arm, model, loss, n, mean, sd,
/// hue_mean, hue_sd`, then for non-baseline arms `baseline, mean_difference, ci95_low,
/// ci95_high, t, df, p_t, wilcoxon_w_plus, wilcoxon_n, p_wilcoxon, wilcoxon_method`.
pub fn write_summary_csv(path: &Path, comparisons: &[&Comparison]) -> Result<()> {
    let header = [
        "data", "arm", "model", "loss", "n", "mean", "sd", "hue_mean", "hue_sd", "baseline", "mean_difference", "ci95_low",
        "ci95_high", "t", "df", "p_t", "wilcoxon_w_plus", "wilcoxon_n", "p_wilcoxon", "wilcoxon_method",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for c in comparisons {
        for (arm, s) in c.arms.iter().zip(&c.summary) {
            let mut row = vec![
                c.data.name.clone(),
                s.arm.clone(),
                arm.config.arch.name().to_owned(),
                arm.config.loss.name().to_owned(),
                s.test_accuracy.n.to_string(),
                opt(s.test_accuracy.mean),
                opt(s.test_accuracy.sd),
                opt(s.test_hue_accuracy.mean),
                opt(s.test_hue_accuracy.sd),
            ];
            match c.paired.iter().find(|p| p.arm == s.arm) {
                Some(p) => row.extend([
                    p.baseline.clone(),
                    opt(p.mean_difference),
                    opt(p.t_test.map(|t| t.ci95.0)),
                    opt(p.t_test.map(|t| t.ci95.1)),
                    opt(p.t_test.map(|t| t.t)),
                    p.t_test.map_or(String::new(), |t| t.df.to_string()),
                    opt(p.t_test.map(|t| t.p)),
                    opt(p.wilcoxon.map(|w| w.w_plus)),
                    p.wilcoxon.map_or(String::new(), |w| w.n.to_string()),
                    opt(p.wilcoxon.map(|w| w.p)),
                    p.wilcoxon.map_or(String::new(), |w| w.method.to_owned()),
                ]),
                None => row.extend(std::iter::repeat_n(String::new(), header.len() - row.len())),
            }
            rows.push(row);
        }
    }
    write_csv(path, rows)
}
