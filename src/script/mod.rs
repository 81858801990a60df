//! The Rhai layer: an engine with huelab's functions ([`HuelabPackage`]), a runner for script
//! files with `key=value` arguments, and errors that name the file, line and column. Nothing
//! outside this module depends on Rhai.
mod bindings;
mod configs;
mod errors;
mod handles;
mod options;
mod session;

pub use bindings::HuelabPackage;
pub use handles::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use rhai::packages::Package;
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, AST};
use sha2::{Digest, Sha256};

use crate::output::ScriptInfo;
use session::ScriptSession;

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
    /// function calls that led to it (innermost first).
    fn from_eval(file: &str, e: Box<EvalAltResult>) -> Self {
        let mut callers = Vec::new();
        let mut error = *e;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, call_position) = error {
            callers.push(format!("called from '{name}' at {}", describe_position(file, call_position)));
            error = *inner;
        }
        let position = error.take_position();
        let mut message = match error {
            EvalAltResult::ErrorRuntime(ref value, _) => value.to_string(),
            ref other => other.to_string(),
        };
        for caller in callers.iter().rev() {
            message.push_str("\n  ");
            message.push_str(caller);
        }
        ScriptError::new(file, position, message)
    }
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
}

impl ScriptRunner {
    /// Reads the script; `args` are the `key=value` pairs given after it.
    pub fn open(path: &Path, args: BTreeMap<String, String>) -> Result<Self, ScriptError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| ScriptError { file: file.clone(), position: None, message: format!("cannot read the script: {e}") })?;
        Ok(Self::from_source(&file, source, args))
    }

    /// A script given as text; `name` stands for the file in errors and manifests.
    pub fn from_source(name: &str, source: impl Into<String>, args: BTreeMap<String, String>) -> Self {
        let source = source.into();
        let sha256 = format!("{:x}", Sha256::digest(source.as_bytes()));
        let session = ScriptSession::new(ScriptInfo { path: name.to_owned(), sha256, args });
        ScriptRunner { engine: new_engine(Dynamic::from(session.clone())), session, file: name.to_owned(), source }
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
        self.engine.eval_ast(&ast).map_err(|e| ScriptError::from_eval(&self.file, e))
    }

    pub fn run(&self) -> Result<(), ScriptError> {
        self.eval().map(drop)
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
}

/// Every function and property huelab binds, from the engine's own registrations.
pub fn api() -> Result<Vec<ApiEntry>, String> {
    let engine = new_engine(Dynamic::from(ScriptSession::new(ScriptInfo { path: String::new(), sha256: String::new(), args: Default::default() })));
    let json = engine.gen_fn_metadata_to_json(false).map_err(|e| e.to_string())?;
    let metadata: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let functions = metadata["functions"].as_array().cloned().unwrap_or_default();
    let mut entries: Vec<ApiEntry> = functions
        .iter()
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
            ApiEntry { signature, summary }
        })
        .collect();
    entries.sort_by(|a, b| a.signature.cmp(&b.signature));
    entries.dedup();
    Ok(entries)
}

/// Rust type names as scripts know them.
fn script_type(rust: &str) -> String {
    let bare = rust.trim_start_matches("&mut ").trim_start_matches('&');
    let bare = bare.strip_prefix("RhaiResult<").and_then(|t| t.strip_suffix('>')).unwrap_or(bare);
    match bare {
        "DatasetHandle" => "Dataset",
        "SplitHandle" => "Split",
        "ReportHandle" => "TrainReport",
        "ComparisonHandle" => "Comparison",
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

fn new_engine(session: Dynamic) -> Engine {
    let mut engine = Engine::new();
    HuelabPackage::new().register_into_engine(&mut engine);
    engine.set_default_tag(session);
    // Reading a map property that does not exist is an error, not a silent `()`.
    engine.set_fail_on_invalid_map_property(true);
    // println! would panic when stdout is a closed pipe (`huelab run x | head`).
    engine.on_print(|text| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{text}");
    });
    engine
}
