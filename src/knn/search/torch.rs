//! The exact search (the `torch` backend): every memory row compared with every query.
//!
//! On the CPU it runs in huelab's own blocked loop, not in libtorch: libtorch's GEMM and sums
//! split their work by the threads they get, so the same memory and queries gave distances that
//! differed in the 7th digit between a quiet and a busy machine. Here the work has a fixed
//! partition (query chunks × memory blocks), each piece is one single-threaded `matrixmultiply`
//! product whose accumulation order depends only on the dimension, and the chunks are shared
//! out to worker threads whose number changes nothing but the speed: results are bit-identical
//! whatever the load and the thread count. On a GPU it stays in libtorch (blocked matrix
//! products and top-k), where cuBLAS gives the same bits for the same shapes on one device.
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::{pad_neighbours, Neighbours, SearchIndex};
use crate::error::{Error, Result};

/// Rows per block of the GPU search: a `[queries, block]` distance matrix at a time.
const DEVICE_BLOCK_ROWS: i64 = 65_536;
/// Memory rows per piece of the CPU search (a `[QUERY_CHUNK, HOST_BLOCK_ROWS]` product fits
/// in the L2 cache's neighbourhood).
const HOST_BLOCK_ROWS: usize = 2_048;
/// Queries per piece of the CPU search; the unit that worker threads take.
const QUERY_CHUNK: usize = 128;

/// How a query and a row are compared; both are reported as squared L2 distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `‖q − m‖² = ‖q‖² + ‖m‖² − 2 q·m`.
    L2,
    /// `2 − 2 q·m`: the squared distance of unit vectors from their inner product (FAISS's
    /// inner-product metric, as the `faiss_ip` backend reports it).
    InnerProduct,
}

/// Exact search. Rows live on the CPU as plain floats, or in blocks on a GPU.
#[derive(Debug)]
pub struct TorchFlat {
    dim: i64,
    metric: Metric,
    rows: Rows,
    len: i64,
}

#[derive(Debug)]
enum Rows {
    /// Row-major `[len, dim]` and each row's `‖m‖²` (summed in index order).
    Host { data: Vec<f32>, norms: Vec<f32> },
    /// Blocks of up to [`DEVICE_BLOCK_ROWS`] rows on `device`, with their `‖m‖²`.
    Device { device: Device, blocks: Vec<Tensor>, norms: Vec<Tensor> },
}

impl TorchFlat {
    pub fn new(dim: i64, device: Device) -> Self {
        Self::with_metric(dim, Metric::L2, device)
    }

    pub fn with_metric(dim: i64, metric: Metric, device: Device) -> Self {
        let rows = match device {
            Device::Cpu => Rows::Host { data: vec![], norms: vec![] },
            device => Rows::Device { device, blocks: vec![], norms: vec![] },
        };
        TorchFlat { dim, metric, rows, len: 0 }
    }

    /// The vectors written by [`SearchIndex::write`].
    pub fn load(path: &Path, dim: i64, device: Device) -> Result<Self> {
        Self::load_with_metric(path, dim, Metric::L2, device)
    }

    pub fn load_with_metric(path: &Path, dim: i64, metric: Metric, device: Device) -> Result<Self> {
        let bad = |message: String| Error::Data { path: path.to_owned(), message };
        let tensors = Tensor::read_safetensors(path).map_err(|e| bad(format!("unreadable vectors: {}", crate::error::torch_message(&e))))?;
        let rows = tensors.into_iter().find(|(n, _)| n == "vectors").map(|(_, t)| t).ok_or_else(|| bad("no 'vectors' tensor".into()))?;
        let size = rows.size();
        if size.len() != 2 || size[1] != dim || rows.kind() != Kind::Float {
            return Err(bad(format!("'vectors' is {:?} {:?}, the memory expects float32 [n, {dim}]", rows.kind(), size)));
        }
        let mut index = Self::with_metric(dim, metric, device);
        index.add(&rows);
        Ok(index)
    }

    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> Device {
        match &self.rows {
            Rows::Host { .. } => Device::Cpu,
            Rows::Device { device, .. } => *device,
        }
    }

    /// Every row, `[len, dim]` on the CPU.
    pub fn rows_cpu(&self) -> Tensor {
        match &self.rows {
            Rows::Host { data, .. } => Tensor::from_slice(data).view([self.len, self.dim]),
            Rows::Device { blocks, .. } if blocks.is_empty() => Tensor::zeros([0, self.dim], (Kind::Float, Device::Cpu)),
            Rows::Device { blocks, .. } => Tensor::cat(blocks, 0).to_device(Device::Cpu),
        }
    }

    /// Rows `[n, dim]` in order after those already there.
    pub fn add(&mut self, rows: &Tensor) {
        let n = rows.size()[0];
        match &mut self.rows {
            Rows::Host { data, norms } => {
                let added = host_floats(rows);
                norms.extend(added.chunks(self.dim.max(1) as usize).map(squared_norm));
                data.extend_from_slice(&added);
            }
            Rows::Device { device, blocks, norms } => {
                let mut rows = rows.to_device(*device).to_kind(Kind::Float);
                while rows.size()[0] > 0 {
                    let last_free = blocks.last().map_or(0, |b| DEVICE_BLOCK_ROWS - b.size()[0]);
                    let left = rows.size()[0];
                    let (block, take) = if last_free > 0 {
                        let take = last_free.min(left);
                        let last = blocks.pop().expect("a block with free rows");
                        norms.pop();
                        (Tensor::cat(&[last, rows.narrow(0, 0, take)], 0), take)
                    } else {
                        let take = DEVICE_BLOCK_ROWS.min(left);
                        (rows.narrow(0, 0, take).contiguous(), take)
                    };
                    norms.push(block.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float));
                    blocks.push(block);
                    rows = rows.narrow(0, take, left - take);
                }
            }
        }
        self.len += n;
    }

    /// The `k` nearest rows of each query `[nq, dim]`, nearest first; equal distances in the
    /// order of the rows.
    pub fn search(&self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        match &self.rows {
            Rows::Host { data, norms } => {
                let queries = host_floats(queries);
                let (distances_sq, ids, found) = host_search(self.metric, (data, norms), &queries, self.dim as usize, k, search_workers())?;
                Ok(pad_neighbours(distances_sq, ids, queries.len() / (self.dim.max(1) as usize), found, k))
            }
            Rows::Device { device, blocks, norms } => Ok(device_search(self.metric, *device, (blocks, norms), queries, k)),
        }
    }
}

/// A tensor's values as row-major floats on the host.
fn host_floats(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1)).unwrap_or_default()
}

/// `‖row‖²`, summed in index order (the same bits for the same row, always).
fn squared_norm(row: &[f32]) -> f32 {
    row.iter().fold(0.0f32, |sum, x| sum + x * x)
}

/// Threads for the CPU search: libtorch's intra-op count (what `--threads` sets).
fn search_workers() -> usize {
    usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
}

/// A neighbour candidate ordered by distance, then row (so ties have one answer).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    distance_sq: f32,
    id: i64,
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance_sq.total_cmp(&other.distance_sq).then(self.id.cmp(&other.id))
    }
}

/// The exact CPU search over row-major `memory` (`norms`: its rows' `‖m‖²`): per query the
/// `min(k, rows)` nearest, as squared distances and ids, row-major, and how many were found.
/// `workers` changes only the speed.
fn host_search(metric: Metric, (memory, norms): (&[f32], &[f32]), queries: &[f32], dim: usize, k: usize, workers: usize) -> Result<(Vec<f32>, Vec<i64>, usize)> {
    let rows = norms.len();
    let nq = if dim == 0 { 0 } else { queries.len() / dim };
    let found = k.min(rows);
    let mut distances = vec![0f32; nq * found];
    let mut ids = vec![0i64; nq * found];
    if nq == 0 || found == 0 {
        return Ok((distances, ids, found));
    }
    let chunks: Vec<_> = queries.chunks(QUERY_CHUNK * dim).zip(distances.chunks_mut(QUERY_CHUNK * found).zip(ids.chunks_mut(QUERY_CHUNK * found))).collect();
    super::share_out(chunks, workers, || {}, |(chunk, (d, id))| {
        search_chunk(metric, (memory, norms), chunk, (dim, found), (d, id));
        Ok(())
    })?;
    Ok((distances, ids, found))
}

/// One chunk of queries against every memory block, into `distances`/`ids` (`found` a query).
fn search_chunk(metric: Metric, (memory, norms): (&[f32], &[f32]), queries: &[f32], (dim, found): (usize, usize), (distances, ids): (&mut [f32], &mut [i64])) {
    let nq = queries.len() / dim;
    let query_norms: Vec<f32> = queries.chunks(dim).map(squared_norm).collect();
    let mut best: Vec<BinaryHeap<Candidate>> = (0..nq).map(|_| BinaryHeap::with_capacity(found + 1)).collect();
    let mut products = vec![0f32; nq * HOST_BLOCK_ROWS];
    for (block_index, block_norms) in norms.chunks(HOST_BLOCK_ROWS).enumerate() {
        let first_row = block_index * HOST_BLOCK_ROWS;
        let block_rows = block_norms.len();
        let block = &memory[first_row * dim..(first_row + block_rows) * dim];
        // products[q][j] = queries[q] · block[j]
        // SAFETY: `queries` is nq × dim and `block` block_rows × dim, both row-major (block read
        // transposed through its strides); `products` holds at least nq × block_rows floats.
        unsafe {
            matrixmultiply::sgemm(
                nq,
                dim,
                block_rows,
                1.0,
                queries.as_ptr(),
                dim as isize,
                1,
                block.as_ptr(),
                1,
                dim as isize,
                0.0,
                products.as_mut_ptr(),
                block_rows as isize,
                1,
            );
        }
        for (q, heap) in best.iter_mut().enumerate() {
            let row = &products[q * block_rows..(q + 1) * block_rows];
            for (j, (&dot, &norm)) in row.iter().zip(block_norms).enumerate() {
                // Clamped at 0 against rounding.
                let distance_sq = match metric {
                    Metric::L2 => query_norms[q] + norm - 2.0 * dot,
                    Metric::InnerProduct => 2.0 - 2.0 * dot,
                };
                let candidate = Candidate { distance_sq: distance_sq.max(0.0), id: (first_row + j) as i64 };
                if heap.len() < found {
                    heap.push(candidate);
                } else if heap.peek().is_some_and(|worst| candidate < *worst) {
                    heap.pop();
                    heap.push(candidate);
                }
            }
        }
    }
    for (q, heap) in best.into_iter().enumerate() {
        for (slot, candidate) in heap.into_sorted_vec().into_iter().enumerate() {
            distances[q * found + slot] = candidate.distance_sq;
            ids[q * found + slot] = candidate.id;
        }
    }
}

/// The libtorch search on a GPU: blocked matrix products and top-k.
fn device_search(metric: Metric, device: Device, (blocks, norms): (&[Tensor], &[Tensor]), queries: &Tensor, k: usize) -> Neighbours {
    let q = queries.to_device(device).to_kind(Kind::Float);
    let nq = q.size()[0];
    let q_norms = q.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let k = k as i64;
    let mut best_d: Option<Tensor> = None;
    let mut best_i: Option<Tensor> = None;
    let mut offset = 0i64;
    tch::no_grad(|| {
        for (block, norms) in blocks.iter().zip(norms) {
            let rows = block.size()[0];
            let d = match metric {
                Metric::L2 => &q_norms + norms.unsqueeze(0) - q.matmul(&block.tr()) * 2.0,
                Metric::InnerProduct => 2.0 - q.matmul(&block.tr()) * 2.0,
            }
            .clamp_min(0.0);
            let kk = k.min(rows);
            let (d, i) = d.topk(kk, 1, false, true);
            let i = i + offset;
            offset += rows;
            let (d, i) = match (best_d.take(), best_i.take()) {
                (Some(bd), Some(bi)) => {
                    let d = Tensor::cat(&[bd, d], 1);
                    let i = Tensor::cat(&[bi, i], 1);
                    let (d, pos) = d.topk(k.min(d.size()[1]), 1, false, true);
                    (d, i.gather(1, &pos, false))
                }
                _ => (d, i),
            };
            best_d = Some(d);
            best_i = Some(i);
        }
    });
    let (d, i) = (best_d.unwrap_or_else(|| Tensor::zeros([nq, 0], (Kind::Float, Device::Cpu))), best_i.unwrap_or_else(|| Tensor::zeros([nq, 0], (Kind::Int64, Device::Cpu))));
    let found = d.size()[1];
    let distances_sq: Vec<f32> = Vec::try_from(d.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
    let ids: Vec<i64> = Vec::try_from(i.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
    pad_neighbours(distances_sq, ids, nq as usize, found as usize, k as usize)
}

impl SearchIndex for TorchFlat {
    fn add(&mut self, vectors: &Tensor) -> Result<()> {
        TorchFlat::add(self, vectors);
        Ok(())
    }

    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        TorchFlat::search(self, queries, k)
    }

    fn len(&self) -> i64 {
        self.len
    }

    fn write(&self, path: &Path) -> Result<()> {
        Ok(Tensor::write_safetensors(&[("vectors", self.rows_cpu())], path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed pseudo-random sequence in [0, 1).
    fn numbers(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn cpu_search_is_bit_identical_for_any_number_of_threads() {
        // Several query chunks and memory blocks, with a partial last one of each.
        let (dim, rows, nq, k) = (37usize, 2 * HOST_BLOCK_ROWS + 123, 3 * QUERY_CHUNK + 5, 9usize);
        let memory = numbers(1, rows * dim);
        let norms: Vec<f32> = memory.chunks(dim).map(squared_norm).collect();
        let queries = numbers(2, nq * dim);
        let one = host_search(Metric::L2, (&memory, &norms), &queries, dim, k, 1).unwrap();
        for workers in [2, 3, 8] {
            let many = host_search(Metric::L2, (&memory, &norms), &queries, dim, k, workers).unwrap();
            assert!(one == many, "{workers} workers gave other bits than one");
        }
    }

    #[test]
    fn cpu_search_finds_the_nearest_rows_in_order_with_ties_by_row() {
        let (dim, rows) = (16usize, 700usize);
        let mut memory = numbers(3, rows * dim);
        // Row 650 repeats row 10: a tie that must come out as 10, then 650.
        let copy: Vec<f32> = memory[10 * dim..11 * dim].to_vec();
        memory[650 * dim..651 * dim].copy_from_slice(&copy);
        let norms: Vec<f32> = memory.chunks(dim).map(squared_norm).collect();
        let queries = numbers(4, 40 * dim);
        let (d, ids, found) = host_search(Metric::L2, (&memory, &norms), &queries, dim, 5, 2).unwrap();
        assert_eq!(found, 5);
        for q in 0..40 {
            let query = &queries[q * dim..(q + 1) * dim];
            let mut exact: Vec<(f64, i64)> = memory
                .chunks(dim)
                .enumerate()
                .map(|(j, m)| (query.iter().zip(m).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(), j as i64))
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            assert_eq!(&ids[q * 5..q * 5 + 5], exact[..5].iter().map(|e| e.1).collect::<Vec<_>>().as_slice(), "query {q}");
            for s in 0..5 {
                assert!((d[q * 5 + s] as f64 - exact[s].0).abs() < 1e-4, "query {q} slot {s}");
            }
        }
        let (_, tie_ids, _) = host_search(Metric::L2, (&memory, &norms), &memory[10 * dim..11 * dim], dim, 2, 1).unwrap();
        assert_eq!(tie_ids, vec![10, 650]);
    }

    #[test]
    fn fewer_rows_than_k_returns_them_all() {
        let memory = numbers(5, 3 * 4);
        let norms: Vec<f32> = memory.chunks(4).map(squared_norm).collect();
        let (d, ids, found) = host_search(Metric::L2, (&memory, &norms), &numbers(6, 2 * 4), 4, 10, 2).unwrap();
        assert_eq!((found, d.len(), ids.len()), (3, 6, 6));
    }
}
