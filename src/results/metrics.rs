//! `metrics.csv`: one row per run and epoch.
use std::path::Path;

use crate::error::Result;
use crate::files::{cell, write_csv};
use crate::train::TrainReport;

/// One row per run and epoch: `run, epoch, train_loss, train_<part>_loss…, train_accuracy,
/// val_accuracy, val_hue_accuracy, lr, seconds`, with a column for every loss part any of the
/// runs has (in the order they first appear, e.g. `train_onehot_loss, train_hue_loss`). Empty
/// cells are values a run does not have (the hue part of a one-hot run).
pub fn write_metrics_csv(path: &Path, reports: &[&TrainReport]) -> Result<()> {
    let mut parts: Vec<&str> = vec![];
    for part in reports.iter().flat_map(|r| r.config.loss.parts()) {
        if !parts.contains(&part.key) {
            parts.push(part.key);
        }
    }
    let mut header = vec!["run".to_owned(), "epoch".into(), "train_loss".into()];
    header.extend(parts.iter().map(|p| format!("train_{p}_loss")));
    header.extend(["train_accuracy", "val_accuracy", "val_hue_accuracy", "lr", "seconds"].map(String::from));
    let mut rows = vec![header];
    for report in reports {
        for e in &report.epochs {
            let mut row = vec![report.name().to_owned(), e.epoch.to_string(), e.train_loss.to_string()];
            row.extend(parts.iter().map(|p| cell(e.train_part(p))));
            row.extend([
                e.train_accuracy.to_string(),
                cell(e.val_accuracy),
                cell(e.val_hue_accuracy),
                e.lr.to_string(),
                e.seconds.to_string(),
            ]);
            rows.push(row);
        }
    }
    write_csv(path, rows)
}
