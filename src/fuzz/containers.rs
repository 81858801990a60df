//! Structural mutations inside containers: a zip archive with two entries of one name or an
//! entry whose declared size exceeds any machine, a pickle that opens MARKs without end or
//! memoises a million values, a gzip file with a second member after its data. Each is well-formed at the container's level, so only a reader that
//! checks what it unpacks refuses it; all must be refused.
use std::io::{Cursor, Read, Write};
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zip::write::SimpleFileOptions;

use super::structure::Mutation;
use crate::error::{Error, Result};

pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Whether the file holds pickles huelab's own reader unpickles: a legacy `.pth` (pickles from
/// its first byte) or a zip with `data.pkl`.
pub fn has_pickle(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e == "pth") && (bytes.starts_with(b"\x80\x02") || is_zip(bytes))
}

fn refuse(description: String) -> Mutation {
    Mutation { description, must_refuse: true }
}

fn zip_error(path: &Path) -> impl Fn(zip::result::ZipError) -> Error + '_ {
    move |e| Error::Data { path: path.to_owned(), message: format!("fuzz: rewriting the zip archive: {e}") }
}

/// The archive at `bytes` written again entry by entry: `replace` gives new (stored) contents
/// for an entry by name, `extra` adds entries at the end.
fn rewrite_zip(path: &Path, bytes: &[u8], replace: &dyn Fn(&str, &[u8]) -> Option<Vec<u8>>, extra: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error(path))?;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let (name, contents) = {
            let mut entry = archive.by_index(i).map_err(zip_error(path))?;
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).map_err(|e| Error::io(path, e))?;
            (entry.name().to_owned(), contents)
        };
        match replace(&name, &contents) {
            Some(new) => {
                writer.start_file(name.as_str(), stored).map_err(zip_error(path))?;
                writer.write_all(&new).map_err(|e| Error::io(path, e))?;
            }
            None => writer.raw_copy_file(archive.by_index_raw(i).map_err(zip_error(path))?).map_err(zip_error(path))?,
        }
    }
    for (name, contents) in extra {
        writer.start_file(name.as_str(), stored).map_err(zip_error(path))?;
        writer.write_all(contents).map_err(|e| Error::io(path, e))?;
    }
    Ok(writer.finish().map_err(zip_error(path))?.into_inner())
}

/// Adds a second entry named as an existing one (the zip writer refuses a repeated name, so
/// it is written under a name of the same length and renamed in the bytes).
pub fn duplicate_zip_entry(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let names: Vec<String> = zip::ZipArchive::new(Cursor::new(&bytes)).map_err(zip_error(path))?.file_names().map(str::to_owned).collect();
    let Some(name) = names.iter().filter(|n| n.is_ascii() && !n.is_empty()).collect::<Vec<_>>().choose(rng).map(|n| n.to_string()) else {
        return Ok(Mutation { description: "no zip entry to repeat (left as it was)".into(), must_refuse: false });
    };
    let last = if name.ends_with('~') { '_' } else { '~' };
    let stand_in = format!("{}{last}", &name[..name.len() - 1]);
    if names.contains(&stand_in) {
        return Ok(Mutation { description: "no free stand-in name (left as it was)".into(), must_refuse: false });
    }
    let mut rewritten = rewrite_zip(path, &bytes, &|_, _| None, &[(stand_in.clone(), b"a second entry of the name".to_vec())])?;
    let (from, to) = (stand_in.as_bytes(), name.as_bytes());
    let mut at = 0;
    while let Some(found) = rewritten[at..].windows(from.len()).position(|w| w == from) {
        rewritten[at + found..at + found + to.len()].copy_from_slice(to);
        at += found + to.len();
    }
    std::fs::write(path, &rewritten).map_err(|e| Error::io(path, e))?;
    Ok(refuse(format!("a second zip entry named '{name}'")))
}

/// Declares one entry (in its local header and the central directory) to unpack to almost
/// 4 GiB, its bytes unchanged: a reader that sized anything by the declaration would ask for
/// it before reading a byte.
pub fn inflate_declared_size(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let central: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").map(|(at, _)| at).filter(|&at| at + 46 <= bytes.len()).collect();
    let Some(&entry) = central.choose(rng) else {
        return Ok(Mutation { description: "no zip central directory entry (left as it was)".into(), must_refuse: false });
    };
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let declared = 0xFFFF_FFF0u32.to_le_bytes();
    bytes[entry + 24..entry + 28].copy_from_slice(&declared);
    let local = u32_at(&bytes, entry + 42);
    if local + 30 <= bytes.len() && bytes[local..local + 4] == *b"PK\x03\x04" {
        bytes[local + 22..local + 26].copy_from_slice(&declared);
    }
    std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
    Ok(refuse("a zip entry declared to unpack to 4294967280 bytes".to_owned()))
}

/// Opens MARKs without end (more than the reader's bound) or memoises a million and one small
/// values at the start of the pickle, right after its protocol opcode.
pub fn flood_pickle(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let marks = rng.random_bool(0.5);
    let flood: Vec<u8> = if marks {
        vec![b'('; 100_000]
    } else {
        // NONE, LONG_BINPUT i, POP: one memo entry each, nothing left on the stack.
        (0..1_000_001u32).flat_map(|i| [&[b'N', b'r'][..], &i.to_le_bytes(), b"0"].concat()).collect()
    };
    let inject = |pickle: &[u8]| -> Vec<u8> {
        let at = if pickle.starts_with(b"\x80") { 2.min(pickle.len()) } else { 0 };
        [&pickle[..at], &flood[..], &pickle[at..]].concat()
    };
    let mutated = if is_zip(&bytes) {
        rewrite_zip(path, &bytes, &|name, contents| (name == "data.pkl" || name.ends_with("/data.pkl")).then(|| inject(contents)), &[])?
    } else {
        inject(&bytes)
    };
    std::fs::write(path, &mutated).map_err(|e| Error::io(path, e))?;
    Ok(refuse(if marks { "the pickle opens 100000 MARKs".to_owned() } else { "the pickle memoises 1000001 values".to_owned() }))
}

/// Appends a second gzip member (or plain bytes) after the data.
pub fn second_gzip_member(path: &Path, rng: &mut ChaCha8Rng) -> Result<Mutation> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let member = rng.random_bool(0.5);
    if member {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&[0u8; 64]).map_err(|e| Error::io(path, e))?;
        bytes.extend(encoder.finish().map_err(|e| Error::io(path, e))?);
    } else {
        bytes.extend(b"trailing bytes after the gzip member");
    }
    std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
    Ok(refuse(if member { "a second gzip member after the data".to_owned() } else { "bytes after the gzip member".to_owned() }))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::fuzz::readers::Reader;

    /// Each mutation of a seed that `reader` reads, made with `rng_seed`, is refused.
    fn refused(reader: Reader, variant: usize, file: &str, mutate: fn(&Path, &mut ChaCha8Rng) -> Result<Mutation>, rng_seed: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = reader.make_seed(variant, dir.path()).unwrap();
        assert!(reader.read(&input).is_ok(), "the seed itself reads");
        let mutation = mutate(&dir.path().join(file), &mut ChaCha8Rng::seed_from_u64(rng_seed)).unwrap();
        assert!(mutation.must_refuse, "{}", mutation.description);
        let error = reader.read(&input).err().unwrap_or_else(|| panic!("{} accepted", mutation.description)).to_string();
        assert!(error.contains(file), "{}: {error}", mutation.description);
        format!("{}: {error}", mutation.description)
    }

    #[test]
    fn every_container_mutation_is_refused_by_its_reader() {
        for seed in 0..3 {
            let error = refused(Reader::Pth, 1, "state_zip.pth", duplicate_zip_entry, seed);
            assert!(error.contains("share a name"), "{error}");
            let error = refused(Reader::Torchscript, 0, "module.pt", duplicate_zip_entry, seed);
            assert!(error.contains("share a name"), "{error}");
        }
        // Both floods (the rng picks MARKs or memo entries), in both .pth formats.
        let mut floods = std::collections::BTreeSet::new();
        for seed in 0..8 {
            for (variant, file) in [(0, "state.pth"), (1, "state_zip.pth")] {
                let error = refused(Reader::Pth, variant, file, flood_pickle, seed);
                floods.insert(error.contains("MARKs"));
            }
        }
        assert_eq!(floods.len(), 2, "both floods ran");
        for seed in 0..4 {
            refused(Reader::Idx, 1, "images.idx.gz", second_gzip_member, seed);
            let error = refused(Reader::Pth, 1, "state_zip.pth", inflate_declared_size, seed);
            assert!(error.contains("declare") || error.contains("unpacks to"), "{error}");
            let error = refused(Reader::Torchscript, 0, "module.pt", inflate_declared_size, seed);
            assert!(error.contains("declares"), "{error}");
        }
    }
}
