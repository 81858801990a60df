//! What a memory classification writes: its per-image predictions and the numbers behind the
//! match-position figures, as CSV.
use std::path::Path;

use crate::error::Result;
use crate::files::write_csv;
use crate::knn::{centred, KnnRun, MatchStats};

/// One row per query image: its index, true and predicted class, and the score of every class.
pub fn write_predictions_csv(path: &Path, run: &KnnRun) -> Result<()> {
    let p = &run.predictions;
    let mut header = vec!["image".to_owned(), "truth".into(), "predicted".into()];
    header.extend(p.class_names.iter().map(|c| format!("score_{c}")));
    let mut rows = vec![header];
    for (i, ((t, pr), scores)) in p.truth.iter().zip(&p.predicted).zip(&p.scores).enumerate() {
        let mut row = vec![i.to_string(), p.class_names[*t as usize].clone(), p.class_names[*pr as usize].clone()];
        row.extend(scores.iter().map(|s| s.to_string()));
        rows.push(row);
    }
    write_csv(path, rows)
}

/// The numbers behind the Fig. 5–6 claims: how many matches are same-class, their mean distance
/// from the centre against other-class matches, and per chosen query cell the radial and
/// tangential spread of its matches.
pub fn write_match_summary_csv(path: &Path, stats: &MatchStats) -> Result<()> {
    let cells = stats.same.len();
    let radius = |i: usize| {
        let (x, y) = centred(i as u32, stats.grid);
        (x * x + y * y).sqrt()
    };
    let mean_radius = |v: &[f64]| {
        let total: f64 = v.iter().sum();
        (0..cells).map(|i| v[i] * radius(i)).sum::<f64>() / total.max(1.0)
    };
    let (same, other): (f64, f64) = (stats.same.iter().sum(), stats.other.iter().sum());
    let mut rows = vec![vec!["what".to_owned(), "cell".into(), "value".into()]];
    rows.push(vec!["same_class_share".into(), String::new(), (same / (same + other).max(1.0)).to_string()]);
    rows.push(vec!["same_class_mean_radius".into(), String::new(), mean_radius(&stats.same).to_string()]);
    rows.push(vec!["other_class_mean_radius".into(), String::new(), mean_radius(&stats.other).to_string()]);
    for c in &stats.conditional {
        let cell = format!("({},{})", c.cell.0, c.cell.1);
        for (what, v) in [
            ("same_radial_var", c.same_radial_var),
            ("same_tangential_var", c.same_tangential_var),
            ("other_radial_var", c.other_radial_var),
            ("other_tangential_var", c.other_tangential_var),
        ] {
            rows.push(vec![what.into(), cell.clone(), v.to_string()]);
        }
    }
    write_csv(path, rows)
}
