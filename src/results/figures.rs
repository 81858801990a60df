//! The figures of runs, comparisons and memories: each turns its results into the plain data
//! that `plot` draws (the charts know nothing of training or kNN).
use std::path::Path;

use crate::activations::Activations;
use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::knn::{MatchStats, QueriesDone};
use crate::plot::{dot_plot, heatmaps, line_panels, plot_heatmaps, plot_polar, polar, DotGroup, Figure, HeatmapPanel, LegendCorner, Line, LinePanel};
use crate::train::TrainReport;

/// Left panel: training loss per epoch (solid), and for runs whose loss has several parts its
/// first part (dashed; the one-hot part of one-hot + hue), since total losses of different
/// objectives are not comparable. Right panel: validation accuracy (solid) and training
/// accuracy (dashed). One colour per run.
pub fn plot_training_curves(path: &Path, reports: &[&TrainReport]) -> Result<()> {
    training_curves(reports)?.save(path)
}

/// The figure of [`plot_training_curves`].
pub fn training_curves(reports: &[&TrainReport]) -> Result<Figure> {
    if reports.is_empty() {
        return Err(Error::msg("plot_training_curves: no runs to plot"));
    }
    let max_epoch = reports.iter().map(|r| r.epochs.len()).max().unwrap_or(1).max(2) as f64;
    let max_loss = reports.iter().flat_map(|r| r.epochs.iter().map(|e| e.train_loss)).fold(0.0, f64::max);
    let mut loss = LinePanel { title: "training loss".into(), y_desc: "loss".into(), y_max: (max_loss * 1.05).max(1e-6), legend: LegendCorner::UpperRight, lines: vec![] };
    let mut accuracy = LinePanel { title: "accuracy".into(), y_desc: "accuracy".into(), y_max: 1.0, legend: LegendCorner::LowerRight, lines: vec![] };
    for (colour, report) in reports.iter().enumerate() {
        let name = report.name();
        let points = |value: &dyn Fn(&crate::train::EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
            report.epochs.iter().filter_map(|e| value(e).map(|v| (e.epoch as f64, v))).collect()
        };
        let line = |label: String, dashed: bool, points: Vec<(f64, f64)>| Line { label, colour, dashed, points };
        loss.lines.push(line(name.to_owned(), false, points(&|e| Some(e.train_loss))));
        if let [first, _, ..] = report.config.loss.parts() {
            loss.lines.push(line(format!("{name} ({} part)", first.label), true, points(&|e| e.train_part(first.key))));
        }
        accuracy.lines.push(line(format!("{name} (validation)"), false, points(&|e| e.val_accuracy)));
        accuracy.lines.push(line(format!("{name} (train)"), true, points(&|e| Some(e.train_accuracy))));
    }
    line_panels(&[loss, accuracy], max_epoch, "epoch")
}

/// A classification as it goes: the accuracy of the queries classified so far (solid) and of
/// each batch (dashed) against the number of queries classified; `points` are what the
/// classifier told after each batch. (Queries in class order make the batches' accuracy move
/// from class to class.)
pub fn query_accuracy_curve(name: &str, points: &[QueriesDone]) -> Result<Figure> {
    let Some(last) = points.last() else { return Err(Error::msg("query_accuracy_curve: no batch classified yet")) };
    let so_far = points.iter().filter(|p| p.classified > 0).map(|p| (p.classified as f64, p.correct as f64 / p.classified as f64)).collect();
    let mut previous = QueriesDone { classified: 0, correct: 0, queries: last.queries };
    let mut batches = vec![];
    for p in points {
        if p.classified > previous.classified {
            batches.push((p.classified as f64, (p.correct - previous.correct) as f64 / (p.classified - previous.classified) as f64));
        }
        previous = *p;
    }
    let panel = LinePanel {
        title: format!("{name}: {} of {} queries", last.classified, last.queries),
        y_desc: "accuracy".into(),
        y_max: 1.0,
        legend: LegendCorner::LowerRight,
        lines: vec![
            Line { label: "queries so far".into(), colour: 0, dashed: false, points: so_far },
            Line { label: "each batch".into(), colour: 0, dashed: true, points: batches },
        ],
    };
    line_panels(&[panel], last.queries as f64, "query images")
}

pub fn plot_comparison(path: &Path, comparison: &Comparison) -> Result<()> {
    comparison_figure(comparison)?.save(path)
}

/// A comparison as a dot plot: every run's test accuracy as a dot and each arm's mean ± 1 sd,
/// with the paired tests below.
pub fn comparison_figure(comparison: &Comparison) -> Result<Figure> {
    let caption = format!(
        "{} — {} folds × {} seeds (dots: runs; bars: mean ± 1 sd)",
        comparison.data.name,
        comparison.config.folds,
        comparison.config.seeds.len()
    );
    // An arm with no finished run has no dots and no mean: it is named below, not drawn.
    let groups: Vec<DotGroup> = comparison
        .summary
        .iter()
        .filter_map(|s| {
            Some(DotGroup {
                name: s.arm.clone(),
                values: comparison.runs.iter().filter(|r| r.arm == s.arm).map(|r| r.test_accuracy()).collect(),
                mean: s.test_accuracy.mean?,
                sd: s.test_accuracy.sd,
            })
        })
        .collect();
    let tests: Vec<String> = comparison
        .paired
        .iter()
        .map(|p| {
            let t = p.t_test.map_or("t: n/a".into(), |t| format!("paired t p = {:.3}", t.p));
            let w = p.wilcoxon.map_or("Wilcoxon: n/a".into(), |w| format!("Wilcoxon p = {:.3}", w.p));
            match p.mean_difference {
                Some(mean) => format!("{} − {}: {mean:+.4}, {t}, {w}", p.arm, p.baseline),
                None => format!("{} − {}: MISSING (no pair with both runs finished)", p.arm, p.baseline),
            }
        })
        .chain(comparison.summary.iter().filter(|s| s.test_accuracy.mean.is_none()).map(|s| format!("{}: MISSING, no finished run", s.arm)))
        .collect();
    dot_plot(&caption, "test accuracy", &groups, &tests)
}

/// Fig. 3: the mean energy `‖I(x, y)‖²` of each set of activations, one panel each.
pub fn plot_energy_maps(path: &Path, title: &str, sets: &[(&str, &Activations)]) -> Result<()> {
    let panels = energy_panels(sets)?;
    plot_heatmaps(path, title, &panels, panels.len().min(4))
}

/// The figure of [`plot_energy_maps`].
pub fn energy_maps(title: &str, sets: &[(&str, &Activations)]) -> Result<Figure> {
    let panels = energy_panels(sets)?;
    heatmaps(title, &panels, panels.len().min(4))
}

fn energy_panels(sets: &[(&str, &Activations)]) -> Result<Vec<HeatmapPanel>> {
    sets.iter()
        .map(|(name, acts)| {
            let energy = acts.energy_map();
            Ok(HeatmapPanel { title: (*name).to_owned(), grid: acts.grid(), values: Vec::<f64>::try_from(energy.flatten(0, -1))?, marker: None })
        })
        .collect()
}

/// Fig. 5: where the matched memory pixels lie, same-class and other-class, as fractions of all
/// matches.
pub fn plot_match_positions(path: &Path, title: &str, stats: &MatchStats) -> Result<()> {
    plot_heatmaps(path, title, &match_position_panels(stats), 2)
}

/// The figure of [`plot_match_positions`].
pub fn match_positions(title: &str, stats: &MatchStats) -> Result<Figure> {
    heatmaps(title, &match_position_panels(stats), 2)
}

fn match_position_panels(stats: &MatchStats) -> Vec<HeatmapPanel> {
    let total: f64 = stats.same.iter().chain(&stats.other).sum::<f64>().max(1.0);
    let share = |v: &[f64]| v.iter().map(|x| x / total).collect::<Vec<_>>();
    vec![
        HeatmapPanel { title: "same-class matches p(x, y)".into(), grid: stats.grid, values: share(&stats.same), marker: None },
        HeatmapPanel { title: "other-class matches p(x, y)".into(), grid: stats.grid, values: share(&stats.other), marker: None },
    ]
}

/// Fig. 6: for each chosen query cell, where its matches lie (same-class, other-class), each as
/// a distribution over the grid; the query cell is outlined.
pub fn plot_conditional_matches(path: &Path, title: &str, stats: &MatchStats) -> Result<()> {
    plot_heatmaps(path, title, &conditional_panels(stats), 2)
}

/// The figure of [`plot_conditional_matches`].
pub fn conditional_matches(title: &str, stats: &MatchStats) -> Result<Figure> {
    heatmaps(title, &conditional_panels(stats), 2)
}

fn conditional_panels(stats: &MatchStats) -> Vec<HeatmapPanel> {
    let normalise = |v: &[f64]| {
        let total = v.iter().sum::<f64>().max(1.0);
        v.iter().map(|x| x / total).collect::<Vec<_>>()
    };
    stats
        .conditional
        .iter()
        .flat_map(|c| {
            let (x, y) = c.cell;
            [
                HeatmapPanel { title: format!("query ({x},{y}): same class"), grid: stats.grid, values: normalise(&c.same), marker: Some(c.cell) },
                HeatmapPanel { title: format!("query ({x},{y}): other class"), grid: stats.grid, values: normalise(&c.other), marker: Some(c.cell) },
            ]
        })
        .collect()
}

/// The activation hue as seen by the memory: per class, the angles of same-class matches.
pub fn plot_match_angles(path: &Path, title: &str, stats: &MatchStats, class_names: &[String]) -> Result<()> {
    plot_polar(path, title, class_names, &stats.angle_histograms, Some(&stats.angle_cells))
}

/// The figure of [`plot_match_angles`].
pub fn match_angles(title: &str, stats: &MatchStats, class_names: &[String]) -> Result<Figure> {
    polar(title, class_names, &stats.angle_histograms, Some(&stats.angle_cells))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classification_so_far_is_drawn_and_needs_a_batch() {
        let done = |classified, correct| QueriesDone { classified, correct, queries: 100 };
        let figure = query_accuracy_curve("kernel", &[done(10, 9), done(20, 12), done(30, 22)]).unwrap();
        assert!(figure.png().starts_with(b"\x89PNG") && figure.size() == (700, 560));
        assert!(query_accuracy_curve("kernel", &[]).is_err());
    }
}
