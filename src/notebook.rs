//! Inline display in evcxr Jupyter notebooks: evcxr calls a value's `evcxr_display` method,
//! which prints a MIME block (`EVCXR_BEGIN_CONTENT <mime>` … `EVCXR_END_CONTENT`). Figures show
//! as PNG ([`crate::plot::Figure`]); comparisons, training reports and kNN runs as HTML tables;
//! [`image_grid`] shows images of a data set.
use base64::Engine;

use crate::compare::Comparison;
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::knn::KnnRun;
use crate::plot::Figure;
use crate::train::TrainReport;

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One evcxr display block.
pub fn mime_block(mime: &str, content: &str) -> String {
    format!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An HTML table from a header and rows (cells are escaped).
pub fn html_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table><thead><tr>");
    for h in header {
        html.push_str(&format!("<th>{}</th>", escape(h)));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            html.push_str(&format!("<td>{}</td>", escape(cell)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.4}"))
}

impl Figure {
    /// evcxr's display protocol: the PNG inline in a Jupyter notebook.
    pub fn evcxr_display(&self) {
        println!("{}", mime_block("image/png", &base64(self.png())));
    }
}

/// Per arm: mean ± sd of test accuracy; per paired arm: the difference and both tests.
pub fn comparison_html(comparison: &Comparison) -> String {
    let rows: Vec<Vec<String>> = comparison
        .summary
        .iter()
        .map(|s| {
            let paired = comparison.paired.iter().find(|p| p.arm == s.arm);
            vec![
                s.arm.clone(),
                s.test_accuracy.mean.map_or("MISSING (no finished run)".into(), |mean| format!("{mean:.4} ± {}", fmt(s.test_accuracy.sd))),
                paired.map_or("baseline".into(), |p| p.mean_difference.map_or("MISSING".into(), |d| format!("{d:+.4}"))),
                fmt(paired.and_then(|p| p.t_test.map(|t| t.p))),
                fmt(paired.and_then(|p| p.wilcoxon.map(|w| w.p))),
            ]
        })
        .collect();
    let mut caption = format!("<p>{} — {} folds × {} seeds</p>", escape(&comparison.data.name), comparison.config.folds, comparison.config.seeds.len());
    if comparison.interrupted {
        let finished = comparison.runs.len();
        caption += &format!("<p><b>Interrupted</b> after {finished} of {} units: statistics over the finished ones.</p>", finished + comparison.missing.len());
    }
    if let Some(first) = comparison.missing.first() {
        caption += &format!("<p>{} unit(s) missing, first: {} fold {} seed {}: {}</p>", comparison.missing.len(), escape(&first.arm), first.fold, first.seed, escape(&first.reason));
    }
    let table = html_table(&["arm", "test accuracy", "Δ vs baseline", "paired t p", "Wilcoxon p"], &rows);
    format!("{caption}{table}")
}

/// A kNN run as a one-row table.
pub fn knn_run_html(run: &KnnRun) -> String {
    let row = vec![run.name.clone(), run.memory.clone(), run.query_images.to_string(), run.config.k.to_string(), format!("{:.4}", run.accuracy), format!("{:.2}", run.seconds)];
    html_table(&["run", "memory", "queries", "K", "accuracy", "seconds"], &[row])
}

/// A data set's name, size, image shape and classes as a one-row table.
pub fn dataset_html(data: &ImageDataset) -> String {
    let [c, h, w] = data.image_shape();
    let names = data.class_names();
    let shown = if names.len() > 12 { format!("{}, … ({} more)", names[..12].join(", "), names.len() - 12) } else { names.join(", ") };
    let row = vec![data.name().to_owned(), data.len().to_string(), format!("{c} × {h} × {w}"), names.len().to_string(), shown];
    html_table(&["data set", "images", "shape", "classes", "class names"], &[row])
}

impl Comparison {
    /// Per arm: mean ± sd of test accuracy; per paired arm: the difference and both tests.
    pub fn evcxr_display(&self) {
        println!("{}", mime_block("text/html", &comparison_html(self)));
    }
}

/// HTML shown inline by evcxr (one display per cell output: put several runs in one table).
#[derive(Debug, Clone, PartialEq)]
pub struct Html(pub String);

impl Html {
    pub fn evcxr_display(&self) {
        println!("{}", mime_block("text/html", &self.0));
    }
}

/// One row per run: last epoch and test metrics.
pub fn runs_table(reports: &[&TrainReport]) -> Html {
    let header = ["run", "model", "epochs", "last train loss", "last val acc", "test acc", "test hue acc", "seconds"];
    Html(html_table(&header, &reports.iter().map(|r| r.table_row()).collect::<Vec<_>>()))
}

impl TrainReport {
    /// The run's last epoch and test metrics as a one-row table.
    pub fn evcxr_display(&self) {
        runs_table(&[self]).evcxr_display()
    }

    fn table_row(&self) -> Vec<String> {
        let last = self.epochs.last();
        vec![
            self.name().to_owned(),
            self.model.arch.name().to_owned(),
            self.epochs.len().to_string(),
            fmt(last.map(|e| e.train_loss)),
            fmt(last.and_then(|e| e.val_accuracy)),
            fmt(self.test.map(|t| t.accuracy)),
            fmt(self.test.map(|t| t.hue_accuracy)),
            format!("{:.1}", self.wall_seconds),
        ]
    }
}

impl KnnRun {
    pub fn evcxr_display(&self) {
        println!("{}", mime_block("text/html", &knn_run_html(self)));
    }
}

/// The images at `indices` of `data` side by side (each scaled up to at least 96 px), with
/// their class names under them, as one figure.
pub fn image_grid(data: &ImageDataset, indices: &[i64]) -> Result<Figure> {
    use plotters::prelude::*;
    if indices.is_empty() {
        return Err(Error::msg("image_grid: no images asked for"));
    }
    if let Some(bad) = indices.iter().find(|&&i| i < 0 || i as usize >= data.len()) {
        return Err(Error::msg(format!("image_grid: index {bad} is out of range for {} images", data.len())));
    }
    let [channels, h, w] = data.image_shape();
    let scale = (96 / h.max(w)).max(1) as u32;
    let (cell_w, cell_h) = (w as u32 * scale + 10, h as u32 * scale + 30);
    let columns = indices.len().min(8) as u32;
    let rows = (indices.len() as u32).div_ceil(columns);
    let (images, _) = data.select(indices)?;
    let pixels: Vec<f32> = Vec::try_from(images.flatten(0, -1))?;
    let per_image = (channels * h * w) as usize;
    crate::plot::render_with((columns * cell_w, rows * cell_h), |root| {
        for (k, &index) in indices.iter().enumerate() {
            let (col, row) = (k as u32 % columns, k as u32 / columns);
            let (x0, y0) = ((col * cell_w + 5) as i32, (row * cell_h + 5) as i32);
            let image = &pixels[k * per_image..(k + 1) * per_image];
            for y in 0..h {
                for x in 0..w {
                    let value = |c: i64| (image[(c * h * w + y * w + x) as usize].clamp(0.0, 1.0) * 255.0) as u8;
                    let colour = if channels >= 3 { RGBColor(value(0), value(1), value(2)) } else { RGBColor(value(0), value(0), value(0)) };
                    let (px, py) = (x0 + (x as u32 * scale) as i32, y0 + (y as u32 * scale) as i32);
                    root.draw(&Rectangle::new([(px, py), (px + scale as i32, py + scale as i32)], colour.filled()))
                        .map_err(crate::plot::plot_error)?;
                }
            }
            let label = &data.class_names()[data.labels()[index as usize] as usize];
            root.draw(&Text::new(label.clone(), (x0, y0 + (h as u32 * scale) as i32 + 4), (crate::plot::FONT, 13).into_font()))
                .map_err(crate::plot::plot_error)?;
        }
        Ok(())
    })
}
