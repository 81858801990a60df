//! What a running script knows about itself: its file, its command-line arguments and which of
//! them it has read, and which files it may touch. Bound functions reach it through the
//! engine's tag.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::NativeCallContext;

use super::display::{ShowSink, Shown};
use super::errors::{to_rhai, RhaiResult};
use crate::results::ScriptInfo;

/// Where a script may read and write files: the working directory and the paths given as
/// arguments (`out=/data/run1`), or anywhere with `--allow-fs`. The core's readers check the
/// resolved target of every file they open against the same access ([`crate::input`]).
pub type FileAccess = crate::input::Access;

pub use crate::input::resolve;

/// `files` plus the places of huelab's built-in data and bundled weights, for reading.
pub fn read_access(files: &FileAccess) -> FileAccess {
    match files {
        FileAccess::Anywhere => FileAccess::Anywhere,
        FileAccess::Within(roots) => {
            let mut roots = roots.clone();
            roots.extend(crate::data::builtin_dirs().iter().map(|d| resolve(d)));
            FileAccess::Within(roots)
        }
    }
}

/// Where a session may read and write: anywhere with `allow_fs`, else the working directory,
/// the path arguments and the allowed folders.
pub fn access_for(options: &super::ScriptOptions, args: &BTreeMap<String, String>) -> FileAccess {
    if options.allow_fs {
        return FileAccess::Anywhere;
    }
    match confined_access(args) {
        FileAccess::Within(mut roots) => {
            roots.extend(options.allow_dirs.iter().map(|d| resolve(d)));
            FileAccess::Within(roots)
        }
        anywhere => anywhere,
    }
}

/// The working directory, plus every argument value that names a path (it exists, or it is
/// absolute, or it has a `/`), each as the directory tree or file it names.
pub fn confined_access(args: &BTreeMap<String, String>) -> FileAccess {
    let mut roots = vec![];
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(resolve(&cwd));
    }
    for value in args.values() {
        let path = Path::new(value);
        if !value.is_empty() && (path.exists() || path.is_absolute() || value.contains('/')) {
            roots.push(resolve(path));
        }
    }
    FileAccess::Within(roots)
}

/// What runs the script: `huelab run` (limits and file access are command-line flags) or a
/// notebook's kernel (they are the kernel's flags, and `set_max_operations` in a cell). Error
/// messages say how to change a limit where the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Host {
    #[default]
    Command,
    Notebook,
}

impl Host {
    /// How to reach files outside the confinement, for an error message.
    pub fn file_access_hint(self, path: &str) -> String {
        match self {
            Host::Command => format!("pass it as an argument (e.g. out={path}) or run with --allow-fs"),
            Host::Notebook => "start JupyterLab with `huelab notebook --allow-dir DIR` (or --allow-fs for anywhere), or install the kernel with `huelab kernel install --allow-dir DIR`".to_owned(),
        }
    }

    /// How to raise the operation limit, for an error message.
    pub fn operations_hint(self) -> &'static str {
        match self {
            Host::Command => "raise the limit with --max-operations N (0: none)",
            Host::Notebook => "raise it for the next cells with set_max_operations(N) (0: none)",
        }
    }
}

/// What `last_run()` returns: the result of the session's latest `train`, `compare`, memory
/// build or kNN classification, finished or as far as it got when interrupted.
#[derive(Debug, Clone)]
pub enum LastRun {
    /// A `train` run's report (a comparison's unit too, while it runs).
    Train(Rc<crate::train::TrainReport>),
    Compare(Rc<crate::compare::Comparison>),
    Memory(super::handles::MemoryHandle),
    Knn(Rc<crate::knn::KnnRun>),
}

pub struct ScriptSession {
    pub script: ScriptInfo,
    read_args: RefCell<BTreeSet<String>>,
    files: FileAccess,
    /// Set when the script runs as a cluster plan, task or gather.
    cluster: Option<RefCell<crate::cluster::ClusterRun>>,
    /// Locks on the run directories the script writes (`run_dir`), held until it ends.
    run_dir_locks: RefCell<BTreeMap<PathBuf, crate::files::DirLock>>,
    /// Where `display` and the like go (a notebook's kernel); `None`: printed as text.
    show: RefCell<Option<ShowSink>>,
    /// The latest long call's result (so far, or as interrupted): `last_run()`.
    last_run: RefCell<Option<LastRun>>,
    /// The latest `train` run's model, beside its report (models are large: only the latest
    /// is kept in memory; a checkpoint directory keeps every one on disk).
    last_model: RefCell<Option<(Rc<crate::train::TrainReport>, Rc<crate::train::TrainedModel>)>>,
    pub host: std::cell::Cell<Host>,
    /// An operation limit a notebook cell asked for (`set_max_operations`), for the next cells.
    requested_max_operations: std::cell::Cell<Option<u64>>,
}

impl std::fmt::Debug for ScriptSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptSession").field("script", &self.script).field("files", &self.files).field("shows_into_a_sink", &self.show.borrow().is_some()).finish_non_exhaustive()
    }
}

impl ScriptSession {
    pub fn new(script: ScriptInfo) -> Rc<Self> {
        Self::with_file_access(script, FileAccess::Anywhere)
    }

    pub fn with_file_access(script: ScriptInfo, files: FileAccess) -> Rc<Self> {
        Self::with_cluster(script, files, None)
    }

    pub fn with_cluster(script: ScriptInfo, files: FileAccess, cluster: Option<crate::cluster::ClusterRun>) -> Rc<Self> {
        Rc::new(ScriptSession { script, read_args: RefCell::default(), files, cluster: cluster.map(RefCell::new), run_dir_locks: RefCell::default(), show: RefCell::default(), last_run: RefCell::default(), last_model: RefCell::default(), host: Default::default(), requested_max_operations: Default::default() })
    }

    /// Where the core's readers may read for this script: its file access, plus the places of
    /// built-in data sets, bundled weights and class names (`$HUELAB_DATA`, Fashion-MNIST's),
    /// which every script reads and none writes.
    pub fn read_access(&self) -> FileAccess {
        read_access(&self.files)
    }

    /// The cluster run, when the script runs as one.
    pub fn cluster(&self) -> Option<std::cell::RefMut<'_, crate::cluster::ClusterRun>> {
        self.cluster.as_ref().map(|c| c.borrow_mut())
    }

    /// Whether result files are left to the cluster's gather job (planning, or one task).
    pub fn defers_outputs(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.borrow().defers_outputs())
    }

    /// `path` if the script may use it; else an error naming the argument and the way out.
    pub fn path(&self, path: &str, argument: &str) -> RhaiResult<PathBuf> {
        if self.files.allows(Path::new(path)) {
            Ok(PathBuf::from(path))
        } else {
            let place = match self.host.get() {
                Host::Command => "the working directory and the paths given as arguments",
                Host::Notebook => "the notebook's folder and the folders the kernel was allowed",
            };
            Err(to_rhai(format!("{argument} '{path}' is outside {place}; {}", self.host.get().file_access_hint(path))))
        }
    }

    /// Locks `dir` for this script (once; later calls for the same directory are free), so a
    /// second `huelab run` writing into it gets an error instead of interleaving files.
    pub fn lock_run_dir(&self, dir: &Path) -> crate::error::Result<()> {
        let key = resolve(dir);
        let mut locks = self.run_dir_locks.borrow_mut();
        if !locks.contains_key(&key) {
            locks.insert(key, crate::files::DirLock::acquire(dir)?);
        }
        Ok(())
    }

    /// Whether a writer writes `path` now: the path is checked against the script's file access
    /// like any path, and nothing is written while outputs are deferred (a cluster run's
    /// planning and tasks: the gather job writes them). Every writer asks this, so deferral is
    /// decided here alone.
    pub fn writes(ctx: &NativeCallContext, path: &str, argument: &str) -> RhaiResult<bool> {
        let session = Self::of(ctx);
        session.path(path, argument)?;
        Ok(!session.defers_outputs())
    }

    /// The path a bound function was given, checked against the script's file access.
    pub fn checked(ctx: &NativeCallContext, path: &str, argument: &str) -> RhaiResult<PathBuf> {
        Self::of(ctx).path(path, argument)
    }

    /// The value given on the command line for `name`, if any; marks it as read.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.read_args.borrow_mut().insert(name.to_owned());
        self.script.args.get(name).map(String::as_str)
    }

    /// Arguments given on the command line that the script never asked for: most likely typos.
    pub fn unread_args(&self) -> Vec<String> {
        let read = self.read_args.borrow();
        self.script.args.keys().filter(|k| !read.contains(*k)).cloned().collect()
    }

    /// Sends what a script shows to `sink` from now on.
    pub fn on_show(&self, sink: ShowSink) {
        *self.show.borrow_mut() = Some(sink);
    }

    /// Asks for another operation limit from the next cell on (a notebook's session only).
    pub fn request_max_operations(&self, limit: u64) -> RhaiResult<()> {
        match self.host.get() {
            Host::Notebook => {
                self.requested_max_operations.set(Some(limit));
                Ok(())
            }
            Host::Command => Err(to_rhai("set_max_operations: a script's limit is set where it starts: huelab run --max-operations N (0: none)")),
        }
    }

    /// The operation limit a cell asked for, if any (taken: applied once).
    pub fn take_requested_max_operations(&self) -> Option<u64> {
        self.requested_max_operations.take()
    }

    /// Whether displays go to a notebook (a kernel set a sink).
    pub fn shows_in_notebook(&self) -> bool {
        self.show.borrow().is_some()
    }

    /// Keeps `report` as the latest run (`last_run()`).
    pub fn remember_run(&self, report: crate::train::TrainReport) {
        self.remember(LastRun::Train(Rc::new(report)));
    }

    /// Keeps `last` as what `last_run()` returns.
    pub fn remember(&self, last: LastRun) {
        *self.last_run.borrow_mut() = Some(last);
    }

    /// Keeps a `train` run that ended (finished or interrupted) as the latest run, with its
    /// model (the one model kept: an earlier run's is dropped).
    pub fn remember_trained(&self, report: Rc<crate::train::TrainReport>, model: crate::train::TrainedModel) {
        *self.last_model.borrow_mut() = Some((report.clone(), Rc::new(model)));
        self.remember(LastRun::Train(report));
    }

    /// The model of `report`'s run, if it is the run whose model is kept.
    pub fn model_of(&self, report: &Rc<crate::train::TrainReport>) -> Option<Rc<crate::train::TrainedModel>> {
        self.last_model.borrow().as_ref().filter(|(kept, _)| Rc::ptr_eq(kept, report)).map(|(_, model)| model.clone())
    }

    /// The latest long call's result, if one ran (or was interrupted after doing something).
    pub fn last_run(&self) -> Option<LastRun> {
        self.last_run.borrow().clone()
    }

    /// Shows an output: in a notebook, through its sink; in `huelab run` a display or an
    /// update prints its text on stdout as `print` does, and clearing has nothing to clear.
    pub fn show(&self, shown: Shown) {
        if let Some(sink) = self.show.borrow().as_ref() {
            return sink(shown);
        }
        if let Shown::Display { data, .. } | Shown::Update { data, .. } = shown {
            if let Err(e) = crate::stdout::line(format_args!("{}", data.plain)) {
                crate::stdout::record_print_failure(&e);
            }
        }
    }

    /// The session of the script that made this call.
    pub fn of(ctx: &NativeCallContext) -> Rc<ScriptSession> {
        ctx.tag()
            .and_then(|tag| tag.clone().try_cast::<Rc<ScriptSession>>())
            .expect("the huelab engine always carries its session in the tag")
    }
}
