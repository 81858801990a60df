//! What a notebook shows for a script value: the script's handles translated to the library's
//! renderers (`notebook.rs`, `plot`), with a plain-text twin for every rich form; and what a
//! script shows besides its last value (`display`, `update_display`, `clear_output`).
use rhai::Dynamic;

use super::handles::{ActivationsHandle, ComparisonHandle, DatasetHandle, FigureHandle, KnnRunHandle, MemoryHandle, ReportHandle};
use crate::notebook;

/// A value's forms for display: always text, and HTML or a PNG where the value has one.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayData {
    pub plain: String,
    pub html: Option<String>,
    pub png: Option<Vec<u8>>,
}

impl DisplayData {
    /// Text only.
    pub fn plain_text(plain: String) -> Self {
        DisplayData { plain, html: None, png: None }
    }

    /// Whether it has a form beside its text (a figure, a table).
    pub fn is_rich(&self) -> bool {
        self.html.is_some() || self.png.is_some()
    }
}

/// The displays of a value shown on its own: an array whose every element is a figure or a
/// result with a rich form shows each of them in order (a cell ending in `[fig_a, fig_b]`
/// shows two figures, not a list of type names); anything else is one display, `()` none.
pub fn displays(value: &Dynamic) -> Vec<DisplayData> {
    if let Some(items) = value.read_lock::<rhai::Array>() {
        let each: Vec<DisplayData> = items.iter().filter_map(display).collect();
        if !items.is_empty() && each.len() == items.len() && each.iter().all(DisplayData::is_rich) {
            return each;
        }
    }
    display(value).into_iter().collect()
}

/// An output a script shows while it runs, besides its last value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A new output; `id` names it for later updates.
    Display { data: DisplayData, id: Option<String> },
    /// The output shown under `id` replaced.
    Update { data: DisplayData, id: String },
    /// The cell's outputs cleared: now, or (`wait`) when the next output arrives, so a loop
    /// that clears and redraws does not flicker.
    Clear { wait: bool },
}

/// Where a session's [`Shown`] outputs go: a notebook kernel sets one
/// ([`super::Repl::on_show`]); without one (`huelab run`), a display prints its text.
pub type ShowSink = Box<dyn Fn(Shown)>;

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
            return Some(DisplayData::plain_text("Comparison (results with the cluster's gather job)".into()));
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
    if let Some(activations) = value.clone().try_cast::<ActivationsHandle>() {
        return Some(DisplayData::plain_text(activations.0.summary()));
    }
    if value.is_string() {
        // Strings show as their text, not as a quoted literal.
        return Some(DisplayData::plain_text(value.to_string()));
    }
    if let Some(memory) = value.clone().try_cast::<MemoryHandle>() {
        let memory = memory.0.borrow();
        return Some(DisplayData::plain_text(format!("PixelMemory: {} images, {}", memory.images(), memory.describe())));
    }
    if value.is_array() || value.is_map() {
        return Some(DisplayData { plain: nested_text(value, 0), html: records_table(value), png: None });
    }
    Some(DisplayData::plain_text(if is_scalar(value) { format!("{value:?}") } else { super::script_type(value.type_name().rsplit("::").next().unwrap_or_default()) }))
}

/// Nesting shown before `…` stands for the rest (a script can nest arrays a million deep).
const MAX_SHOWN_DEPTH: usize = 16;

/// An array or map as Rhai writes it (`[1, "a"]`, `#{"k": 2.0}`), with each huelab value as it
/// shows on its own (`Figure (1400 × 560 px)`) instead of its Rust type.
fn nested_text(value: &Dynamic, depth: usize) -> String {
    if depth >= MAX_SHOWN_DEPTH {
        return "…".into();
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return format!("[{}]", items.iter().map(|item| nested_text(item, depth + 1)).collect::<Vec<_>>().join(", "));
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return format!("#{{{}}}", map.iter().map(|(k, v)| format!("{:?}: {}", k.as_str(), nested_text(v, depth + 1))).collect::<Vec<_>>().join(", "));
    }
    if is_scalar(value) || value.is_string() {
        return format!("{value:?}");
    }
    display(value).map_or_else(|| format!("{value:?}"), |d| d.plain)
}

/// Rows a records table shows; the rest are counted below it.
const MAX_TABLE_ROWS: usize = 500;

/// An array of maps (records: `datasets()`, a run's `epochs`, a comparison's `summary`) as an
/// HTML table: a column per key (each map's keys in order, new ones after those seen), a row per
/// map, an empty cell
/// where a map lacks the key. `None` for anything else.
fn records_table(value: &Dynamic) -> Option<String> {
    let items = value.read_lock::<rhai::Array>()?;
    let maps: Vec<_> = items.iter().map(|item| item.read_lock::<rhai::Map>()).collect::<Option<_>>()?;
    if maps.is_empty() {
        return None;
    }
    let mut columns: Vec<&str> = vec![];
    for map in &maps {
        for key in map.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key.as_str());
            }
        }
    }
    let cell = |v: &Dynamic| if v.is_string() { v.to_string() } else { nested_text(v, 1) };
    let rows: Vec<Vec<String>> = maps.iter().take(MAX_TABLE_ROWS).map(|map| columns.iter().map(|c| map.get(*c).map(cell).unwrap_or_default()).collect()).collect();
    let mut html = notebook::html_table(&columns, &rows);
    if maps.len() > MAX_TABLE_ROWS {
        html += &format!("<p>… {} more rows</p>", maps.len() - MAX_TABLE_ROWS);
    }
    Some(html)
}

/// Whether Rhai's own debug format shows the value well.
fn is_scalar(value: &Dynamic) -> bool {
    value.is_unit() || value.is_int() || value.is_float() || value.is_bool() || value.is_char()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, Dynamic)]) -> Dynamic {
        pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect::<rhai::Map>().into()
    }

    #[test]
    fn an_array_of_maps_shows_as_a_table_with_a_column_per_key() {
        let rows: rhai::Array = vec![
            record(&[("name", "digits".into()), ("images", Dynamic::from(1797_i64))]),
            record(&[("name", "a<b".into()), ("extra", Dynamic::from(true))]),
        ];
        let shown = display(&rows.into()).unwrap();
        let html = shown.html.unwrap();
        assert!(html.contains("<th>images</th><th>name</th><th>extra</th>"), "{html}");
        assert!(html.contains("<td>1797</td><td>digits</td><td></td>") && html.contains("<td></td><td>a&lt;b</td><td>true</td>"), "{html}");
        assert!(shown.plain.starts_with("[#{"), "{}", shown.plain);
        // Not records: no table.
        let mixed: rhai::Array = vec![record(&[("a", Dynamic::from(1_i64))]), Dynamic::from(2_i64)];
        assert_eq!(display(&mixed.into()).unwrap().html, None);
        assert_eq!(display(&rhai::Array::new().into()).unwrap().html, None);
    }

    #[test]
    fn a_long_array_of_maps_shows_its_first_rows() {
        let rows: rhai::Array = (0..MAX_TABLE_ROWS as i64 + 7).map(|i| record(&[("i", Dynamic::from(i))])).collect();
        let html = display(&rows.into()).unwrap().html.unwrap();
        assert_eq!(html.matches("<tr>").count(), MAX_TABLE_ROWS + 1);
        assert!(html.ends_with("<p>… 7 more rows</p>"), "{html}");
    }
}
