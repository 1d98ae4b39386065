#!/usr/bin/env bash
# The GPU run, as one script for a machine that has an NVIDIA GPU and a CUDA PyTorch and nothing
# else of ours (no OpenCV, no CLI11, no apt). It builds the engine against that PyTorch's LibTorch,
# then runs, each step recorded in gpu.json even when another fails:
#   1. the engine's CUDA tests (tests/test_parity.cpp: parity with the fixture on the GPU, a short run
#      against the CPU's, host reads, bf16), where googletest's source came along;
#   2. 500 L-BFGS iterations at 512 and 2048 px for stylize (stylize_engine_bench) and for
#      bench/reference.py on the same GPU, same synthetic weights, images and losses;
#   3. a real picture: the real shallow VGG19 (conv1-3), Tübingen × The Starry Night at 2048 px,
#      500 iterations, against the reference on the same problem; the image comes back as real.ppm;
#   4. where asked (GPU_BENCH_CPU_PROFILE), bench/iteration_profile.py on the host CPU, two cores.
#
#   bash bench/gpu.sh --prepare       # here, where Debian's packages and ../shared are: fills .gpu-deps/
#   bash bench/gpu.sh                 # there: writes $OUT/gpu.json (or build-gpu/gpu.json) and prints it
#
# Then copy gpu.json to bench/gpu-results.json: scripts/bench.sh puts it into BENCHMARKS.md.
# --prepare copies into .gpu-deps/ (git-ignored; the device tool carries it with the working tree):
# nlohmann/json.hpp, googletest's source (Debian's googletest package), the real shallow weights,
# the two photos as float32 tensors (bench/gpu_images.py) and Debian's oneDNN packages. Without a piece the run skips what needs it
# and says so. Knobs (for a dry run on a CPU): GPU_BENCH_DEVICE (cuda), GPU_BENCH_SIZES ("512 2048"; empty: none),
# GPU_BENCH_ITERATIONS (500), GPU_BENCH_REAL_SIZE (2048; 0 skips the picture), GPU_BENCH_TESTS (1; 0 skips them),
# GPU_BENCH_ONEDNN (1; 0 builds without Debian's oneDNN), GPU_BENCH_CPU_PROFILE (precisions of the host CPU's
# profile, step 4; empty: none), GPU_BENCH_PROFILE_SIZES (256,512), GPU_BENCH_RATIO_ITERATIONS (20: the profile's
# unrecorded runs against the reference), PYTHON (python3), GPU_BENCH_BUILD
# (auto | cmake | gxx | none: use what GPU_BENCH_BUILD_DIR already holds), GPU_BENCH_BUILD_DIR (build-gpu). Exit 1 when any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.gpu-deps
if [ "${1:-}" = "--prepare" ]; then
  shared=${STYLIZE_SHARED:-$ROOT/../shared}
  [ -f /usr/include/nlohmann/json.hpp ] || { echo "gpu.sh: install nlohmann-json3-dev first" >&2; exit 3; }
  [ -d /usr/src/googletest ] || { echo "gpu.sh: install googletest first (scripts/install-deps.sh)" >&2; exit 3; }
  mkdir -p "$DEPS/include" && cp -r /usr/include/nlohmann "$DEPS/include/"
  rm -rf "$DEPS/googletest" && cp -r /usr/src/googletest "$DEPS/googletest"
  cp "$shared/weights/vgg19-conv1-3-real.safetensors" "$DEPS/real-weights.safetensors"
  # Debian's oneDNN as packages (7 MB): the build there links it as the project's build does.
  rm -rf "$DEPS/debs" && mkdir -p "$DEPS/debs" && (cd "$DEPS/debs" && apt-get download -q libdnnl2 libdnnl-dev) ||
    { echo "gpu.sh: apt-get download libdnnl2 libdnnl-dev failed" >&2; exit 3; }
  /usr/bin/python3 bench/gpu_images.py "$DEPS/images.safetensors" content="$shared/images/tubingen.jpg" \
    style="$shared/images/starry_night.jpg"
  echo "gpu.sh: .gpu-deps holds $(du -sh "$DEPS" | cut -f1): carry .gpu-deps" >&2
  exit 0
fi
PY=${PYTHON:-python3}
DEVICE=${GPU_BENCH_DEVICE:-cuda}
SIZES=${GPU_BENCH_SIZES-512 2048}
ITERATIONS=${GPU_BENCH_ITERATIONS:-500}
REAL_SIZE=${GPU_BENCH_REAL_SIZE:-2048}
BUILD_WITH=${GPU_BENCH_BUILD:-auto}
BUILD=${GPU_BENCH_BUILD_DIR:-$ROOT/build-gpu}
RESULTS=${OUT:-$BUILD}
mkdir -p "$BUILD" "$RESULTS"
log() { echo "gpu.sh: $*" >&2; }

TORCH_DIR=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
json_include=""
for dir in "${NLOHMANN_INCLUDE:-}" "$DEPS/include" /usr/include /usr/local/include; do
  if [ -n "$dir" ] && [ -f "$dir/nlohmann/json.hpp" ]; then json_include=$(cd "$dir" && pwd); break; fi
done
if [ -z "$json_include" ]; then
  log "error: nlohmann/json.hpp not found; run 'bash bench/gpu.sh --prepare' where it is installed and carry .gpu-deps, or set NLOHMANN_INCLUDE"
  exit 3
fi
GTEST_SRC=$DEPS/googletest
[ "${GPU_BENCH_TESTS:-1}" = 1 ] || GTEST_SRC=""
[ -f "$GTEST_SRC/googletest/src/gtest-all.cc" ] || GTEST_SRC=""
log "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') in $TORCH_DIR"

# Debian's oneDNN, unpacked from the packages --prepare fetched: the project's build links it for the
# bf16 Gram products and the Winograd products (CMakeLists.txt), and without it a bf16 Gram product
# runs as fp32 BLAS on cast features. Not where this LibTorch exports oneDNN's C API itself: its
# symbols (another oneDNN version) could then stand in for Debian's.
DNNL_PREFIX=""
if [ "${GPU_BENCH_ONEDNN:-1}" = 1 ] && ls "$DEPS"/debs/libdnnl*.deb > /dev/null 2>&1; then
  if ! command -v nm > /dev/null; then
    log "oneDNN not used: no nm to check LibTorch's exported symbols"
  elif nm -D --defined-only "$TORCH_DIR/lib/libtorch_cpu.so" | grep -q ' T dnnl_'; then
    log "oneDNN not used: this LibTorch exports oneDNN's C API itself"
  else
    rm -rf "$DEPS/dnnl-root" && for deb in "$DEPS"/debs/libdnnl*.deb; do dpkg-deb -x "$deb" "$DEPS/dnnl-root"; done
    DNNL_PREFIX=$DEPS/dnnl-root/usr
    log "oneDNN: Debian's, from $(basename "$(ls "$DEPS"/debs/libdnnl2_*.deb)")"
  fi
fi

# CMake first: the project's own build. A pip PyTorch's CMake config wants the CUDA toolkit (nvcc),
# which a machine that only runs PyTorch may lack; then the engine is compiled directly.
build_cmake() {
  command -v cmake > /dev/null || return 1
  local tests=(-DSTYLIZE_BUILD_TESTS=OFF) targets=(stylize_engine_bench)
  if [ -n "$GTEST_SRC" ]; then  # googletest from source, installed inside the build folder
    cmake -S "$GTEST_SRC" -B "$BUILD/gtest" -DBUILD_GMOCK=OFF -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$BUILD/gtest-install" > "$BUILD/cmake.log" 2>&1 &&
      cmake --build "$BUILD/gtest" -j "$(nproc)" --target install >> "$BUILD/cmake.log" 2>&1 || return 1
    tests=(-DSTYLIZE_BUILD_TESTS=ON) targets+=(test_parity)
  fi
  cmake -S . -B "$BUILD" -DSTYLIZE_ENGINE_ONLY=ON "${tests[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)');$BUILD/gtest-install${DNNL_PREFIX:+;$DNNL_PREFIX}" \
    -DCMAKE_INCLUDE_PATH="$json_include" >> "$BUILD/cmake.log" 2>&1 &&
    cmake --build "$BUILD" -j "$(nproc)" --target "${targets[@]}" >> "$BUILD/cmake.log" 2>&1
}

build_gxx() {
  local abi sources objects=() libs=(-ltorch -ltorch_cpu -lc10) flags
  abi=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  # The engine's sources, as CMakeLists.txt lists them (one list to maintain).
  sources=$(sed -n '/^add_library(stylize_engine STATIC/,/)/p; /^target_sources(stylize_engine/p' CMakeLists.txt |
    grep -o 'src/[a-z0-9_/]*\.cpp')
  for lib in torch_cuda c10_cuda; do
    if [ -e "$TORCH_DIR/lib/lib$lib.so" ]; then libs+=("-l$lib"); fi
  done
  local extra=(bench/engine_bench.cpp)
  if [ -n "$GTEST_SRC" ]; then
    extra+=(tests/support.cpp tests/test_parity.cpp "$GTEST_SRC/googletest/src/gtest-all.cc"
            "$GTEST_SRC/googletest/src/gtest_main.cc")
  fi
  # A stale object from an earlier try must not stand in for one that fails to compile now.
  rm -rf "$BUILD/obj" && mkdir -p "$BUILD/obj"
  # -fopenmp: ATen's parallel_for is inline OpenMP; without it the engine's own parallel loops run serially.
  flags="-O2 -std=c++17 -fopenmp -D_GLIBCXX_USE_CXX11_ABI=$abi -DSTYLIZE_VERSION=\\\"gpu-bench\\\" -Iinclude \
    -I$TORCH_DIR/include -I$TORCH_DIR/include/torch/csrc/api/include -I$json_include"
  # tests/CMakeLists.txt's defines for the test support (escaped for the sh -c below).
  [ -z "$GTEST_SRC" ] || flags+=" -I$GTEST_SRC/googletest/include -I$GTEST_SRC/googletest \
    -DSTYLIZE_FIXTURES=\\\"$ROOT/tests/fixtures\\\" -DSTYLIZE_SHARED_IMAGES=\\\"$ROOT/../shared/images\\\" \
    -DSTYLIZE_SHARED_WEIGHTS=\\\"$DEPS/real-weights.safetensors\\\""
  # shellcheck disable=SC2086
  printf '%s\n' $sources "${extra[@]}" | xargs -P "$(nproc)" -I{} sh -c \
    'g++ '"$flags"' -c {} -o "'"$BUILD"'/obj/$(basename {} | sed "s/\.c[cp]*$//").o"' 2> "$BUILD/gxx.log" || return 1
  for src in $sources; do objects+=("$BUILD/obj/$(basename "$src" .cpp).o"); done
  # --no-as-needed: nothing refers to libtorch_cuda by name, but loading it registers the CUDA backend.
  local link=(-L"$TORCH_DIR/lib" -Wl,--no-as-needed "${libs[@]}" -Wl,--as-needed -Wl,-rpath,"$TORCH_DIR/lib" -lpthread -ldl)
  g++ -fopenmp "${objects[@]}" "$BUILD/obj/engine_bench.o" -o "$BUILD/stylize_engine_bench" "${link[@]}" \
    2>> "$BUILD/gxx.log" || return 1
  if [ -n "$GTEST_SRC" ]; then
    mkdir -p "$BUILD/tests"
    g++ -fopenmp "${objects[@]}" "$BUILD"/obj/{support,test_parity,gtest-all,gtest_main}.o -o "$BUILD/tests/test_parity" \
      "${link[@]}" 2>> "$BUILD/gxx.log" || return 1
  fi
}

build() {
  case "$BUILD_WITH" in
    none) log "not building: the binaries already in $BUILD" ;;
    cmake) build_cmake || { log "error: the CMake build failed, see $BUILD/cmake.log"; tail -n 30 "$BUILD/cmake.log" >&2; exit 1; } ;;
    gxx) build_gxx || { log "error: the g++ build failed, see $BUILD/gxx.log"; tail -n 30 "$BUILD/gxx.log" >&2; exit 1; } ;;
    *) build_cmake || { log "CMake unavailable or failed: compiling with g++"; tail -n 30 "$BUILD/cmake.log" >&2; build_gxx; } ||
         { log "error: the g++ build failed, see $BUILD/gxx.log"; tail -n 30 "$BUILD/gxx.log" >&2; exit 1; } ;;
  esac
}
started=$(date +%s)
build
# Debian's oneDNN beside this LibTorch is untried on a new machine: a short bf16 run on the CPU first,
# and a build without it where that run fails.
if [ -n "$DNNL_PREFIX" ] && [ "$BUILD_WITH" != none ] &&
    ! "$BUILD/stylize_engine_bench" --device cpu --precision bf16 --size 64 --iterations 2 --threads 2 \
      > /dev/null 2> "$BUILD/smoke.txt"; then
  log "the engine with Debian's oneDNN failed a 64 px run ($(tail -n 1 "$BUILD/smoke.txt")): building without it"
  DNNL_PREFIX="" && rm -f "$BUILD/CMakeCache.txt" && build
fi
log "linked: $(ldd "$BUILD/stylize_engine_bench" | grep -oE '(lib(dnnl|gomp|iomp5)[^ ]*) => [^ ]*' | paste -sd' ')"
log "LibTorch's OpenMP: $(cd "$TORCH_DIR/lib" && ls | grep -E 'gomp|iomp' | paste -sd' ')"
log "built in $(( $(date +%s) - started )) s"
failed=0

# 1. The engine's tests on this machine, CUDA cases included (the CPU ones run too: same binary).
if [ -n "$GTEST_SRC" ] && [ -x "$BUILD/tests/test_parity" ]; then
  log "tests: test_parity"
  "$BUILD/tests/test_parity" > "$RESULTS/tests.txt" 2>&1 || { log "error: test_parity failed (tests.txt)"; failed=1; }
  tail -n 25 "$RESULTS/tests.txt" >&2
else
  log "tests skipped: no googletest source (bash bench/gpu.sh --prepare, carry .gpu-deps)"
fi

# One timed pair: stylize_engine_bench with "$@", then the reference on the same inputs.
# Writes $RUNS/{stylize,reference}-$name.json, or error-$name.txt (gpu.json gathers them: the device
# tool brings back at most 8 files).
RUNS=$BUILD/runs
mkdir -p "$RUNS"
pair() {
  local name=$1 ref_args=$2
  shift 2
  rm -f "$RUNS/stylize-$name.json" "$RUNS/reference-$name.json" "$RUNS/error-$name.txt"
  log "$name: stylize"
  if ! "$BUILD/stylize_engine_bench" --device "$DEVICE" --iterations "$ITERATIONS" "$@" \
      --inputs-out "$BUILD/inputs-$name.safetensors" > "$RUNS/stylize-$name.json" 2> "$RUNS/error-$name.txt"; then
    log "error: stylize $name failed: $(tail -n 1 "$RUNS/error-$name.txt")"; failed=1; return
  fi
  log "$name: reference"
  # shellcheck disable=SC2086
  if ! "$PY" bench/reference.py --inputs "$BUILD/inputs-$name.safetensors" --iterations "$ITERATIONS" \
      --device "$DEVICE" $ref_args > "$RUNS/reference-$name.json" 2> "$RUNS/error-$name.txt"; then
    log "error: the reference $name failed: $(tail -n 1 "$RUNS/error-$name.txt")"; failed=1
  fi
  rm -f "$BUILD/inputs-$name.safetensors"
}

# 2. Synthetic full VGG19, the CLI's default layers. Each size on its own: one that fails (out of
# memory, say) leaves its error in gpu.json.
for size in $SIZES; do pair "$size" "" --size "$size"; done

# 3. The real picture.
names="$SIZES"
if [ "$REAL_SIZE" = 0 ]; then
  log "real picture skipped: GPU_BENCH_REAL_SIZE=0"
elif [ -f "$DEPS/real-weights.safetensors" ] && [ -f "$DEPS/images.safetensors" ]; then
  layers="--style-layers relu1_1,relu2_1,relu3_1 --content-layers relu3_2"
  # shellcheck disable=SC2086
  pair real "$layers" --size "$REAL_SIZE" --weights "$DEPS/real-weights.safetensors" \
    --images "$DEPS/images.safetensors" $layers --image-out "$RESULTS/real.ppm"
  names+=" real"
else
  log "real picture skipped: no .gpu-deps/real-weights.safetensors or images.safetensors (bash bench/gpu.sh --prepare)"
fi

# 4. The host CPU's iteration profile (#20, bf16 on AMX: the GPU machine's host is an AMX Xeon), on
# two CPUs of two physical cores and two threads, as on the 2-core development machines.
# GPU_BENCH_CPU_PROFILE lists the precisions ("": skipped). The section, markers included, comes back
# as profile-section.md for BENCHMARKS.md; the recorded spans as profiles.tar.xz.
CPU_PROFILE=${GPU_BENCH_CPU_PROFILE-}
if [ -n "$CPU_PROFILE" ]; then
  # One CPU per physical core; CPU 0 left to the system where three or more cores are there.
  cpus=$(lscpu -p=cpu,core | grep -v '^#' | awk -F, '!seen[$2]++ {print $1}')
  [ "$(echo "$cpus" | wc -l)" -lt 3 ] || cpus=$(echo "$cpus" | sed 1d)
  cpus=$(echo "$cpus" | head -n 2 | paste -sd,)
  log "host CPU profile ($CPU_PROFILE) on CPUs $cpus: $(lscpu | sed -n 's/^Model name: *//p')"
  rm -rf "$BUILD/profiles"
  if STYLIZE_ENGINE_BENCH="$BUILD/stylize_engine_bench" taskset -c "$cpus" "$PY" bench/iteration_profile.py \
      --precisions "$CPU_PROFILE" --sizes "${GPU_BENCH_PROFILE_SIZES:-256,512}" \
      --ratio-iterations "${GPU_BENCH_RATIO_ITERATIONS:-20}" --threads 2 --section-out "$RESULTS/profile-section.md" --keep "$BUILD/profiles" \
      > "$RESULTS/profile.md" 2> "$RESULTS/profile.log"; then
    (cd "$BUILD" && tar -cJf "$RESULTS/profiles.tar.xz" profiles/*.json)
  else
    # At least the ratio: one unrecorded pair at 512 px, as iteration_profile.py times it.
    log "error: the CPU profile failed: $(tail -n 1 "$RESULTS/profile.log"); timing one pair at 512 px instead"; failed=1
    precision=${CPU_PROFILE%%,*}
    taskset -c "$cpus" "$BUILD/stylize_engine_bench" --device cpu --precision "$precision" --threads 2 --size 512 \
      --iterations 20 --inputs-out "$BUILD/inputs-cpu.safetensors" > "$RESULTS/cpu-pair.json" 2>> "$RESULTS/profile.log" &&
      taskset -c "$cpus" "$PY" bench/reference.py --inputs "$BUILD/inputs-cpu.safetensors" --iterations 20 --threads 2 \
        --device cpu --precision "$precision" >> "$RESULTS/cpu-pair.json" 2>> "$RESULTS/profile.log" || true
  fi
fi

"$PY" - "$RESULTS" "$RUNS" "$DEVICE" $names << 'EOF'
import datetime, json, os, sys
import torch
results, runs, device, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu (dry run)"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows, failures = [], []
for name in names:
    try:
        ours = json.load(open(os.path.join(runs, f"stylize-{name}.json")))
        ref = json.load(open(os.path.join(runs, f"reference-{name}.json")))
    except (OSError, ValueError):
        err = os.path.join(runs, f"error-{name}.txt")
        lines = open(err).read().strip().splitlines() if os.path.exists(err) else []
        failures.append({"run": name, "error": lines[-1] if lines else "no result"})
        continue
    rows.append({"run": name, "size": max(ours["width"], ours["height"]), "width": ours["width"],
                 "height": ours["height"], "weights": ours["weights"], "iterations": ours["iterations"],
                 "stylize": ours, "reference": ref,
                 "ratio": ours["seconds_per_iteration"] / ref["seconds_per_iteration"]})
tests = os.path.join(results, "tests.txt")
summary = [l.strip() for l in open(tests) if l.startswith(("[  PASSED", "[  FAILED  ] C", "cuda")) or " tests, listed" in l] \
    if os.path.exists(tests) else []
out = {"date": datetime.date.today().isoformat(), "gpu": gpu, "cpu": cpu, "device": device,
       "torch": torch.__version__, "cuda": torch.version.cuda,
       "cudnn": torch.backends.cudnn.version() if device.startswith("cuda") else None,
       "tests": summary, "rows": rows, "failed": failures}
with open(os.path.join(results, "gpu.json"), "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1))
EOF
exit "$failed"
