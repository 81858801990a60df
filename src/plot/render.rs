//! Rendering a figure into memory and saving it as PNG.
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::output::write_atomic;

static DEJAVU_SANS: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

/// Family name under which the bundled font is registered.
pub const FONT: &str = "sans-serif";

fn register_font() {
    REGISTER_FONT.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS)
            .unwrap_or_else(|_| panic!("the bundled DejaVu Sans font is a valid TTF"));
    });
}

/// Draws with `draw` on a white `width × height` canvas and writes it to `path` as PNG.
pub fn render_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::msg(format!("{}: PNG encoding failed: {e}", path.display())))?;
    write_atomic(path, &png)
}

use image::ImageEncoder;

/// Converts a plotters drawing error (generic over the backend) into ours.
pub fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::msg(format!("plotting failed: {e}"))
}
