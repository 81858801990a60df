//! Structural mutations: inputs that are well-formed byte by byte but lie about what they are
//! or where they lead. A special file or a link where a file is expected, a file made sparse
//! and huge, an `.npy` header that names a key twice, a tensor set to NaN with its digest
//! recomputed, a JSON value that no run can have written, a memory whose parts disagree or
//! whose memory.json names another index, and the container mutations of `containers.rs`. Most
//! of them must be refused: reading one without an error is a mishandled case
//! ([`super::Outcome::AcceptedImpossible`]).
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use std::io::Read;

use super::containers;
use super::mutate::FileKind;
use crate::error::{Error, Result};

/// A structural mutation as it was done.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub description: String,
    /// The reader must refuse the result (it is not a file any run or user could mean).
    pub must_refuse: bool,
}

fn refuse(description: impl Into<String>) -> Mutation {
    Mutation { description: description.into(), must_refuse: true }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Mutates `file` (relative to `case_dir`; the unmutated original is `seed_dir/file`, outside
/// the case directory, where the case's reads are confined).
pub fn mutate(case_dir: &Path, seed_dir: &Path, file: &Path, kind: FileKind, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let path = case_dir.join(file);
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut choices: Vec<u8> = vec![0, 1, 2, 3];
    if name.ends_with(".npy") {
        choices.extend([4, 4]);
    }
    if is_safetensors(&path) {
        choices.extend([5, 5]);
    }
    if kind == FileKind::Json && impossible_values(&name).is_some() {
        choices.extend([6, 6, 6]);
    }
    let head = std::fs::File::open(&path).and_then(|f| {
        let mut head = Vec::with_capacity(4);
        std::io::Read::take(f, 4).read_to_end(&mut head).map(|_| head)
    });
    let head = head.map_err(io(&path))?;
    if containers::is_zip(&head) {
        choices.extend([7, 7, 10]);
    }
    if containers::has_pickle(&path, &head) {
        choices.extend([8, 8]);
    }
    if containers::is_gzip(&head) {
        choices.extend([9, 9]);
    }
    match choices.choose(rng).copied().unwrap_or(0) {
        0 => {
            std::fs::remove_file(&path).map_err(io(&path))?;
            let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(|e| Error::msg(e.to_string()))?;
            // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
            if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
                return Err(Error::io(&path, std::io::Error::last_os_error()));
            }
            Ok(refuse("replaced by a named pipe (FIFO)"))
        }
        1 => {
            std::fs::remove_file(&path).map_err(io(&path))?;
            std::os::unix::fs::symlink(seed_dir.join(file), &path).map_err(io(&path))?;
            Ok(refuse("replaced by a symbolic link to the same file outside the readable places"))
        }
        2 => {
            // A link to a copy inside the case directory is as good as the file.
            let copy = path.with_file_name(format!(".{name}.copy"));
            std::fs::rename(&path, &copy).map_err(io(&path))?;
            std::os::unix::fs::symlink(&copy, &path).map_err(io(&path))?;
            Ok(Mutation { description: "replaced by a symbolic link to a copy beside it".into(), must_refuse: false })
        }
        3 => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
            let len = file.metadata().map_err(io(&path))?.len();
            let sparse = len + (5 << 30) + rng.random_range(0..4096);
            file.set_len(sparse).map_err(io(&path))?;
            Ok(refuse(format!("extended to a sparse {sparse}-byte file")))
        }
        4 => repeat_npy_key(&path, rng),
        5 => nan_tensor(&path, rng),
        6 => impossible_json(&path, &name, rng),
        7 => containers::duplicate_zip_entry(&path, rng),
        8 => containers::flood_pickle(&path, rng),
        9 => containers::second_gzip_member(&path, rng),
        _ => containers::inflate_declared_size(&path, rng),
    }
}

/// Adds a second `shape` (or `descr`) to an `.npy` header, in the header's spare padding.
fn repeat_npy_key(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let text_end = bytes.iter().position(|&b| b == b'}').filter(|&at| at > 10);
    let Some(close) = text_end else {
        return Ok(Mutation { description: "no .npy header to change (left as it was)".into(), must_refuse: false });
    };
    let extra = *[", 'shape': (35184372088832, 1)", ", 'shape': (3,)", ", \"shape\": (2, 2)", ", 'descr': '<f8'"].choose(rng).unwrap_or(&", 'shape': (3,)");
    // Keep the header's length: take the room from its trailing spaces, else grow it.
    bytes.splice(close..close, extra.bytes());
    let newline = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let spaces = bytes[..newline].iter().rev().take_while(|&&b| b == b' ').count();
    let remove = extra.len().min(spaces);
    bytes.drain(newline - remove..newline);
    if remove < extra.len() {
        // Not enough padding: lengthen the header by what is missing (version 1: u16 at 8).
        let grown = u16::from_le_bytes([bytes[8], bytes[9]]).saturating_add((extra.len() - remove) as u16);
        bytes[8..10].copy_from_slice(&grown.to_le_bytes());
    }
    std::fs::write(path, &bytes).map_err(io(path))?;
    Ok(refuse(format!("the .npy header given a repeated key: {}", extra.trim_start_matches(", "))))
}

fn is_safetensors(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

/// Writes NaN into one float32 value of a safetensors file and, where a sibling JSON records
/// the file's SHA-256, recomputes it there (or removes it), so only the values can tell.
fn nan_tensor(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize).unwrap_or(0);
    let header: serde_json::Map<String, Value> = bytes.get(8..8 + header_len).and_then(|h| serde_json::from_slice(h).ok()).unwrap_or_default();
    let floats: Vec<(&String, usize, usize)> = header
        .iter()
        .filter(|(_, v)| v["dtype"] == "F32")
        .filter_map(|(n, v)| Some((n, v["data_offsets"][0].as_u64()? as usize, v["data_offsets"][1].as_u64()? as usize)))
        .filter(|(_, start, end)| end > start)
        .collect();
    let Some(&(name, start, end)) = floats.choose(rng) else {
        return Ok(Mutation { description: "no float32 tensor to set to NaN (left as it was)".into(), must_refuse: false });
    };
    let at = 8 + header_len + start + 4 * rng.random_range(0..(end - start) / 4);
    let value = if rng.random_bool(0.8) { f32::NAN } else { f32::INFINITY };
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, &bytes).map_err(io(path))?;
    let name = name.clone();
    let mut digest = "";
    for sibling in ["checkpoint.json", "model.json"] {
        let json_path = path.with_file_name(sibling);
        let Ok(text) = std::fs::read(&json_path) else { continue };
        let Ok(mut doc) = serde_json::from_slice::<Value>(&text) else { continue };
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let names_it = sibling == "model.json" || doc["tensors"] == file_name.as_str();
        if let (true, Some(map)) = (names_it, doc.as_object_mut()) {
            if rng.random_bool(0.5) {
                let (_, sha) = crate::files::file_digest(path)?;
                map.insert("tensors_sha256".into(), json!(sha));
                digest = ", its digest recomputed";
            } else {
                map.remove("tensors_sha256");
                digest = ", its digest removed";
            }
            std::fs::write(&json_path, serde_json::to_vec(&doc).map_err(|e| Error::msg(e.to_string()))?).map_err(io(&json_path))?;
        }
    }
    Ok(refuse(format!("a value of tensor '{name}' set to {value}{digest}")))
}

/// Values of a huelab sidecar that no run writes: an accuracy above 1, a negative learning
/// rate, step counters the epochs contradict, sizes that disagree with the files beside them.
fn impossible_values(name: &str) -> Option<Vec<(&'static str, Value)>> {
    Some(match name {
        "checkpoint.json" => vec![
            ("/epochs/0/train_accuracy", json!(7.5)),
            ("/epochs/0/val_accuracy", json!(-0.25)),
            ("/epochs/0/lr", json!(-0.01)),
            ("/epochs/0/seconds", json!(-3.0)),
            ("/optimizer_steps", json!(0)),
            ("/optimizer_steps", json!(1u64 << 62)),
            ("/wall_seconds", json!(-1.0)),
            ("/epoch", json!(5)),
        ],
        "model.json" => vec![
            ("/spec/num_classes", json!(0)),
            ("/spec/num_classes", json!(1u64 << 40)),
            ("/spec/in_channels", json!(-1)),
            ("/spec/input_size/0", json!(0)),
            ("/class_names", json!([])),
        ],
        "memory.json" => vec![
            ("/dim", json!(3)),
            ("/dim", json!(12)),
            ("/channels", json!(0)),
            ("/grid/0", json!(0)),
            ("/vectors", json!(1u64 << 40)),
            ("/images", json!(1)),
            ("/class_counts/0", json!(999)),
            ("/config/index", json!("IVF0,Flat")),
            ("/config/index", json!("HNSW0")),
            ("/config/index", json!("PQ0")),
            ("/config/ef_search", json!(1u64 << 40)),
            // Another index than index.faiss holds (its checksums still match the file).
            ("/config/index", json!("HNSW32")),
            ("/config/index", json!("IVF4,Flat")),
            ("/config/index", json!("PQ2")),
            ("/config/index", json!("SQ8")),
            ("/config/pca", json!(2)),
        ],
        _ => return None,
    })
}

fn impossible_json(path: &Path, name: &str, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let text = std::fs::read(path).map_err(io(path))?;
    let mut doc: Value = serde_json::from_slice(&text).map_err(|e| Error::Data { path: path.to_owned(), message: e.to_string() })?;
    let candidates: Vec<(&str, Value)> = impossible_values(name).unwrap_or_default().into_iter().filter(|(p, v)| doc.pointer(p).is_some_and(|old| old != v)).collect();
    let Some((pointer, value)) = candidates.choose(rng).cloned() else {
        return Ok(Mutation { description: "no impossible value applies (left as it was)".into(), must_refuse: false });
    };
    if let Some(slot) = doc.pointer_mut(pointer) {
        *slot = value.clone();
    }
    std::fs::write(path, serde_json::to_vec_pretty(&doc).map_err(|e| Error::msg(e.to_string()))?).map_err(io(path))?;
    Ok(refuse(format!("JSON value '{pointer}' set to the impossible {value}")))
}
