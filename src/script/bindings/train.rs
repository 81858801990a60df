use rhai::plugin::*;

#[export_module]
pub mod train_api {
    use std::rc::Rc;

    use rhai::{Array, Dynamic, Map};

    use crate::script::configs::train_config;
    use crate::script::errors::{guarded, task_complete, to_rhai, RhaiResult};
    use crate::script::session::ScriptSession;
    use crate::script::handles::{DatasetHandle, ReportHandle, SplitHandle};
    use crate::script::live::RunWatch;
    use crate::train::train_model as library_train;

    pub type TrainReport = ReportHandle;

    /// Trains a fresh model on the split's training part and evaluates it on its validation
    /// part every epoch and on its test part at the end.
    /// ```rhai
    /// let run = train(data, parts, #{ loss: "onehot+hue", epochs: 5, seed: 1 });
    /// print(run.test_accuracy);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn train(ctx: NativeCallContext, data: DatasetHandle, split: SplitHandle, options: Map) -> RhaiResult<TrainReport> {
        let config = train_config(options).map_err(to_rhai)?;
        if let Some(dir) = &config.checkpoint {
            ScriptSession::checked(&ctx, &dir.to_string_lossy(), "checkpoint")?;
        }
        let session = ScriptSession::of(&ctx);
        let mut watch = RunWatch::new(session.clone(), config.live, 1);
        // A cluster run's unit has its report in the gather job; elsewhere it is pending (no
        // metrics: `test_accuracy` is `()`, `epochs` empty).
        let outcome = guarded("train", || match session.cluster() {
            None => {
                let ended = library_train(&data.0, &split.0, &config, Some(&mut |so_far| watch.epoch(so_far)));
                watch.end(&ended.as_ref().map(|e| vec![&e.report]).unwrap_or_default());
                let ended = ended?;
                let report = Rc::new(ended.report);
                session.remember_trained(report.clone(), ended.model);
                if report.interrupted {
                    return Err(crate::Error::msg(format!(
                        "interrupted after {} of {} epochs (outputs finished before it are intact); last_run() returns the run as far as it got, trained_model(last_run(), #{{}}) its model",
                        report.epochs.len(),
                        report.config.epochs
                    )));
                }
                Ok(ReportHandle(report))
            }
            Some(mut cluster) => Ok(ReportHandle(Rc::new(match cluster.train_unit(&data.0, &split.0, &config)? {
                Some(report) => report,
                None => crate::train::TrainReport::pending(&config, &data.0, &split.0),
            }))),
        })?;
        if session.cluster().is_some_and(|c| c.task_done()) {
            return Err(task_complete());
        }
        Ok(outcome)
    }

    /// The resources of a cluster run's jobs (`huelab run --slurm`; elsewhere it does nothing):
    /// `partition`, `time` (per task), `cpus_per_task`, `mem`, `gres` (e.g. "gpu:1"), `account`,
    /// `qos`, `parallel` (tasks at once), `signal_seconds` (USR1 this long before the limit:
    /// checkpoint and requeue; default 120), `extra` (more sbatch options). Command-line flags
    /// override these.
    /// ```rhai
    /// slurm(#{ partition: "gpu", time: "04:00:00", gres: "gpu:1", cpus_per_task: 8, parallel: 20 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn slurm(ctx: NativeCallContext, options: Map) -> RhaiResult<()> {
        let session = ScriptSession::of(&ctx);
        let options = crate::script::options::to_json(options).and_then(crate::cluster::slurm::SlurmOptions::from_options).map_err(to_rhai)?;
        if let Some(mut cluster) = session.cluster() {
            cluster.slurm = options;
        }
        Ok(())
    }

    /// The architectures `train` builds (`model` option) and the pretrained networks
    /// `pretrained` loads.
    /// ```rhai
    /// print(models());   // #{ trainable: ["small_cnn", "resnet18", …], pretrained: ["efficientnet_lite0", …] }
    /// ```
    pub fn models() -> Map {
        let mut m = Map::new();
        let trainable: Array = <crate::models::Arch as crate::registry::Registry>::names().into_iter().map(|n| Dynamic::from(n.to_owned())).collect();
        let pretrained: Array = crate::models::ImageNetModel::names().into_iter().map(|n| Dynamic::from(n.to_string())).collect();
        m.insert("trainable".into(), trainable.into());
        m.insert("pretrained".into(), pretrained.into());
        m
    }

    /// The result of this session's latest `train`, `compare`, `pixel_memory_of` / `add` or
    /// `knn_classify`: finished, or as far as it got when it was interrupted — a TrainReport
    /// (its finished epochs, `interrupted` true, no test metrics; `trained_model(last_run(),
    /// #{})` its model), a Comparison of the finished units (the others listed as missing), the
    /// memory with the images added so far, a KnnRun of the queries classified so far; `()`
    /// before any.
    /// ```rhai
    /// let partial = last_run();   // after interrupting `let r = train(…)`
    /// print(partial.epochs.len());
    /// ```
    pub fn last_run(ctx: NativeCallContext) -> Dynamic {
        use crate::script::session::LastRun;
        match ScriptSession::of(&ctx).last_run() {
            None => Dynamic::UNIT,
            Some(LastRun::Train(report)) => Dynamic::from(ReportHandle(report)),
            Some(LastRun::Compare(comparison)) => Dynamic::from(crate::script::handles::ComparisonHandle(comparison, false)),
            Some(LastRun::Memory(memory)) => Dynamic::from(memory),
            Some(LastRun::Knn(run)) => Dynamic::from(crate::script::handles::KnnRunHandle(run)),
        }
    }

    /// Whether the run was interrupted before its last epoch (see `last_run`).
    #[rhai_fn(get = "interrupted", pure)]
    pub fn interrupted(report: &mut TrainReport) -> bool {
        report.0.interrupted
    }

    #[rhai_fn(get = "name", pure)]
    pub fn name(report: &mut TrainReport) -> String {
        report.0.name().to_owned()
    }

    /// Test accuracy of the class head; `()` when the split has no test part.
    #[rhai_fn(get = "test_accuracy", pure)]
    pub fn test_accuracy(report: &mut TrainReport) -> Dynamic {
        report.0.test.map_or(Dynamic::UNIT, |t| t.accuracy.into())
    }

    /// Test accuracy of the hue head (nearest class angle to θ'); `()` without a test part.
    #[rhai_fn(get = "test_hue_accuracy", pure)]
    pub fn test_hue_accuracy(report: &mut TrainReport) -> Dynamic {
        report.0.test.map_or(Dynamic::UNIT, |t| t.hue_accuracy.into())
    }

    #[rhai_fn(get = "wall_seconds", pure)]
    pub fn wall_seconds(report: &mut TrainReport) -> f64 {
        report.0.wall_seconds
    }

    /// Per-epoch metrics as an array of maps (`epoch`, `train_loss`, `train_onehot_loss`,
    /// `train_hue_loss`, `train_accuracy`, `val_accuracy`, `val_hue_accuracy`, `lr`, `seconds`).
    #[rhai_fn(get = "epochs", pure, return_raw)]
    pub fn epochs(report: &mut TrainReport) -> RhaiResult<Array> {
        report.0.epochs.iter().map(rhai::serde::to_dynamic).collect()
    }
}
