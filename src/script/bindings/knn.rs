use rhai::plugin::*;

#[export_module]
pub mod knn_api {
    use std::cell::RefCell;
    use std::path::Path;
    use std::rc::Rc;

    use rhai::{Array, Dynamic, Map};

    use crate::activations::Activations as LibraryActivations;
    use crate::extract::Extractor as LibraryExtractor;
    use crate::knn::{run_knn_until_stopped, PixelMemory};
    use crate::results::{write_match_summary_csv, write_predictions_csv as library_write_predictions_csv};
    use crate::results::{write_manifest_of, ManifestBody};
    use crate::{plot, results};
    use crate::extract::ExtractorOptions;
    use crate::script::configs::{activation_options, classify_config, extractor_options, memory_config};
    use crate::script::errors::{guarded, to_rhai, RhaiResult};
    use crate::script::handles::{handles_of, ActivationsHandle, DatasetHandle, ExtractorHandle, KnnRunHandle, MemoryHandle, SplitHandle};
    // Named as scripts know it (the type is registered by the train bindings).
    use crate::script::handles::ReportHandle as TrainReport;
    use crate::script::live::QueryWatch;
    use crate::script::session::{LastRun, ScriptSession};

    use super::stats_of;

    pub type Extractor = ExtractorHandle;
    pub type Activations = ActivationsHandle;
    pub type PixelMemoryHandle = MemoryHandle;
    pub type KnnRun = KnnRunHandle;

    /// An ImageNet-pretrained network to take activations from: `"efficientnet_lite0"` (bundled
    /// weights) … `"efficientnet_lite4"`, or torchvision's `"resnet18"`, `"resnet34"`,
    /// `"densenet121"`, `"densenet201"`, `"vgg16"`, `"vgg16_bn"`, `"efficientnet_b0"` with their
    /// published weights (`weights`: the `.pth` of torch.save, zip or legacy format, or
    /// `.safetensors`; torchvision's preprocessing).
    /// ```rhai
    /// let net = pretrained("efficientnet_lite0", #{ layer: "bottleneck", size: 224 });
    /// let dense = pretrained("densenet201", #{ weights: "densenet201-c1103571.pth" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pretrained(ctx: NativeCallContext, name: &str, options: Map) -> RhaiResult<Extractor> {
        let o = extractor_options(options, "pretrained options", ExtractorOptions::PRETRAINED_OPTIONS).map_err(to_rhai)?;
        if let Some(weights) = &o.weights {
            ScriptSession::checked(&ctx, weights, "weights")?;
        }
        guarded("pretrained", || {
            let e = LibraryExtractor::pretrained(name, o.weights.as_deref().map(Path::new), &o.layer, o.size, o.device)?;
            Ok(ExtractorHandle(Rc::new(e)))
        })
    }

    /// The model a `train` run with a `checkpoint` directory saved there when it finished, cut
    /// after a layer.
    /// ```rhai
    /// let net = trained_model("runs/desc/ckpt-resnet", #{});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn trained_model(ctx: NativeCallContext, dir: &str, options: Map) -> RhaiResult<Extractor> {
        ScriptSession::checked(&ctx, dir, "dir")?;
        guarded("trained_model", || {
            let o = extractor_options(options, "trained_model options", ExtractorOptions::TRAINED_OPTIONS)?;
            Ok(ExtractorHandle(Rc::new(LibraryExtractor::trained(Path::new(dir), &o.layer, o.device)?)))
        })
    }

    /// The model of a `train` run of this session, in memory (finished, or as far as it got
    /// when interrupted: `trained_model(last_run(), #{})`), cut after a layer. A session keeps
    /// the latest run's model only; a run with a `checkpoint` directory keeps its model there.
    /// ```rhai
    /// let r = train(data, parts, #{ epochs: 5 });
    /// let net = trained_model(r, #{ layer: "bottleneck" });
    /// ```
    #[rhai_fn(name = "trained_model", return_raw)]
    pub fn trained_model_of_run(ctx: NativeCallContext, run: TrainReport, options: Map) -> RhaiResult<Extractor> {
        let session = ScriptSession::of(&ctx);
        guarded("trained_model", || {
            let o = extractor_options(options, "trained_model options", ExtractorOptions::TRAINED_OPTIONS)?;
            let model = session.model_of(&run.0).ok_or_else(|| {
                crate::Error::msg(format!(
                    "the model of run '{}' is not in memory: a session keeps only its latest train run's model (a run with a checkpoint directory keeps it there: trained_model(dir, #{{}}))",
                    run.0.name()
                ))
            })?;
            Ok(ExtractorHandle(Rc::new(LibraryExtractor::trained_in_memory(&model, &o.layer, o.device)?)))
        })
    }

    /// A TorchScript module (`torch.jit.trace` of a network cut at the wanted layer) returning
    /// `[B, C, H, W]` for `[0, 1]` images.
    /// ```rhai
    /// let net = torchscript("resnet50_layer4.pt", #{ size: 224 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn torchscript(ctx: NativeCallContext, path: &str, options: Map) -> RhaiResult<Extractor> {
        ScriptSession::checked(&ctx, path, "path")?;
        guarded("torchscript", || {
            let o = extractor_options(options, "torchscript options", ExtractorOptions::TORCHSCRIPT_OPTIONS)?;
            Ok(ExtractorHandle(Rc::new(LibraryExtractor::torchscript(Path::new(path), o.size, o.device)?)))
        })
    }

    /// The top `k` ImageNet classes of an image file under a pretrained network, as maps
    /// `#{ index, name, probability }` (what `huelab predict` prints).
    /// ```rhai
    /// let top = imagenet_top(pretrained("efficientnet_lite0", #{}), "photo.png", 5);
    /// print(top[0].name);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn imagenet_top(ctx: NativeCallContext, net: Extractor, image: &str, k: i64) -> RhaiResult<Array> {
        let path = ScriptSession::checked(&ctx, image, "image")?;
        guarded("imagenet_top", || net.0.imagenet_top(&path, k))?.iter().map(rhai::serde::to_dynamic).collect()
    }

    #[rhai_fn(get = "description", pure)]
    pub fn extractor_description(e: &mut Extractor) -> String {
        e.0.describe()
    }

    /// The activation maps of every image of `data`.
    /// ```rhai
    /// let acts = activations(net, dataset("textures"), #{ batch_size: 32 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn activations(extractor: Extractor, data: DatasetHandle, options: Map) -> RhaiResult<Activations> {
        guarded("activations", || Ok(ActivationsHandle(Rc::new(extractor.0.extract(&data.0, activation_options(options)?)?))))
    }

    /// Activation maps saved as `.npy`: float32 `[N, C, H, W]` and int64 labels `[N]`.
    /// ```rhai
    /// let acts = load_activations("maps.npy", "labels.npy");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_activations(ctx: NativeCallContext, maps: &str, labels: &str) -> RhaiResult<Activations> {
        ScriptSession::checked(&ctx, maps, "maps")?;
        ScriptSession::checked(&ctx, labels, "labels")?;
        guarded("load_activations", || Ok(ActivationsHandle(Rc::new(LibraryActivations::load_npy(Path::new(maps), Path::new(labels), None)?))))
    }

    /// Writes the maps (float32 `[N, C, H, W]`) and labels (int64) as `.npy`, atomically.
    /// ```rhai
    /// acts.save_npy("runs/x/maps.npy", "runs/x/labels.npy");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn save_npy(ctx: NativeCallContext, acts: &mut Activations, maps: &str, labels: &str) -> RhaiResult<()> {
        // `&`, not `&&`: both paths are checked against the file access.
        if !(ScriptSession::writes(&ctx, maps, "maps")? & ScriptSession::writes(&ctx, labels, "labels")?) {
            return Ok(());
        }
        guarded("save_npy", || acts.0.save_npy(Path::new(maps), Path::new(labels)))
    }

    /// The activations of one part of a split of the same data set: "train", "val" or "test".
    /// ```rhai
    /// let memory_acts = acts.part(parts, "train");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn part(acts: &mut Activations, split: SplitHandle, which: &str) -> RhaiResult<Activations> {
        let indices = match which {
            "train" => &split.0.train,
            "val" => &split.0.val,
            "test" => &split.0.test,
            _ => return Err(to_rhai(format!("part: expected \"train\", \"val\" or \"test\", got \"{which}\""))),
        };
        guarded("part", || Ok(ActivationsHandle(Rc::new(acts.0.select(indices)?))))
    }

    #[rhai_fn(get = "len", pure)]
    pub fn acts_len(acts: &mut Activations) -> i64 {
        acts.0.len() as i64
    }

    #[rhai_fn(get = "channels", pure)]
    pub fn acts_channels(acts: &mut Activations) -> i64 {
        acts.0.channels()
    }

    /// `[height, width]` of the activation grid.
    #[rhai_fn(get = "grid", pure)]
    pub fn acts_grid(acts: &mut Activations) -> Array {
        let (h, w) = acts.0.grid();
        vec![h.into(), w.into()]
    }

    #[rhai_fn(get = "source", pure)]
    pub fn acts_source(acts: &mut Activations) -> String {
        acts.0.source().to_owned()
    }

    /// A memory of every image's vectors with class, image id and position.
    /// ```rhai
    /// let memory = pixel_memory(acts, #{ descriptor: "pixel", index: "Flat" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pixel_memory(acts: Activations, options: Map) -> RhaiResult<PixelMemoryHandle> {
        guarded("pixel_memory", || {
            let (config, device) = memory_config(options)?;
            Ok(MemoryHandle(Rc::new(RefCell::new(PixelMemory::build(&acts.0, &config, device)?))))
        })
    }

    /// The same memory as `pixel_memory(activations(net, data, #{}), options)`, but extracted
    /// and added `add_batch` images at a time, so the activations of a large data set are never
    /// all in memory at once (IVF/PQ/PCA train on a seeded sample extracted first).
    /// ```rhai
    /// let memory = pixel_memory_of(net, dataset("fashion_mnist"), #{ index: "IVF1024,PQ16", add_batch: 512 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pixel_memory_of(ctx: NativeCallContext, net: Extractor, data: DatasetHandle, options: Map) -> RhaiResult<PixelMemoryHandle> {
        let session = ScriptSession::of(&ctx);
        guarded("pixel_memory_of", || {
            let (config, device) = memory_config(options)?;
            let (memory, interrupted) = PixelMemory::build_streaming_until_stopped(net.0.as_ref(), &data.0, &config, device)?;
            let images = memory.images();
            let memory = MemoryHandle(Rc::new(RefCell::new(memory)));
            session.remember(LastRun::Memory(memory.clone()));
            if interrupted {
                return Err(crate::Error::msg(format!(
                    "interrupted after adding {images} of {} images; last_run() returns the memory of those (the data set's first {images}: add the rest with add)",
                    data.0.len()
                )));
            }
            Ok(memory)
        })
    }

    /// Adds more images (same layer and classes) to the memory. Interrupted, the memory keeps
    /// the images of the batches added before the stop (the first ones of `acts`).
    #[rhai_fn(name = "add", return_raw)]
    pub fn memory_add(ctx: NativeCallContext, memory: &mut PixelMemoryHandle, acts: Activations) -> RhaiResult<()> {
        let session = ScriptSession::of(&ctx);
        guarded("add", || {
            let before = memory.0.borrow().images();
            let added = memory.0.borrow_mut().add(&acts.0);
            session.remember(LastRun::Memory(memory.clone()));
            match added {
                Err(crate::Error::Interrupted) => Err(crate::Error::msg(format!(
                    "interrupted after adding {} of {} images; the memory holds those (the first ones of the activations), last_run() returns it",
                    memory.0.borrow().images() - before,
                    acts.0.len()
                ))),
                other => other,
            }
        })
    }

    /// Saves the memory (index, entries.npy, memory.json) into a directory.
    #[rhai_fn(name = "save", return_raw)]
    pub fn memory_save(ctx: NativeCallContext, memory: &mut PixelMemoryHandle, dir: &str) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, dir, "dir")? {
            return Ok(());
        }
        guarded("save", || memory.0.borrow_mut().save(Path::new(dir)))
    }

    /// A memory saved with `save`.
    /// ```rhai
    /// let memory = load_memory("runs/obs/memory", #{});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_memory(ctx: NativeCallContext, dir: &str, options: Map) -> RhaiResult<PixelMemoryHandle> {
        ScriptSession::checked(&ctx, dir, "dir")?;
        guarded("load_memory", || {
            let o = extractor_options(options, "load_memory options", ExtractorOptions::MEMORY_OPTIONS)?;
            Ok(MemoryHandle(Rc::new(RefCell::new(PixelMemory::load(Path::new(dir), o.device)?))))
        })
    }

    #[rhai_fn(get = "len", pure)]
    pub fn memory_len(memory: &mut PixelMemoryHandle) -> i64 {
        memory.0.borrow().len() as i64
    }

    #[rhai_fn(get = "description", pure)]
    pub fn memory_description(memory: &mut PixelMemoryHandle) -> String {
        memory.0.borrow().describe()
    }

    /// Classifies every query image by its K nearest memory vectors (Eq. 1–3, or a majority
    /// vote). In a notebook, the accuracy of the queries so far shows as a figure updated in
    /// place (`live: false`: none).
    /// ```rhai
    /// let run = knn_classify(memory, queries, #{ k: 10, observe: #{ cells: [[3, 3], [0, 3]] } });
    /// print(run.accuracy);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn knn_classify(ctx: NativeCallContext, memory: PixelMemoryHandle, queries: Activations, options: Map) -> RhaiResult<KnnRun> {
        let session = ScriptSession::of(&ctx);
        guarded("knn_classify", || {
            let (name, config) = classify_config(options)?;
            let mut watch = QueryWatch::new(session.clone(), config.live, &name);
            let run = run_knn_until_stopped(&name, &mut memory.0.borrow_mut(), &queries.0, &config, Some(&mut |done| watch.batch(done)));
            watch.end();
            let run = Rc::new(run?);
            session.remember(LastRun::Knn(run.clone()));
            if run.interrupted {
                return Err(crate::Error::msg(format!(
                    "interrupted after {} of {} queries; last_run() returns the run of those (the first ones: its accuracy is theirs)",
                    run.query_images,
                    queries.0.len()
                )));
            }
            Ok(KnnRunHandle(run))
        })
    }

    /// Whether an interrupt stopped it: `predicted` and `accuracy` are then those of the first
    /// queries only.
    #[rhai_fn(get = "interrupted", pure)]
    pub fn run_interrupted(run: &mut KnnRun) -> bool {
        run.0.interrupted
    }

    #[rhai_fn(get = "accuracy", pure)]
    pub fn run_accuracy(run: &mut KnnRun) -> f64 {
        run.0.accuracy
    }

    #[rhai_fn(get = "name", pure)]
    pub fn run_name(run: &mut KnnRun) -> String {
        run.0.name.clone()
    }

    #[rhai_fn(get = "seconds", pure)]
    pub fn run_seconds(run: &mut KnnRun) -> f64 {
        run.0.seconds
    }

    /// The predicted class index of every query image.
    #[rhai_fn(get = "predicted", pure)]
    pub fn run_predicted(run: &mut KnnRun) -> Array {
        run.0.predictions.predicted.iter().map(|&p| Dynamic::from(p)).collect()
    }

    /// The true class index of every query image.
    #[rhai_fn(get = "truth", pure)]
    pub fn run_truth(run: &mut KnnRun) -> Array {
        run.0.predictions.truth.iter().map(|&p| Dynamic::from(p)).collect()
    }

    /// Per query image, the score of every class (Eq. 2, or vote counts).
    #[rhai_fn(get = "scores", pure)]
    pub fn run_scores(run: &mut KnnRun) -> Array {
        run.0.predictions.scores.iter().map(|row| Dynamic::from(row.iter().map(|&s| Dynamic::from(s)).collect::<Array>())).collect()
    }

    /// The class labels of the activation maps.
    #[rhai_fn(get = "labels", pure)]
    pub fn acts_labels(acts: &mut Activations) -> Array {
        acts.0.labels().iter().map(|&l| Dynamic::from(l)).collect()
    }

    /// One row per query image: truth, prediction and every class's score.
    #[rhai_fn(return_raw)]
    pub fn write_predictions_csv(ctx: NativeCallContext, path: &str, run: KnnRun) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        guarded("write_predictions_csv", || library_write_predictions_csv(Path::new(path), &run.0))
    }

    /// A JSON manifest of memory classifications: versions, the script and its arguments, and
    /// per run the memory and classifier settings, data sources and sizes, accuracy and time.
    #[rhai_fn(return_raw)]
    pub fn write_knn_manifest(ctx: NativeCallContext, path: &str, runs: Array) -> RhaiResult<()> {
        let runs: Vec<KnnRunHandle> = handles_of(&runs, "runs", "KnnRun (from knn_classify)")?;
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let session = ScriptSession::of(&ctx);
        guarded("write_knn_manifest", || {
            write_manifest_of(Path::new(path), Some(&session.script), ManifestBody::Knn(runs.iter().map(|r| r.0.as_ref()).collect()))
        })
    }

    /// Fig. 3: the mean energy ‖I(x, y)‖² of each set of activations, one panel per set, with
    /// the numbers in a CSV beside the PNG.
    /// ```rhai
    /// plot_energy("runs/obs/fig3_energy.png", "energy", [a, b], ["textures", "photos"]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn plot_energy(ctx: NativeCallContext, path: &str, title: &str, sets: Array, names: Array) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let sets: Vec<ActivationsHandle> = handles_of(&sets, "sets", "Activations")?;
        let names: Vec<String> = names.into_iter().map(|n| n.to_string()).collect();
        if names.len() != sets.len() {
            return Err(to_rhai(format!("plot_energy: {} sets but {} names", sets.len(), names.len())));
        }
        let pairs: Vec<(&str, &LibraryActivations)> = names.iter().map(String::as_str).zip(sets.iter().map(|s| s.0.as_ref())).collect();
        guarded("plot_energy", || results::plot_energy_maps(Path::new(path), title, &pairs))
    }

    /// Fig. 5: where matched memory pixels lie, same-class vs other-class (needs `observe`).
    /// Also writes `<name>.csv` and `<name>_summary.csv` (same-class share, mean radii, spreads).
    #[rhai_fn(return_raw)]
    pub fn plot_match_positions(ctx: NativeCallContext, path: &str, run: KnnRun) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let stats = stats_of(&run, "plot_match_positions")?;
        guarded("plot_match_positions", || {
            let path = Path::new(path);
            results::plot_match_positions(path, &format!("{}: match positions (K = {})", run.0.name, run.0.config.k), &stats)?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            write_match_summary_csv(&path.with_file_name(format!("{stem}_summary.csv")), &stats)
        })
    }

    /// Fig. 6: matches of query pixels at the chosen cells (needs `observe` with `cells`).
    #[rhai_fn(return_raw)]
    pub fn plot_conditional_matches(ctx: NativeCallContext, path: &str, run: KnnRun) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let stats = stats_of(&run, "plot_conditional_matches")?;
        if stats.conditional.is_empty() {
            return Err(to_rhai("plot_conditional_matches: observe had no cells"));
        }
        guarded("plot_conditional_matches", || results::plot_conditional_matches(Path::new(path), &format!("{}: p(x, y | query cell)", run.0.name), &stats))
    }

    /// A polar plot of the angles of same-class matches per class (needs `observe`).
    #[rhai_fn(return_raw)]
    pub fn plot_match_angles(ctx: NativeCallContext, path: &str, run: KnnRun) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let stats = stats_of(&run, "plot_match_angles")?;
        guarded("plot_match_angles", || {
            results::plot_match_angles(Path::new(path), &format!("{}: angle of same-class matches (share / chance share)", run.0.name), &stats, &run.0.predictions.class_names)
        })
    }

    /// Fig. 4 style grouped bars: `values[g][s]` for groups × series (e.g. network ×
    /// descriptor), optional `spread` of the same shape (or `()`), with a CSV beside the PNG.
    /// ```rhai
    /// plot_bars("fig4.png", "accuracy", ["resnet18"], ["pixel", "gap"], [[0.8, 0.7]], (), "accuracy");
    /// ```
    // The script's argument list: a Rhai signature, not a Rust API.
    #[allow(clippy::too_many_arguments)]
    #[rhai_fn(return_raw)]
    pub fn plot_bars(ctx: NativeCallContext, path: &str, title: &str, groups: Array, series: Array, values: Array, spread: Dynamic, y_desc: &str) -> RhaiResult<()> {
        if !ScriptSession::writes(&ctx, path, "path")? {
            return Ok(());
        }
        let (groups, series, values, spread) = super::bars_input(groups, series, values, spread)?;
        guarded("plot_bars", || {
            plot::plot_grouped_bars(Path::new(path), title, (&groups, &series), &values, spread.as_deref(), y_desc)
        })
    }
}

/// The groups, series, values and optional spread of a grouped bar chart, as `plot_bars` takes them.
pub(super) type BarsInput = (Vec<String>, Vec<String>, Vec<Vec<f64>>, Option<Vec<Vec<f64>>>);

pub(super) fn bars_input(groups: rhai::Array, series: rhai::Array, values: rhai::Array, spread: rhai::Dynamic) -> crate::script::errors::RhaiResult<BarsInput> {
    use crate::script::errors::to_rhai;
    let strings = |a: rhai::Array| a.into_iter().map(|v| v.to_string()).collect::<Vec<_>>();
    let matrix = |a: rhai::Array, what: &str| -> crate::script::errors::RhaiResult<Vec<Vec<f64>>> {
        a.into_iter()
            .map(|row| {
                let type_name = row.type_name();
                row.try_cast::<rhai::Array>()
                    .ok_or_else(|| to_rhai(format!("plot_bars: {what} must be an array of arrays, got a {type_name}")))?
                    .into_iter()
                    .map(|v| v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|t| to_rhai(format!("plot_bars: {what} holds a {t}"))))
                    .collect()
            })
            .collect()
    };
    let values = matrix(values, "values")?;
    let spread = if spread.is_unit() {
        None
    } else {
        let type_name = spread.type_name();
        Some(matrix(spread.try_cast::<rhai::Array>().ok_or_else(|| to_rhai(format!("plot_bars: spread must be an array or (), got {type_name}")))?, "spread")?)
    };
    Ok((strings(groups), strings(series), values, spread))
}

pub(super) fn stats_of(run: &crate::script::handles::KnnRunHandle, what: &str) -> crate::script::errors::RhaiResult<crate::knn::MatchStats> {
    run.0.stats.clone().ok_or_else(|| crate::script::errors::to_rhai(format!("{what}: the run has no match positions; classify with observe: #{{ … }}")))
}
