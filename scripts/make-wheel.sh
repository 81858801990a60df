#!/usr/bin/env bash
# huelab as a wheel, for `pip install` into the environment that has PyTorch (as uv and ruff ship
# their Rust binaries): the bundle's programs (scripts/make-bundle.sh: the glibc 2.28 floor, FAISS
# inside) with their OpenBLAS, the data and a `huelab` console command that finds the torch package
# of its own environment.
#
#   bash scripts/make-wheel.sh DIR     # writes DIR/huelab-VERSION-py3-none-manylinux_2_28_x86_64.whl
#
#   pip install torch==2.11.0 && pip install DIR/huelab-*.whl && huelab run my-experiment.rhai
#
# Inside (paths in the wheel):
#   huelab/__init__.py     the console command: torch found in this environment (2.11 checked),
#                          its lib/ put on the loader's path, then the loader started
#   huelab/libexec/huelab  the loader: PyTorch's libraries, then lib/libhuelab.so (RUNPATH $ORIGIN/../lib)
#   huelab/libexec/huelab-kernel   the notebook kernel's front (no libtorch)
#   huelab/lib/            libhuelab.so (the huelab command), libscipy_openblas.so
#   huelab/share/huelab/data/   the built-in data sets, weights and class names
#   huelab-VERSION.dist-info/   METADATA (Requires-Dist: torch==2.11.*), WHEEL, entry_points.txt, RECORD
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:?usage: make-wheel.sh DIR}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# HUELAB_BUNDLE: a bundle make-bundle.sh packed already (the tests pack one for both).
if [ -n "${HUELAB_BUNDLE:-}" ]; then
  tar xzf "$HUELAB_BUNDLE" -C "$stage"
else
  bash "$repo/scripts/make-bundle.sh" "$stage/bundle.tar.gz" >&2
  tar xzf "$stage/bundle.tar.gz" -C "$stage"
fi
bundle=$(echo "$stage"/huelab-*-linux-x86_64)
version=$(basename "$bundle" | sed 's/^huelab-\(.*\)-linux-x86_64$/\1/')
torch_version=$(sed -n 's/^need=//p' "$bundle/bin/huelab")
tree=$stage/wheel
mkdir -p "$tree/huelab"
cp -R "$bundle/libexec" "$bundle/lib" "$bundle/share" "$tree/huelab/"
sed -e "s/@VERSION@/$version/" -e "s/@TORCH_VERSION@/$torch_version/" "$repo/scripts/wheel_launcher.py" > "$tree/huelab/__init__.py"
printf 'from huelab import main\n\nmain()\n' > "$tree/huelab/__main__.py"

# Written as linux_x86_64 first; auditwheel (PyPA's check) then gives it the manylinux_2_28 tag
# only if every symbol version its ELFs ask for is within that policy and every library they
# name is the policy's or inside the wheel. No ELF names PyTorch's libraries (the loader loads
# them from the torch wheel that Requires-Dist names: src/main/shared.rs), so nothing is
# excluded from the check, and `auditwheel show` must say the same of the result.
mkdir -p "$stage/plain"
python3 - "$tree" "$stage/plain" "$version" "$torch_version" <<'PY'
import base64, hashlib, os, sys, zipfile
tree, dest, version, torch_version = sys.argv[1:5]
tag = "py3-none-linux_x86_64"
dist_info = f"huelab-{version}.dist-info"
torch_minor = ".".join(torch_version.split(".")[:2])
meta = {
    "METADATA": (
        "Metadata-Version: 2.1\n"
        "Name: huelab\n"
        f"Version: {version}\n"
        "Summary: A research runtime for activation-hue experiments on CNNs: Rhai scripts over libtorch, FAISS and plotters\n"
        "License: MIT OR Apache-2.0\n"
        "Requires-Python: >=3.9\n"
        f"Requires-Dist: torch=={torch_minor}.*\n"
    ),
    "WHEEL": f"Wheel-Version: 1.0\nGenerator: huelab make-wheel.sh\nRoot-Is-Purelib: false\nTag: {tag}\n",
    "entry_points.txt": "[console_scripts]\nhuelab = huelab:main\n",
}
files = []
for folder, _, names in os.walk(tree):
    for name in sorted(names):
        path = os.path.join(folder, name)
        files.append((os.path.relpath(path, tree), path))
files.sort()
out = os.path.join(dest, f"huelab-{version}-{tag}.whl")
partial = out + ".partial"
record = []

def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
    def add(arcname, data, mode):
        info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        wheel.writestr(info, data)
        record.append(f"{arcname},{digest(data)},{len(data)}")
    for arcname, path in files:
        with open(path, "rb") as f:
            data = f.read()
        add(arcname, data, 0o755 if os.access(path, os.X_OK) else 0o644)
    for name, text in meta.items():
        add(f"{dist_info}/{name}", text.encode(), 0o644)
    record.append(f"{dist_info}/RECORD,,")
    add_record = "\n".join(record) + "\n"
    info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    wheel.writestr(info, add_record)
os.replace(partial, out)
PY
venv=${HUELAB_HOME:-/var/cache/huelab}/floor-venv
bash "$repo/scripts/floor-deps.sh" >/dev/null
PATH=$venv/bin:$PATH "$venv/bin/auditwheel" repair --plat manylinux_2_28_x86_64 -w "$stage/repaired" \
  "$stage/plain/huelab-$version-py3-none-linux_x86_64.whl" > "$stage/auditwheel.log" 2>&1 \
  || { cat "$stage/auditwheel.log" >&2; echo "make-wheel: auditwheel refused the manylinux_2_28 tag" >&2; exit 1; }
wheel=huelab-$version-py3-none-manylinux_2_28_x86_64.whl
# repair grafts any library it finds outside the policy into the wheel: there must be none.
grep -q "^Grafting\|Grafted\|grafted" "$stage/auditwheel.log" && { cat "$stage/auditwheel.log" >&2; echo "make-wheel: auditwheel grafted libraries into the wheel" >&2; exit 1; }
PATH=$venv/bin:$PATH "$venv/bin/auditwheel" show --json "$stage/repaired/$wheel" > "$stage/show.json" \
  || { echo "make-wheel: auditwheel show failed on $wheel" >&2; exit 1; }
tag=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["overall_tag"])' "$stage/show.json")
[ "$tag" = manylinux_2_28_x86_64 ] || { cat "$stage/show.json" >&2; echo "make-wheel: auditwheel show: consistent with $tag, not manylinux_2_28_x86_64" >&2; exit 1; }
mv "$stage/repaired/$wheel" "$dest/$wheel"
echo "$dest/$wheel: $(du -h "$dest/$wheel" | cut -f1) (auditwheel show: consistent with manylinux_2_28_x86_64; PyTorch's libraries from the torch wheel)"
