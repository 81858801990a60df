//! Image and label arrays saved by numpy (`np.save`). Images may be `uint8` (0–255) or
//! `float32`/`float64` already in [0, 1]; labels any integer type.
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{read_npy, ReadNpyError};
use serde::Serialize;
use tch::Tensor;

use super::idx::numbered_classes;
use super::ImageDataset;
use crate::error::{Error, Result};

/// Where the channel axis of a 4-D image array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum NpyLayout {
    /// `[N, H, W]` is grey; `[N, H, W, C]` or `[N, C, H, W]` is told apart by which axis has 1,
    /// 3 or 4 entries, and an array where both could be the channels is an error.
    #[default]
    Auto,
    /// `[N, C, H, W]` (PyTorch).
    ChannelsFirst,
    /// `[N, H, W, C]` (numpy, PIL, TensorFlow).
    ChannelsLast,
}

impl std::str::FromStr for NpyLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(NpyLayout::Auto),
            "nchw" => Ok(NpyLayout::ChannelsFirst),
            "nhwc" => Ok(NpyLayout::ChannelsLast),
            _ => Err(Error::invalid_option("layout", format!("expected \"auto\", \"nchw\" or \"nhwc\", got \"{s}\""))),
        }
    }
}

pub fn load_npy(name: &str, images: &Path, labels: &Path, layout: NpyLayout, class_names: Option<Vec<String>>) -> Result<ImageDataset> {
    let (pixels, shape) = read_images(images)?;
    let bad_images = |message: String| Error::Data { path: images.to_owned(), message };
    // Whether the array's channels come last, resolved from the layout (not from the sizes:
    // with H == C the sizes cannot tell).
    let (nchw, channels_last): ([i64; 4], bool) = match (shape.as_slice(), layout) {
        (&[n, h, w], _) => ([n, 1, h, w], false),
        (&[n, a, b, c], NpyLayout::ChannelsFirst) => ([n, a, b, c], false),
        (&[n, a, b, c], NpyLayout::ChannelsLast) => ([n, c, a, b], true),
        (&[n, a, b, c], NpyLayout::Auto) => {
            let is_channels = |d: i64| matches!(d, 1 | 3 | 4);
            match (is_channels(a), is_channels(c)) {
                (true, false) => ([n, a, b, c], false),
                (false, true) => ([n, c, a, b], true),
                _ => return Err(bad_images(format!("cannot tell the channel axis of shape {shape:?}; give layout \"nchw\" or \"nhwc\""))),
            }
        }
        _ => return Err(bad_images(format!("expected images of shape [N, H, W], [N, H, W, C] or [N, C, H, W], found {shape:?}"))),
    };
    let mut tensor = match pixels {
        NpyPixels::Bytes(values) => Tensor::from_slice(&values),
        NpyPixels::Floats(values) => Tensor::from_slice(&values),
    }
    .view(shape.as_slice());
    if channels_last {
        tensor = tensor.permute([0, 3, 1, 2]);
    }
    let tensor = tensor.reshape(nchw).contiguous();

    let label_values = read_labels(labels)?;
    if label_values.len() as i64 != nchw[0] {
        return Err(Error::Data {
            path: labels.to_owned(),
            message: format!("{} labels for {} images in {}", label_values.len(), nchw[0], images.display()),
        });
    }
    let class_names = match class_names {
        Some(names) => names,
        None => numbered_classes(&label_values).map_err(|message| Error::Data { path: labels.to_owned(), message })?,
    };
    ImageDataset::new(name, tensor, label_values, class_names).map_err(|e| Error::Data { path: labels.to_owned(), message: e.to_string() })
}

/// Pixels as stored: 8-bit values (0–255), or floats in [0, 1].
enum NpyPixels {
    Bytes(Vec<u8>),
    Floats(Vec<f32>),
}

/// The pixel values and the array's shape.
fn read_images(path: &Path) -> Result<(NpyPixels, Vec<i64>)> {
    let shape_of = |shape: &[usize]| shape.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let bad = |message: String| Error::Data { path: path.to_owned(), message };
    if let Some(a) = try_read::<u8>(path)? {
        return Ok((NpyPixels::Bytes(a.iter().copied().collect()), shape_of(a.shape())));
    }
    let (values, shape): (Vec<f32>, _) = if let Some(a) = try_read::<f32>(path)? {
        (a.iter().copied().collect(), shape_of(a.shape()))
    } else if let Some(a) = try_read::<f64>(path)? {
        (a.iter().map(|&v| v as f32).collect(), shape_of(a.shape()))
    } else {
        return Err(bad("images must be uint8, float32 or float64".into()));
    };
    if let Some(v) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(bad(format!("float images must lie in [0, 1], found {v}; scale them or save them as uint8")));
    }
    Ok((NpyPixels::Floats(values), shape))
}

fn read_labels(path: &Path) -> Result<Vec<i64>> {
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if let Some(a) = try_read::<$t>(path)? {
                if a.ndim() != 1 {
                    return Err(Error::Data { path: path.to_owned(), message: format!("labels must be 1-D, found shape {:?}", a.shape()) });
                }
                return a.iter().map(|&v| i64::try_from(v).map_err(|_| Error::Data { path: path.to_owned(), message: format!("label {v} does not fit a class index") })).collect();
            })*
        };
    }
    try_types!(i64, i32, u8, u16, u32, i16, i8, u64);
    Err(Error::Data { path: path.to_owned(), message: "labels must be an integer array".into() })
}

/// `None` when the file holds another element type.
fn try_read<T: ndarray_npy::ReadableElement>(path: &Path) -> Result<Option<ArrayD<T>>> {
    check_npy_size(path)?;
    match read_npy::<_, ArrayD<T>>(path) {
        Ok(a) => Ok(Some(a)),
        Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
        Err(ReadNpyError::Io(e)) => Err(Error::io(path, e)),
        Err(e) => Err(Error::Data { path: path.to_owned(), message: format!("not a readable .npy file: {e}") }),
    }
}

/// Reads an `.npy` array of a known element type and rank, after checking its header against
/// the file's length (so a header cannot make huelab allocate more than the file holds).
pub fn read_npy_checked<T: ndarray_npy::ReadableElement, D: ndarray::Dimension>(path: &Path, expected: &str) -> Result<ndarray::Array<T, D>> {
    check_npy_size(path)?;
    read_npy(path).map_err(|e| match e {
        ReadNpyError::Io(e) => Error::io(path, e),
        e => Error::Data { path: path.to_owned(), message: format!("expected {expected}: {e}") },
    })
}

/// The `.npy` header's shape and element size must describe exactly the bytes after it.
pub fn check_npy_size(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |message: String| Error::Data { path: path.to_owned(), message };
    let (mut file, file_len) = crate::input::open(path, crate::input::limits::array())?;
    let mut prefix = [0u8; 12];
    let n = file.read(&mut prefix).map_err(|e| Error::io(path, e))?;
    if n < 10 || &prefix[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_start, header_len) = match prefix[6] {
        1 => (10u64, u16::from_le_bytes([prefix[8], prefix[9]]) as u64),
        2 | 3 if n >= 12 => (12u64, u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64),
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    if header_start + header_len > file_len || header_len > 1 << 20 {
        return Err(bad(format!("the .npy header claims {header_len} bytes, the file holds {file_len}")));
    }
    let mut header = vec![0u8; header_len as usize];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(header_start)).and_then(|_| file.read_exact(&mut header)).map_err(|e| Error::io(path, e))?;
    let header = String::from_utf8_lossy(&header);
    // The reader behind this check keeps the last of repeated keys (as Python's dict does) and
    // accepts either quote; a header that names a key twice, or spells it otherwise, could pass
    // this check with one shape and be read with another, so it is refused.
    let field = |key: &str| -> Result<String> {
        let spellings = [format!("'{key}'"), format!("\"{key}\"")];
        let found: Vec<(usize, usize)> = spellings.iter().flat_map(|s| header.match_indices(s.as_str()).map(|(at, m)| (at, m.len())).collect::<Vec<_>>()).collect();
        match found.as_slice() {
            [(at, len)] => header[at + len..].trim_start().strip_prefix(':').map(|rest| rest.trim_start().to_owned()).ok_or_else(|| bad(format!("the .npy header's '{key}' has no value"))),
            [] => Err(bad(format!("the .npy header has no '{key}'"))),
            _ => Err(bad(format!("the .npy header names '{key}' {} times", found.len()))),
        }
    };
    if !header.trim_end().ends_with('}') || header.matches('{').count() != 1 {
        return Err(bad("the .npy header is not one Python dict literal".into()));
    }
    let fortran = field("fortran_order")?;
    if !(fortran.starts_with("False") || fortran.starts_with("True")) {
        return Err(bad(format!("the .npy header's fortran_order is '{}', not True or False", fortran.chars().take(20).collect::<String>())));
    }
    let descr_text = field("descr")?;
    let descr = descr_text.strip_prefix(['\'', '"']).and_then(|d| d.split(['\'', '"']).next()).map(str::to_owned).ok_or_else(|| bad("the .npy header's 'descr' is not a string".into()))?;
    let item_size: u64 = descr.trim_start_matches(['<', '>', '|', '=']).get(1..).and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("unsupported .npy element type '{descr}'")))?;
    let shape_text = field("shape")?.strip_prefix('(').and_then(|s| s.split(')').next()).map(str::to_owned).ok_or_else(|| bad("the .npy header's 'shape' is not a tuple".into()))?;
    let mut elements: u64 = 1;
    for dim in shape_text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d: u64 = dim.parse().map_err(|_| bad(format!("the .npy shape ({shape_text}) holds '{dim}'")))?;
        elements = elements.checked_mul(d).ok_or_else(|| bad(format!("the .npy shape ({shape_text}) overflows")))?;
    }
    let declared = elements.checked_mul(item_size).ok_or_else(|| bad(format!("the .npy shape ({shape_text}) overflows")))?;
    let held = file_len - header_start - header_len;
    if declared != held {
        return Err(bad(format!("the .npy header declares shape ({shape_text}) of '{descr}' = {declared} bytes, but the file holds {held} after the header (truncated or corrupt)")));
    }
    Ok(())
}
