"""huelab @VERSION@, installed by pip: the `huelab` command (scripts/make-wheel.sh puts this file
in the wheel as huelab/__init__.py).

It finds the torch package of this same environment (without importing it, which takes seconds),
checks its version, puts its libraries on the loader's path and starts the binary that came in
the wheel. Cluster tasks and notebook kernels start this command again (HUELAB_EXE).
"""
import importlib.util
import os
import re
import sys

TORCH_VERSION = "@TORCH_VERSION@"
HERE = os.path.dirname(os.path.abspath(__file__))


def _torch_dir():
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"huelab: needs PyTorch {TORCH_VERSION} in this Python environment ({sys.prefix}): pip install torch=={TORCH_VERSION}")
    torch = spec.submodule_search_locations[0]
    try:
        with open(os.path.join(torch, "version.py")) as f:
            found = re.search(r"^__version__ = ['\"]([^'\"+]*)", f.read(), re.M)
    except OSError:
        found = None
    version = found.group(1) if found else "an unknown version"
    if version != TORCH_VERSION:
        sys.exit(f"huelab: needs PyTorch {TORCH_VERSION}, found {version} at {torch}: pip install torch=={TORCH_VERSION}")
    return torch


def main():
    torch = _torch_dir()
    env = os.environ
    env["HUELAB_TORCH"] = torch
    command = os.path.abspath(sys.argv[0])
    env["HUELAB_EXE"] = command if os.path.basename(command) == "huelab" and os.access(command, os.X_OK) else os.path.join(os.path.dirname(sys.executable), "huelab")
    env.setdefault("HUELAB_DATA", os.path.join(HERE, "share", "huelab", "data"))
    env["HUELAB_SYS_PREFIX"] = sys.prefix
    libs = os.path.join(torch, "lib")
    env["LD_LIBRARY_PATH"] = libs + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    binary = os.path.join(HERE, "libexec", "huelab")
    os.execv(binary, [binary] + sys.argv[1:])
