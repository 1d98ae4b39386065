// One L-BFGS step (SyncFreeLbfgs::step: the two-loop recursion and the step's bookkeeping) on an
// image-sized parameter, with 1, 10 and 100 pairs stored (100 is the default history, full from the
// 101st iteration on), against the memory traffic the two-loop recursion cannot avoid: every stored
// pair read twice; the engine's fused passes (src/engine/lbfgs_passes.hpp) against ATen's ops, which
// other devices run.
//
//   stylize_lbfgs_bench [--size 512] [--threads 2]
//
// The gradient is that of a fixed convex quadratic, so the pairs pass the curvature test and are kept.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "layer_bench.hpp"
#include "stylize/lbfgs.hpp"

int main(int argc, char** argv) {
  int size = 512, threads = 2;
  if (!stylize_bench::set_up(argc, argv, "stylize_lbfgs_bench", size, threads)) return 2;
  const int64_t h = size * 3 / 4, w = size, n = 3 * h * w;
  const int history = 100;  // the default (--lbfgs-history)
  // f(x) = ½ Σ c·x², g = c·x; ill-conditioned (as bench/lbfgs_step.py gives torch), so that pairs keep passing
  // the curvature test.
  const at::Tensor curvature = at::logspace(-4, 0, n);
  // A copy of memory as large as one full history's reads, for the rate this machine reaches.
  const at::Tensor big = at::rand({2 * history, n}), big_copy = at::empty_like(big);
  const double copy_ms = stylize_bench::best_ms(3, [&] { big_copy.copy_(big); });
  const double gb_per_s = 2.0 * static_cast<double>(big.nbytes()) / (copy_ms * 1e6);
  std::printf("size %lldx%lld, %lld values, history %d, threads %d; copy rate %.1f GB/s\n",
              static_cast<long long>(w), static_cast<long long>(h), static_cast<long long>(n), history, threads,
              gb_per_s);
  std::printf("| backtracking | pairs stored | ATen's ops ms per step | fused passes ms per step | ratio | "
              "two-loop reads at the copy rate, ms |\n| --- | --- | --- | --- | --- | --- |\n");
  // The median of 10 steps, timed once the ring is full and each slot written once (a slot's first
  // touch faults its pages in).
  auto median_step_ms = [&](bool backtrack, int pairs, bool fused) {
    at::Tensor x = at::randn({1, 3, h, w});
    stylize::SyncFreeLbfgs opt(x, pairs, 1000, 1.0, backtrack);
    opt.set_fused_passes(fused);
    std::vector<double> ms;
    for (int step = 0; step < pairs + 15; ++step) {
      const at::Tensor g = x.view({-1}) * curvature;
      const at::Tensor loss = (g * x.view({-1})).sum() * 0.5;
      const auto t0 = std::chrono::steady_clock::now();
      opt.step(g, loss);
      const auto t1 = std::chrono::steady_clock::now();
      if (step > pairs + 4) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  for (const bool backtrack : {false, true}) {
    for (const int pairs : {1, 10, history}) {
      const double aten = median_step_ms(backtrack, pairs, false), fused = median_step_ms(backtrack, pairs, true);
      const double floor_ms = 4.0 * pairs * static_cast<double>(n) * 4 / (gb_per_s * 1e6);
      std::printf("| %s | %d | %.2f | %.2f | %.2f | %.2f |\n", backtrack ? "on" : "off", pairs, aten, fused,
                  fused / aten, floor_ms);
    }
  }
  return 0;
}
