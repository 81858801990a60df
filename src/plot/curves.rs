//! Loss and accuracy per epoch for one or more runs, side by side.
use std::path::Path;

use plotters::prelude::*;

use super::render::{plot_error, render, Figure, FONT};
use crate::error::{Error, Result};
use crate::train::TrainReport;

/// Left panel: training loss per epoch (solid), and for runs with a hue term its one-hot part
/// (dashed), since total losses of different objectives are not comparable. Right panel:
/// validation accuracy (solid) and training accuracy (dashed). One colour per run.
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
    render((1400, 560), |root| {
        let (left, right) = root.split_horizontally(700);
        let mut loss_chart = ChartBuilder::on(&left)
            .caption("training loss", (FONT, 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..max_epoch, 0.0..(max_loss * 1.05).max(1e-6))
            .map_err(plot_error)?;
        loss_chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("epoch")
            .y_desc("loss")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(plot_error)?;
        let mut acc_chart = ChartBuilder::on(&right)
            .caption("accuracy", (FONT, 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..max_epoch, 0.0..1.0)
            .map_err(plot_error)?;
        acc_chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("epoch")
            .y_desc("accuracy")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(plot_error)?;

        for (i, report) in reports.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let name = report.name().to_owned();
            let epoch_points = |value: &dyn Fn(&crate::train::EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
                report.epochs.iter().filter_map(|e| value(e).map(|v| (e.epoch as f64, v))).collect()
            };
            loss_chart
                .draw_series(LineSeries::new(epoch_points(&|e| Some(e.train_loss)), colour.stroke_width(3)))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
            if report.config.loss.hue_config().is_some() {
                loss_chart
                    .draw_series(DashedLineSeries::new(epoch_points(&|e| Some(e.train_onehot_loss)), 8, 5, colour.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(format!("{name} (one-hot part)"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(1)));
            }
            acc_chart
                .draw_series(LineSeries::new(epoch_points(&|e| e.val_accuracy), colour.stroke_width(3)))
                .map_err(plot_error)?
                .label(format!("{name} (validation)"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
            acc_chart
                .draw_series(DashedLineSeries::new(epoch_points(&|e| Some(e.train_accuracy)), 8, 5, colour.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("{name} (train)"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(1)));
        }
        for chart_legend in [
            loss_chart.configure_series_labels().position(SeriesLabelPosition::UpperRight),
            acc_chart.configure_series_labels().position(SeriesLabelPosition::LowerRight),
        ] {
            chart_legend
                .label_font((FONT, 15))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
        Ok(())
    })
}
