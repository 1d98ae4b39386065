#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs the whole test suite (a few minutes on 2 cores).
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      only one label (unit, cli, net, server, real)
#   scripts/test.sh --sanitize   an ASan + UBSan build in build-sanitize/, then the unit and CLI tests
#                                under it (-L overrides the labels); any report fails the test
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
  shift
fi
bash scripts/install-deps.sh
if [ "$sanitize" = 0 ]; then
  bash scripts/build.sh
  cd build
  ctest --output-on-failure --no-tests=error --parallel "$(nproc)" --timeout 600 "$@"
  exit 0
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f build-sanitize/CMakeCache.txt ] || cmake -S . -B build-sanitize "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DSTYLIZE_SANITIZE=ON
labels=(-L 'unit|cli')
target=(--target stylize_unit_cli_tests)  # only what those labels run (tests/CMakeLists.txt)
for a in "$@"; do
  case "$a" in -L | --label-regex | --label-regex=*) labels=() && target=() ;; esac
done
cmake --build build-sanitize --parallel "$(nproc)" "${target[@]}"
# Leaks: LibTorch, OpenMP and OpenBLAS keep their pools to the end of the process; the suppressions
# name those libraries only, so a leak of ours still fails.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cd build-sanitize
ctest --output-on-failure --no-tests=error --parallel "$(nproc)" --timeout 1200 "${labels[@]}" "$@"
