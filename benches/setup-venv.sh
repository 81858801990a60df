#!/usr/bin/env bash
# The benchmark-only Python environment for `huelab bench train`, `huelab bench knn` and
# `huelab bench data`: PyTorch 2.11.0 (the same libtorch build huelab links), torchvision
# 0.26.0 (its matching release: the DataLoader reference and the checkpoint fixtures) and
# faiss-cpu 1.12.0 (the FAISS version huelab builds) and ipykernel (the reference of `huelab bench
# kernel`) and simplejpeg 1.9.0 (libjpeg-turbo's TurboJPEG API: the decode-only ceiling of `huelab
# bench data`) in $HUELAB_HOME/bench-venv (default /var/cache/huelab). PyPI's torch is the CUDA
# build, which imports only with its NVIDIA libraries, so this downloads about 3 GB once.
# Idempotent: a second run does nothing.
set -euo pipefail
home=${HUELAB_HOME:-/var/cache/huelab}
venv=$home/bench-venv
if "$venv/bin/python" -c 'import torch, torchvision, faiss, ipykernel, simplejpeg; assert torch.__version__.startswith("2.11.0") and torchvision.__version__.startswith("0.26.0") and faiss.__version__ == "1.12.0"' 2>/dev/null; then
  echo "bench venv ready: $venv"
  exit 0
fi
python3 -m venv "$venv"
# Wheels fetched earlier (pip download -d $home/downloads/bench) are used when present.
wheels=$home/downloads/bench
find_links=()
[ -d "$wheels" ] && find_links=(--find-links "$wheels")
"$venv/bin/pip" install --quiet "${find_links[@]}" torch==2.11.0 torchvision==0.26.0 faiss-cpu==1.12.0 ipykernel==7.4.0 simplejpeg==1.9.0 numpy pillow
"$venv/bin/python" -c 'import torch, torchvision, faiss; print("bench venv ready:", torch.__version__, "torchvision", torchvision.__version__, "faiss", faiss.__version__)'
