// What the small benchmarks (bench/winograd_layers.cpp, bench/relu_pool.cpp, bench/lbfgs_step.cpp)
// share: the best time of repeated calls, their command line and set-up. Header-only, for bench programs.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "stylize/cpu_allocator.hpp"

namespace stylize_bench {

// The fastest of `repeats` calls of f, in ms, after one warm-up call (oneDNN creates its kernels
// and the allocator fills its cache on the first).
template <class F>
double best_ms(int repeats, F f) {
  f();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// `program [--size PX] [--threads N]`: fills size and threads (defaults as given), sets ATen's
// threads, the allocator `stylize` runs with (no page faults on each new tensor) and seed 0, and
// returns true; on anything else prints one usage line to stderr and returns false (exit 2).
inline bool set_up(int argc, char** argv, const char* program, int& size, int& threads) {
  bool ok = argc % 2 == 1;  // flags and their values in pairs
  for (int i = 1; ok && i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--size")) size = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else ok = false;
  }
  if (!ok || size < 32 || threads < 1) {
    std::fprintf(stderr, "usage: %s [--size 512] [--threads 2] (--size from 32, --threads from 1)\n", program);
    return false;
  }
  at::set_num_threads(threads);
  stylize::use_reusing_cpu_allocator();
  at::manual_seed(0);
  return true;
}

}  // namespace stylize_bench
