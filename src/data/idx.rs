//! IDX files, the MNIST format: two zero bytes, a type byte, a dimension count, big-endian u32
//! sizes, then the values. Gzipped files are recognised by their magic bytes, not their name.
use std::io::{BufRead, Read};
use std::path::Path;

use tch::Tensor;

use super::ImageDataset;
use crate::error::{Error, Result};

/// The only IDX element type image data sets use.
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Most bytes a file may unpack to (1 GiB).
const MAX_UNPACKED: u64 = 1 << 30;

/// Most bytes one compressed byte may unpack to. Image data compresses a few times (MNIST's
/// images about 5:1); deflate's own limit is about 1032:1, reached only by runs of one value,
/// i.e. by a decompression bomb.
const MAX_GZIP_RATIO: u64 = 200;

/// Opens `path` for reading, un-gzipping it when it starts with the gzip magic bytes; with the
/// most bytes it may unpack to.
fn open_maybe_gzipped(path: &Path) -> Result<(Box<dyn Read>, u64)> {
    // Gzipped or not, an IDX file holds at most what it may unpack to.
    let (mut file, len) = crate::input::open(path, MAX_UNPACKED + 64)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == [0x1f, 0x8b] {
        let bound = len.saturating_mul(MAX_GZIP_RATIO).saturating_add(1 << 16).min(MAX_UNPACKED);
        let decoder = flate2::bufread::GzDecoder::new(std::io::BufReader::new(head.chain(file)));
        Ok((Box::new(OneMember(decoder)), bound))
    } else {
        Ok((Box::new(head.chain(file)), len.min(MAX_UNPACKED)))
    }
}

/// A gzip stream that must end where its one member ends. A gzip decoder stops after the
/// first member, so a second member (or any bytes) after it would be ignored silently: the
/// data read would not be the file's. `gzip` writes one member; `cat a.gz b.gz` makes two.
struct OneMember<R: BufRead>(flate2::bufread::GzDecoder<R>);

impl<R: BufRead> Read for OneMember<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.0.get_mut().fill_buf()?.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bytes follow the end of the gzip data (a second gzip member, or appended data); huelab reads files of one member",
            ));
        }
        Ok(n)
    }
}

/// Reads the whole file (at most [`MAX_UNPACKED`] bytes, and for a gzipped file at most
/// [`MAX_GZIP_RATIO`] times its size), un-gzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let (reader, bound) = open_maybe_gzipped(path)?;
    reader.take(bound + 1).read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > bound {
        return Err(Error::Data { path: path.to_owned(), message: format!("unpacks to more than {bound} bytes (a decompression bomb, or more than huelab reads)") });
    }
    Ok(out)
}

pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bad = |message: String| Error::Data { path: path.to_owned(), message };
    let (mut reader, bound) = open_maybe_gzipped(path)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match reader.read(&mut magic[got..]).map_err(|e| Error::io(path, e))? {
            0 => break,
            n => got += n,
        }
    }
    if got < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(bad("not an IDX file (it must start with two zero bytes)".into()));
    }
    if magic[2] != UNSIGNED_BYTE {
        return Err(bad(format!("IDX element type 0x{:02x} is not supported; only unsigned bytes (0x08)", magic[2])));
    }
    let ndim = magic[3] as usize;
    let mut sizes = vec![0u8; 4 * ndim];
    if ndim == 0 || reader.read_exact(&mut sizes).is_err() {
        return Err(bad(format!("truncated IDX header ({ndim} dimensions)")));
    }
    let dims: Vec<usize> = sizes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).filter(|&e| e <= bound).ok_or_else(|| bad(format!("the header announces {dims:?}, more values than the file can hold ({bound} at most)")))?;
    // Read what is there, up to one byte more than announced: the buffer grows with the data,
    // so a header cannot make huelab allocate what the file does not hold.
    let mut data = Vec::new();
    reader.take(expected + 1).read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
    if data.len() as u64 != expected {
        let found = if data.len() as u64 > expected { "more".to_owned() } else { data.len().to_string() };
        return Err(bad(format!("the header announces {dims:?} = {expected} values but the file holds {found}")));
    }
    Ok(IdxArray { dims, data })
}

/// An image data set from an IDX image file (`[N, H, W]`) and an IDX label file (`[N]`).
/// Pixels stay 8-bit in memory (consumers see them scaled to [0, 1]); without `class_names`,
/// classes are named "0", "1", …
pub fn load_idx(name: &str, images: &Path, labels: &Path, class_names: Option<Vec<String>>) -> Result<ImageDataset> {
    let image_array = read_idx(images)?;
    let label_array = read_idx(labels)?;
    let [n, h, w] = image_array.dims[..] else {
        return Err(Error::Data {
            path: images.to_owned(),
            message: format!("expected images of shape [N, height, width], found {:?}", image_array.dims),
        });
    };
    if label_array.dims != [n] {
        return Err(Error::Data {
            path: labels.to_owned(),
            message: format!("expected {n} labels to match {}, found shape {:?}", images.display(), label_array.dims),
        });
    }
    let labels_i64: Vec<i64> = label_array.data.iter().map(|&l| l as i64).collect();
    let class_names = match class_names {
        Some(names) => names,
        None => numbered_classes(&labels_i64).map_err(|message| Error::Data { path: labels.to_owned(), message })?,
    };
    let pixels = Tensor::from_slice(&image_array.data).view([n as i64, 1, h as i64, w as i64]);
    ImageDataset::new(name, pixels, labels_i64, class_names)
        .map_err(|e| Error::Data { path: labels.to_owned(), message: e.to_string() })
}

/// Most classes a data set may name by number: more is a corrupt label, not a data set.
pub const MAX_NUMBERED_CLASSES: i64 = 100_000;

/// "0", "1", … up to the largest label; a label above [`MAX_NUMBERED_CLASSES`] is an error
/// (one flipped byte must not size a class list of millions).
pub fn numbered_classes(labels: &[i64]) -> std::result::Result<Vec<String>, String> {
    let count = labels.iter().copied().max().map_or(0, |m| m + 1);
    if count > MAX_NUMBERED_CLASSES {
        return Err(format!("label {} would make {count} classes (at most {MAX_NUMBERED_CLASSES} numbered classes; give class_names if that is right)", count - 1));
    }
    if let Some(bad) = labels.iter().find(|&&l| l < 0) {
        return Err(format!("label {bad} is negative"));
    }
    Ok((0..count).map(|c| c.to_string()).collect())
}
