//! Progress bars for long loops over images: shown on a terminal for jobs of 1 000 images and
//! up (hidden elsewhere, and for small jobs where a bar would only flicker). Where bars are
//! drawn is chosen once per process: stderr (a terminal), or a sink set with [`draw_into`] (the
//! notebook kernel turns each bar into one display updated in place).
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Makes the terminal of each new bar.
type TermFactory = Box<dyn Fn() -> Box<dyn TermLike> + Send + Sync>;

static SINK: OnceLock<TermFactory> = OnceLock::new();

/// Draws every bar made from now on into a terminal that `make` gives (one per bar). Set once
/// per process; a second call is ignored.
pub fn draw_into(make: impl Fn() -> Box<dyn TermLike> + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(make));
}

/// A bar of `len` steps drawn where this process draws bars.
pub fn new_bar(len: u64) -> ProgressBar {
    match SINK.get() {
        Some(make) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::term_like_with_hz(make(), 4)),
        None => ProgressBar::new(len),
    }
}

pub fn images_bar(what: &str, images: usize) -> ProgressBar {
    if images < 1_000 {
        return ProgressBar::hidden();
    }
    let bar = new_bar(images as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} images [{{elapsed_precise}}<{{eta_precise}}]"))
            .expect("the template is valid"),
    );
    bar
}

/// A bar over `total` items of `unit` (e.g. fuzz cases); hidden when stderr is not a terminal.
pub fn bar(what: &str, total: u64, unit: &str) -> ProgressBar {
    let bar = new_bar(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta_precise}}]"))
            .expect("the template is valid"),
    );
    bar
}
