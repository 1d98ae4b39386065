#!/usr/bin/env bash
# Compiles the engine's sources (types and syntax; no link) against LibTorch 2.x headers, the way a
# GPU machine's LibTorch 2.11 build would see them: Debian trixie's libtorch-dev (2.6), downloaded
# from Debian's archive and unpacked into the ignored folder .libtorch2/ (nothing is installed).
# Usage: scripts/check-libtorch2.sh   (exit 0: every engine source compiles; the log names failures)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.libtorch2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$dir"
if [ ! -f "$dir/root/usr/include/torch/csrc/api/include/torch/version.h" ]; then
  curl -fsS "$mirror/dists/trixie/main/binary-amd64/Packages.xz" -o "$dir/Packages.xz"
  # awk stops at the first match and xz then dies of SIGPIPE: not a failure (pipefail would say so).
  file=$({ xz -dc "$dir/Packages.xz" || true; } | awk '/^Package: libtorch-dev$/{p=1} p&&/^Filename:/{print $2; exit}')
  [ -n "$file" ] || { echo "check-libtorch2: no libtorch-dev in trixie's index" >&2; exit 1; }
  curl -fsS "$mirror/$file" -o "$dir/libtorch-dev.deb"
  rm -rf "$dir/root" && dpkg-deb -x "$dir/libtorch-dev.deb" "$dir/root"
fi
inc="$dir/root/usr/include"
v="$inc/torch/csrc/api/include/torch/version.h"
echo "LibTorch headers: $(awk '/define TORCH_VERSION_(MAJOR|MINOR|PATCH)/{printf "%s%s", sep, $3; sep="."}' "$v") ($inc)"
# The engine's sources as CMakeLists.txt lists them, as the engine-only GPU build compiles them (no oneDNN).
sources=$(sed -n '/^add_library(stylize_engine STATIC/,/)/p; /^target_sources(stylize_engine/p' CMakeLists.txt |
  grep -o 'src/[a-z0-9_/]*\.cpp')
failed=0
for src in $sources bench/engine_bench.cpp; do
  if ! g++ -std=c++17 -fsyntax-only -fopenmp -w -DSTYLIZE_VERSION=\"check\" -Iinclude -isystem "$inc" \
      -isystem "$inc/torch/csrc/api/include" "$src" 2> "$dir/$(basename "$src" .cpp).log"; then
    echo "FAILED $src (see $dir/$(basename "$src" .cpp).log):"; head -5 "$dir/$(basename "$src" .cpp).log"
    failed=$((failed + 1))
  else
    echo "ok     $src"
  fi
done
[ "$failed" -eq 0 ] || { echo "check-libtorch2: $failed source(s) do not compile against LibTorch 2.x" >&2; exit 1; }
echo "check-libtorch2: every engine source compiles against these headers"
