//! The Rhai layer: an engine with huelab's functions ([`HuelabPackage`]), a runner for script
//! files with `key=value` arguments, and errors that name the file, line and column. Nothing
//! outside this module depends on Rhai.
mod bindings;
mod configs;
pub mod debugger;
mod display;
mod errors;
mod handles;
mod live;
mod option_docs;
mod options;
mod repl;
mod session;

pub use bindings::HuelabPackage;
pub use display::{display, displays, DisplayData, ShowSink, Shown};
pub use handles::*;
pub use debugger::{breakable_lines, breakpoint_line, DebugControl, DebugHook, FrameInfo, Resume, ScopeInfo, Stop, StopHandler, StopReason, Variable};
pub use repl::{Completeness, Repl};

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use rhai::packages::Package;
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, AST};
use sha2::{Digest, Sha256};

use crate::results::ScriptInfo;
pub use session::{FileAccess, Host};
use session::ScriptSession;

/// How a script runs: its file access and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptOptions {
    /// `false` (the default): only the working directory and paths given as arguments.
    pub allow_fs: bool,
    /// More folders a session may read and write (a notebook's `--allow-dir`).
    pub allow_dirs: Vec<std::path::PathBuf>,
    /// Rhai operations before the script is stopped (0: no limit). Work inside huelab's
    /// functions (training, search) does not count.
    pub max_operations: u64,
    /// Nested script function calls before the script is stopped.
    pub max_call_depth: usize,
}

impl Default for ScriptOptions {
    fn default() -> Self {
        // About a few seconds of pure script work on a laptop: loops over results fit many
        // times over (huelab's own functions do not count), an endless loop stops soon.
        ScriptOptions { allow_fs: false, allow_dirs: vec![], max_operations: 100_000_000, max_call_depth: 64 }
    }
}

/// A script failure, printed as `file:line:column: message` when the position is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub file: String,
    /// `(line, column)`, both from 1.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    fn new(file: &str, position: Position, message: String) -> Self {
        let position = position.line().map(|line| (line, position.position().unwrap_or(1)));
        ScriptError { file: file.to_owned(), position, message }
    }

    fn from_parse(file: &str, e: ParseError) -> Self {
        ScriptError::new(file, e.position(), format!("syntax error: {}", e.err_type()))
    }

    /// Reports the innermost failure at its own position, followed by the chain of script
    /// function calls that led to it (innermost first); Rhai's limits are reported with the
    /// option that raises them.
    /// `defined_in` names where a script function was defined when that is not `file` (a
    /// notebook cell's function called from a later cell).
    fn from_eval(file: &str, e: Box<EvalAltResult>, options: &ScriptOptions, host: session::Host, defined_in: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut callers = Vec::new();
        let mut error = *e;
        // Each call is at a position of the code around it; what happens inside the function is
        // at positions of the code that defined it.
        let mut at_file = file.to_owned();
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, call_position) = error {
            callers.push(format!("called from '{name}' at {}", describe_position(&at_file, call_position)));
            if let Some(definition) = defined_in(&name) {
                at_file = definition;
            }
            error = *inner;
        }
        let file = at_file.as_str();
        let limit = explain_limit(&error, options, host);
        let position = error.take_position();
        let mut message = limit.unwrap_or_else(|| match error {
            EvalAltResult::ErrorRuntime(ref value, _) if value.is::<Preempted>() => value.clone().cast::<Preempted>().0,
            EvalAltResult::ErrorRuntime(ref value, _) => value.to_string(),
            // The token says why: a failed `print`, or Ctrl-C.
            EvalAltResult::ErrorTerminated(ref token, _) if token.is_string() => token.to_string(),
            EvalAltResult::ErrorTerminated(..) => crate::Error::Interrupted.to_string(),
            ref other => other.to_string(),
        });
        for caller in callers.iter().rev() {
            message.push_str("\n  ");
            message.push_str(caller);
        }
        ScriptError::new(file, position, message)
    }
}

/// The engine of a script or notebook session: huelab's functions, the session in its tag,
/// and the limits of `options`; imports from `dir` and `scripts/`.
fn limited_engine(session: &Rc<ScriptSession>, options: &ScriptOptions, dir: &Path) -> Engine {
    let mut engine = new_engine(Dynamic::from(session.clone()));
    engine.set_max_operations(options.max_operations);
    engine.set_max_call_levels(options.max_call_depth);
    // No Rhai size limits: Rhai re-measures a value with everything nested in it after each
    // call that may change it (O(n) per `push`). The heap budget stops a value that doubles
    // itself instead (see `crate::heap`, checked in `new_engine`'s progress callback).
    engine.set_module_resolver(module_resolver(dir, options.allow_fs));
    // `eval` of a string that evals a string … nests parsers and evaluators on the native
    // stack past any call limit; experiment scripts have functions and imports instead.
    engine.disable_symbol("eval");
    engine
}

/// Rhai's limits (anywhere inside `error`, an imported module's code included) in words that
/// say which option raises them.
fn explain_limit(error: &EvalAltResult, options: &ScriptOptions, host: session::Host) -> Option<String> {
    match innermost(error) {
        EvalAltResult::ErrorTooManyOperations(_) => Some(format!("the script ran more than {} operations; {}", options.max_operations, host.operations_hint())),
        EvalAltResult::ErrorStackOverflow(_) => Some(format!("script functions nested deeper than {} calls; raise the limit with --max-call-depth N", options.max_call_depth)),
        _ => None,
    }
}

/// Whether a script ended because its cluster task's unit ran (see [`TaskComplete`]).
fn is_task_complete(e: &EvalAltResult) -> bool {
    matches!(innermost(e), EvalAltResult::ErrorRuntime(value, _) if value.is::<TaskComplete>())
}

/// Whether a script ended because a run stopped for preemption (see [`Preempted`]).
fn is_preempted(e: &EvalAltResult) -> bool {
    matches!(innermost(e), EvalAltResult::ErrorRuntime(value, _) if value.is::<Preempted>())
}

/// The error inside Rhai's wrappers of script function calls and imported modules.
fn innermost(mut e: &EvalAltResult) -> &EvalAltResult {
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = e {
        e = inner;
    }
    e
}

fn describe_position(file: &str, position: Position) -> String {
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
        (Some(line), None) => format!("{file}:{line}"),
        _ => file.to_owned(),
    }
}

/// Runs one script file with its arguments.
pub struct ScriptRunner {
    engine: Engine,
    session: Rc<ScriptSession>,
    file: String,
    source: String,
    options: ScriptOptions,
    /// Set when the last run ended because a run stopped for preemption.
    preempted: std::cell::Cell<bool>,
    /// Where the script's imports resolve from.
    dir: std::path::PathBuf,
    /// A debugger's hook (`huelab debug`), registered on the engine.
    debugger: Option<Rc<DebugHook>>,
}

impl ScriptRunner {
    /// Reads the script; `args` are the `key=value` pairs given after it.
    pub fn open(path: &Path, args: BTreeMap<String, String>) -> Result<Self, ScriptError> {
        Self::open_with(path, args, ScriptOptions::default())
    }

    pub fn open_with(path: &Path, args: BTreeMap<String, String>, options: ScriptOptions) -> Result<Self, ScriptError> {
        Self::open_cluster(path, args, options, None)
    }

    /// A script run as a cluster plan, task or gather (`cluster`), or normally (`None`).
    pub fn open_cluster(path: &Path, args: BTreeMap<String, String>, options: ScriptOptions, cluster: Option<crate::cluster::ClusterRun>) -> Result<Self, ScriptError> {
        let file = path.display().to_string();
        let source = crate::input::read_text(path, crate::input::limits::SCRIPT)
            .map_err(|e| ScriptError { file: file.clone(), position: None, message: format!("cannot read the script: {e}") })?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
        Ok(Self::build(&file, source, args, options, &dir, cluster))
    }

    /// A script given as text; `name` stands for the file in errors and manifests. Imports
    /// resolve against the working directory and its `scripts/`.
    pub fn from_source(name: &str, source: impl Into<String>, args: BTreeMap<String, String>) -> Self {
        Self::from_source_with(name, source, args, ScriptOptions::default())
    }

    pub fn from_source_with(name: &str, source: impl Into<String>, args: BTreeMap<String, String>, options: ScriptOptions) -> Self {
        Self::build(name, source.into(), args, options, Path::new("."), None)
    }

    fn build(name: &str, source: String, args: BTreeMap<String, String>, options: ScriptOptions, dir: &Path, cluster: Option<crate::cluster::ClusterRun>) -> Self {
        let sha256 = format!("{:x}", Sha256::digest(source.as_bytes()));
        let mut files = session::access_for(&options, &args);
        if let (FileAccess::Within(roots), Some(run)) = (&mut files, &cluster) {
            roots.push(session::resolve(&run.run_dir));
        }
        let session = ScriptSession::with_cluster(ScriptInfo { path: name.to_owned(), sha256, args }, files, cluster);
        let engine = limited_engine(&session, &options, dir);
        ScriptRunner { engine, session, file: name.to_owned(), source, options, preempted: std::cell::Cell::new(false), dir: dir.to_owned(), debugger: None }
    }

    /// Runs under a debugger: `hook` stops the script where its client asks.
    pub fn attach_debugger(&mut self, hook: Rc<DebugHook>) {
        hook.register(&mut self.engine);
        self.debugger = Some(hook);
    }

    /// Where this script's imports come from, for a debugger's hook.
    pub fn module_files(&self) -> ModuleFiles {
        ModuleFiles::new(&self.dir)
    }

    /// Compiles without running.
    pub fn check(&self) -> Result<AST, ScriptError> {
        let mut ast = self.engine.compile(&self.source).map_err(|e| ScriptError::from_parse(&self.file, e))?;
        ast.set_source(self.file.as_str());
        Ok(ast)
    }

    /// Runs the script and returns the value of its last statement.
    pub fn eval(&self) -> Result<Dynamic, ScriptError> {
        let ast = self.check()?;
        if let Some(hook) = &self.debugger {
            let path = Path::new(&self.file);
            if path.is_file() {
                hook.remember_path(&self.file, &session::resolve(path).display().to_string());
            }
            hook.begin(&self.file, &ast, &Default::default());
        }
        crate::heap::begin_run();
        // The core's readers check every file they open against the script's access.
        let result = crate::input::confined(self.session.read_access(), || self.engine.eval_ast::<Dynamic>(&ast));
        if let Err(e) = &result {
            if is_task_complete(e) {
                return Ok(Dynamic::UNIT);
            }
            self.preempted.set(is_preempted(e));
        }
        // A failed `print` stops the script at its next operation; one in the last statement
        // has none, and the run must not end as if its output had been written.
        if let (Ok(_), Some(message)) = (&result, crate::stdout::print_failure()) {
            return Err(ScriptError::new(&self.file, Position::NONE, format!("print: cannot write to standard output: {message}")));
        }
        result.map_err(|e| ScriptError::from_eval(&self.file, e, &self.options, self.session.host.get(), &|_| None))
    }

    /// Whether the last run ended because a run in it stopped for preemption (a checkpoint at
    /// a batch boundary was written when asked for): a cluster task then exits to be resumed.
    pub fn stopped_for_preemption(&self) -> bool {
        self.preempted.get()
    }

    pub fn run(&self) -> Result<(), ScriptError> {
        self.eval().map(drop)
    }

    /// The cluster run the script ran as, with what it recorded.
    pub fn cluster(&self) -> Option<std::cell::RefMut<'_, crate::cluster::ClusterRun>> {
        self.session.cluster()
    }

    /// Arguments given on the command line that the script never read with `arg`.
    pub fn unread_args(&self) -> Vec<String> {
        self.session.unread_args()
    }
}

/// One bound function as `huelab api` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiEntry {
    /// `name(param: Type, …) -> Type`, or `Type.property -> Type` for getters.
    pub signature: String,
    /// The first line of its `///` doc, if it has one.
    pub summary: String,
    /// Its options map's keys, one line each (nested keys indented), when it takes one.
    pub options: Vec<String>,
}

/// Every function and property huelab binds, from the engine's own registrations.
pub fn api() -> Result<Vec<ApiEntry>, String> {
    let engine = new_engine(Dynamic::from(ScriptSession::new(ScriptInfo { path: String::new(), sha256: String::new(), args: Default::default() })));
    let json = engine.gen_fn_metadata_to_json(false).map_err(|e| e.to_string())?;
    let metadata: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let functions = metadata["functions"].as_array().cloned().unwrap_or_default();
    let mut entries: Vec<ApiEntry> = functions
        .iter()
        // Rhai's own functions that huelab registers again with a memory check are Rhai's.
        .filter(|f| !f["name"].as_str().is_some_and(|name| bindings::REPLACED_BUILTINS.contains(&name)))
        .map(|f| {
            let name = f["name"].as_str().unwrap_or_default();
            let params: Vec<(String, String)> = f["params"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| (p["name"].as_str().unwrap_or("_").to_owned(), script_type(p["type"].as_str().unwrap_or("?"))))
                        .collect()
                })
                .unwrap_or_default();
            let returns = f["returnType"].as_str().filter(|r| !r.is_empty() && *r != "()").map(|r| format!(" -> {}", script_type(r))).unwrap_or_default();
            let signature = match name.strip_prefix("get$") {
                Some(property) => format!("{}.{property}{returns}", params.first().map_or("?", |p| p.1.as_str())),
                None => format!("{name}({}){returns}", params.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ")),
            };
            // The first paragraph of the doc, up to a blank line or an example.
            let doc = f["docComments"].as_array().map(|blocks| blocks.iter().filter_map(|b| b.as_str()).collect::<Vec<_>>().join("\n")).unwrap_or_default();
            let summary = doc
                .lines()
                .map(|l| l.trim().trim_start_matches("///").trim())
                .take_while(|l| !l.is_empty() && !l.starts_with("```"))
                .collect::<Vec<_>>()
                .join(" ");
            let options = option_docs::of(name).map_or(vec![], |docs| docs.iter().flat_map(|d| d.lines()).collect());
            ApiEntry { signature, summary, options }
        })
        .collect();
    entries.sort_by(|a, b| a.signature.cmp(&b.signature));
    entries.dedup();
    Ok(entries)
}

/// What `huelab api` prints: every signature, its description and its options.
pub fn api_text() -> Result<String, String> {
    Ok(api()?.iter().map(ApiEntry::text).collect::<Vec<_>>().join("\n"))
}

/// The options each bound function takes, by name, for tests and completion.
pub fn function_options(function: &str) -> Option<Vec<crate::options::OptionDoc>> {
    option_docs::of(function)
}

impl ApiEntry {
    /// The signature, then the description and the options indented.
    pub fn text(&self) -> String {
        let mut lines = vec![self.signature.clone()];
        if !self.summary.is_empty() {
            lines.push(format!("    {}", self.summary));
        }
        if !self.options.is_empty() {
            lines.push("    options:".into());
            lines.extend(self.options.iter().map(|l| format!("      {l}")));
        }
        lines.join("\n")
    }

    /// The name scripts call it by (a function's, or a property's after the dot).
    pub fn name(&self) -> &str {
        let head = self.signature.split(['(', ' ']).next().unwrap_or_default();
        head.rsplit('.').next().unwrap_or(head)
    }

    /// Whether it is a property (`Dataset.len`), read after a dot.
    pub fn is_property(&self) -> bool {
        !self.signature.contains('(')
    }

    /// The type it can be called on after a dot: a property's owner, a function's first
    /// parameter's type (Rhai calls `f(x, …)` as `x.f(…)`); `None` for a function without
    /// parameters.
    pub fn receiver(&self) -> Option<&str> {
        if self.is_property() {
            return self.signature.split('.').next();
        }
        let params = self.signature.split_once('(')?.1.split(')').next()?;
        let first = params.split(", ").next().filter(|p| !p.is_empty())?;
        first.rsplit(": ").next()
    }
}

/// The API listing, made once per process (completion and inspection ask for it often).
fn api_cached() -> &'static [ApiEntry] {
    static API: std::sync::OnceLock<Vec<ApiEntry>> = std::sync::OnceLock::new();
    API.get_or_init(|| api().unwrap_or_default())
}

/// Rhai's keywords that begin statements, offered by completion.
const KEYWORDS: &[&str] = &["let", "const", "fn", "for", "in", "if", "else", "while", "loop", "break", "continue", "return", "import", "export", "as", "true", "false", "switch", "throw", "try", "catch", "print", "debug"];

/// Where a completion is asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionContext {
    /// A statement or an argument: functions, the session's variables and functions, keywords.
    Anywhere,
    /// After `receiver.`: the methods and properties of the receiver's type (all of them when
    /// the receiver is not a variable of the session).
    AfterDot { receiver: String },
    /// At a key of the options map given to `function` (`train(d, #{ ep`).
    OptionKey { function: String },
}

/// One completion with what a notebook shows beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Jupyter's kinds: `function`, `method`, `property`, `variable`, `keyword`, `param`.
    pub kind: &'static str,
    /// A signature (or an option's type, default and meaning); empty where none is known.
    pub signature: String,
}

/// What completes `prefix` in `context`, sorted by name, one entry per name.
pub fn completions(prefix: &str, context: &CompletionContext, repl: &Repl) -> Vec<Completion> {
    let completion = |text: &str, kind: &'static str, signature: String| Completion { text: text.to_owned(), kind, signature };
    let mut found: Vec<Completion> = match context {
        CompletionContext::OptionKey { function } => function_options(function)
            .unwrap_or_default()
            .iter()
            .map(|doc| completion(doc.key, "param", format!("{}: {} = {} — {}", doc.key, doc.kind, doc.default, doc.about)))
            .collect(),
        CompletionContext::AfterDot { receiver } => {
            let receiver_type = repl.variable_type(receiver);
            api_cached()
                .iter()
                .filter(|e| e.receiver().is_some())
                .filter(|e| receiver_type.as_deref().is_none_or(|t| e.receiver() == Some(t) || e.receiver() == Some("any")))
                .map(|e| completion(e.name(), if e.is_property() { "property" } else { "method" }, e.signature.clone()))
                .collect()
        }
        CompletionContext::Anywhere => {
            let mut names: Vec<Completion> = api_cached().iter().filter(|e| !e.is_property()).map(|e| completion(e.name(), "function", e.signature.clone())).collect();
            names.extend(repl.variables().iter().map(|v| completion(v, "variable", repl.variable_type(v).unwrap_or_default())));
            names.extend(repl.functions().iter().map(|f| completion(f, "function", String::new())));
            names.extend(KEYWORDS.iter().map(|k| completion(k, "keyword", String::new())));
            names
        }
    };
    found.retain(|c| c.text.starts_with(prefix) && !c.text.is_empty());
    // Stable: the first of several overloads (or of a variable shadowing a function) is kept.
    found.sort_by(|a, b| a.text.cmp(&b.text));
    found.dedup_by(|a, b| a.text == b.text);
    found
}

/// The properties scripts read after a dot on a value of `type_name` (`Dataset` → `len`, …).
pub(crate) fn properties_of(type_name: &str) -> Vec<String> {
    let mut names: Vec<String> = api_cached().iter().filter(|e| e.is_property() && e.receiver() == Some(type_name)).map(|e| e.name().to_owned()).collect();
    names.dedup();
    names
}

/// Where a script's `import "name"` finds modules (beside the script, then `./scripts/`), both
/// ways: the file a name loads, as the absolute path a debugger's client knows it by, and the
/// import name of such a file.
#[derive(Debug, Clone)]
pub struct ModuleFiles {
    roots: Vec<std::path::PathBuf>,
}

impl ModuleFiles {
    pub fn new(dir: &Path) -> Self {
        ModuleFiles { roots: vec![dir.to_owned(), "scripts".into()] }
    }

    /// The file `import "name"` loads.
    pub fn file_of(&self, name: &str) -> Option<String> {
        self.roots.iter().map(|root| root.join(format!("{name}.rhai"))).find(|p| p.is_file()).map(|p| session::resolve(&p).display().to_string())
    }

    /// The import name that loads `path` (the first root holding it decides, as imports do).
    pub fn name_of(&self, path: &str) -> Option<String> {
        let path = Path::new(path);
        self.roots.iter().find_map(|root| {
            let name = path.strip_prefix(session::resolve(root)).ok()?.to_str()?.strip_suffix(".rhai")?.to_owned();
            (self.file_of(&name).as_deref() == path.to_str()).then_some(name)
        })
    }
}

/// The signatures and descriptions of everything named `name` ("" when nothing is).
pub fn describe(name: &str) -> String {
    api_cached()
        .iter()
        .filter(|e| !name.is_empty() && e.name() == name)
        .map(ApiEntry::text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rust type names as scripts know them.
pub(crate) fn script_type(rust: &str) -> String {
    let bare = rust.trim_start_matches("&mut ").trim_start_matches('&');
    let bare = bare.strip_prefix("RhaiResult<").and_then(|t| t.strip_suffix('>')).unwrap_or(bare);
    match bare {
        "DatasetHandle" => "Dataset",
        "SplitHandle" => "Split",
        "ReportHandle" => "TrainReport",
        "ComparisonHandle" => "Comparison",
        "ExtractorHandle" => "Extractor",
        "ActivationsHandle" => "Activations",
        "MemoryHandle" | "PixelMemoryHandle" => "PixelMemory",
        "KnnRunHandle" => "KnnRun",
        "FigureHandle" => "Figure",
        "str" | "String" | "ImmutableString" => "string",
        "i64" | "INT" => "int",
        "f64" | "FLOAT" => "float",
        "Array" => "array",
        "Map" => "map",
        "Dynamic" => "any",
        other => other,
    }
    .to_owned()
}

/// `import "name" as m;` finds `name.rhai` beside the script, then in `./scripts/`.
fn module_resolver(dir: &Path, allow_fs: bool) -> ConfinedResolver {
    use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
    let mut resolvers = ModuleResolversCollection::new();
    resolvers.push(FileModuleResolver::new_with_path(dir));
    resolvers.push(FileModuleResolver::new_with_path("scripts"));
    ConfinedResolver { inner: resolvers, roots: [dir, Path::new("scripts")].map(session::resolve).to_vec(), allow_fs, loading: Default::default() }
}

/// How deep imports may nest (a module importing a module …); a cycle is refused at once.
const MAX_IMPORT_DEPTH: usize = 16;

/// Imports from beside the script and from `scripts/` only (unless `--allow-fs`): an import
/// path is relative, without `..`, and what it names, links resolved, stays in those folders.
struct ConfinedResolver {
    inner: rhai::module_resolvers::ModuleResolversCollection,
    roots: Vec<std::path::PathBuf>,
    allow_fs: bool,
    /// The modules being loaded, outermost first: a module that imports one of them would
    /// recurse until the stack overflows.
    loading: std::sync::Mutex<Vec<String>>,
}

impl rhai::ModuleResolver for ConfinedResolver {
    fn resolve(&self, engine: &Engine, source: Option<&str>, path: &str, pos: rhai::Position) -> Result<rhai::Shared<rhai::Module>, Box<rhai::EvalAltResult>> {
        if !self.allow_fs {
            let refuse = |why: &str| -> Box<rhai::EvalAltResult> {
                rhai::EvalAltResult::ErrorInModule(path.into(), format!("import '{path}' {why}; imports come from beside the script or from scripts/ (or run with --allow-fs)").into(), pos).into()
            };
            let named = Path::new(path);
            if !named.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                return Err(refuse("must be a relative path without '..'"));
            }
            for root in &self.roots {
                let candidate = root.join(format!("{path}.rhai"));
                if candidate.exists() && !session::resolve(&candidate).starts_with(root) {
                    return Err(refuse("leads out of its folder through a symbolic link"));
                }
            }
        }
        let in_module = |message: String| -> Box<rhai::EvalAltResult> { rhai::EvalAltResult::ErrorInModule(path.into(), message.into(), pos).into() };
        {
            let loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            if loading.iter().any(|p| p == path) {
                return Err(in_module(format!("import cycle: {} → {path}", loading.join(" → "))));
            }
            if loading.len() >= MAX_IMPORT_DEPTH {
                return Err(in_module(format!("imports nested deeper than {MAX_IMPORT_DEPTH} modules ({} → {path})", loading.join(" → "))));
            }
        }
        // A module is read whole, like a script: a FIFO or a device would block or never end.
        for root in &self.roots {
            let candidate = root.join(format!("{path}.rhai"));
            if candidate.exists() {
                crate::input::regular_file(&candidate, crate::input::limits::SCRIPT).map_err(|e| in_module(e.to_string()))?;
                break;
            }
        }
        self.loading.lock().unwrap_or_else(|p| p.into_inner()).push(path.to_owned());
        let module = self.inner.resolve(engine, source, path, pos);
        self.loading.lock().unwrap_or_else(|p| p.into_inner()).pop();
        module
    }
}

/// What `debug(x)` shows: Rhai's own format, the source and position before the text.
pub(crate) fn debug_line(text: &str, source: Option<&str>, position: Position) -> String {
    match (source, position.is_none()) {
        (Some(source), true) => format!("{source} | {text}"),
        (Some(source), false) => format!("{source} @ {position:?} | {text}"),
        (None, true) => text.to_owned(),
        (None, false) => format!("{position:?} | {text}"),
    }
}

fn new_engine(session: Dynamic) -> Engine {
    let mut engine = Engine::new();
    // Ctrl-C: stop at the next operation (huelab's functions stop at their next batch).
    // A `print` that could not be written stops the script there too, with that error, and so
    // do values grown past the heap budget (one load per operation).
    engine.on_progress(|_| {
        if let Some(message) = crate::stdout::print_failure() {
            return Some(Dynamic::from(format!("print: cannot write to standard output: {message}")));
        }
        if let Some(message) = crate::heap::over_budget() {
            return Some(Dynamic::from(message));
        }
        crate::interrupt::requested().then_some(Dynamic::UNIT)
    });
    HuelabPackage::new().register_into_engine(&mut engine);
    engine.set_default_tag(session);
    // Reading a map property that does not exist is an error, not a silent `()`.
    engine.set_fail_on_invalid_map_property(true);
    // println! would panic when stdout is a closed pipe (`huelab run x | head`).
    engine.on_print(|text| {
        if let Err(e) = crate::stdout::line(format_args!("{text}")) {
            crate::stdout::record_print_failure(&e);
        }
    });
    // Rhai's own `debug` uses println! too; the same line, written as `print` is.
    engine.on_debug(|text, source, position| {
        if let Err(e) = crate::stdout::line(format_args!("{}", debug_line(text, source, position))) {
            crate::stdout::record_print_failure(&e);
        }
    });
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any Rhai size limit makes Rhai measure a value with everything nested in it after each
    /// call that may change it (O(n) per `push`); the heap budget stands in for them.
    #[test]
    fn the_engine_sets_no_size_limits() {
        let session = Rc::new(ScriptSession::new(ScriptInfo { path: String::new(), sha256: String::new(), args: Default::default() }));
        let engine = limited_engine(&session, &ScriptOptions::default(), Path::new("."));
        assert_eq!((engine.max_array_size(), engine.max_map_size(), engine.max_string_size()), (0, 0, 0));
    }
}
