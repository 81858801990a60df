#!/usr/bin/env bash
# The GPU check. Two ways to run it, from the repository root:
#   - on a machine where huelab is pip-installed (the wheel, scripts/make-wheel.sh) beside a CUDA
#     PyTorch 2.11: `bash scripts/device-check.sh` — it runs that `huelab` command;
#   - on the lent GPU machine through the device tool, which carries at most 64 MiB (the wheel,
#     with its data, is 71 MB): after `bash scripts/make-device-bundle.sh` here (carry:
#     device-bundle), the shipped programs from device-bundle/bundle.tar.gz.
# What it checks:
#   (a) huelab info: torch version, the CUDA backend loaded from the machine's PyTorch, devices
#   (b) ResNet-18 one-hot + hue on CPU and CUDA from one seed: losses close (device_check.rhai)
#   (c) training images/s, huelab vs PyTorch eager in that machine's python3, same model,
#       batch and precision (fp32), ResNet-18 and the small CNN
#   (d) pixel kNN: the exact libtorch backend on the GPU against FAISS Flat (neighbours and
#       classes; device_check.rhai and bench knn --torch-device cuda)
# Everything goes to $OUT (the device tool's output folder; else ./device-out), to be copied
# into results/gpu/. Budget: about 6 minutes of the device tool's 15.
set -euo pipefail
repo=$(pwd)
out=${OUT:-$repo/device-out}
mkdir -p "$out"
if [ -f device-bundle/bundle.tar.gz ]; then
  work=$(mktemp -d)
  tar xzf device-bundle/bundle.tar.gz -C "$work"
  # The loader (libexec/huelab) loads this machine's PyTorch from HUELAB_TORCH, then lib/libhuelab.so.
  export HUELAB_TORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  export HUELAB_FASHION_MNIST="$work/fashion-mnist"
  huelab="$work/libexec/huelab"
elif command -v huelab >/dev/null; then
  # The installed wheel's command finds its environment's torch and its own data.
  huelab=$(command -v huelab)
else
  echo "device-check: no device-bundle/bundle.tar.gz (scripts/make-device-bundle.sh) and no huelab command (pip install the wheel)" >&2
  exit 1
fi
log() { echo "== $*" | tee -a "$out/log.txt"; }

log "(a) huelab info"
"$huelab" info 2>&1 | tee "$out/info.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/nvidia-smi.csv" 2>&1 || true

log "(b, d) training CPU vs CUDA, pixel kNN GPU vs FAISS"
(cd "$out" && timeout 300 "$huelab" run --allow-fs "$repo/scripts/device_check.rhai" name=check) 2>&1 | tee "$out/device_check.txt"

log "(c) training throughput vs PyTorch eager on CUDA"
timeout 300 "$huelab" bench train --python python3 --device cuda --models resnet18,small_cnn --batch 128 --steps 100,300 --rounds 3 \
  --threads 16 --out "$out/bench_train_cuda.json" 2>&1 | tee "$out/bench_train_cuda.txt"

log "(d) exact GPU search vs FAISS Flat at benchmark size"
timeout 200 "$huelab" bench knn --no-reference --torch-device cuda --rounds 1 --no-busy --approximate IVF1024,PQ16 \
  --out "$out/bench_knn_cuda.json" 2>&1 | tee "$out/bench_knn_cuda.txt"
log "done"
