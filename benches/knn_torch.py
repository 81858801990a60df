"""The plain-PyTorch anchor of `huelab bench knn`: the exact search a researcher would write
without FAISS, squared L2 distances as |q|^2 - 2 q.m^T + |m|^2 (one matmul per batch of
queries) and `topk` of the smallest, over the same memory and query vectors in the same
batches. Prints one JSON line. Run by huelab; not meant to be run by hand."""
import argparse
import json
import time

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--memory", required=True)
p.add_argument("--queries", required=True)
p.add_argument("--k", type=int, default=10)
p.add_argument("--batch", type=int, required=True, help="query vectors per search call")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

torch.set_num_threads(a.threads)
memory = torch.from_numpy(np.load(a.memory))
queries = torch.from_numpy(np.load(a.queries))
memory_sq = (memory * memory).sum(1)


def search(q):
    d = (q * q).sum(1, keepdim=True) - 2.0 * (q @ memory.T) + memory_sq
    return d.topk(a.k, dim=1, largest=False)


with torch.no_grad():
    search(queries[: a.batch])  # one warm-up call, as huelab gets one
    start = time.perf_counter()
    for s in range(0, len(queries), a.batch):
        search(queries[s : s + a.batch])
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "queries": len(queries), "torch": torch.__version__}))
