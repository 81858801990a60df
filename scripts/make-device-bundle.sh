#!/usr/bin/env bash
# Prepares what scripts/device-check.sh needs on the lent GPU machine, which has PyTorch
# 2.11.0+cu130 under its python3 but no FAISS, no OpenBLAS, no Fashion-MNIST: the shipped
# programs of the relocatable bundle (scripts/make-bundle.sh: the glibc 2.28 floor, FAISS inside;
# libexec/huelab, the loader, and lib/ with libhuelab.so and OpenBLAS, in the same layout) and
# the Fashion-MNIST test files, in device-bundle/bundle.tar.gz
# (git-ignored; about 25 MB, under the device tool's 64 MiB carry; the whole bundle, with its
# data, is over it). libtorch itself comes from that machine's PyTorch, the same version.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
bash scripts/make-bundle.sh "$stage/full.tar.gz"
tar xzf "$stage/full.tar.gz" -C "$stage" --wildcards '*/libexec/huelab' '*/lib/*'
mkdir -p "$stage/device/fashion-mnist"
mv "$stage"/huelab-*/libexec "$stage"/huelab-*/lib "$stage/device/"
cp /usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz "$stage/device/fashion-mnist/"
mkdir -p device-bundle
tar czf device-bundle/bundle.tar.gz -C "$stage/device" .
ls -la device-bundle/bundle.tar.gz
