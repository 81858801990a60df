use rhai::plugin::*;

/// Outputs besides a cell's last value: several displays per cell, updated in place or cleared,
/// text on stderr, and the documentation of a function. In a notebook they are Jupyter's
/// display messages; under `huelab run` a display or an update prints its text on stdout.
#[export_module]
pub mod display_api {
    use rhai::Dynamic;

    use crate::script::display::{display as display_data, displays, Shown};
    use crate::script::errors::{to_rhai, RhaiResult};
    use crate::script::session::ScriptSession;

    /// Shows a value now, as a cell shows its last value (a figure inline, a run as a table);
    /// an array of figures or results shows each. Under `huelab run`: prints its text.
    /// ```rhai
    /// display(plot_training_curves([a]));
    /// ```
    #[rhai_fn(name = "display")]
    pub fn display(ctx: NativeCallContext, value: Dynamic) {
        let session = ScriptSession::of(&ctx);
        for data in displays(&value) {
            session.show(Shown::Display { data, id: None });
        }
    }

    /// Shows a value under the name `id`, which `update_display` replaces later in place.
    /// ```rhai
    /// display("epoch 1", "status");
    /// ```
    #[rhai_fn(name = "display", return_raw)]
    pub fn display_with_id(ctx: NativeCallContext, value: Dynamic, id: &str) -> RhaiResult<()> {
        let data = super::shown_once(&value, id, "display")?;
        ScriptSession::of(&ctx).show(Shown::Display { data, id: Some(id.to_owned()) });
        Ok(())
    }

    /// Replaces what `display(value, id)` showed with `value`. Under `huelab run`: prints it.
    /// ```rhai
    /// update_display("epoch 2", "status");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn update_display(ctx: NativeCallContext, value: Dynamic, id: &str) -> RhaiResult<()> {
        let data = super::shown_once(&value, id, "update_display")?;
        ScriptSession::of(&ctx).show(Shown::Update { data, id: id.to_owned() });
        Ok(())
    }

    /// Clears the cell's outputs now. Under `huelab run`: nothing.
    #[rhai_fn(name = "clear_output")]
    pub fn clear_output(ctx: NativeCallContext) {
        ScriptSession::of(&ctx).show(Shown::Clear { wait: false });
    }

    /// Clears the cell's outputs; with `wait` true, only when the next output arrives (a loop
    /// that clears and redraws does not flicker).
    #[rhai_fn(name = "clear_output")]
    pub fn clear_output_wait(ctx: NativeCallContext, wait: bool) {
        ScriptSession::of(&ctx).show(Shown::Clear { wait });
    }

    /// Prints a value's text on stderr (a notebook shows it as error output).
    /// ```rhai
    /// eprint("warning: only 3 images of class 7");
    /// ```
    pub fn eprint(value: Dynamic) {
        use std::io::Write;
        let mut line = display_data(&value).map_or_else(String::new, |d| d.plain);
        line.push('\n');
        // One write (stderr is unbuffered: `writeln!` would write the text and the newline
        // apart). A failed write has nowhere else to be reported.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    /// In a notebook, the Rhai operations a cell may run from the next cell on (0: no limit;
    /// huelab's own work never counts). `huelab run` takes `--max-operations N` instead.
    /// ```rhai
    /// set_max_operations(0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn set_max_operations(ctx: NativeCallContext, limit: i64) -> RhaiResult<()> {
        let limit = u64::try_from(limit).map_err(|_| to_rhai(format!("set_max_operations: the limit must be 0 (none) or more, got {limit}")))?;
        ScriptSession::of(&ctx).request_max_operations(limit)
    }

    /// Prints the signature, description and options of every function or property named
    /// `name`, as `huelab api` lists them (in a notebook, `?name` shows the same).
    /// ```rhai
    /// help("train");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn help(ctx: NativeCallContext, name: &str) -> RhaiResult<()> {
        let text = crate::script::describe(name);
        if text.is_empty() {
            return Err(to_rhai(format!("help: huelab has no function or property named '{name}' (`huelab api` lists them all)")));
        }
        ScriptSession::of(&ctx).show(Shown::Display { data: crate::script::DisplayData::plain_text(text), id: None });
        Ok(())
    }
}

/// The one display of `value` for an output named `id` (which must not be empty).
fn shown_once(value: &rhai::Dynamic, id: &str, function: &str) -> crate::script::errors::RhaiResult<crate::script::DisplayData> {
    if id.trim().is_empty() {
        return Err(crate::script::errors::to_rhai(format!("{function}: the display id must not be empty")));
    }
    Ok(crate::script::display::display(value).unwrap_or_else(|| crate::script::DisplayData::plain_text(String::new())))
}
