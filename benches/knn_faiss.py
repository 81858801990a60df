"""The reference side of `huelab bench knn`: raw FAISS search (IndexFlatL2, or any factory
string) through the faiss Python package, over the same memory and query vectors, in the same
batches. Prints one JSON line. Run by huelab; not meant to be run by hand."""
import argparse
import json
import time

import faiss
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--memory", required=True)
p.add_argument("--queries", required=True)
p.add_argument("--index", default="Flat")
p.add_argument("--k", type=int, default=10)
p.add_argument("--batch", type=int, required=True, help="query vectors per search call")
a = p.parse_args()

memory = np.load(a.memory)
queries = np.load(a.queries)
index = faiss.index_factory(memory.shape[1], a.index, faiss.METRIC_L2)
index.add(memory)
# One warm-up call, as huelab gets one.
index.search(queries[: a.batch], a.k)
start = time.perf_counter()
for s in range(0, len(queries), a.batch):
    index.search(queries[s : s + a.batch], a.k)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "queries": len(queries), "faiss": faiss.__version__, "simd": faiss.get_compile_options()}))
