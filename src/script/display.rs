//! What a notebook shows for a script value: the script's handles translated to the library's
//! renderers (`notebook.rs`, `plot`), with a plain-text twin for every rich form.
use rhai::Dynamic;

use super::handles::{ComparisonHandle, DatasetHandle, FigureHandle, KnnRunHandle, ReportHandle};
use crate::notebook;

/// A value's forms for display: always text, and HTML or a PNG where the value has one.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayData {
    pub plain: String,
    pub html: Option<String>,
    pub png: Option<Vec<u8>>,
}

impl DisplayData {
    fn text(plain: String) -> Self {
        DisplayData { plain, html: None, png: None }
    }
}

/// The display of a cell's last value; `None` for `()` (nothing to show).
pub fn display(value: &Dynamic) -> Option<DisplayData> {
    if value.is_unit() {
        return None;
    }
    if let Some(figure) = value.clone().try_cast::<FigureHandle>() {
        let (w, h) = figure.0.size();
        return Some(DisplayData { plain: format!("Figure ({w} × {h} px)"), html: None, png: Some(figure.0.png().to_vec()) });
    }
    if let Some(report) = value.clone().try_cast::<ReportHandle>() {
        let r = &report.0;
        let test = r.test.map_or("no test part".to_owned(), |t| format!("test accuracy {:.4}", t.accuracy));
        let plain = format!("{}: {} epochs of {}, {test}", r.name(), r.epochs.len(), r.model.arch.name());
        return Some(DisplayData { plain, html: Some(notebook::runs_table(&[report.0.as_ref()]).0), png: None });
    }
    if let Some(comparison) = value.clone().try_cast::<ComparisonHandle>() {
        if comparison.1 {
            return Some(DisplayData::text("Comparison (results with the cluster's gather job)".into()));
        }
        return Some(DisplayData { plain: comparison.0.table(), html: Some(notebook::comparison_html(&comparison.0)), png: None });
    }
    if let Some(run) = value.clone().try_cast::<KnnRunHandle>() {
        let plain = format!("{}: accuracy {:.4} on {} query images (K = {})", run.0.name, run.0.accuracy, run.0.query_images, run.0.config.k);
        return Some(DisplayData { plain, html: Some(notebook::knn_run_html(&run.0)), png: None });
    }
    if let Some(data) = value.clone().try_cast::<DatasetHandle>() {
        let [c, h, w] = data.0.image_shape();
        let plain = format!("{}: {} images of {c} × {h} × {w}, {} classes", data.0.name(), data.0.len(), data.0.class_names().len());
        return Some(DisplayData { plain, html: Some(notebook::dataset_html(&data.0)), png: None });
    }
    if value.is_string() {
        // Strings show as their text, not as a quoted literal.
        return Some(DisplayData::text(value.to_string()));
    }
    let plain_value = value.is_int() || value.is_float() || value.is_bool() || value.is_char() || value.is_array() || value.is_map();
    Some(DisplayData::text(if plain_value { format!("{value:?}") } else { super::script_type(value.type_name().rsplit("::").next().unwrap_or_default()) }))
}
