//! Stepping through cells and scripts: Rhai's debugger hook (its `debugging` feature) turned
//! into what a debug client asks for — breakpoints by file and line, continue / next / step in /
//! step out by lines, the stopped frames, their variables as a tree, and expressions evaluated
//! in the stopped frame. The protocol that carries it (Jupyter's debug messages, DAP over
//! stdio) is above this layer; it answers a stop through [`StopHandler`].
//!
//! A notebook's engine carries the hook only while a client is attached and has set a
//! breakpoint ([`DebugControl`]); an engine without it runs exactly as before. With the hook,
//! Rhai compares each node's line with the breakpoint list, and calls the hook at breakpoint
//! lines and, while stepping, at every node.
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use rhai::debugger::{BreakPoint, DebuggerCommand, DebuggerEvent};
use rhai::{ASTNode, Dynamic, Engine, EvalAltResult, EvalContext, Position, Scope, Stmt, AST};

use super::display::DisplayData;

/// Breakpoints and attachment, shared between the thread that speaks the protocol (it answers
/// `setBreakpoints` while a cell runs) and the thread that runs scripts.
#[derive(Debug, Clone, Default)]
pub struct DebugControl(Arc<Mutex<ControlState>>);

#[derive(Debug, Default)]
struct ControlState {
    attached: bool,
    /// Lines (from 1) by file path, as the client named the file.
    breakpoints: BTreeMap<String, BTreeSet<usize>>,
    /// Bumped at every change, so a running script picks changes up at its next stop or node.
    generation: u64,
}

impl DebugControl {
    fn state(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn attach(&self) {
        let mut state = self.state();
        state.attached = true;
        state.generation += 1;
    }

    /// The client is gone: no breakpoints, and the hook comes off at the next cell.
    pub fn detach(&self) {
        let mut state = self.state();
        state.attached = false;
        state.breakpoints.clear();
        state.generation += 1;
    }

    pub fn is_attached(&self) -> bool {
        self.state().attached
    }

    /// Replaces the breakpoints of `path` (DAP's `setBreakpoints`: the whole list of a file).
    pub fn set_breakpoints(&self, path: &str, lines: impl IntoIterator<Item = usize>) {
        let mut state = self.state();
        let lines: BTreeSet<usize> = lines.into_iter().filter(|&l| l >= 1).collect();
        if lines.is_empty() {
            state.breakpoints.remove(path);
        } else {
            state.breakpoints.insert(path.to_owned(), lines);
        }
        state.generation += 1;
    }

    /// Every file's breakpoint lines.
    pub fn breakpoints(&self) -> BTreeMap<String, BTreeSet<usize>> {
        self.state().breakpoints.clone()
    }

    /// Whether any file has a breakpoint.
    pub fn has_any_breakpoint(&self) -> bool {
        !self.state().breakpoints.is_empty()
    }

    fn generation(&self) -> u64 {
        self.state().generation
    }

    fn has_breakpoint(&self, path: &str, line: usize) -> bool {
        self.state().breakpoints.get(path).is_some_and(|lines| lines.contains(&line))
    }
}

/// The lines of `code` where a breakpoint can stop (a statement or an expression starts on
/// them), from Rhai's parse of the text; an error when it does not parse.
pub fn breakable_lines(code: &str) -> Result<BTreeSet<usize>, String> {
    // Parsing needs no registered function: a plain engine reads huelab's scripts as well.
    let mut engine = Engine::new_raw();
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    let ast = engine.compile(code).map_err(|e| e.to_string())?;
    let mut lines = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(line) = path.last().and_then(|node| node.position().line()) {
            lines.insert(line);
        }
        true
    });
    Ok(lines)
}

/// Where a breakpoint asked for at `line` goes: that line when code starts on it, else the
/// next line that has code (a click on a blank line or a lone `}` stops at what follows, as
/// debugpy moves breakpoints); `None` past the last code.
pub fn breakpoint_line(lines: &BTreeSet<usize>, line: usize) -> Option<usize> {
    lines.range(line..).next().copied()
}

/// How a stopped script goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// To the next breakpoint.
    Continue,
    /// To the next line of this frame or a caller's (a call is one step, however long).
    Next,
    /// To the next line anywhere, into called script functions.
    StepIn,
    /// Until this function has returned.
    StepOut,
}

/// Why a script stopped (DAP's `stopped` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Breakpoint,
    Step,
    Entry,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Breakpoint => "breakpoint",
            StopReason::Step => "step",
            StopReason::Entry => "entry",
        }
    }
}

/// The client's side of a stop: it answers requests about `stop` until it says how to go on.
pub trait StopHandler {
    fn stopped(&self, stop: &mut Stop<'_>) -> Resume;
}

/// One frame of a stopped script, innermost first.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    /// The script function running in it, or `<cell>` / `<script>` at the top level.
    pub name: String,
    /// The file a client knows the code by (a cell's dumped file, a module's, the script's).
    pub path: Option<String>,
    /// Rhai's name for the code (`cell[3]`, a module's import path, the script's file).
    pub source: String,
    pub line: usize,
    pub column: usize,
}

/// A variable as a client lists it; `reference` > 0 when it has children to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: String,
    pub type_name: String,
    pub reference: usize,
    /// How many children it has (array elements, map keys, properties).
    pub children: usize,
}

/// A named group of variables of a frame (DAP's scopes).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeInfo {
    pub name: &'static str,
    pub reference: usize,
    pub count: usize,
}

/// Children shown per container: a client asks again with nothing more to page through.
const MAX_CHILDREN: usize = 200;

/// Values handed out as variable references, valid until the tree is cleared (the script goes
/// on, or the next `inspectVariables`).
#[derive(Default)]
pub struct ValueTree {
    entries: Vec<Children>,
}

enum Children {
    Value(Dynamic),
    Named(Vec<(String, Dynamic)>),
}

impl ValueTree {
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    fn register(&mut self, children: Children) -> usize {
        self.entries.push(children);
        self.entries.len()
    }

    /// A group of named values (a scope) under a new reference.
    pub fn group(&mut self, values: Vec<(String, Dynamic)>) -> (usize, usize) {
        let count = values.len();
        (self.register(Children::Named(values)), count)
    }

    /// `value` as a client lists it; a container gets a reference for its children.
    pub fn describe(&mut self, name: &str, value: &Dynamic) -> Variable {
        let type_name = super::script_type(value.type_name().rsplit("::").next().unwrap_or_default());
        let children = child_count(value, &type_name);
        let reference = if children > 0 { self.register(Children::Value(value.clone())) } else { 0 };
        Variable { name: name.to_owned(), value: short_text(value), type_name, reference, children }
    }

    /// The children of `reference`: a scope's variables, an array's elements, a map's keys, a
    /// huelab value's properties. An unknown reference has none.
    pub fn children(&mut self, reference: usize, engine: &Engine, quiet: &dyn Fn(&mut dyn FnMut())) -> Vec<Variable> {
        let named: Vec<(String, Result<Dynamic, String>)> = match reference.checked_sub(1).and_then(|i| self.entries.get(i)) {
            None => return vec![],
            Some(Children::Named(values)) => values.iter().map(|(n, v)| (n.clone(), Ok(v.clone()))).collect(),
            Some(Children::Value(value)) => {
                let value = value.clone();
                let items: Option<Vec<(String, Dynamic)>> = value.read_lock::<rhai::Array>().map(|items| items.iter().take(MAX_CHILDREN).enumerate().map(|(i, v)| (format!("[{i}]"), v.clone())).collect());
                let keys: Option<Vec<(String, Dynamic)>> = value.read_lock::<rhai::Map>().map(|map| map.iter().take(MAX_CHILDREN).map(|(k, v)| (k.to_string(), v.clone())).collect());
                match items.or(keys) {
                    Some(children) => children.into_iter().map(|(n, v)| (n, Ok(v))).collect(),
                    None => {
                        let type_name = super::script_type(value.type_name().rsplit("::").next().unwrap_or_default());
                        let mut properties = vec![];
                        quiet(&mut || properties = property_values(&value, &type_name, engine));
                        properties
                    }
                }
            }
        };
        named
            .iter()
            .map(|(name, value)| match value {
                Ok(value) => self.describe(name, value),
                // A getter that fails (`given_split` of a set without one) shows why.
                Err(message) => Variable { name: name.clone(), value: message.clone(), type_name: "error".into(), reference: 0, children: 0 },
            })
            .collect()
    }
}

/// Each property of a huelab value (`Dataset.len`, `TrainReport.epochs`) read through its
/// getter, or why the getter failed.
fn property_values(value: &Dynamic, type_name: &str, engine: &Engine) -> Vec<(String, Result<Dynamic, String>)> {
    super::properties_of(type_name)
        .into_iter()
        .map(|property| {
            let mut scope = Scope::new();
            scope.push("value", value.clone());
            let read = engine.eval_expression_with_scope::<Dynamic>(&mut scope, &format!("value.{property}"));
            (property, read.map_err(|e| e.to_string()))
        })
        .collect()
}

fn child_count(value: &Dynamic, type_name: &str) -> usize {
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return items.len();
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return map.len();
    }
    super::properties_of(type_name).len()
}

/// One line for a value: scalars as Rhai writes them, strings quoted, containers by size,
/// huelab values by their own text.
fn short_text(value: &Dynamic) -> String {
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return format!("array of {}", items.len());
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return format!("map of {} key{}", map.len(), if map.len() == 1 { "" } else { "s" });
    }
    let text = super::display::display(value).map_or_else(|| "()".to_owned(), |d| d.plain);
    let text = if value.is_string() { format!("{text:?}") } else { text };
    // A client shows one line; the children hold the rest.
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Where a script is: the code (Rhai's source name), the line and how many script function
/// calls deep; `node` tells a statement run again (a loop's next turn) from its line's rest.
#[derive(Debug, Clone, PartialEq)]
struct Location {
    source: String,
    line: usize,
    depth: usize,
    node: usize,
}

impl Location {
    fn same_line(&self, other: &Location) -> bool {
        self.source == other.source && self.line == other.line && self.depth == other.depth
    }
}

#[derive(Debug, Clone)]
enum Mode {
    /// Until a breakpoint (Rhai calls the hook at breakpoint lines only).
    Run,
    /// Stepping from a stop (Rhai calls the hook at every node).
    From { stop: Location, then: Resume },
}

/// The hook on one engine: what the client asked for, the map from Rhai's source names to the
/// files a client knows, and the stepping state.
pub struct DebugHook {
    control: DebugControl,
    handler: Box<dyn StopHandler>,
    /// Rhai source name → the file a client knows it by.
    /// (`None`: a source with no file, remembered so that stepping does not look again.)
    paths: RefCell<HashMap<String, Option<String>>>,
    /// Modules' files by import name and back, for sources not in `paths`.
    modules: super::ModuleFiles,
    /// Function name → the source that defined it (a cell's functions run under the caller's).
    defined_in: RefCell<HashMap<String, String>>,
    /// The session's functions, for evaluation in a stopped frame and parameter names.
    functions: RefCell<AST>,
    /// The source now running (a cell, or the script).
    running: RefCell<String>,
    mode: RefCell<Mode>,
    /// Nested evaluations (a client's `evaluate`, property reads) run without stopping.
    quiet: Cell<u32>,
    generation: Cell<u64>,
    stop_on_entry: Cell<bool>,
}

impl DebugHook {
    pub fn new(control: DebugControl, handler: Box<dyn StopHandler>, modules: super::ModuleFiles) -> Rc<Self> {
        Rc::new(DebugHook {
            control,
            handler,
            paths: Default::default(),
            modules,
            defined_in: Default::default(),
            functions: RefCell::new(AST::empty()),
            running: Default::default(),
            mode: RefCell::new(Mode::Run),
            quiet: Cell::new(0),
            generation: Cell::new(u64::MAX),
            stop_on_entry: Cell::new(false),
        })
    }

    pub fn control(&self) -> &DebugControl {
        &self.control
    }

    /// Stop at the first statement of the next run (DAP's `stopOnEntry`).
    pub fn stop_on_entry(&self, stop: bool) {
        self.stop_on_entry.set(stop);
    }

    /// Puts the hook on `engine` (Rhai keeps it until the engine is dropped).
    pub fn register(self: &Rc<Self>, engine: &mut Engine) {
        let (init, callback) = (self.clone(), self.clone());
        // Marked "volatile" by Rhai (it may change between versions), not deprecated.
        #[allow(deprecated)]
        engine.register_debugger(
            move |_, mut debugger| {
                if init.quiet.get() == 0 {
                    *debugger.break_points_mut() = init.rhai_breakpoints();
                }
                debugger
            },
            move |context, event, node, source, position| callback.on_node(context, event, node, source, position),
        );
    }

    /// That the code Rhai calls `source` is the file `path` to a client (every cell's, also
    /// while the hook is off: a later cell may call its functions).
    pub fn remember_path(&self, source: &str, path: &str) {
        self.paths.borrow_mut().insert(source.to_owned(), Some(path.to_owned()));
    }

    /// A run of `source` begins, with the session's functions and where each was defined.
    pub fn begin(&self, source: &str, functions: &AST, defined_in: &HashMap<String, String>) {
        *self.running.borrow_mut() = source.to_owned();
        *self.functions.borrow_mut() = functions.clone_functions_only();
        *self.defined_in.borrow_mut() = defined_in.clone();
        *self.mode.borrow_mut() = Mode::Run;
        self.generation.set(u64::MAX);
    }

    /// Runs `f` with the hook silent (values read for a client must not stop).
    pub fn quietly<T>(&self, f: impl FnOnce() -> T) -> T {
        self.quiet.set(self.quiet.get() + 1);
        let result = f();
        self.quiet.set(self.quiet.get() - 1);
        result
    }

    /// The file a client knows `source` by.
    fn path_of(&self, source: &str) -> Option<String> {
        if let Some(known) = self.paths.borrow().get(source) {
            return known.clone();
        }
        let path = self.modules.file_of(source);
        self.paths.borrow_mut().insert(source.to_owned(), path.clone());
        path
    }

    /// Rhai's breakpoints for what the client set: at each breakpoint line of every source
    /// whose file has breakpoints. A function of an earlier cell runs under the calling cell's
    /// source name, so a cell's lines are also set for the running source; the hook checks the
    /// real source before stopping.
    fn rhai_breakpoints(&self) -> Vec<BreakPoint> {
        let wanted = self.control.breakpoints();
        let mut sources: Vec<(String, String)> = self.paths.borrow().iter().filter_map(|(s, p)| Some((s.clone(), p.clone()?))).collect();
        // Modules imported by name resolve to files too.
        for (path, _) in &wanted {
            if !sources.iter().any(|(_, p)| p == path) {
                if let Some(source) = self.modules.name_of(path) {
                    sources.push((source, path.clone()));
                }
            }
        }
        let running = self.running.borrow().clone();
        // Of the cells, only the running one and those whose functions the session still has
        // can run code: a cell run a hundred times adds one name, not a hundred.
        let live_cells: BTreeSet<String> = self.defined_in.borrow().values().cloned().chain([running.clone()]).collect();
        sources.retain(|(source, _)| !source.starts_with("cell[") || live_cells.contains(source));
        let mut points = BTreeSet::new();
        for (source, path) in sources {
            for &line in wanted.get(&path).into_iter().flatten() {
                let Ok(line) = u16::try_from(line) else { continue };
                points.insert((source.clone(), line));
                if source.starts_with("cell[") {
                    points.insert((running.clone(), line));
                }
            }
        }
        points
            .into_iter()
            .map(|(source, line)| BreakPoint::AtPosition { source: Some(source.into()), pos: Position::new(line, 0), enabled: true })
            .collect()
    }

    /// The source a node really belongs to: inside a function an earlier cell defined, that
    /// cell (Rhai runs it under the caller's name).
    fn real_source(&self, runtime: Option<&str>, function: Option<&str>) -> String {
        let runtime = runtime.unwrap_or_default();
        if runtime.starts_with("cell[") || runtime == self.running.borrow().as_str() {
            if let Some(defined) = function.and_then(|f| self.defined_in.borrow().get(f).cloned()) {
                return defined;
            }
        }
        runtime.to_owned()
    }

    fn on_node(&self, mut context: EvalContext, event: DebuggerEvent, node: ASTNode, source: Option<&str>, position: Position) -> Result<DebuggerCommand, Box<EvalAltResult>> {
        if self.quiet.get() > 0 {
            return Ok(DebuggerCommand::Continue);
        }
        // Breakpoints changed since this run looked: Rhai's list follows.
        let generation = self.control.generation();
        if generation != self.generation.get() {
            self.generation.set(generation);
            let points = self.rhai_breakpoints();
            if let Some(debugger) = context.debugger_mut() {
                *debugger.break_points_mut() = points;
            }
        }
        let (Some(line), false) = (position.line(), matches!(node, ASTNode::Stmt(Stmt::Noop(..)))) else {
            return Ok(self.keep_going());
        };
        // Only the depth and the innermost function on every node; the whole stack (with copies
        // of each call's arguments) only for a stop.
        let (depth, function) = context.debugger().map(|d| (d.call_stack().len(), d.call_stack().last().map(|f| f.fn_name.to_string()))).unwrap_or_default();
        let here = Location { source: self.real_source(source, function.as_deref()), line, depth, node: node_id(&node) };
        let at_breakpoint = || self.path_of(&here.source).is_some_and(|path| self.control.has_breakpoint(&path, line));
        let mode = self.mode.borrow().clone();
        let reason = match (mode, event) {
            (_, DebuggerEvent::End) => {
                *self.mode.borrow_mut() = Mode::Run;
                return Ok(DebuggerCommand::Continue);
            }
            (Mode::Run, DebuggerEvent::Start) if self.stop_on_entry.replace(false) => Some(StopReason::Entry),
            (Mode::Run, DebuggerEvent::BreakPoint(_)) => at_breakpoint().then_some(StopReason::Breakpoint),
            (Mode::Run, _) => None,
            (Mode::From { stop, then }, _) => {
                let left_line = !here.same_line(&stop) || here.node == stop.node;
                let arrived = match then {
                    Resume::Continue => false,
                    Resume::Next => left_line && here.depth <= stop.depth,
                    Resume::StepIn => left_line,
                    Resume::StepOut => here.depth < stop.depth,
                };
                if arrived {
                    Some(StopReason::Step)
                } else if left_line && at_breakpoint() {
                    Some(StopReason::Breakpoint)
                } else if left_line && then == Resume::Continue {
                    *self.mode.borrow_mut() = Mode::Run;
                    return Ok(DebuggerCommand::Continue);
                } else {
                    None
                }
            }
        };
        let Some(reason) = reason else {
            return Ok(self.keep_going());
        };
        let stack: Vec<rhai::debugger::CallStackFrame> = context.debugger().map(|d| d.call_stack().to_vec()).unwrap_or_default();
        let frames = self.frames(&here, &position, &stack);
        let resume = {
            let mut frame = ContextFrame { context: &mut context, hook: self };
            let mut stop = Stop { reason, frames, arguments: arguments(&stack, &self.functions.borrow()), frame: &mut frame, tree: ValueTree::default() };
            self.handler.stopped(&mut stop)
        };
        *self.mode.borrow_mut() = Mode::From { stop: here, then: resume };
        // Every node from here is looked at until the client's step is done.
        Ok(DebuggerCommand::StepInto)
    }

    /// The command that keeps the current mode: every node while stepping, else only
    /// breakpoints.
    fn keep_going(&self) -> DebuggerCommand {
        match *self.mode.borrow() {
            Mode::Run => DebuggerCommand::Continue,
            Mode::From { .. } => DebuggerCommand::StepInto,
        }
    }

    /// The frames of a stop, innermost first: where the script is, then each call's site.
    fn frames(&self, here: &Location, position: &Position, stack: &[rhai::debugger::CallStackFrame]) -> Vec<FrameInfo> {
        let top = if self.running.borrow().starts_with("cell[") { "<cell>" } else { "<script>" };
        let name_at = |depth: usize| if depth == 0 { top.to_owned() } else { stack[depth - 1].fn_name.to_string() };
        let mut frames = vec![FrameInfo { name: name_at(stack.len()), path: self.path_of(&here.source), source: here.source.clone(), line: here.line, column: position.position().unwrap_or(1) }];
        // A frame's own source: Rhai records the callee's (a module function's is the module).
        let code_of = |depth: usize| if depth == 0 { self.running.borrow().clone() } else { self.real_source(stack[depth - 1].source.as_deref(), Some(stack[depth - 1].fn_name.as_str())) };
        for depth in (0..stack.len()).rev() {
            // stack[depth] was called from the code at depth `depth` (a function or the top).
            let call = &stack[depth];
            let source = code_of(depth);
            frames.push(FrameInfo { name: name_at(depth), path: self.path_of(&source), source, line: call.pos.line().unwrap_or(1), column: call.pos.position().unwrap_or(1) });
        }
        frames
    }
}

/// A scope's variables in the order they were declared, each name once with its latest value
/// (a later `let` of the same name shadows the earlier).
pub fn scope_variables(scope: &Scope) -> Vec<(String, Dynamic)> {
    let mut seen = std::collections::HashSet::new();
    // Rhai lists a scope latest first.
    let mut variables: Vec<(String, Dynamic)> = scope.iter_raw().filter(|(name, ..)| seen.insert(name.to_string())).map(|(name, _, value)| (name.to_owned(), value.flatten_clone())).collect();
    variables.reverse();
    variables
}

/// An identity for a node within one run (its address in the AST).
fn node_id(node: &ASTNode) -> usize {
    match node {
        ASTNode::Stmt(stmt) => *stmt as *const Stmt as usize,
        ASTNode::Expr(expr) => *expr as *const rhai::Expr as usize,
        _ => 0,
    }
}

/// Each frame's function arguments by name (innermost frame first; the top level has none).
fn arguments(stack: &[rhai::debugger::CallStackFrame], functions: &AST) -> Vec<Vec<(String, Dynamic)>> {
    let mut frames: Vec<Vec<(String, Dynamic)>> = stack
        .iter()
        .map(|call| {
            let names: Vec<String> = functions.iter_functions().find(|f| f.name == call.fn_name.as_str() && f.params.len() == call.args.len()).map(|f| f.params.iter().map(|p| p.to_string()).collect()).unwrap_or_default();
            call.args.iter().enumerate().map(|(i, v)| (names.get(i).cloned().unwrap_or_else(|| format!("arg{i}")), v.clone())).collect()
        })
        .collect();
    frames.reverse();
    frames.push(vec![]);
    frames
}

/// What a stop can do with the innermost frame: read its variables, evaluate in it.
trait StoppedFrame {
    fn locals(&self) -> Vec<(String, Dynamic)>;
    fn evaluate(&mut self, code: &str) -> Result<Dynamic, String>;
    fn engine(&self) -> &Engine;
    fn quietly(&self, f: &mut dyn FnMut());
}

struct ContextFrame<'h, 'c, 'a, 's, 'ps, 'g, 'cc, 't> {
    context: &'c mut EvalContext<'a, 's, 'ps, 'g, 'cc, 't>,
    hook: &'h DebugHook,
}

impl StoppedFrame for ContextFrame<'_, '_, '_, '_, '_, '_, '_, '_> {
    fn locals(&self) -> Vec<(String, Dynamic)> {
        scope_variables(self.context.scope())
    }

    fn evaluate(&mut self, code: &str) -> Result<Dynamic, String> {
        let engine = self.context.engine();
        let hook = self.hook;
        hook.quietly(|| {
            let ast = engine.compile_with_scope(self.context.scope(), code).map_err(|e| e.to_string())?;
            // The session's functions are callable from the expression.
            let ast = hook.functions.borrow().merge(&ast);
            engine.eval_ast_with_scope::<Dynamic>(self.context.scope_mut(), &ast).map_err(|e| e.to_string())
        })
    }

    fn engine(&self) -> &Engine {
        self.context.engine()
    }

    fn quietly(&self, f: &mut dyn FnMut()) {
        self.hook.quietly(f)
    }
}

/// A stopped script as a client sees it: frames (0 innermost), their scopes and variables,
/// expressions evaluated in frame 0.
pub struct Stop<'f> {
    pub reason: StopReason,
    frames: Vec<FrameInfo>,
    /// Each frame's arguments (the innermost frame's are among its locals too).
    arguments: Vec<Vec<(String, Dynamic)>>,
    frame: &'f mut dyn StoppedFrame,
    tree: ValueTree,
}

impl Stop<'_> {
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// The scopes of frame `frame`: the innermost frame's variables (`Locals`, at the top
    /// level the session's), an outer frame's call arguments (its other variables are out of
    /// reach while an inner function runs).
    pub fn scopes(&mut self, frame: usize) -> Vec<ScopeInfo> {
        if frame >= self.frames.len() {
            return vec![];
        }
        let (name, values) = if frame == 0 { ("Locals", self.frame.locals()) } else { ("Arguments", self.arguments.get(frame).cloned().unwrap_or_default()) };
        let (reference, count) = self.tree.group(values);
        vec![ScopeInfo { name, reference, count }]
    }

    pub fn variables(&mut self, reference: usize) -> Vec<Variable> {
        let frame = &*self.frame;
        self.tree.children(reference, frame.engine(), &|f| frame.quietly(f))
    }

    /// `code` evaluated in the innermost frame (it may change its variables).
    pub fn evaluate(&mut self, code: &str) -> Result<Variable, String> {
        let value = self.frame.evaluate(code)?;
        Ok(self.tree.describe(code, &value))
    }

    /// The rich display of the variable `name` of the innermost frame.
    pub fn rich(&mut self, name: &str) -> Option<DisplayData> {
        let value = self.frame.locals().into_iter().find(|(n, _)| n == name)?.1;
        super::display::display(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_lists_each_name_once_in_declaration_order_with_its_latest_value() {
        let mut scope = Scope::new();
        scope.push("a", 1_i64).push("b", 2_i64).push("a", 3_i64);
        let names: Vec<(String, i64)> = scope_variables(&scope).into_iter().map(|(n, v)| (n, v.as_int().unwrap())).collect();
        assert_eq!(names, [("b".to_owned(), 2), ("a".to_owned(), 3)]);
    }

    #[test]
    fn breakpoints_move_to_the_next_line_with_code() {
        let code = "// a comment\nfn f(x) {\n\n    x * 2\n}\n\nlet y = f(1);\n";
        let lines = breakable_lines(code).unwrap();
        assert!(lines.contains(&4) && lines.contains(&7) && !lines.contains(&1) && !lines.contains(&3), "{lines:?}");
        assert_eq!(breakpoint_line(&lines, 3), Some(4));
        assert_eq!(breakpoint_line(&lines, 5), Some(7));
        assert_eq!(breakpoint_line(&lines, 7), Some(7));
        assert_eq!(breakpoint_line(&lines, 8), None);
        assert!(breakable_lines("let x = ;").is_err());
    }

    #[test]
    fn module_files_map_import_names_to_files_and_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/helpers.rhai"), "fn f() { 1 }").unwrap();
        let modules = crate::script::ModuleFiles::new(dir.path());
        let file = modules.file_of("lib/helpers").unwrap();
        assert!(file.ends_with("lib/helpers.rhai") && std::path::Path::new(&file).is_absolute(), "{file}");
        assert_eq!(modules.name_of(&file).as_deref(), Some("lib/helpers"));
        assert_eq!(modules.file_of("missing"), None);
        assert_eq!(modules.name_of("/elsewhere/helpers.rhai"), None);
    }

    #[test]
    fn values_describe_themselves_and_open_into_children() {
        let engine = Engine::new();
        let mut tree = ValueTree::default();
        let mut map = rhai::Map::new();
        map.insert("sizes".into(), Dynamic::from(vec![Dynamic::from(8_i64), Dynamic::from(16_i64)]));
        let config = tree.describe("config", &Dynamic::from(map));
        assert_eq!((config.value.as_str(), config.type_name.as_str(), config.children), ("map of 1 key", "map", 1));
        let quiet = |f: &mut dyn FnMut()| f();
        let sizes = tree.children(config.reference, &engine, &quiet);
        assert_eq!(sizes[0].name, "sizes");
        let items = tree.children(sizes[0].reference, &engine, &quiet);
        assert_eq!(items.iter().map(|v| (v.name.as_str(), v.value.as_str())).collect::<Vec<_>>(), [("[0]", "8"), ("[1]", "16")]);
        assert_eq!(tree.describe("s", &Dynamic::from("hi")).value, "\"hi\"");
        assert!(tree.children(999, &engine, &quiet).is_empty(), "an unknown reference has no children");
    }
}
