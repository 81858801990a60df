//! A script session that goes on cell after cell (a notebook's kernel): one engine and one
//! scope, so variables, functions and imports of earlier cells stay. The confinement and limits
//! of `huelab run` apply, with the working directory as the notebook's folder.
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Dynamic, Engine, ParseErrorType, Position, Scope, AST};
use sha2::{Digest, Sha256};

use super::debugger::{DebugControl, DebugHook, StopHandler, ValueTree, Variable};
use super::display::DisplayData;
use super::session::{FileAccess, ScriptSession};
use super::{is_task_complete, limited_engine, ScriptError, ScriptOptions};
use crate::results::ScriptInfo;

/// Whether a cell's text can run as it is (Jupyter's `is_complete_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    /// More lines are needed (an open bracket or string).
    Incomplete,
    /// A syntax error no further line will fix.
    Invalid,
}

/// One notebook session of scripts.
pub struct Repl {
    engine: Engine,
    scope: Scope<'static>,
    /// Every function defined by the cells run so far (later definitions win).
    functions: AST,
    options: ScriptOptions,
    cells: usize,
    /// Where the session's cells may read files (the core's readers check against it).
    files: FileAccess,
    session: std::rc::Rc<ScriptSession>,
    /// The cell that defined each script function (the latest definition of a name).
    defined_in: std::collections::HashMap<String, String>,
    /// Where `print` goes, kept to set again on a rebuilt engine.
    print: Option<Arc<dyn Fn(&str) + Send + Sync>>,
    /// Modules imported by cells, under their aliases, kept for a rebuilt engine.
    imports: Vec<(String, rhai::Shared<rhai::Module>)>,
    /// The debugger's hook, when a client may attach (a notebook kernel).
    debugger: Option<Rc<DebugHook>>,
    /// Whether the hook is on the engine now (only while a client is attached).
    hooked: bool,
    /// The variable references handed out while no cell runs (`inspectVariables`).
    tree: ValueTree,
}

impl Repl {
    /// A session whose files are confined to the working directory (unless `options.allow_fs`);
    /// `name` stands for the notebook in manifests.
    pub fn new(name: &str, options: ScriptOptions) -> Self {
        let args = BTreeMap::new();
        let files = super::session::access_for(&options, &args);
        let sha256 = format!("{:x}", Sha256::digest(name.as_bytes()));
        let session = ScriptSession::with_file_access(ScriptInfo { path: name.to_owned(), sha256, args }, files.clone());
        session.host.set(super::Host::Notebook);
        let engine = limited_engine(&session, &options, Path::new("."));
        Repl {
            engine,
            scope: Scope::new(),
            functions: AST::empty(),
            options,
            cells: 0,
            files,
            session,
            defined_in: Default::default(),
            print: None,
            imports: vec![],
            debugger: None,
            hooked: false,
            tree: ValueTree::default(),
        }
    }

    /// Where `print` and `debug` go (stdout by default).
    pub fn on_print(&mut self, print: impl Fn(&str) + Send + Sync + 'static) {
        self.print = Some(Arc::new(print));
        self.route_print();
    }

    fn route_print(&mut self) {
        let Some(print) = self.print.clone() else { return };
        let debug = print.clone();
        self.engine.on_print(move |text| print(text));
        self.engine.on_debug(move |text, source, position| debug(&super::debug_line(text, source, position)));
    }

    /// Lets a debugger attach through `control`: while it is attached, cells stop where it
    /// asks and `handler` answers it; detached, the engine runs without the hook.
    pub fn enable_debugging(&mut self, control: DebugControl, handler: Box<dyn StopHandler>) {
        self.debugger = Some(DebugHook::new(control, handler, super::ModuleFiles::new(Path::new("."))));
    }

    /// The hook on the engine while a client is attached and has set a breakpoint somewhere
    /// (with none, nothing can stop a cell: the engine runs without the hook's per-node check);
    /// off again (a fresh engine with the session's settings and imports) once it is not needed.
    /// Breakpoints set while a cell runs count from the next cell, or from the next stop.
    fn follow_debugger(&mut self) -> Option<Rc<DebugHook>> {
        let hook = self.debugger.clone()?;
        let wanted = hook.control().is_attached() && hook.control().has_any_breakpoint();
        if wanted && !self.hooked {
            hook.register(&mut self.engine);
            self.hooked = true;
        } else if !wanted && self.hooked {
            // Rhai cannot take a debugger off an engine; a new one has none.
            self.engine = limited_engine(&self.session, &self.options, Path::new("."));
            self.route_print();
            for (alias, module) in &self.imports {
                self.engine.register_static_module(alias.as_str(), module.clone());
            }
            self.hooked = false;
        }
        wanted.then_some(hook)
    }

    /// Where `display`, `update_display` and `clear_output` go (a notebook's kernel).
    pub fn on_show(&mut self, sink: super::ShowSink) {
        self.session.on_show(sink);
    }

    /// Runs one cell; its errors name it `cell[N]` (N from 1) with the line and column inside it.
    /// The value of its last statement is returned. A failed cell keeps what it defined before
    /// failing (variables set, functions declared), as Python's notebooks do.
    pub fn execute(&mut self, code: &str) -> Result<Dynamic, ScriptError> {
        self.execute_as(code, None)
    }

    /// [`Repl::execute`], with `path` the file a debugger's client knows the cell by.
    pub fn execute_as(&mut self, code: &str, path: Option<String>) -> Result<Dynamic, ScriptError> {
        self.cells += 1;
        self.tree.clear();
        let name = format!("cell[{}]", self.cells);
        if let Some(limit) = self.session.take_requested_max_operations() {
            self.engine.set_max_operations(limit);
            self.options.max_operations = limit;
        }
        let mut ast = self.engine.compile_with_scope(&self.scope, code).map_err(|e| ScriptError::from_parse(&name, e))?;
        ast.set_source(name.as_str());
        for function in ast.iter_functions() {
            self.defined_in.insert(function.name.to_owned(), name.clone());
        }
        let mut merged = self.functions.merge(&ast);
        if let (Some(hook), Some(path)) = (&self.debugger, &path) {
            hook.remember_path(&name, path);
        }
        if let Some(hook) = self.follow_debugger() {
            hook.begin(&name, &merged, &self.defined_in);
        }
        let (engine, scope) = (&self.engine, &mut self.scope);
        // Each cell has the whole heap budget: a cell may free what an earlier one built.
        crate::heap::begin_run();
        let result = crate::input::confined(super::session::read_access(&self.files), || engine.eval_ast_with_scope::<Dynamic>(scope, &merged));
        merged.clear_statements();
        self.functions = merged;
        match result {
            Ok(value) => {
                self.keep_imports(code, &name)?;
                Ok(value)
            }
            Err(e) if is_task_complete(&e) => Ok(Dynamic::UNIT),
            Err(e) => Err(ScriptError::from_eval(&name, e, &self.options, super::Host::Notebook, &|function| self.defined_in.get(function).cloned())),
        }
    }

    /// Cells run so far.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// The names of the session's variables.
    pub fn variables(&self) -> Vec<String> {
        self.scope.iter_raw().map(|(name, _, _)| name.to_owned()).collect()
    }

    /// The type of the session's variable `name` as scripts know it (`Dataset`, `int`).
    pub fn variable_type(&self, name: &str) -> Option<String> {
        let value = self.scope.get(name)?;
        Some(super::script_type(value.type_name().rsplit("::").next().unwrap_or_default()))
    }

    /// The names of the functions the cells defined.
    pub fn functions(&self) -> Vec<String> {
        self.functions.iter_functions().map(|f| f.name.to_owned()).collect()
    }

    /// Whether `code` is a whole cell, needs more lines, or cannot be fixed by more lines.
    pub fn completeness(&self, code: &str) -> Completeness {
        match self.engine.compile_with_scope(&self.scope, code) {
            Ok(_) => Completeness::Complete,
            Err(e) if matches!(e.err_type(), ParseErrorType::UnexpectedEOF) || open_brackets(code) > 0 => Completeness::Incomplete,
            Err(_) => Completeness::Invalid,
        }
    }

    /// `import "x" as m;` lasts for the cell only in Rhai; the session keeps the module under
    /// its name for the cells after it.
    fn keep_imports(&mut self, code: &str, cell: &str) -> Result<(), ScriptError> {
        for (line, (path, alias)) in code.lines().enumerate().filter_map(|(i, l)| import_statement(l).map(|s| (i + 1, s))) {
            let module = self.engine.module_resolver().resolve(&self.engine, None, &path, Position::NONE).map_err(|e| ScriptError {
                file: cell.to_owned(),
                position: Some((line, 1)),
                message: format!("import '{path}' could not be kept for later cells: {e}"),
            })?;
            self.engine.register_static_module(alias.as_str(), module.clone());
            self.imports.retain(|(kept, _)| *kept != alias);
            self.imports.push((alias, module));
        }
        Ok(())
    }

    /// The session's variables for a debugger's variables panel while no cell runs; their
    /// references stay valid until the next call or cell.
    pub fn inspect_variables(&mut self) -> Vec<Variable> {
        self.tree.clear();
        let values = super::debugger::scope_variables(&self.scope);
        values.iter().map(|(name, value)| self.tree.describe(name, value)).collect()
    }

    /// The children of a reference [`Repl::inspect_variables`] handed out.
    pub fn variable_children(&mut self, reference: usize) -> Vec<Variable> {
        let hook = self.debugger.clone();
        let quiet = move |f: &mut dyn FnMut()| match &hook {
            Some(hook) => hook.quietly(f),
            None => f(),
        };
        self.tree.children(reference, &self.engine, &quiet)
    }

    /// The rich display of the session's variable `name` (a figure's PNG, a run's table).
    pub fn rich_variable(&self, name: &str) -> Option<DisplayData> {
        super::display::display(self.scope.get(name)?)
    }
}

/// `(path, alias)` of a line that is one `import "path" as alias;` statement.
fn import_statement(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("import")?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let (path, rest) = rest.split_once('"')?;
    let alias = rest.trim_start().strip_prefix("as")?.trim().trim_end_matches(';').trim();
    let valid = !alias.is_empty() && alias.chars().all(|c| c.is_alphanumeric() || c == '_');
    valid.then(|| (path.to_owned(), alias.to_owned()))
}

/// Brackets opened and not closed, outside strings and comments.
fn open_brackets(code: &str) -> i64 {
    let mut depth = 0i64;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                // Skip the string, escapes included.
                while let Some(s) = chars.next() {
                    if s == '\\' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines_are_recognised() {
        assert_eq!(import_statement(r#"import "helpers" as h;"#), Some(("helpers".into(), "h".into())));
        assert_eq!(import_statement(r#"  import "a/b" as my_mod"#), Some(("a/b".into(), "my_mod".into())));
        assert_eq!(import_statement("let important = 1;"), None);
        assert_eq!(import_statement(r#"import "x" as ;"#), None);
    }

    #[test]
    fn open_brackets_ignore_strings_and_comments() {
        assert_eq!(open_brackets("fn f() {\n  let s = \"}}\"; // }\n"), 1);
        assert_eq!(open_brackets("let a = [1, 2];"), 0);
    }
}

#[cfg(test)]
mod cell_tests {
    use super::*;

    /// A function defined in one cell and failing when a later cell calls it: the error is at
    /// the defining cell's line, the call at the calling cell's.
    #[test]
    fn an_error_inside_a_function_names_the_cell_that_defined_it() {
        let mut repl = Repl::new("probe", ScriptOptions::default());
        let _ = repl.execute("fn f() {\n  let x = 1;\n  x.no_such_method()\n}").unwrap();
        let _ = repl.execute("fn g() { f() }").unwrap();
        let e = repl.execute("let a = 2;\ng()").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("cell[1]:3:5: Function not found: no_such_method"), "{text}");
        assert!(text.contains("called from 'f' at cell[2]:1:10") && text.contains("called from 'g' at cell[3]:2:1"), "{text}");
    }
}
