//! What a running script knows about itself: its file, its command-line arguments and which of
//! them it has read. Bound functions reach it through the engine's tag.
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use rhai::NativeCallContext;

use crate::output::ScriptInfo;

#[derive(Debug)]
pub struct ScriptSession {
    pub script: ScriptInfo,
    read_args: RefCell<BTreeSet<String>>,
}

impl ScriptSession {
    pub fn new(script: ScriptInfo) -> Rc<Self> {
        Rc::new(ScriptSession { script, read_args: RefCell::default() })
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

    /// The session of the script that made this call.
    pub fn of(ctx: &NativeCallContext) -> Rc<ScriptSession> {
        ctx.tag()
            .and_then(|tag| tag.clone().try_cast::<Rc<ScriptSession>>())
            .expect("the huelab engine always carries its session in the tag")
    }
}
