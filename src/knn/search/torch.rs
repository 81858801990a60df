//! The exact libtorch search (blocked matrix products and top-k), on the CPU or a GPU.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::{pad_neighbours, Neighbours, SearchIndex};
use crate::error::{Error, Result};
use crate::knn::MemoryConfig;

/// Rows per block of the libtorch search: a `[queries, block]` distance matrix at a time.
const TORCH_BLOCK_ROWS: i64 = 65_536;

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

    /// The exact index of a memory config, which must ask for `Flat` without PCA.
    pub fn create(dim: i64, config: &MemoryConfig, device: Device) -> Result<Self> {
        if config.index != "Flat" || config.pca.is_some() {
            return Err(Error::invalid_option("backend", "the torch backend is exact: index \"Flat\" without pca"));
        }
        Ok(Self::new(dim, device))
    }

    /// The vectors written by [`SearchIndex::write`].
    pub fn load(path: &Path, dim: i64, device: Device) -> Result<Self> {
        let bad = |message: String| Error::Data { path: path.to_owned(), message };
        let tensors = Tensor::read_safetensors(path).map_err(|e| bad(format!("unreadable vectors: {}", crate::error::torch_message(&e))))?;
        let rows = tensors.into_iter().find(|(n, _)| n == "vectors").map(|(_, t)| t).ok_or_else(|| bad("no 'vectors' tensor".into()))?;
        let size = rows.size();
        if size.len() != 2 || size[1] != dim || rows.kind() != Kind::Float {
            return Err(bad(format!("'vectors' is {:?} {:?}, the memory expects float32 [n, {dim}]", rows.kind(), size)));
        }
        let mut index = Self::new(dim, device);
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

impl SearchIndex for TorchFlat {
    fn add(&mut self, vectors: &Tensor) -> Result<()> {
        TorchFlat::add(self, vectors);
        Ok(())
    }

    fn search(&mut self, queries: &Tensor, k: usize) -> Result<Neighbours> {
        Ok(TorchFlat::search(self, queries, k))
    }

    fn len(&self) -> i64 {
        self.len
    }

    fn write(&self, path: &Path) -> Result<()> {
        Ok(Tensor::write_safetensors(&[("vectors", self.rows_cpu())], path)?)
    }
}
