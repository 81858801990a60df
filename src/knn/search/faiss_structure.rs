//! What a FAISS index is, read from the index itself, so that a memory whose `memory.json`
//! names one factory string while `index.faiss` holds another index is refused: every report
//! would otherwise state the wrong index. Two indexes made by one factory string get the same
//! [`Structure`], trained or not, full or empty; factory strings that differ in kind, dimension,
//! metric, inverted lists, bytes per code (PQ sub-quantisers and bits, scalar quantiser types,
//! PCA's output dimension) or an HNSW graph's links per node give different ones.
//!
//! The kinds and numbers come from FAISS's C API, which casts to flat, IVF, pre-transform,
//! scalar-quantiser, LSH, ID-map and refine indexes; HNSW's links per node, which it does not
//! expose, are read from the written file's header (the top-level index only: the links of an
//! HNSW under a PCA are not compared).
use std::io::Read;
use std::path::Path;

use faiss::index::NativeIndex;
use faiss_sys as sys;

use crate::error::{Error, Result};

/// How deep nested indexes are described (`PCA64,IVF256(…),Flat` is three levels).
const MAX_DEPTH: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure(String);

impl std::fmt::Display for Structure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Structure {
    /// The structure of `index`, written to (or read from) `file`.
    pub fn of<I: NativeIndex<Inner = sys::FaissIndex>>(index: &I, file: &Path) -> Result<Self> {
        let mut text = describe(index.inner_ptr(), 0);
        if let Some(links) = hnsw_links(file)? {
            text.push_str(&format!(", {links} links per node"));
        }
        Ok(Structure(text))
    }
}

/// The index at `index` and everything nested in it, in words.
fn describe(index: *mut sys::FaissIndex, depth: usize) -> String {
    if index.is_null() {
        return "none".to_owned();
    }
    if depth > MAX_DEPTH {
        return "…".to_owned();
    }
    // SAFETY: `index` is a live FAISS index owned by the caller for this call; the C API's
    // casts return null for another type, and the getters only read fields.
    unsafe {
        let mut code_bytes = 0usize;
        let code = if sys::faiss_Index_sa_code_size(index, &mut code_bytes) == 0 { code_bytes.to_string() } else { "?".to_owned() };
        let common = format!("d {}, metric {}, {code} bytes per code", sys::faiss_Index_d(index), sys::faiss_Index_metric_type(index));
        let kind = if !sys::faiss_IndexFlat_cast(index).is_null() {
            "Flat".to_owned()
        } else if !sys::faiss_IndexIVF_cast(index).is_null() {
            let ivf = sys::faiss_IndexIVF_cast(index);
            let codes = if !sys::faiss_IndexIVFFlat_cast(index).is_null() {
                "Flat"
            } else if !sys::faiss_IndexIVFScalarQuantizer_cast(index).is_null() {
                "SQ"
            } else {
                "other codes"
            };
            format!("IVF of {} lists over ({}), {codes}", sys::faiss_IndexIVF_nlist(ivf), describe(sys::faiss_IndexIVF_quantizer(ivf), depth + 1))
        } else if !sys::faiss_IndexPreTransform_cast(index).is_null() {
            format!("transform to ({})", describe(sys::faiss_IndexPreTransform_index(sys::faiss_IndexPreTransform_cast(index)), depth + 1))
        } else if !sys::faiss_IndexScalarQuantizer_cast(index).is_null() {
            "SQ".to_owned()
        } else if !sys::faiss_IndexLSH_cast(index).is_null() {
            format!("LSH of {} bits", sys::faiss_IndexLSH_nbits(sys::faiss_IndexLSH_cast(index)))
        } else if !sys::faiss_IndexIDMap_cast(index).is_null() {
            format!("IDMap of ({})", describe(sys::faiss_IndexIDMap_sub_index(sys::faiss_IndexIDMap_cast(index)), depth + 1))
        } else if !sys::faiss_IndexRefineFlat_cast(index).is_null() {
            "RefineFlat".to_owned()
        } else {
            "another kind".to_owned()
        };
        format!("{kind}: {common}")
    }
}

/// An HNSW index's links per node (its `M`), from the header of the file FAISS wrote: the
/// fourcc `IHN?`, the index header, then `assign_probas` and `cum_nneighbor_per_level`, whose
/// second entry is 2·M. `None` for a file of another index.
fn hnsw_links(file: &Path) -> Result<Option<u64>> {
    let bad = |what: &str| Error::Data { path: file.to_owned(), message: format!("FAISS HNSW header: {what}") };
    let mut reader = std::io::BufReader::new(std::fs::File::open(file).map_err(|e| Error::io(file, e))?);
    let mut read = |n: usize| -> Result<Vec<u8>> {
        let mut bytes = vec![0; n];
        reader.read_exact(&mut bytes).map_err(|_| bad("truncated"))?;
        Ok(bytes)
    };
    let fourcc = read(4)?;
    if &fourcc[..3] != b"IHN" {
        return Ok(None);
    }
    // d (i32), ntotal and two placeholders (i64), is_trained (u8), metric (i32), and the
    // metric's argument (f32) for metrics past inner product and L2.
    let header = read(4 + 8 + 8 + 8 + 1 + 4)?;
    let metric = i32::from_le_bytes(header[29..33].try_into().map_err(|_| bad("header"))?);
    if metric > 1 {
        read(4)?;
    }
    let u64_at = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or([0xff; 8]));
    let probas = u64_at(&read(8)?);
    let probas_bytes = probas.checked_mul(8).filter(|&n| n <= 1 << 16).ok_or_else(|| bad("implausible level count"))?;
    read(probas_bytes as usize)?;
    let levels = u64_at(&read(8)?);
    if !(2..=1 << 13).contains(&levels) {
        return Err(bad("implausible level count"));
    }
    let cumulative = read(levels as usize * 4)?;
    let second = i32::from_le_bytes(cumulative[4..8].try_into().map_err(|_| bad("levels"))?);
    u64::try_from(second / 2).map(Some).map_err(|_| bad("negative links per node"))
}
