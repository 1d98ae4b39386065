#!/usr/bin/env bash
# Builds stylize in Release and regenerates BENCHMARKS.md (about 25 minutes on the 2-core Xeon VM of
# 2026-11-29 with bf16 as its default: 24.7-30.2 min in four runs, 9-12 of them the 1000-iteration
# single-scale run).
# Needs ../shared/images (or BENCH_IMAGES) and Debian's python3-torch for the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DCMAKE_BUILD_TYPE=Release
exec /usr/bin/python3 bench/run_bench.py
