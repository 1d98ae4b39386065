#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, build-fuzz/) and runs each in turn until it has
# run FUZZ_RUNS inputs (default 1,000,000) or SECONDS pass (default 60), whichever comes first, from
# the seeds fuzz_make_seeds writes plus the committed findings in fuzz/regressions/<target>/.
#   scripts/fuzz.sh [SECONDS]            all targets
#   FUZZ_TARGETS="image form" scripts/fuzz.sh 1800
# A crash, leak or timeout leaves its input in build-fuzz/artifacts/ and makes this script exit 1;
# build-fuzz/summary.md gets one row per target (runs, seconds, edges covered, findings).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
runs=${FUZZ_RUNS:-1000000}
targets=${FUZZ_TARGETS:-"safetensors image job_line form keras_h5 filter"}
bash scripts/install-deps.sh
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f build-fuzz/CMakeCache.txt ] || CC=clang CXX=clang++ cmake -S . -B build-fuzz "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DSTYLIZE_FUZZ=ON -DSTYLIZE_BUILD_TESTS=OFF
# Only what this run needs: one target's run should not wait for every parser's libraries.
build_targets=(fuzz_make_seeds)
for t in $targets; do build_targets+=("fuzz_$t"); done
cmake --build build-fuzz --parallel "$(nproc)" --target "${build_targets[@]}"
cd build-fuzz
rm -rf seeds && ./fuzz_make_seeds seeds
mkdir -p corpus artifacts logs
export ASAN_OPTIONS="detect_leaks=1:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$PWD/../scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
{
  echo "| target | runs | seconds | edges (cov) | features (ft) | corpus | findings |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} > summary.md
failed=0
for t in $targets; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  [ -d "../fuzz/regressions/$t" ] && cp -n ../fuzz/regressions/"$t"/* "corpus/$t/" 2>/dev/null || true
  start=$(date +%s)
  set +e
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "./fuzz_$t" "corpus/$t" -dict="../fuzz/$t.dict" -runs="$runs" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t-" > "logs/$t.log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  done_runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E "^#[0-9]+" "logs/$t.log" | tail -1 || true)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  files=$(ls "corpus/$t" | wc -l)
  findings=$(ls artifacts 2>/dev/null | grep -c "^$t-" || true)
  echo "| $t | $done_runs | $took | $cov | $ft | $files | $findings |" >> summary.md
  echo "fuzz $t: rc $rc, $done_runs runs in $took s, cov $cov, $findings finding(s)"
  [ "$rc" = 0 ] || failed=1
done
cat summary.md
exit $failed
