#!/usr/bin/env bash
# The shipped build's C compiler and linker (scripts/make-bundle.sh sets it as both): zig's
# clang against glibc 2.28's headers and symbol list, so a symbol newer than the floor is a link
# error here instead of a machine where huelab does not start.
#
# zig would bring its own C++ runtime (LLVM's libc++ for -lstdc++) and unwinder (LLVM's
# libunwind for -lgcc_s). libtorch is built against the machine's libstdc++ and libgcc_s, and a
# C++ exception crossing from libtorch into tch's wrapper must meet the same runtime and the
# same unwinder that threw it, so those two are linked as the machine's shared libraries, by
# path (which zig takes as a plain input); the C++ itself is compiled by g++ (make-bundle.sh).
# libgomp is PyTorch's own (the wheel carries it; its floor is glibc 2.17).
set -euo pipefail
zig_python=${HUELAB_ZIG_PYTHON:?HUELAB_ZIG_PYTHON: the floor venv python (scripts/floor-deps.sh)}

args=()
rewrite() {
  case "$1" in
    -lstdc++) args+=("$(g++ -print-file-name=libstdc++.so.6)") ;;
    -lgcc_s) args+=("$(gcc -print-file-name=libgcc_s.so.1)") ;;
    -lgomp) args+=("${LIBTORCH:?LIBTORCH unset}/lib/libgomp.so.1") ;;
    # faiss-sys asks for it among the shared libraries; the floor's FAISS is an archive.
    -lfaiss_c) args+=("${HUELAB_FAISS_LIB:?HUELAB_FAISS_LIB unset}/libfaiss_c.a") ;;
    # rustc's own choices of linker and target, which zig makes itself.
    -fuse-ld=*|-B*|--target=*|-Wl,--no-undefined-version|-Wl,-znostart-stop-gc) ;;
    *) args+=("$1") ;;
  esac
}
for arg in "$@"; do
  if [[ $arg == @* ]]; then
    # A response file (rustc's, when the command line is long): one argument per line.
    while IFS= read -r line || [ -n "$line" ]; do rewrite "$line"; done < "${arg#@}"
  else
    rewrite "$arg"
  fi
done
# Linking: this machine's libstdc++ and libgcc_s themselves need a newer glibc than 2.28, and
# that is not the binary's concern (on an older machine, that machine's own copies are loaded);
# what the binary itself needs is what the floor check reads (tests/suite/glibc_floor.rs).
[[ " ${args[*]} " == *" -c "* ]] || args+=(-Wl,--allow-shlib-undefined)
exec "$zig_python" -m ziglang cc -target x86_64-linux-gnu.2.28 "${args[@]}"
