//! The part of a JPEG a crop needs, decoded by libjpeg-turbo (its TurboJPEG 3 API, built from
//! the source turbojpeg-sys carries, with its SIMD code): rows below the part are never
//! entropy-decoded, rows above it are entropy-decoded only, and columns outside it get no
//! inverse DCT, upsampling or colour conversion. A random crop covers about half of a photo on
//! average, so a batch decodes a good deal less than whole images.
//!
//! The part is the crop widened by the resize filter's reach (and to the JPEG's iMCU columns,
//! which libjpeg-turbo needs), so the resized output is the same bytes as from the whole image
//! decoded by the same library (tested). Warnings (corrupt data) are errors. A file whose
//! colour space or subsampling libjpeg-turbo cannot crop (CMYK, YCCK, unusual sampling) is
//! decoded whole.
//!
//! What this does not check: a part of the scan below the region is not read, so a truncated
//! or damaged file shows only when a crop reaches the damage. Image folders check every
//! sequential JPEG's scan whole when they open ([`super::jpeg_scan`]), so by then it is known
//! whole.
use turbojpeg_sys as tj;

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// A greyscale JPEG (one channel decoded).
    pub grey: bool,
    /// The iMCU width, which a region's left edge must be a multiple of; `None` when
    /// libjpeg-turbo cannot crop this file.
    imcu_width: Option<u32>,
}

/// Decoded pixels of a region: interleaved RGB (or grey, for a greyscale JPEG) rows of
/// `region.width` pixels, in `pixels`.
#[derive(Debug, Default)]
pub struct Decoded {
    pub pixels: Vec<u8>,
    pub region: Option<Rect>,
    pub grey: bool,
}

/// One TurboJPEG decompressor; a worker keeps one and reuses it.
pub struct RegionDecoder {
    handle: tj::tjhandle,
}

// SAFETY: a TurboJPEG handle belongs to whoever holds it and may move between threads; it is
// never shared (every use takes `&mut self`).
unsafe impl Send for RegionDecoder {}

impl Drop for RegionDecoder {
    fn drop(&mut self) {
        // SAFETY: a handle tj3Init returned, destroyed once.
        unsafe { tj::tj3Destroy(self.handle) }
    }
}

/// turbojpeg.h's `tjMCUWidth`, by TJSAMP (4:4:4, 4:2:2, 4:2:0, grey, 4:4:0, 4:1:1, 4:4:1): a
/// table in the header, not a symbol of the library.
const IMCU_WIDTH: [u32; 7] = [8, 16, 16, 8, 8, 32, 8];

/// Progressive scans a file may have before it is refused: a crafted file with thousands of
/// tiny scans would otherwise decode for minutes (libjpeg-turbo's own advice; cameras and
/// encoders write at most a few dozen).
const MAX_SCANS: i32 = 500;

impl RegionDecoder {
    pub fn new(max_pixels: u64) -> Result<RegionDecoder, String> {
        // SAFETY: plain constructor; a null handle is checked.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) };
        if handle.is_null() {
            return Err("libjpeg-turbo could not make a decompressor".into());
        }
        let decoder = RegionDecoder { handle };
        decoder.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
        decoder.set(tj::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS)?;
        decoder.set(tj::TJPARAM_TJPARAM_MAXPIXELS, i32::try_from(max_pixels).unwrap_or(i32::MAX))?;
        Ok(decoder)
    }

    fn set(&self, param: tj::TJPARAM, value: i32) -> Result<(), String> {
        // SAFETY: a live handle and a parameter of the TJPARAM enumeration.
        if unsafe { tj::tj3Set(self.handle, param as i32, value) } != 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: a live handle and a parameter of the TJPARAM enumeration.
        unsafe { tj::tj3Get(self.handle, param as i32) }
    }

    /// libjpeg-turbo's message for the last error on this handle.
    fn error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle (or a
        // static one), valid until the next call on it.
        let message = unsafe { std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(self.handle)) };
        message.to_string_lossy().trim().replace('\n', " ")
    }

    /// Reads the header of `jpeg`.
    pub fn header(&mut self, jpeg: &[u8]) -> Result<Header, String> {
        // SAFETY: the pointer and length of a live slice; libjpeg-turbo reads within it.
        if unsafe { tj::tj3DecompressHeader(self.handle, jpeg.as_ptr(), jpeg.len() as _) } != 0 {
            return Err(self.error());
        }
        let (width, height) = (self.get(tj::TJPARAM_TJPARAM_JPEGWIDTH), self.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT));
        let (width, height) = (u32::try_from(width).map_err(|_| format!("width {width}"))?, u32::try_from(height).map_err(|_| format!("height {height}"))?);
        let colorspace = self.get(tj::TJPARAM_TJPARAM_COLORSPACE);
        let subsampling = self.get(tj::TJPARAM_TJPARAM_SUBSAMP);
        let croppable = matches!(colorspace as u32, tj::TJCS_TJCS_RGB | tj::TJCS_TJCS_YCbCr | tj::TJCS_TJCS_GRAY) && (0..7).contains(&subsampling);
        let imcu_width = croppable.then(|| IMCU_WIDTH[subsampling as usize]);
        Ok(Header { width, height, grey: colorspace as u32 == tj::TJCS_TJCS_GRAY, imcu_width })
    }

    /// Decodes the part of `jpeg` that covers `want` (the whole image when `want` is `None`)
    /// into `out`: `want`'s rows, and its columns widened by an iMCU on each side (the left edge
    /// on an iMCU column).
    /// `header` is this file's, from [`header`](Self::header) just before.
    pub fn decode(&mut self, jpeg: &[u8], header: &Header, want: Option<Rect>, out: &mut Decoded) -> Result<(), String> {
        let whole = Rect { x: 0, y: 0, width: header.width, height: header.height };
        let region = match (want, header.imcu_width) {
            (Some(want), Some(imcu)) if want.width > 0 && want.height > 0 && want.x + want.width <= header.width && want.y + want.height <= header.height => {
                // Chroma upsampling at a cropped region's left and right edges repeats the edge
                // sample instead of reading its neighbour outside: the region reaches one iMCU
                // past the wanted pixels on both sides, so that they are decoded as in the
                // whole image.
                let x = want.x.saturating_sub(if want.x > 0 { imcu } else { 0 });
                let x = x - x % imcu;
                let right = (want.x + want.width + imcu).min(header.width);
                Rect { x, y: want.y, width: right - x, height: want.height }
            }
            _ => whole,
        };
        let channels = if header.grey { 1 } else { 3 };
        out.pixels.clear();
        out.pixels.resize(region.width as usize * region.height as usize * channels, 0);
        let cropping = if region == whole { tj::tjregion { x: 0, y: 0, w: 0, h: 0 } } else { tj::tjregion { x: region.x as i32, y: region.y as i32, w: region.width as i32, h: region.height as i32 } };
        // SAFETY: a live handle whose header was just read (cropping needs it); the region lies
        // inside the image with its left edge on an iMCU column.
        if unsafe { tj::tj3SetCroppingRegion(self.handle, cropping) } != 0 {
            return Err(self.error());
        }
        let format = if header.grey { tj::TJPF_TJPF_GRAY } else { tj::TJPF_TJPF_RGB };
        let pitch = region.width as usize * channels;
        // SAFETY: `out.pixels` holds `pitch × region.height` bytes, what libjpeg-turbo writes for
        // the cropped region (pitch given explicitly); `jpeg` is a live slice.
        let status = unsafe { tj::tj3Decompress8(self.handle, jpeg.as_ptr(), jpeg.len() as _, out.pixels.as_mut_ptr(), pitch as i32, format) };
        if status != 0 {
            return Err(self.error());
        }
        out.region = Some(region);
        out.grey = header.grey;
        Ok(())
    }
}

/// The rectangle of source pixels a resize of the crop `(x, y, w, h)` to `out_w × out_h` reads:
/// the crop widened by the bilinear filter's reach (one source pixel per output pixel's width,
/// at least one) and a little more for rounding, within the image.
pub fn reach_of_resize((x, y, w, h): (f64, f64, f64, f64), (out_w, out_h): (u32, u32), (width, height): (u32, u32)) -> Rect {
    let margin = |crop: f64, out: u32| (crop / f64::from(out.max(1))).max(1.0).ceil() + 2.0;
    let (mx, my) = (margin(w, out_w), margin(h, out_h));
    let left = (x - mx).floor().max(0.0) as u32;
    let top = (y - my).floor().max(0.0) as u32;
    let right = ((x + w + mx).ceil() as u32).min(width).max(left + 1);
    let bottom = ((y + h + my).ceil() as u32).min(height).max(top + 1);
    Rect { x: left, y: top, width: right.min(width) - left, height: bottom.min(height) - top }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A photo-like test image: smooth gradients, edges and noise, `width × height` RGB.
    pub(in crate::data) fn photo(width: u32, height: u32, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f64 / width as f64, y as f64 / height as f64);
                let edge = if (x / 37 + y / 23) % 2 == 0 { 40.0 } else { 0.0 };
                for c in 0..3 {
                    let wave = 90.0 * ((fx * (3.0 + c as f64) + fy * 5.0).sin() + 1.0);
                    let value = wave + edge + rng.random_range(-12.0..12.0);
                    pixels.push(value.clamp(0.0, 255.0) as u8);
                }
            }
        }
        pixels
    }

    /// `rgb` compressed by libjpeg-turbo with the given subsampling (TJSAMP_*), progressive or not.
    pub(in crate::data) fn compress(rgb: &[u8], width: u32, height: u32, subsampling: i32, progressive: bool) -> Vec<u8> {
        // SAFETY: a compressor handle used and destroyed here; libjpeg-turbo allocates the
        // output, which is copied and freed with tj3Free.
        unsafe {
            let handle = tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as i32);
            assert!(!handle.is_null());
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_QUALITY as i32, 90), 0);
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_SUBSAMP as i32, subsampling), 0);
            assert_eq!(tj::tj3Set(handle, tj::TJPARAM_TJPARAM_PROGRESSIVE as i32, i32::from(progressive)), 0);
            let (mut out, mut size) = (std::ptr::null_mut(), 0);
            let format = tj::TJPF_TJPF_RGB;
            let status = tj::tj3Compress8(handle, rgb.as_ptr(), width as i32, 0, height as i32, format, &mut out, &mut size);
            assert_eq!(status, 0, "{}", std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(handle)).to_string_lossy());
            let jpeg = std::slice::from_raw_parts(out, size as usize).to_vec();
            tj::tj3Free(out.cast());
            tj::tj3Destroy(handle);
            jpeg
        }
    }

    #[test]
    fn every_region_holds_the_same_pixels_as_the_whole_image_decoded() {
        let (width, height) = (333, 251);
        let rgb = photo(width, height, 7);
        let samplings = [tj::TJSAMP_TJSAMP_444, tj::TJSAMP_TJSAMP_422, tj::TJSAMP_TJSAMP_420, tj::TJSAMP_TJSAMP_440, tj::TJSAMP_TJSAMP_411, tj::TJSAMP_TJSAMP_GRAY];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut decoder = RegionDecoder::new(1 << 26).unwrap();
        for subsampling in samplings {
            for progressive in [false, true] {
                let jpeg = compress(&rgb, width, height, subsampling, progressive);
                let header = decoder.header(&jpeg).unwrap();
                assert_eq!((header.width, header.height, header.grey), (width, height, subsampling == tj::TJSAMP_TJSAMP_GRAY));
                let mut whole = Decoded::default();
                decoder.decode(&jpeg, &header, None, &mut whole).unwrap();
                let channels = if header.grey { 1 } else { 3 };
                assert_eq!(whole.pixels.len(), (width * height) as usize * channels);
                // Random rectangles, and the edges and corners of the image.
                let mut wants: Vec<Rect> = (0..40)
                    .map(|_| {
                        let (w, h) = (rng.random_range(1..=width), rng.random_range(1..=height));
                        Rect { x: rng.random_range(0..=width - w), y: rng.random_range(0..=height - h), width: w, height: h }
                    })
                    .collect();
                wants.extend([Rect { x: 0, y: 0, width, height }, Rect { x: width - 1, y: height - 1, width: 1, height: 1 }, Rect { x: 17, y: 0, width: 1, height }, Rect { x: 0, y: 250, width, height: 1 }]);
                for want in wants {
                    let mut part = Decoded::default();
                    decoder.header(&jpeg).unwrap();
                    decoder.decode(&jpeg, &header, Some(want), &mut part).unwrap();
                    let region = part.region.unwrap();
                    assert!(region.x <= want.x && region.x + region.width >= want.x + want.width && region.y <= want.y && region.y + region.height >= want.y + want.height, "{want:?} → {region:?}");
                    for y in want.y..want.y + want.height {
                        let row = |pixels: &[u8], x0: u32, stride: u32, y0: u32| {
                            let start = ((y - y0) * stride + (want.x - x0)) as usize * channels;
                            pixels[start..start + want.width as usize * channels].to_vec()
                        };
                        assert_eq!(row(&part.pixels, region.x, region.width, region.y), row(&whole.pixels, 0, width, 0), "subsampling {subsampling}, progressive {progressive}, {want:?}, row {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_data_is_an_error_not_grey_pixels() {
        let (width, height) = (160, 120);
        let jpeg = compress(&photo(width, height, 3), width, height, tj::TJSAMP_TJSAMP_420, false);
        let mut decoder = RegionDecoder::new(1 << 26).unwrap();
        // Cut in the middle of the scan: the rows decoded reach the cut.
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        let header = decoder.header(cut).unwrap();
        let err = decoder.decode(cut, &header, None, &mut Decoded::default()).unwrap_err();
        assert!(!err.is_empty(), "{err}");
        // Not a JPEG at all.
        assert!(decoder.header(b"not a jpeg at all, just text").is_err());
        // Larger than allowed.
        let mut small = RegionDecoder::new(100).unwrap();
        let header = small.header(&jpeg).unwrap();
        assert!(small.decode(&jpeg, &header, None, &mut Decoded::default()).unwrap_err().contains("too large"));
    }

    #[test]
    fn the_resize_reach_covers_the_crop_and_the_filter_within_the_image() {
        let reach = reach_of_resize((100.5, 40.25, 300.0, 200.0), (224, 224), (500, 375));
        assert_eq!(reach, Rect { x: 96, y: 37, width: 309, height: 207 });
        let corner = reach_of_resize((0.0, 0.0, 500.0, 375.0), (224, 224), (500, 375));
        assert_eq!(corner, Rect { x: 0, y: 0, width: 500, height: 375 });
    }
}
