#!/usr/bin/env bash
# The folder of a dependency's source as cargo unpacked it (after fetching it if needed), for the
# scripts that build C/C++ a -sys crate carries outside cargo (build-faiss.sh, build-turbojpeg.sh).
#
#   bash scripts/crate-source.sh NAME [VERSION]    prints the folder of NAME (at VERSION)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:?usage: crate-source.sh NAME [VERSION]}
version=${2:-}
cd "$repo"
cargo fetch --quiet
cargo metadata --format-version 1 | python3 -c '
import json, os, sys
name, version = sys.argv[1], sys.argv[2]
found = [p for p in json.load(sys.stdin)["packages"] if p["name"] == name and version in ("", p["version"])]
if not found:
    sys.exit(f"crate-source: {name} {version} is not among Cargo.lock'"'"'s packages")
print(os.path.dirname(found[0]["manifest_path"]))' "$name" "$version"
