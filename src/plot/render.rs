//! Rendering a figure into memory and saving it as PNG.
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::files::write_atomic;

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

/// A rendered figure: PNG bytes. Scripts save it; notebooks display it inline (`notebook`
/// gives it evcxr's `evcxr_display`).
#[derive(Clone)]
pub struct Figure {
    png: Vec<u8>,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({}×{} PNG, {} bytes)", self.width, self.height, self.png.len())
    }
}

impl Figure {
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Writes the PNG to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.png)
    }
}

/// 64 megapixels, e.g. 8 000 × 8 000.
pub const MAX_PIXELS: u64 = 64 << 20;

/// An error unless every value is a finite number (plotters loops forever on some NaN or
/// infinite ranges, and a bar of NaN height would silently be missing).
pub fn require_finite<'a>(what: &str, values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
    match values.into_iter().find(|v| !v.is_finite()) {
        Some(v) => Err(Error::msg(format!("{what}: every value must be a finite number, found {v}"))),
        None => Ok(()),
    }
}

/// Draws with `draw` on a white `width × height` canvas and returns it as a PNG figure.
pub fn render(
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Figure> {
    // A figure's size follows from its data (groups, panels); a script passing a million groups
    // must get an error, not a multi-gigabyte canvas.
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::msg(format!("a {width}×{height} figure: figures are at most {MAX_PIXELS} pixels (fewer groups, panels or series)")));
    }
    register_font();
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let mut png = Vec::new();
    // Figures are mostly flat colour: the strongest deflate with adaptive filters makes them
    // several times smaller (a training-curves figure 334 KB → about 50 KB) for a few
    // milliseconds more, which matters for notebooks (base64 in the .ipynb) and live figures.
    image::codecs::png::PngEncoder::new_with_quality(&mut png, image::codecs::png::CompressionType::Best, image::codecs::png::FilterType::Adaptive)
        .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::msg(format!("PNG encoding failed: {e}")))?;
    Ok(Figure { png, width, height })
}

use image::ImageEncoder;

/// Converts a plotters drawing error (generic over the backend) into ours.
pub fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::msg(format!("plotting failed: {e}"))
}
