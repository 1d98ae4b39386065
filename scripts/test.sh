#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs the whole test suite (a few minutes on 2 cores).
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      only one label (unit, cli, net, server, real)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 600 "$@"
