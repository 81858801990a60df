//! Seeded mutations of one file of a real input: the malformed files a reader must turn into
//! errors. Each mutation is described in words, so a failing case can be reproduced by hand.
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Numbers that break readers: zero, negative, the edges of 32- and 64-bit integers, huge.
const NASTY_INTEGERS: &[u64] = &[0, 1, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 40, i64::MAX as u64, u64::MAX];

/// Replacements for a number written as text (npy headers, JSON, list files).
const NASTY_TEXT_NUMBERS: &[&str] =
    &["0", "-1", "-0", "1", "2147483648", "4294967296", "99999999999", "18446744073709551617", "1e308", "-1e308", "NaN", "0.5", ""];

/// How a file is mutated: JSON files also get structural mutations of their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Binary,
    Json,
    Text,
}

/// Mutates the file at `path` (or replaces it with a directory); returns what was done.
pub fn mutate(path: &Path, kind: FileKind, rng: &mut ChaCha8Rng) -> Result<String> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let choice = rng.random_range(0..100);
    let description = match (kind, choice) {
        (_, 0..=2) => {
            std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            std::fs::create_dir(path).map_err(|e| Error::io(path, e))?;
            return Ok("replaced by a directory".into());
        }
        (FileKind::Json, 6..=55) => return json_mutation(path, &bytes, rng),
        _ => byte_mutation(&mut bytes, choice, rng),
    };
    std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
    Ok(description)
}

/// One of [`mutate`]'s byte-level mutations of `bytes` in memory (a stream or a record rather
/// than a file); returns what was done.
pub fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let choice = rng.random_range(3..100);
    byte_mutation(bytes, choice, rng)
}

/// The byte-level mutation for `choice` (3..100, as [`mutate`] draws it).
fn byte_mutation(bytes: &mut Vec<u8>, choice: u32, rng: &mut ChaCha8Rng) -> String {
    match choice {
        0..=5 => {
            bytes.clear();
            "emptied".into()
        }
        6..=20 => truncate(bytes, rng),
        21..=35 => flip_bits(bytes, rng),
        36..=50 => write_integer(bytes, rng),
        51..=70 => text_number(bytes, rng),
        71..=78 => overwrite(bytes, rng),
        79..=86 => insert(bytes, rng),
        87..=93 => delete(bytes, rng),
        _ => duplicate(bytes, rng),
    }
}

/// An offset biased towards the start, where headers are.
fn offset(len: usize, rng: &mut ChaCha8Rng) -> usize {
    if len == 0 {
        return 0;
    }
    if rng.random_bool(0.6) {
        rng.random_range(0..len.min(512))
    } else {
        rng.random_range(0..len)
    }
}

fn truncate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let at = if bytes.is_empty() { 0 } else { rng.random_range(0..bytes.len()) };
    bytes.truncate(at);
    format!("truncated to {at} bytes")
}

fn flip_bits(bytes: &mut [u8], rng: &mut ChaCha8Rng) -> String {
    if bytes.is_empty() {
        return "no bits to flip".into();
    }
    let count = rng.random_range(1..=8);
    let mut at = Vec::new();
    for _ in 0..count {
        let i = offset(bytes.len(), rng);
        bytes[i] ^= 1 << rng.random_range(0..8);
        at.push(i);
    }
    format!("bits flipped at {at:?}")
}

fn write_integer(bytes: &mut [u8], rng: &mut ChaCha8Rng) -> String {
    let value = *NASTY_INTEGERS.choose(rng).unwrap_or(&0);
    let width = *[1usize, 2, 4, 8].choose(rng).unwrap_or(&4);
    let big_endian = rng.random_bool(0.3);
    let le = value.to_le_bytes();
    let be = value.to_be_bytes();
    let encoded: Vec<u8> = if big_endian { be[8 - width..].to_vec() } else { le[..width].to_vec() };
    if bytes.len() < width {
        return "too short for an integer".into();
    }
    let at = offset(bytes.len() - width + 1, rng);
    bytes[at..at + width].copy_from_slice(&encoded);
    format!("{width}-byte {} integer {value:#x} written at {at}", if big_endian { "big-endian" } else { "little-endian" })
}

/// Replaces a run of ASCII digits (a shape, a size, a label written as text) with a nasty number.
fn text_number(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let scan = bytes.len().min(1 << 16);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < scan {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < scan && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    let Some(&(start, end)) = runs.choose(rng) else {
        return flip_bits(bytes, rng);
    };
    let replacement = *NASTY_TEXT_NUMBERS.choose(rng).unwrap_or(&"0");
    bytes.splice(start..end, replacement.bytes());
    format!("number at {start} replaced by '{replacement}'")
}

fn overwrite(bytes: &mut [u8], rng: &mut ChaCha8Rng) -> String {
    if bytes.is_empty() {
        return "nothing to overwrite".into();
    }
    let at = offset(bytes.len(), rng);
    let len = rng.random_range(1..=32).min(bytes.len() - at);
    rng.fill(&mut bytes[at..at + len]);
    format!("{len} random bytes at {at}")
}

fn insert(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    let at = offset(bytes.len() + 1, rng).min(bytes.len());
    let len = rng.random_range(1..=64);
    let chunk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    bytes.splice(at..at, chunk);
    format!("{len} random bytes inserted at {at}")
}

fn delete(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    if bytes.is_empty() {
        return "nothing to delete".into();
    }
    let at = offset(bytes.len(), rng);
    let len = rng.random_range(1..=64).min(bytes.len() - at);
    bytes.drain(at..at + len);
    format!("{len} bytes deleted at {at}")
}

fn duplicate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
    if bytes.is_empty() {
        return "nothing to duplicate".into();
    }
    let at = offset(bytes.len(), rng);
    let len = rng.random_range(1..=256).min(bytes.len() - at);
    let chunk = bytes[at..at + len].to_vec();
    let to = rng.random_range(0..=bytes.len());
    bytes.splice(to..to, chunk);
    format!("{len} bytes from {at} copied to {to}")
}

/// Changes one value of a JSON document: another type, a nasty number, removed, or nested
/// deeper than any parser should follow. An unparsable file gets a byte mutation instead.
fn json_mutation(path: &Path, bytes: &[u8], rng: &mut ChaCha8Rng) -> Result<String> {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        let mut bytes = bytes.to_vec();
        let d = flip_bits(&mut bytes, rng);
        std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
        return Ok(d);
    };
    let mut pointers = Vec::new();
    collect_pointers(&doc, String::new(), &mut pointers);
    let pointer = pointers.choose(rng).cloned().unwrap_or_default();
    let deep = || {
        let mut v = serde_json::json!(0);
        for _ in 0..10_000 {
            v = serde_json::Value::Array(vec![v]);
        }
        v
    };
    let replacement: Option<serde_json::Value> = match rng.random_range(0..12) {
        0 => None,
        1 => Some(serde_json::Value::Null),
        2 => Some(serde_json::json!(-1)),
        3 => Some(serde_json::json!(0)),
        4 => Some(serde_json::json!(u64::MAX)),
        5 => Some(serde_json::json!(1e300)),
        6 => Some(serde_json::json!(i64::MIN)),
        7 => Some(serde_json::json!("x")),
        8 => Some(serde_json::json!([])),
        9 => Some(serde_json::json!({})),
        10 => Some(serde_json::json!(4_294_967_296u64)),
        _ => Some(deep()),
    };
    let what = match &replacement {
        None => "removed".to_owned(),
        Some(v) if v.is_array() && !v.as_array().is_some_and(|a| a.is_empty()) => "replaced by an array nested 10 000 deep".to_owned(),
        Some(v) => format!("set to {v}"),
    };
    set_pointer(&mut doc, &pointer, replacement);
    // serde_json's writer recurses; the deep value is written by hand.
    let text = write_json(&doc);
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    Ok(format!("JSON value '{pointer}' {what}"))
}

fn collect_pointers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    if !at.is_empty() {
        out.push(at.clone());
    }
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| collect_pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        serde_json::Value::Array(items) => items.iter().enumerate().take(8).for_each(|(i, v)| collect_pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn set_pointer(doc: &mut serde_json::Value, pointer: &str, replacement: Option<serde_json::Value>) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let key = key.replace("~1", "/").replace("~0", "~");
    let Some(parent) = doc.pointer_mut(parent) else { return };
    match (parent, replacement) {
        (serde_json::Value::Object(map), None) => {
            map.remove(&key);
        }
        (serde_json::Value::Object(map), Some(v)) => {
            map.insert(key, v);
        }
        (serde_json::Value::Array(items), r) => {
            if let Ok(i) = key.parse::<usize>() {
                match r {
                    None if i < items.len() => {
                        items.remove(i);
                    }
                    Some(v) if i < items.len() => items[i] = v,
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// JSON text without recursion (the document may nest 10 000 deep).
fn write_json(doc: &serde_json::Value) -> String {
    enum Step<'a> {
        Value(&'a serde_json::Value),
        Text(String),
    }
    let mut out = String::new();
    let mut stack = vec![Step::Value(doc)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Text(t) => out.push_str(&t),
            Step::Value(serde_json::Value::Array(items)) => {
                out.push('[');
                stack.push(Step::Text("]".into()));
                for (i, v) in items.iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    if i > 0 {
                        stack.push(Step::Text(",".into()));
                    }
                }
            }
            Step::Value(serde_json::Value::Object(map)) => {
                out.push('{');
                stack.push(Step::Text("}".into()));
                let entries: Vec<_> = map.iter().collect();
                for (i, (k, v)) in entries.into_iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    let comma = if i > 0 { "," } else { "" };
                    stack.push(Step::Text(format!("{}:", serde_json::Value::String(k.clone()))));
                    stack.push(Step::Text(comma.into()));
                }
            }
            Step::Value(v) => out.push_str(&v.to_string()),
        }
    }
    out
}
