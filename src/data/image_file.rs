//! One PNG or JPEG file, decoded strictly: a damaged file is an error naming it, never a
//! picture with a grey or black part that trains and predicts as if it were whole. JPEGs are
//! decoded by zune-jpeg in strict mode, after checks that the scan holds enough bytes for the
//! size the header claims and, for sequential JPEGs, every block (a scan cut behind a real or
//! fake end marker is refused; see [`super::jpeg_scan`]); a paletted PNG's indices must lie
//! inside its palette.
use std::path::Path;

use image::DynamicImage;

use crate::error::{Error, Result};

/// Decoding refuses images larger than this on a side or in pixels, so a crafted header cannot
/// make huelab allocate gigabytes or decode for minutes (64 megapixels is above any camera
/// photo a classification data set holds).
const MAX_DECODED_SIDE: u32 = 16_384;
pub(super) const MAX_DECODED_PIXELS: u64 = 1 << 26;

pub(super) fn damaged(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Data { path: path.to_owned(), message: format!("cannot decode the image: {message}") }
}

/// The format and dimensions of an image file, checked without decoding it: PNG or JPEG, sides
/// and pixel count within bounds, and for a JPEG an end marker after the last scan and a scan
/// long enough for the size the header claims.
pub(super) fn check_header(path: &Path, bytes: &[u8]) -> Result<(image::ImageFormat, u32, u32)> {
    let format = image::guess_format(bytes).map_err(|e| damaged(path, format!("not an image ({e})")))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(damaged(path, format!("{format:?} is not PNG or JPEG")));
    }
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::Data { path: path.to_owned(), message: "truncated JPEG (no end-of-image marker after the image data)".into() });
    }
    let (w, h) = image::ImageReader::with_format(std::io::Cursor::new(bytes), format).into_dimensions().map_err(|e| damaged(path, e))?;
    if w == 0 || h == 0 || w > MAX_DECODED_SIDE || h > MAX_DECODED_SIDE || u64::from(w) * u64::from(h) > MAX_DECODED_PIXELS {
        return Err(damaged(path, format!("{w}×{h} pixels (at most {MAX_DECODED_SIDE} on a side and {MAX_DECODED_PIXELS} pixels)")));
    }
    if format == image::ImageFormat::Jpeg {
        // Every 8×8 block of the first component costs at least 2 bits (a DC and an end-of-block
        // code of one bit each with the shortest possible Huffman tables).
        let blocks = u64::from(w.div_ceil(8)) * u64::from(h.div_ceil(8));
        let least = blocks / 4;
        if (bytes.len() as u64) < least {
            return Err(damaged(path, format!("the header claims {w}×{h} pixels, which need at least {least} bytes of scan data; the file has {}", bytes.len())));
        }
    }
    Ok((format, w, h))
}

/// Whether a JPEG's last start-of-scan marker is followed by an end-of-image marker. Inside the
/// entropy-coded data every 0xFF byte is stuffed, so FF D9 there can only be the marker.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == marker);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
}

/// Whether a JPEG's scan holds every block (sequential JPEGs; see [`super::jpeg_scan`]). It
/// walks the whole scan, about as long as decoding it, so an image folder does it once, when
/// it opens, not for every batch.
pub(super) fn check_scan(path: &Path, bytes: &[u8]) -> Result<()> {
    if image::guess_format(bytes).ok() == Some(image::ImageFormat::Jpeg) {
        super::jpeg_scan::check_complete(bytes).map_err(|message| damaged(path, message))?;
    }
    Ok(())
}

/// Reads, checks whole and decodes one image file under this thread's file access.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = crate::input::read(path, crate::input::limits::IMAGE)?;
    let (format, w, h) = check_header(path, &bytes)?;
    check_scan(path, &bytes)?;
    decode_bytes(path, &bytes, format, (w, h))
}

/// Decodes bytes whose header [`check_header`] has just checked (its format and dimensions).
/// Batches of a data set, whose files were checked whole when it opened, check each header
/// again (the file may have changed since), not the scan.
pub(super) fn decode_bytes(path: &Path, bytes: &[u8], format: image::ImageFormat, (w, h): (u32, u32)) -> Result<DynamicImage> {
    match format {
        image::ImageFormat::Jpeg => decode_jpeg(path, bytes, w, h),
        _ => decode_png(path, bytes),
    }
}

fn decode_jpeg(path: &Path, bytes: &[u8], w: u32, h: u32) -> Result<DynamicImage> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().set_strict_mode(true).set_max_width(MAX_DECODED_SIDE as usize).set_max_height(MAX_DECODED_SIDE as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| damaged(path, format!("{e:?}")))?;
    let grey = decoder.input_colorspace().is_some_and(|c| c == ColorSpace::Luma);
    let out = if grey { ColorSpace::Luma } else { ColorSpace::RGB };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| damaged(path, format!("{e:?}")))?;
    let image = if grey {
        image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| damaged(path, "the decoder returned fewer pixels than the header claims"))
}

fn decode_png(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    check_palette_indices(path, bytes)?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODED_PIXELS * 8);
    reader.limits(limits);
    reader.decode().map_err(|e| damaged(path, e))
}

/// A paletted PNG whose pixels name palette entries it does not have would decode them as
/// black (the png crate's choice); refuse it instead.
fn check_palette_indices(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| damaged(path, e))?;
    let info = reader.info();
    if info.color_type != png::ColorType::Indexed {
        return Ok(());
    }
    let entries = info.palette.as_ref().map_or(0, |p| p.len() / 3);
    let (width, depth) = (info.width as usize, info.bit_depth as u8);
    let mut buffer = vec![0u8; reader.output_buffer_size().ok_or_else(|| damaged(path, "the image is too large"))?];
    let frame = reader.next_frame(&mut buffer).map_err(|e| damaged(path, e))?;
    let per_byte = 8 / depth as usize;
    let mask = ((1u16 << depth) - 1) as u8;
    for row in buffer[..frame.buffer_size()].chunks(frame.line_size) {
        for x in 0..width {
            let byte = row[x / per_byte];
            let shift = 8 - depth as usize * (x % per_byte + 1);
            let index = (byte >> shift) & mask;
            if usize::from(index) >= entries {
                return Err(damaged(path, format!("pixel {x} of a row names palette entry {index}, but the palette has {entries} entries")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let rgb = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]));
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(rgb).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
        bytes
    }

    fn decode_bytes(name: &str, bytes: &[u8]) -> Result<DynamicImage> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        decode(&path)
    }

    #[test]
    fn a_whole_jpeg_decodes_and_one_cut_behind_a_fake_end_marker_is_refused() {
        let whole = jpeg(64, 48);
        let image = decode_bytes("whole.jpg", &whole).unwrap();
        assert_eq!((image.width(), image.height()), (64, 48));
        // Keep the headers and a third of the scan, then an end-of-image marker.
        let sos = whole.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut cut = whole[..sos + (whole.len() - sos) / 3].to_vec();
        cut.extend([0xFF, 0xD9]);
        let message = decode_bytes("cut.jpg", &cut).unwrap_err().to_string();
        assert!(message.contains("cut.jpg: cannot decode the image"), "{message}");
    }

    #[test]
    fn a_jpeg_header_claiming_a_huge_image_over_a_tiny_scan_is_refused() {
        let mut bytes = jpeg(16, 16);
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        // SOF0: length (2), precision (1), height (2), width (2).
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x40, 0x00, 0x40, 0x00]);
        let message = decode_bytes("huge.jpg", &bytes).unwrap_err().to_string();
        assert!(message.contains("huge.jpg") && message.contains("16384×16384"), "{message}");
    }

    #[test]
    fn palette_indices_outside_the_palette_are_refused() {
        let write = |indices: &[u8]| {
            let mut bytes = Vec::new();
            let mut encoder = png::Encoder::new(&mut bytes, 4, 1);
            encoder.set_color(png::ColorType::Indexed);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_palette(vec![0u8, 0, 0, 255, 255, 255]);
            encoder.write_header().unwrap().write_image_data(indices).unwrap();
            bytes
        };
        assert!(decode_bytes("fine.png", &write(&[0, 1, 1, 0])).is_ok());
        let message = decode_bytes("bad.png", &write(&[0, 1, 7, 0])).unwrap_err().to_string();
        assert!(message.contains("bad.png") && message.contains("palette entry 7"), "{message}");
    }
}
