#!/usr/bin/env bash
# Builds stylize in Release and regenerates BENCHMARKS.md (about 28 minutes on 2 cores, after the build).
# Needs ../shared/images (or BENCH_IMAGES) and Debian's python3-torch for the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DCMAKE_BUILD_TYPE=Release
exec /usr/bin/python3 bench/run_bench.py
