#!/usr/bin/env bash
# libjpeg-turbo's TurboJPEG library for the shipped build (scripts/make-bundle.sh), from the
# source bundled in turbojpeg-sys, compiled by zig against glibc 2.28 (scripts/zig-cc.sh) with
# nasm's SIMD, static and position-independent (it ends up inside lib/libhuelab.so).
#
#   bash scripts/build-turbojpeg.sh ZIG_CC DIR   DIR/lib/libturbojpeg.a
#
# Built here, once, rather than by turbojpeg-sys's own build script inside the shipped build's
# cargo target: that script configures cmake in a folder of the shared target and re-runs it
# whenever the compiler's path changes, so each fresh clone reconfigured and rebuilt it in
# place over the previous clone's build (a CI run failed there). Here the build has a folder of
# its own, made from nothing, and the result is moved into place whole; make-bundle.sh points
# turbojpeg-sys at it (TURBOJPEG_SOURCE=explicit). Skipped when DIR holds the same build.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
zig_cc=${1:?usage: build-turbojpeg.sh ZIG_CC DIR}
dest=${2:?usage: build-turbojpeg.sh ZIG_CC DIR}
home=${HUELAB_HOME:-/var/cache/huelab}
TURBOJPEG_SYS_VERSION=1.2.0   # Cargo.toml pins it: its libjpeg-turbo is the one the development build uses
LIBJPEG_TURBO_VERSION=3.1.0
die() { echo "build-turbojpeg: error: $*" >&2; exit 1; }

marker="libjpeg-turbo $LIBJPEG_TURBO_VERSION (turbojpeg-sys $TURBOJPEG_SYS_VERSION), static, PIC, nasm SIMD, $(basename "$zig_cc")"
[ "$(cat "$dest/.complete" 2>/dev/null)" = "$marker" ] && exit 0
command -v nasm >/dev/null || die "nasm not found (setup.sh installs it): libjpeg-turbo's SIMD code is assembled by it"

src=$(bash "$repo/scripts/crate-source.sh" turbojpeg-sys "$TURBOJPEG_SYS_VERSION")/libjpeg-turbo
grep -q "set(VERSION $LIBJPEG_TURBO_VERSION)" "$src/CMakeLists.txt" || die "$src is not libjpeg-turbo $LIBJPEG_TURBO_VERSION"

mkdir -p "$(dirname "$dest")" "$home/build"
staging=$(mktemp -d "$(dirname "$dest")/.turbojpeg.XXXXXX")
build=$home/build/libjpeg-turbo-$LIBJPEG_TURBO_VERSION-floor
trap 'rm -rf "$staging"' EXIT
rm -rf "$build"
echo "build-turbojpeg: building libjpeg-turbo $LIBJPEG_TURBO_VERSION (static, glibc 2.28) into $dest (about 2 CPU-minutes, once)" >&2
# The source folder's path remapped, so that the bundle holds no path of this machine.
flags="-ffile-prefix-map=$src=/libjpeg-turbo -ffunction-sections -fdata-sections"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$zig_cc" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DENABLE_SHARED=OFF -DENABLE_STATIC=ON -DREQUIRE_SIMD=ON >"$build.log" 2>&1 \
  || { tail -n 30 "$build.log" >&2; die "cmake configure of libjpeg-turbo failed; see $build.log"; }
cmake --build "$build" --target turbojpeg-static -j "$(nproc)" >>"$build.log" 2>&1 \
  || { tail -n 30 "$build.log" >&2; die "libjpeg-turbo build failed; see $build.log"; }
mkdir -p "$staging/lib"
cp "$build/libturbojpeg.a" "$staging/lib/"
# The SIMD code is in (REQUIRE_SIMD makes its absence a configure error; this checks the archive).
# (grep reads all of nm's output: with -q it would stop early, and pipefail count nm's SIGPIPE.)
nm "$staging/lib/libturbojpeg.a" 2>/dev/null | grep -c " T jsimd_idct_islow_avx2$" >/dev/null \
  || die "libturbojpeg.a holds no AVX2 IDCT: built without nasm's SIMD?"
echo "$marker" > "$staging/.complete"
chmod 755 "$staging"
rm -rf "$dest"
mv "$staging" "$dest"
trap - EXIT
