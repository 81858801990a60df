//! The nearest-neighbour search under a pixel memory: FAISS (any index-factory string, CPU) or
//! an exact libtorch search (blocked matrix products and top-k) that runs on the CPU or a GPU.
use faiss::index::autotune::ParameterSpace;
use faiss::index::IndexImpl;
use faiss::{Index, MetricType};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Rows per block of the libtorch search: a `[queries, block]` distance matrix at a time.
const TORCH_BLOCK_ROWS: i64 = 65_536;

/// The `k` nearest memory rows of each query: squared L2 distances ascending, ids (`-1` where
/// an approximate index found fewer than `k`).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub distances_sq: Vec<f32>,
    pub ids: Vec<i64>,
}

pub fn faiss_error(what: &str, e: faiss::error::Error) -> Error {
    Error::msg(format!("faiss {what}: {e}"))
}

/// Exact search with libtorch. Rows live in blocks on `device`.
#[derive(Debug)]
pub struct TorchFlat {
    dim: i64,
    device: Device,
    blocks: Vec<Tensor>,
    /// `‖m‖²` of each block's rows.
    norms: Vec<Tensor>,
    len: i64,
}

impl TorchFlat {
    pub fn new(dim: i64, device: Device) -> Self {
        TorchFlat { dim, device, blocks: vec![], norms: vec![], len: 0 }
    }

    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Every row, `[len, dim]` on the CPU.
    pub fn rows_cpu(&self) -> Tensor {
        if self.blocks.is_empty() {
            return Tensor::zeros([0, self.dim], (Kind::Float, Device::Cpu));
        }
        Tensor::cat(&self.blocks, 0).to_device(Device::Cpu)
    }

    /// Rows `[n, dim]` in order after those already there.
    pub fn add(&mut self, rows: &Tensor) {
        let mut rows = rows.to_device(self.device).to_kind(Kind::Float);
        while rows.size()[0] > 0 {
            let last_free = self.blocks.last().map_or(0, |b| TORCH_BLOCK_ROWS - b.size()[0]);
            let n = rows.size()[0];
            if last_free > 0 {
                let take = last_free.min(n);
                let last = self.blocks.pop().expect("a block with free rows");
                let block = Tensor::cat(&[last, rows.narrow(0, 0, take)], 0);
                self.norms.pop();
                self.norms.push(block.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float));
                self.blocks.push(block);
                rows = rows.narrow(0, take, n - take);
                self.len += take;
            } else {
                let take = TORCH_BLOCK_ROWS.min(n);
                let block = rows.narrow(0, 0, take).contiguous();
                self.norms.push(block.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float));
                self.blocks.push(block);
                rows = rows.narrow(0, take, n - take);
                self.len += take;
            }
        }
    }

    /// The `k` nearest rows of each query `[nq, dim]`.
    pub fn search(&self, queries: &Tensor, k: usize) -> Neighbours {
        let q = queries.to_device(self.device).to_kind(Kind::Float);
        let nq = q.size()[0];
        let q_norms = q.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let k = k as i64;
        let mut best_d: Option<Tensor> = None;
        let mut best_i: Option<Tensor> = None;
        let mut offset = 0i64;
        tch::no_grad(|| {
            for (block, norms) in self.blocks.iter().zip(&self.norms) {
                let rows = block.size()[0];
                // ‖q − m‖² = ‖q‖² + ‖m‖² − 2 q·m, clamped at 0 against rounding.
                let d = (&q_norms + norms.unsqueeze(0) - q.matmul(&block.tr()) * 2.0).clamp_min(0.0);
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
}

/// Pads results of `found < k` columns with `-1` ids and infinite distances.
fn pad_neighbours(distances_sq: Vec<f32>, ids: Vec<i64>, nq: usize, found: usize, k: usize) -> Neighbours {
    if found == k {
        return Neighbours { k, distances_sq, ids };
    }
    let mut d = vec![f32::INFINITY; nq * k];
    let mut i = vec![-1i64; nq * k];
    for q in 0..nq {
        d[q * k..q * k + found].copy_from_slice(&distances_sq[q * found..(q + 1) * found]);
        i[q * k..q * k + found].copy_from_slice(&ids[q * found..(q + 1) * found]);
    }
    Neighbours { k, distances_sq: d, ids: i }
}

/// A FAISS index built from a factory string, with its search-time parameters.
pub struct FaissIndex {
    pub index: IndexImpl,
    pub factory: String,
}

impl std::fmt::Debug for FaissIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaissIndex({}, {} vectors)", self.factory, self.index.ntotal())
    }
}

impl FaissIndex {
    pub fn new(dim: u32, factory: &str) -> Result<Self> {
        let index = faiss::index_factory(dim, factory, MetricType::L2)
            .map_err(|e| Error::invalid_option("index", format!("faiss cannot build \"{factory}\" for dimension {dim}: {e}")))?;
        Ok(FaissIndex { index, factory: factory.to_owned() })
    }

    /// Sets `nprobe` (IVF) or `efSearch` (HNSW) and similar; unknown names are errors.
    pub fn set_parameter(&mut self, name: &str, value: f64) -> Result<()> {
        let space = ParameterSpace::new().map_err(|e| faiss_error("parameter space", e))?;
        space
            .set_index_parameter(&self.index, name, value)
            .map_err(|e| Error::invalid_option(name, format!("faiss index \"{}\" does not take it: {e}", self.factory)))
    }

    pub fn search(&mut self, queries: &[f32], k: usize) -> Result<Neighbours> {
        let result = self.index.search(queries, k).map_err(|e| faiss_error("search", e))?;
        let ids = result.labels.iter().map(|l| l.get().map_or(-1, |v| v as i64)).collect();
        Ok(Neighbours { k, distances_sq: result.distances, ids })
    }
}
