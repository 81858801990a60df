#!/usr/bin/env bash
# Prepares what scripts/device-check.sh needs on the lent GPU machine, which has PyTorch
# 2.11.0+cu130 under its python3 but no OpenBLAS, no FAISS, no Fashion-MNIST: the stripped
# huelab binary, FAISS's and OpenBLAS's shared libraries and the Fashion-MNIST test files, in
# device-bundle/bundle.tar.gz (git-ignored; about 25 MB, under the device tool's 64 MiB carry).
# libtorch itself comes from that machine's PyTorch, the same version.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cargo build --release --locked --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
stage=$(mktemp -d)
mkdir -p "$stage/lib" "$stage/fashion-mnist"
cp "$target/release/huelab" "$stage/huelab" && strip "$stage/huelab"
cp -L /opt/huelab/faiss-1.12.0/lib/libfaiss_avx2.so /opt/huelab/faiss-1.12.0/lib/libfaiss_c_avx2.so "$stage/lib/"
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do cp -L "/lib/x86_64-linux-gnu/$lib" "$stage/lib/"; done
cp /usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz "$stage/fashion-mnist/"
mkdir -p device-bundle
tar czf device-bundle/bundle.tar.gz -C "$stage" .
rm -rf "$stage"
ls -la device-bundle/bundle.tar.gz
