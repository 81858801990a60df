#!/usr/bin/env bash
# FAISS with its C API, from the source bundled in faiss-sys, on OpenBLAS from PyPI's
# scipy-openblas32 (manylinux2014: glibc 2.17, its Fortran runtime inside). That OpenBLAS names
# its routines `scipy_sgemm_` …, so FAISS is compiled with its BLAS names mapped to those. Two
# things follow: one BLAS build for the development build and the shipped one, and no `sgemm_`
# in the process but libtorch's own (Debian's libopenblas exported one, and libtorch's GEMMs
# were bound to it instead of its MKL: other bits than PyTorch's).
#
#   bash scripts/build-faiss.sh shared DIR   DIR/lib: libfaiss_c.so (AVX2 kernels where this CPU
#                                            has AVX2) + libscipy_openblas.so; setup.sh's build
#   bash scripts/build-faiss.sh static DIR   DIR/lib: libfaiss_c.a (FAISS and the C API in one
#                                            archive, AVX2 kernels) + libscipy_openblas.so; the
#                                            shipped build (scripts/floor-deps.sh)
#
# Skipped when DIR holds the same build already. About 10 CPU-minutes otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:?usage: build-faiss.sh shared|static DIR}
dest=${2:?usage: build-faiss.sh shared|static DIR}
home=${HUELAB_HOME:-/var/cache/huelab}
FAISS_VERSION=1.12.0          # the source bundled in faiss-sys 0.7.0
OPENBLAS_VERSION=0.3.34.481.3
die() { echo "build-faiss: error: $*" >&2; exit 1; }

case "$kind" in
  shared)
    # FAISS's AVX2 code is 1.3-1.6x faster than its generic build on HNSW; used where the CPU has it.
    if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then opt=avx2; else opt=generic; fi ;;
  # What is shipped runs on other CPUs than this one: AVX2 (every x86-64 CPU since 2013).
  static) opt=avx2 ;;
  *) die "unknown kind '$kind' (expected shared or static)" ;;
esac
# The BLAS and LAPACK routines FAISS calls (grep of faiss/*.cpp).
blas_names=(sgemm_ sgemv_ ssyrk_ sgeqrf_ sorgqr_ sgesvd_ sgelsd_ sgetrf_ sgetri_ ssyev_ dgemm_ dgesvd_ dgetrf_ dgetri_ dsyev_)
marker="FAISS $FAISS_VERSION $kind $opt, scipy-openblas32 $OPENBLAS_VERSION, remapped"
[ "$(cat "$dest/.complete" 2>/dev/null)" = "$marker" ] && exit 0

cd "$repo"
faiss_src=$(bash "$repo/scripts/crate-source.sh" faiss-sys)/faiss
grep -q "VERSION $FAISS_VERSION" "$faiss_src/CMakeLists.txt" || die "$faiss_src is not FAISS $FAISS_VERSION"
mkdir -p "$(dirname "$dest")" "$home/downloads" "$home/build"
staging=$(mktemp -d "$(dirname "$dest")/.faiss.XXXXXX")
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/lib"

wheel=$(compgen -G "$home/downloads/scipy_openblas32-$OPENBLAS_VERSION-*.whl" | head -n 1 || true)
if [ -z "$wheel" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$home/downloads" \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.11 \
    "scipy-openblas32==$OPENBLAS_VERSION" >&2 || die "pip could not download scipy-openblas32==$OPENBLAS_VERSION"
  wheel=$(compgen -G "$home/downloads/scipy_openblas32-$OPENBLAS_VERSION-*.whl" | head -n 1)
fi
python3 -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("scipy_openblas32/lib/libscipy_openblas.so"))' "$wheel" "$staging/lib/libscipy_openblas.so"

renames=""
for name in "${blas_names[@]}"; do renames+=" -D$name=scipy_$name"; done
# The source folder's path remapped to /faiss in the messages FAISS's assertions carry, so the
# relocatable bundle holds no path of this machine.
flags="-ffile-prefix-map=$faiss_src=/faiss$renames"
[ "$kind" = shared ] && shared=ON || shared=OFF
[ "$opt" = generic ] && suffix="" || suffix=_$opt
build=$home/build/faiss-$FAISS_VERSION-$kind-$opt
echo "build-faiss: building FAISS $FAISS_VERSION ($kind, $opt) into $dest (about 10 CPU-minutes, once)" >&2
cmake -S "$faiss_src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=$shared \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DFAISS_OPT_LEVEL=$opt -DFAISS_ENABLE_C_API=ON \
  -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_EXTRAS=OFF -DFAISS_ENABLE_MKL=OFF \
  -DBUILD_TESTING=OFF -DBLAS_LIBRARIES="$staging/lib/libscipy_openblas.so" \
  -DLAPACK_LIBRARIES="$staging/lib/libscipy_openblas.so" \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" >"$build.log" 2>&1 \
  || die "cmake configure of FAISS failed; see $build.log"
cmake --build "$build" --target "faiss_c$suffix" -j "$(nproc)" >>"$build.log" 2>&1 \
  || die "FAISS build failed; see $build.log"

if [ "$kind" = shared ]; then
  cp "$build/faiss/libfaiss$suffix.so" "$build/c_api/libfaiss_c$suffix.so" "$staging/lib/"
  # faiss-sys links `-lfaiss_c`; the SONAME inside still names the real file.
  [ -z "$suffix" ] || ln -s "libfaiss_c$suffix.so" "$staging/lib/libfaiss_c.so"
  calls=$(nm -D --undefined-only "$staging/lib/libfaiss$suffix.so")
else
  # One archive, so that faiss-sys's `-lfaiss_c` brings the core with the C API.
  printf 'create %s\naddlib %s\naddlib %s\nsave\nend\n' "$staging/lib/libfaiss_c.a" \
    "$build/c_api/libfaiss_c$suffix.a" "$build/faiss/libfaiss$suffix.a" | ar -M
  calls=$(nm -u "$staging/lib/libfaiss_c.a")
fi
unrenamed=$(grep -owE "$(IFS='|'; echo "${blas_names[*]}")" <<<"$calls" | sort -u | tr '\n' ' ' || true)
[ -z "$unrenamed" ] || die "FAISS still calls BLAS routines by their plain names: $unrenamed"
echo "$marker" > "$staging/.complete"
chmod 755 "$staging"
rm -rf "$dest"
mv "$staging" "$dest"
trap - EXIT
