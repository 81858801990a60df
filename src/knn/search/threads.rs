//! How a FAISS search uses the cores. FAISS's own exact search alternates between OpenBLAS's
//! thread pool (the distance GEMM) and OpenMP's (the top-k heaps), and both pools spin while
//! they wait for work. With every core free that costs little; with one core taken by another
//! process (a second experiment), a spinning thread and the work it waits for fight over the
//! same core, and search fell to about a fifth of its quiet speed. So large searches are split
//! here instead: one worker per core, each taking chunks of queries from a shared queue and
//! searching them with single-threaded BLAS and OpenMP. Nothing waits on anything but the
//! queue; a worker on a shared core simply takes fewer chunks.
//!
//!
//! The chunks have a fixed size, whatever the number of workers: FAISS computes distances by
//! BLAS for 20 queries and more and directly below that, and the two round differently, so a
//! chunking that followed the thread count would give other bits on another machine or under
//! `--threads`. With fixed chunks and single-threaded BLAS, a query's distances are the same
//! bits whoever searches its chunk and whatever else the machine is doing.
//!
//! `HUELAB_FAISS_THREADING=faiss` keeps FAISS's own threading (for comparison).
use std::os::raw::c_int;

use faiss::index::NativeIndex;

use crate::error::{Error, Result};

// FAISS's OpenBLAS, PyPI's scipy-openblas (scripts/build-faiss.sh), whose routines carry a
// `scipy_` prefix.
#[link(name = "scipy_openblas")]
extern "C" {
    #[link_name = "scipy_openblas_get_num_threads"]
    fn openblas_get_num_threads() -> c_int;
    #[link_name = "scipy_openblas_set_num_threads"]
    fn openblas_set_num_threads(n: c_int);
}

// libgomp, which torch-sys links already.
extern "C" {
    fn omp_get_max_threads() -> c_int;
    fn omp_set_num_threads(n: c_int);
}

/// Queries per chunk (the last may have fewer): large enough for FAISS's BLAS path, small
/// enough that a slowed worker's share can move to the others.
const CHUNK_QUERIES: usize = 256;

fn split_searches() -> bool {
    !std::env::var("HUELAB_FAISS_THREADING").is_ok_and(|v| v == "faiss")
}

/// OpenBLAS on one thread until dropped (its thread count is process-wide).
struct SingleThreadedBlas(c_int);

impl SingleThreadedBlas {
    fn enter() -> Self {
        // SAFETY: plain getters/setters of OpenBLAS's thread count.
        let before = unsafe { openblas_get_num_threads() };
        unsafe { openblas_set_num_threads(1) };
        SingleThreadedBlas(before)
    }
}

impl Drop for SingleThreadedBlas {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { openblas_set_num_threads(self.0) };
    }
}

/// The index pointer, shared by the workers. FAISS CPU indices may be searched concurrently
/// (search is const and keeps no state between calls).
struct SharedIndex(*const faiss_sys::FaissIndex);
// SAFETY: see above; the index outlives the scoped workers and nothing mutates it meanwhile
// (the caller holds `&mut` to it for the whole search).
unsafe impl Sync for SharedIndex {}

/// `k` nearest neighbours of each row of `queries` (`nq × dim`, row-major): distances and ids
/// (−1 where fewer than `k` exist), row-major `nq × k`.
pub(super) fn search<I: NativeIndex<Inner = faiss_sys::FaissIndex>>(index: &mut I, queries: &[f32], dim: usize, k: usize) -> Result<(Vec<f32>, Vec<i64>)> {
    // SAFETY: a read of OpenMP's thread count.
    let workers = unsafe { omp_get_max_threads() }.max(1) as usize;
    search_with(index, queries, dim, k, split_searches().then_some(workers))
}

/// With `workers`: fixed chunks shared out to that many threads; without: one FAISS call.
fn search_with<I: NativeIndex<Inner = faiss_sys::FaissIndex>>(index: &mut I, queries: &[f32], dim: usize, k: usize, workers: Option<usize>) -> Result<(Vec<f32>, Vec<i64>)> {
    let nq = queries.len() / dim.max(1);
    let (mut distances, mut ids) = (vec![0f32; nq * k], vec![-1i64; nq * k]);
    let shared = SharedIndex(index.inner_ptr());
    if nq == 0 || k == 0 {
        return Ok((distances, ids));
    }
    let Some(workers) = workers else {
        search_chunk(&shared, queries, k, &mut distances, &mut ids)?;
        return Ok((distances, ids));
    };
    let chunks: Vec<_> = queries.chunks(CHUNK_QUERIES * dim).zip(distances.chunks_mut(CHUNK_QUERIES * k).zip(ids.chunks_mut(CHUNK_QUERIES * k))).collect();
    let _blas = SingleThreadedBlas::enter();
    // SAFETY: sets the worker thread's own OpenMP thread count.
    let single_threaded_openmp = || unsafe { omp_set_num_threads(1) };
    super::share_out(chunks, workers, single_threaded_openmp, |(q, (d, i))| search_chunk(&shared, q, k, d, i))?;
    Ok((distances, ids))
}

fn search_chunk(index: &SharedIndex, queries: &[f32], k: usize, distances: &mut [f32], ids: &mut [i64]) -> Result<()> {
    let n = distances.len() / k.max(1);
    // SAFETY: `queries` holds n rows of the index's dimension, `distances` and `ids` n × k
    // slots each; FAISS writes only those.
    let code = unsafe { faiss_sys::faiss_Index_search(index.0, n as i64, queries.as_ptr(), k as i64, distances.as_mut_ptr(), ids.as_mut_ptr()) };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: FAISS's C API keeps the last error of this thread; it is set after a failure.
    let message = unsafe {
        let e = faiss_sys::faiss_get_last_error();
        if e.is_null() { format!("error code {code}") } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned() }
    };
    Err(Error::msg(format!("faiss search: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faiss::Index;

    #[test]
    fn split_search_gives_faiss_own_result() {
        let (dim, n, nq, k) = (16usize, 5000usize, 1000usize, 7usize);
        // A fixed pseudo-random sequence; no two vectors coincide, so neighbours have no ties.
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let base: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
        let mut index = faiss::index_factory(dim as u32, "Flat", faiss::MetricType::L2).unwrap();
        index.add(&base).unwrap();
        let (d1, i1) = search_with(&mut index, &queries, dim, k, None).unwrap();
        let (d2, i2) = search_with(&mut index, &queries, dim, k, Some(2)).unwrap();
        // The same bits for any number of workers.
        for workers in [1, 3, 8] {
            let (d, i) = search_with(&mut index, &queries, dim, k, Some(workers)).unwrap();
            assert!(d == d2 && i == i2, "{workers} workers gave other bits than 2");
        }
        let reference = index.search(&queries, k).unwrap();
        let reference_ids: Vec<i64> = reference.labels.iter().map(|l| l.get().map_or(-1, |v| v as i64)).collect();
        assert_eq!(i1, reference_ids);
        assert_eq!(i2, reference_ids);
        let worst = d1.iter().zip(&d2).chain(d1.iter().zip(&reference.distances)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "distances differ by {worst}");
    }

    #[test]
    fn fewer_vectors_than_k_are_padded_with_minus_one() {
        let mut index = faiss::index_factory(2, "Flat", faiss::MetricType::L2).unwrap();
        index.add(&[0.0, 0.0, 1.0, 1.0]).unwrap();
        let queries: Vec<f32> = (0..600).map(|i| i as f32 / 600.0).collect();
        let (_, ids) = search_with(&mut index, &queries, 2, 3, Some(2)).unwrap();
        assert!(ids.chunks(3).all(|row| row[2] == -1 && row[0] >= 0 && row[1] >= 0), "{:?}", &ids[..9]);
    }
}
