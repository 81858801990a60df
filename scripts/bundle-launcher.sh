#!/usr/bin/env bash
# huelab from a relocatable bundle (bin/huelab): finds the bundle's own folder, the machine's
# PyTorch (whose libraries huelab uses instead of carrying its own), and starts the binary.
#
# PyTorch: $HUELAB_TORCH (the torch package's folder), else the `torch` that `python3` on PATH
# imports (an activated venv, a module). Its version must be the one huelab was built against.
set -euo pipefail
need=@TORCH_VERSION@
bundle=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)

torch=${HUELAB_TORCH:-}
if [ -z "$torch" ]; then
  for python in python3 python; do
    command -v "$python" >/dev/null 2>&1 || continue
    # Located without importing torch, which takes seconds.
    torch=$("$python" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)
    [ -n "$torch" ] && break
  done
fi
if [ -z "$torch" ]; then
  echo "huelab: needs PyTorch $need's libraries, and python3 on PATH has no torch package: pip install torch==$need in the environment python3 runs (CPU or CUDA wheel), or set HUELAB_TORCH to the torch package's folder" >&2
  exit 127
fi
if [ ! -f "$torch/version.py" ] || [ ! -d "$torch/lib" ]; then
  echo "huelab: $torch is not a torch package folder (no version.py or lib/): set HUELAB_TORCH to the folder of a torch $need package" >&2
  exit 127
fi
version=$(sed -n "s/^__version__ = ['\"]\([^'\"+]*\).*/\1/p" "$torch/version.py")
if [ "$version" != "$need" ]; then
  echo "huelab: needs PyTorch $need, found ${version:-an unknown version} at $torch: pip install torch==$need, or set HUELAB_TORCH to a torch $need package's folder" >&2
  exit 127
fi

# Tasks on a cluster and notebook kernels start this launcher again, with the same PyTorch.
export HUELAB_TORCH=$torch
export HUELAB_EXE=$bundle/bin/huelab
export HUELAB_DATA=${HUELAB_DATA:-$bundle/share/huelab/data}
export LD_LIBRARY_PATH=$torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
exec "$bundle/libexec/huelab" "$@"
