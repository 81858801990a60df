#!/usr/bin/env bash
# A relocatable huelab: one folder, packed as OUT.tar.gz, that runs from any directory on a
# Linux x86_64 machine without root, compilers or apt — a cluster's home directory or project
# share. PyTorch's libraries come from the machine's own `pip install torch==2.11.0` (CPU or
# CUDA); everything else is inside:
#
#   huelab-VERSION-linux-x86_64/
#     bin/huelab          the launcher (scripts/bundle-launcher.sh): finds PyTorch, starts the binary
#     libexec/huelab      the stripped binary; RUNPATH $ORIGIN/../lib
#     lib/                FAISS with its C API, OpenBLAS, libgfortran, libgomp, libstdc++ … (RUNPATH $ORIGIN)
#     share/huelab/data/  the built-in data sets, EfficientNet-Lite0's weights, ImageNet's class names
#     share/huelab/kernel.json.in   the notebook kernel spec (`huelab kernel install` writes a real one)
#     README.md
#
#   bash scripts/make-bundle.sh OUT.tar.gz      # after setup.sh (uses its build, FAISS and data)
#
# HUELAB_BINARY picks the binary to pack (default: the release build of this checkout).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: make-bundle.sh OUT.tar.gz}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
torch_version=2.11.0
faiss_lib=/opt/huelab/faiss-1.12.0/lib
torch_lib=/opt/huelab/libtorch-$torch_version/torch/lib
data=${HUELAB_DATA:-/var/cache/huelab/data}
fashion=${HUELAB_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
command -v patchelf >/dev/null || { echo "make-bundle: patchelf not found (setup.sh installs it)" >&2; exit 1; }

binary=${HUELAB_BINARY:-}
if [ -z "$binary" ]; then
  (cd "$repo" && cargo build --release --locked --bin huelab --quiet)
  target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  binary=$target/release/huelab
fi
version=$("$binary" --version | awk '{print $2}')
name=huelab-$version-linux-x86_64
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/libexec" "$root/lib" "$root/share/huelab/data"

# The binary, stripped (debug line tables and symbols: 150 MB → about 40 MB), found its
# libraries beside it.
cp "$binary" "$root/libexec/huelab"
strip "$root/libexec/huelab"
patchelf --set-rpath '$ORIGIN/../lib' "$root/libexec/huelab"

# Every shared library the binary needs except glibc's (the machine's own, like every
# manylinux wheel) and libtorch's (the machine's PyTorch): what the loader finds for it here.
glibc='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64)\.so'
LD_LIBRARY_PATH=$torch_lib:$faiss_lib ldd "$binary" | awk '/=> \// {print $1, $3}' | while read -r soname path; do
  [[ $soname =~ $glibc ]] && continue
  [[ $path == "$torch_lib"/* || $path == */nvidia/* ]] && continue
  cp -L "$path" "$root/lib/$soname"
done
# libgomp too where PyTorch carries its own (PyTorch's, earlier on the path, is the one loaded).
[ -e "$root/lib/libgomp.so.1" ] || cp -L "$(gcc -print-file-name=libgomp.so.1)" "$root/lib/libgomp.so.1"
# FAISS's C API loads the generic FAISS library through its own NEEDED entries; ldd above
# listed those too. Each library finds its siblings beside it.
for lib in "$root"/lib/*; do
  chmod u+w "$lib"
  patchelf --set-rpath '$ORIGIN' "$lib"
done

# Data: what setup.sh fetched, and Fashion-MNIST (Debian's package elsewhere).
cp -R "$data"/. "$root/share/huelab/data/"
mkdir -p "$root/share/huelab/data/fashion-mnist"
cp "$fashion"/*-ubyte.gz "$root/share/huelab/data/fashion-mnist/"

install -m 755 "$repo/scripts/bundle-launcher.sh" "$root/bin/huelab"
sed -i "s/@TORCH_VERSION@/$torch_version/" "$root/bin/huelab"

cat > "$root/share/huelab/kernel.json.in" <<'JSON'
{
 "argv": ["@BUNDLE@/bin/huelab", "kernel", "--connection-file", "{connection_file}"],
 "display_name": "Rhai (huelab)",
 "language": "rhai",
 "interrupt_mode": "message",
 "env": {"HUELAB_TORCH": "@TORCH@"},
 "metadata": {"debugger": false}
}
JSON

glibc_needed=$(for f in "$root/libexec/huelab" "$root"/lib/*; do objdump -T "$f"; done | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1)
cat > "$root/README.md" <<README
# huelab $version, relocatable (Linux x86_64)

Runs from wherever this folder is, without root. It needs from the machine:
- glibc ${glibc_needed#GLIBC_} or newer (\`ldd --version\`);
- PyTorch $torch_version (CPU or CUDA wheel) in the Python that \`python3\` runs, or
  \`HUELAB_TORCH\` set to its \`torch\` package folder: \`pip install torch==$torch_version\`.

    bin/huelab info                                   # versions; CUDA if PyTorch has it
    bin/huelab run my-experiment.rhai                 # an experiment script
    bin/huelab run --slurm --partition gpu my-experiment.rhai   # the same on Slurm
    bin/huelab kernel install                         # the Jupyter kernel "Rhai (huelab)"

Data sets, pretrained weights and class names are in share/huelab/data (\`HUELAB_DATA\`
overrides it). Caches and venvs go to \`HUELAB_HOME\` (default \`~/.cache/huelab\`).
The project's README has the rest.
README

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.bundle.XXXXXX")
tar czf "$tmp" -C "$stage" "$name"
chmod 644 "$tmp"
mv "$tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1) ($name; needs glibc ${glibc_needed#GLIBC_} and PyTorch $torch_version)"
