#!/usr/bin/env bash
# A relocatable huelab: one folder, packed as OUT.tar.gz, that runs from any directory on a
# Linux x86_64 machine without root, compilers or apt — a cluster's home directory or project
# share. PyTorch's libraries come from the machine's own `pip install torch==2.11.0` (CPU or
# CUDA); everything else is inside:
#
#   huelab-VERSION-linux-x86_64/
#     bin/huelab          the launcher (scripts/bundle-launcher.sh): finds PyTorch, starts the loader
#     libexec/huelab      the loader (src/bin/huelab-loader.rs): loads PyTorch's libraries, then
#                         lib/libhuelab.so, and runs it; stripped, RUNPATH $ORIGIN/../lib
#     libexec/huelab-kernel   the notebook kernel's front (binds Jupyter's sockets while the
#                         session loads libtorch; links no libtorch); stripped, RUNPATH as above
#     lib/libhuelab.so    the huelab command (src/main/shared.rs), FAISS inside, stripped; names
#                         no PyTorch library (the loader brings them: shared.rs says why)
#     lib/                and OpenBLAS (PyPI's scipy-openblas) (RUNPATH $ORIGIN)
#     share/huelab/data/  the built-in data sets, EfficientNet-Lite0's weights, ImageNet's class names
#     share/huelab/kernel.json.in   the notebook kernel spec (`huelab kernel install` writes a real one)
#     README.md
#
#   bash scripts/make-bundle.sh OUT.tar.gz      # after setup.sh (uses its build, FAISS and data)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: make-bundle.sh OUT.tar.gz}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
torch_version=2.11.0
torch_lib=/opt/huelab/libtorch-$torch_version/torch/lib
data=${HUELAB_DATA:-/var/cache/huelab/data}
fashion=${HUELAB_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
command -v patchelf >/dev/null || { echo "make-bundle: patchelf not found (setup.sh installs it)" >&2; exit 1; }

# The programs, built once more in a target directory of its own with every path of this machine
# remapped: the source file names that panic and assertion messages carry (Rust's, and the
# C++ of libtorch's headers and tch's wrapper) name /cargo/… and /libtorch/…, not
# this machine's folders. The first build takes as long as setup's; later ones are incremental.
target=${HUELAB_BUNDLE_TARGET:-${HUELAB_HOME:-/var/cache/huelab}/target-bundle}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# The checkout needs no pair: cargo names its files relative to it (and so the flags, and
# the build, stay the same in every clone on this machine).
pairs=("$cargo_home/registry/src=/cargo/registry/src" "$cargo_home/git/checkouts=/cargo/git" "$target=/cargo/target" "/opt/huelab/libtorch-$torch_version=/libtorch")
# The toolchain's own sources: with rustup's rust-src component installed (evcxr's first run
# adds it), rustc names the standard library's files by their local path instead of
# /rustc/<commit>/, and the binary would carry it. Mapped back to what rustc writes without
# the component; the sysroot as a whole first (a later, more specific pair wins).
sysroot=$(rustc --print sysroot)
commit=$(rustc -vV | awk '/^commit-hash:/ {print $2}')
pairs+=("$sysroot=/rust-toolchain" "$sysroot/lib/rustlib/src/rust=/rustc/$commit")
rustflags=() cflags=()
for pair in "${pairs[@]}"; do rustflags+=("--remap-path-prefix=$pair"); cflags+=("-ffile-prefix-map=$pair"); done
# The glibc floor (scripts/floor-deps.sh, scripts/zig-cc.sh): Rust and C linked by zig against
# glibc 2.28's symbols, C compiled against its headers; C++ compiled by g++ against the
# machine's libstdc++ (libtorch's), the few newer symbols its headers call defined inside
# (src/floor/libstdcxx_compat.cpp); FAISS and TurboJPEG static, OpenBLAS from PyPI. The
# compiler is floor-deps.sh's copy of zig-cc.sh, at a path that is the same in every clone.
floor=$(bash "$repo/scripts/floor-deps.sh" | tail -n 3)
{ read -r floor_faiss; read -r floor_turbojpeg; read -r zig_cc; } <<<"$floor"
# CARGO_ENCODED_RUSTFLAGS: flags separated by 0x1f, so that a path with a space stays one flag.
(cd "$repo" && CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${rustflags[*]}")" CFLAGS="${cflags[*]}" CXXFLAGS="${cflags[*]}" \
  HUELAB_ZIG_PYTHON="${HUELAB_HOME:-/var/cache/huelab}/floor-venv/bin/python" HUELAB_GLIBC_FLOOR=2.28 \
  HUELAB_FAISS_LIB="$floor_faiss" CC_x86_64_unknown_linux_gnu="$zig_cc" CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$zig_cc" \
  TURBOJPEG_SOURCE=explicit TURBOJPEG_STATIC=1 TURBOJPEG_LIB_DIR="$floor_turbojpeg" \
  cargo build --release --locked --bin huelab-loader --bin huelab-kernel --example huelab_shared --target-dir "$target" --quiet)
loader=$target/release/huelab-loader
front=$target/release/huelab-kernel
program=$target/release/examples/libhuelab_shared.so
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
name=huelab-$version-linux-x86_64
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/libexec" "$root/lib" "$root/share/huelab/data"

# The loader and the front need glibc alone. build.rs's rpath (libtorch's and FAISS's folders) is replaced,
# not removed: `--remove-rpath` drops the entry but leaves the string in the file, a longer
# one is written over in place.
for exe in huelab:"$loader" huelab-kernel:"$front"; do
  cp "${exe#*:}" "$root/libexec/${exe%%:*}"
  strip "$root/libexec/${exe%%:*}"
  patchelf --set-rpath '$ORIGIN/../lib' "$root/libexec/${exe%%:*}"
done
# The program, stripped (debug line tables and symbols: 150 MB → about 40 MB). It was linked
# against PyTorch's libraries (a symbol they lack is a link error); their names are dropped from
# its needed list here, as the loader brings them (libtorch_cpu and what it needs itself).
cp "$program" "$root/lib/libhuelab.so"
strip "$root/lib/libhuelab.so"
dropped=()
for soname in $(readelf -dW "$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
  [ -e "$torch_lib/$soname" ] && dropped+=(--remove-needed "$soname")
done
[ ${#dropped[@]} -gt 0 ] || { echo "make-bundle: $program names no library of $torch_lib: not linked against PyTorch?" >&2; exit 1; }
patchelf "${dropped[@]}" "$root/lib/libhuelab.so"

# Every shared library the program needs except what the machine has, as every manylinux wheel
# expects: glibc's, libstdc++ and libgcc_s (the ones PyTorch itself uses: one C++ runtime and one
# unwinder in the process, whichever of the two throws) and PyTorch's own libraries with its
# libgomp. That leaves OpenBLAS.
machine='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s|libgomp)\.so'
LD_LIBRARY_PATH=$torch_lib:$floor_faiss ldd "$program" | awk '/=> \// {print $1, $3}' | while read -r soname path; do
  [[ $soname =~ $machine ]] && continue
  [[ $path == "$torch_lib"/* || $path == */nvidia/* ]] && continue
  cp -L "$path" "$root/lib/$soname"
done
# Each library finds its siblings beside it (the program its OpenBLAS).
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
 "argv": ["@BUNDLE@/libexec/huelab-kernel", "--connection-file", "{connection_file}", "--",
          "@BUNDLE@/bin/huelab", "kernel", "--connection-file", "{connection_file}", "--relay-stdin"],
 "display_name": "Rhai (huelab)",
 "language": "rhai",
 "interrupt_mode": "message",
 "env": {"HUELAB_TORCH": "@TORCH@"},
 "metadata": {"debugger": false}
}
JSON

glibc_needed=$(for f in "$root"/libexec/* "$root"/lib/*; do objdump -T "$f"; done | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1)
cat > "$root/README.md" <<README
# huelab $version, relocatable (Linux x86_64)

Runs from wherever this folder is, without root. It needs from the machine:
- glibc ${glibc_needed#GLIBC_} or newer (\`ldd --version\`) and libstdc++ from GCC 8 or newer, as PyTorch does;
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

# No path of this machine inside any file: the checkout, cargo's registry and targets, the
# libtorch and FAISS installs, the home's subfolders. (setup.sh's home itself,
# /var/cache/huelab, is the documented default where it exists, and is allowed.)
needles=(-e "$repo/" -e "$cargo_home/" -e "$target/" -e "/opt/huelab/" -e "/var/cache/huelab/")
[ "${HOME:-/}" = / ] || needles+=(-e "$HOME/")
leaks=$(for f in "$root"/libexec/* "$root"/lib/*; do strings -a "$f" | { grep -F "${needles[@]}" || true; } | sed "s|^|${f#$root/}: |"; done | head -5)
[ -z "$leaks" ] || { echo "make-bundle: paths of this machine inside the bundle:" >&2; echo "$leaks" >&2; exit 1; }

# What it needs by name is the machine's or its own, and it starts: the loader finds PyTorch and
# the program, every symbol resolved at once (LD_BIND_NOW).
needed=$(for f in "$root"/libexec/* "$root"/lib/*; do readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; done | sort -u)
for soname in $needed; do
  [[ $soname =~ $machine ]] && [[ ! $soname =~ ^libgomp ]] && continue
  [ -e "$root/lib/$soname" ] || { echo "make-bundle: the bundle's ELFs ask for $soname by name, which is neither the machine's nor inside" >&2; exit 1; }
done
said=$(HUELAB_TORCH=${torch_lib%/lib} LD_BIND_NOW=1 "$root/libexec/huelab" --version) \
  || { echo "make-bundle: the packed huelab does not start" >&2; exit 1; }
[ "$said" = "huelab $version" ] || { echo "make-bundle: the packed huelab says '$said', expected 'huelab $version'" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.bundle.XXXXXX")
tar czf "$tmp" -C "$stage" "$name"
chmod 644 "$tmp"
mv "$tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1) ($name; needs glibc ${glibc_needed#GLIBC_} and PyTorch $torch_version)"
