use rhai::plugin::*;

/// Figures as values: every `plot_*` function without its `path` argument returns the figure
/// instead of writing it, and a notebook shows a cell's figure inline (`huelab kernel`).
#[export_module]
pub mod figures_api {
    use std::path::Path;

    use rhai::{Array, Dynamic};

    use crate::activations::Activations as LibraryActivations;
    use crate::script::errors::{guarded, to_rhai, RhaiResult};
    use crate::script::handles::{handles_of, ActivationsHandle, ComparisonHandle, DatasetHandle, FigureHandle, KnnRunHandle, ReportHandle};
    use crate::script::session::ScriptSession;
    use crate::{notebook, plot, results};

    use super::super::knn::{bars_input, stats_of};

    pub type Figure = FigureHandle;

    /// Training loss and accuracy per epoch of every run, as a figure (shown inline in a notebook).
    /// ```rhai
    /// plot_training_curves([a, b])
    /// ```
    #[rhai_fn(name = "plot_training_curves", return_raw)]
    pub fn training_curves(runs: Array) -> RhaiResult<Figure> {
        let reports: Vec<ReportHandle> = handles_of(&runs, "runs", "TrainReport (from train)")?;
        let refs: Vec<_> = reports.iter().map(|r| r.0.as_ref()).collect();
        guarded("plot_training_curves", || results::training_curves(&refs).map(FigureHandle::new))
    }

    /// Test accuracy of every arm per fold × seed, with the paired differences, as a figure.
    /// ```rhai
    /// plot_comparison(c)
    /// ```
    #[rhai_fn(name = "plot_comparison", return_raw)]
    pub fn comparison(c: ComparisonHandle) -> RhaiResult<Figure> {
        if c.1 {
            return Err(to_rhai("plot_comparison: the comparison's results are with the cluster's gather job"));
        }
        guarded("plot_comparison", || results::comparison_figure(&c.0).map(FigureHandle::new))
    }

    /// Fig. 3 as a figure: the mean energy ‖I(x, y)‖² of each set of activations.
    #[rhai_fn(name = "plot_energy", return_raw)]
    pub fn energy(title: &str, sets: Array, names: Array) -> RhaiResult<Figure> {
        let sets: Vec<ActivationsHandle> = handles_of(&sets, "sets", "Activations")?;
        let names: Vec<String> = names.into_iter().map(|n| n.to_string()).collect();
        if names.len() != sets.len() {
            return Err(to_rhai(format!("plot_energy: {} sets but {} names", sets.len(), names.len())));
        }
        let pairs: Vec<(&str, &LibraryActivations)> = names.iter().map(String::as_str).zip(sets.iter().map(|s| s.0.as_ref())).collect();
        guarded("plot_energy", || results::energy_maps(title, &pairs).map(FigureHandle::new))
    }

    /// Fig. 5 as a figure: where matched memory pixels lie (needs `observe`).
    #[rhai_fn(name = "plot_match_positions", return_raw)]
    pub fn match_positions(run: KnnRunHandle) -> RhaiResult<Figure> {
        let stats = stats_of(&run, "plot_match_positions")?;
        guarded("plot_match_positions", || {
            results::match_positions(&format!("{}: match positions (K = {})", run.0.name, run.0.config.k), &stats).map(FigureHandle::new)
        })
    }

    /// Fig. 6 as a figure: matches of query pixels at the chosen cells.
    #[rhai_fn(name = "plot_conditional_matches", return_raw)]
    pub fn conditional_matches(run: KnnRunHandle) -> RhaiResult<Figure> {
        let stats = stats_of(&run, "plot_conditional_matches")?;
        if stats.conditional.is_empty() {
            return Err(to_rhai("plot_conditional_matches: observe had no cells"));
        }
        guarded("plot_conditional_matches", || results::conditional_matches(&format!("{}: p(x, y | query cell)", run.0.name), &stats).map(FigureHandle::new))
    }

    /// The angles of same-class matches per class as a polar figure (needs `observe`).
    #[rhai_fn(name = "plot_match_angles", return_raw)]
    pub fn match_angles(run: KnnRunHandle) -> RhaiResult<Figure> {
        let stats = stats_of(&run, "plot_match_angles")?;
        guarded("plot_match_angles", || {
            results::match_angles(&format!("{}: angle of same-class matches (share / chance share)", run.0.name), &stats, &run.0.predictions.class_names)
                .map(FigureHandle::new)
        })
    }

    /// Grouped bars `values[g][s]` as a figure (spread of the same shape, or `()`).
    #[rhai_fn(name = "plot_bars", return_raw)]
    pub fn bars(title: &str, groups: Array, series: Array, values: Array, spread: Dynamic, y_desc: &str) -> RhaiResult<Figure> {
        let (groups, series, values, spread) = bars_input(groups, series, values, spread)?;
        guarded("plot_bars", || plot::grouped_bars(title, (&groups, &series), &values, spread.as_deref(), y_desc).map(FigureHandle::new))
    }

    /// The images at `indices` side by side with their class names, as a figure.
    /// ```rhai
    /// image_grid(data, [0, 1, 2, 3])
    /// ```
    #[rhai_fn(return_raw)]
    pub fn image_grid(data: DatasetHandle, indices: Array) -> RhaiResult<Figure> {
        let indices = indices
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.as_int().map_err(|t| to_rhai(format!("image_grid: indices[{i}] must be an int, got {t}"))))
            .collect::<RhaiResult<Vec<i64>>>()?;
        guarded("image_grid", || notebook::image_grid(&data.0, &indices).map(FigureHandle::new))
    }

    /// Writes the figure as a PNG.
    /// ```rhai
    /// plot_training_curves([a]).save("runs/curves.png");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn save(ctx: NativeCallContext, figure: &mut Figure, path: &str) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        guarded("save", || figure.0.save(Path::new(path)))
    }

    /// Width of the figure in pixels.
    #[rhai_fn(get = "width", pure)]
    pub fn width(figure: &mut Figure) -> i64 {
        figure.0.size().0 as i64
    }

    /// Height of the figure in pixels.
    #[rhai_fn(get = "height", pure)]
    pub fn height(figure: &mut Figure) -> i64 {
        figure.0.size().1 as i64
    }

    /// The figure as text: its size in pixels.
    #[rhai_fn(name = "to_string", pure)]
    pub fn describe(figure: &mut Figure) -> String {
        let (w, h) = figure.0.size();
        format!("Figure ({w} × {h} px)")
    }
}
