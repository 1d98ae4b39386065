#!/usr/bin/env bash
# The GPU benchmark, as one script for a machine that has an NVIDIA GPU and a CUDA PyTorch and
# nothing else of ours (no OpenCV, no CLI11, no apt): builds the engine against that PyTorch's
# LibTorch, then times 500 L-BFGS iterations at 512 and 2048 px for stylize (stylize_engine_bench)
# and for bench/reference.py on the same GPU, same synthetic weights, images and losses.
#
#   bash bench/gpu.sh                 # writes $OUT/gpu.json (or build-gpu/gpu.json) and prints it
#
# Then copy gpu.json to bench/gpu-results.json: scripts/bench.sh puts it into BENCHMARKS.md.
# Needs nlohmann/json.hpp: found in $NLOHMANN_INCLUDE (a folder holding nlohmann/json.hpp),
# .gpu-deps/include in the tree, /usr/include or /usr/local/include. A GPU machine without it gets it
# from here: `bash bench/gpu.sh --prepare` copies Debian's header into .gpu-deps/ (git-ignored;
# the device tool carries it with the working tree). A size that fails is recorded in gpu.json with
# its error and the others still run; the script then exits 1. Knobs (for a dry run on a CPU): GPU_BENCH_DEVICE (cuda), GPU_BENCH_SIZES ("512 2048"),
# GPU_BENCH_ITERATIONS (500), PYTHON (python3), GPU_BENCH_BUILD (auto | cmake | gxx).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "${1:-}" = "--prepare" ]; then  # on the development machine: the header travels in the tree
  [ -f /usr/include/nlohmann/json.hpp ] || { echo "gpu.sh: install nlohmann-json3-dev first" >&2; exit 3; }
  mkdir -p .gpu-deps/include && cp -r /usr/include/nlohmann .gpu-deps/include/
  echo "gpu.sh: copied nlohmann/ into .gpu-deps/include (carry .gpu-deps to the GPU machine)" >&2
  exit 0
fi
PY=${PYTHON:-python3}
DEVICE=${GPU_BENCH_DEVICE:-cuda}
SIZES=${GPU_BENCH_SIZES:-512 2048}
ITERATIONS=${GPU_BENCH_ITERATIONS:-500}
BUILD_WITH=${GPU_BENCH_BUILD:-auto}
BUILD=$ROOT/build-gpu
RESULTS=${OUT:-$BUILD}
mkdir -p "$BUILD" "$RESULTS"
log() { echo "gpu.sh: $*" >&2; }

TORCH_DIR=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
json_include=""
for dir in "${NLOHMANN_INCLUDE:-}" "$ROOT/.gpu-deps/include" /usr/include /usr/local/include; do
  if [ -n "$dir" ] && [ -f "$dir/nlohmann/json.hpp" ]; then json_include=$(cd "$dir" && pwd); break; fi
done
if [ -z "$json_include" ]; then
  log "error: nlohmann/json.hpp not found; run 'bash bench/gpu.sh --prepare' where it is installed and carry .gpu-deps, or set NLOHMANN_INCLUDE"
  exit 3
fi
log "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') in $TORCH_DIR"

# CMake first: the project's own build. A pip PyTorch's CMake config wants the CUDA toolkit (nvcc),
# which a machine that only runs PyTorch may lack; then the engine is compiled directly.
build_cmake() {
  command -v cmake > /dev/null || return 1
  cmake -S . -B "$BUILD" -DSTYLIZE_ENGINE_ONLY=ON -DSTYLIZE_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
    -DCMAKE_INCLUDE_PATH="$json_include" > "$BUILD/cmake.log" 2>&1 &&
    cmake --build "$BUILD" -j "$(nproc)" --target stylize_engine_bench >> "$BUILD/cmake.log" 2>&1
}

build_gxx() {
  local abi sources objects=() libs=(-ltorch -ltorch_cpu -lc10)
  abi=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  # The engine's sources, as CMakeLists.txt lists them (one list to maintain).
  sources=$(sed -n '/^add_library(stylize_engine STATIC/,/)/p; /^target_sources(stylize_engine/p' CMakeLists.txt |
    grep -o 'src/[a-z0-9_/]*\.cpp')
  for lib in torch_cuda c10_cuda; do
    if [ -e "$TORCH_DIR/lib/lib$lib.so" ]; then libs+=("-l$lib"); fi
  done
  # A stale object from an earlier try must not stand in for one that fails to compile now.
  rm -rf "$BUILD/obj" && mkdir -p "$BUILD/obj"
  for src in $sources bench/engine_bench.cpp; do objects+=("$BUILD/obj/$(basename "$src" .cpp).o"); done
  # -fopenmp: ATen's parallel_for is inline OpenMP; without it the engine's own parallel loops run serially.
  # shellcheck disable=SC2086
  printf '%s\n' $sources bench/engine_bench.cpp | xargs -P "$(nproc)" -I{} sh -c \
    'g++ -O2 -std=c++17 -fopenmp -D_GLIBCXX_USE_CXX11_ABI='"$abi"' -DSTYLIZE_VERSION=\"gpu-bench\" -Iinclude \
       -I"'"$TORCH_DIR"'/include" -I"'"$TORCH_DIR"'/include/torch/csrc/api/include" -I"'"$json_include"'" \
       -c {} -o "'"$BUILD"'/obj/$(basename {} .cpp).o"' 2> "$BUILD/gxx.log" || return 1
  # --no-as-needed: nothing refers to libtorch_cuda by name, but loading it registers the CUDA backend.
  g++ -fopenmp "${objects[@]}" -o "$BUILD/stylize_engine_bench" -L"$TORCH_DIR/lib" -Wl,--no-as-needed "${libs[@]}" \
    -Wl,--as-needed -Wl,-rpath,"$TORCH_DIR/lib" -lpthread -ldl 2>> "$BUILD/gxx.log" || return 1
}

started=$(date +%s)
case "$BUILD_WITH" in
  cmake) build_cmake || { log "error: the CMake build failed, see $BUILD/cmake.log"; exit 1; } ;;
  gxx) build_gxx || { log "error: the g++ build failed, see $BUILD/gxx.log"; exit 1; } ;;
  *) build_cmake || { log "CMake unavailable or failed ($BUILD/cmake.log): compiling with g++"; build_gxx; } ||
       { log "error: the g++ build failed, see $BUILD/gxx.log"; exit 1; } ;;
esac
log "built in $(( $(date +%s) - started )) s"

# Each size on its own: one that fails (out of memory at 2048 px, say) leaves its error in gpu.json.
failed=0
for size in $SIZES; do
  rm -f "$RESULTS/stylize-$size.json" "$RESULTS/reference-$size.json" "$RESULTS/error-$size.txt"
  log "$size px, $ITERATIONS iterations: stylize"
  if ! "$BUILD/stylize_engine_bench" --device "$DEVICE" --size "$size" --iterations "$ITERATIONS" \
      --inputs-out "$BUILD/inputs-$size.safetensors" > "$RESULTS/stylize-$size.json" 2> "$RESULTS/error-$size.txt"; then
    log "error: stylize at $size px failed: $(tail -n 1 "$RESULTS/error-$size.txt")"; failed=1; continue
  fi
  log "$size px, $ITERATIONS iterations: reference"
  if ! "$PY" bench/reference.py --inputs "$BUILD/inputs-$size.safetensors" --iterations "$ITERATIONS" \
      --device "$DEVICE" > "$RESULTS/reference-$size.json" 2> "$RESULTS/error-$size.txt"; then
    log "error: the reference at $size px failed: $(tail -n 1 "$RESULTS/error-$size.txt")"; failed=1
  fi
  rm -f "$BUILD/inputs-$size.safetensors"
done

"$PY" - "$RESULTS" "$DEVICE" $SIZES << 'EOF'
import datetime, json, os, subprocess, sys
import torch
results, device, sizes = sys.argv[1], sys.argv[2], sys.argv[3:]
gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu (dry run)"
rows, failures = [], []
for size in sizes:
    try:
        ours = json.load(open(os.path.join(results, f"stylize-{size}.json")))
        ref = json.load(open(os.path.join(results, f"reference-{size}.json")))
    except (OSError, ValueError):
        err = os.path.join(results, f"error-{size}.txt")
        lines = open(err).read().strip().splitlines() if os.path.exists(err) else []
        failures.append({"size": int(size), "error": lines[-1] if lines else "no result"})
        continue
    rows.append({"size": int(size), "width": ours["width"], "height": ours["height"],
                 "iterations": ours["iterations"], "stylize": ours, "reference": ref,
                 "ratio": ours["seconds_per_iteration"] / ref["seconds_per_iteration"]})
out = {"date": datetime.date.today().isoformat(), "gpu": gpu, "device": device, "torch": torch.__version__,
       "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.startswith("cuda") else None,
       "rows": rows, "failed": failures}
with open(os.path.join(results, "gpu.json"), "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1))
EOF
exit "$failed"
