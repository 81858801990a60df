//! Progress bars for long loops over images: shown on a terminal for jobs of 1 000 images and
//! up (hidden elsewhere, and for small jobs where a bar would only flicker).
use indicatif::{ProgressBar, ProgressStyle};

pub fn images_bar(what: &str, images: usize) -> ProgressBar {
    if images < 1_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} images [{{elapsed_precise}}<{{eta_precise}}]"))
            .expect("the template is valid"),
    );
    bar
}

/// A bar over `total` items of `unit` (e.g. fuzz cases); hidden when stderr is not a terminal.
pub fn bar(what: &str, total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta_precise}}]"))
            .expect("the template is valid"),
    );
    bar
}
