// The fused ReLU + 2×2 max pool (src/engine/relu_pool.hpp) one call at a time (#20): the engine's
// one-pass loops against ATen's ops as the engine ran them before (relu_, max_pool2d_with_indices;
// masked_fill_ then max_pool2d_with_indices_backward), and a plain copy of the activation, at the
// pooled layers' shapes of a 512×384 pass (or --size): fp32 NCHW (the fp32 pass) and bf16
// channels-last (the bf16 pass). Random data, best of 20 after a warm-up, ms; what BENCHMARKS.md
// "bf16: the fused ReLU + max pool in one pass" quotes. The data stays in cache between repeats, so
// these are lower than an iteration's cold passes (bench/iteration_profile.py).
//
//   stylize_relu_pool_bench [--size 512] [--threads 2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>

#include "../src/engine/relu_pool.hpp"
#include "layer_bench.hpp"

namespace {

constexpr int kRepeats = 20;  // best of

void time_shape(int64_t c, int64_t h, int64_t w, bool bf16) {
  const auto layout = bf16 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto type = bf16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor x = at::randn({1, c, h, w}).to(type).contiguous(layout);
  const at::Tensor g = at::randn({1, c, h / 2, w / 2}).to(type).contiguous(layout);
  auto forward = [&] { return bf16 ? stylize::relu_max_pool_nhwc(x) : stylize::relu_max_pool_nchw(x); };
  const auto [pooled, winner] = forward();
  const double f = stylize_bench::best_ms(kRepeats, forward);
  const double b = stylize_bench::best_ms(kRepeats, [&] {
    return bf16 ? stylize::relu_max_pool_nhwc_backward(g, pooled, winner, h, w)
                : stylize::relu_max_pool_nchw_backward(g, pooled, winner, h, w);
  });
  // ATen: the ReLU in place on a copy (the engine's ran on the conv output, which nothing else keeps),
  // the copy's time taken off.
  at::Tensor scratch = x.clone();
  const double copy = stylize_bench::best_ms(kRepeats, [&] { scratch.copy_(x); });
  const auto [aten_pooled, indices] = at::max_pool2d_with_indices(at::relu(x), {2, 2}, {2, 2});
  const double af = stylize_bench::best_ms(kRepeats, [&] {
    scratch.copy_(x);
    scratch.relu_();
    return at::max_pool2d_with_indices(scratch, {2, 2}, {2, 2});
  }) - copy;
  const double ab = stylize_bench::best_ms(kRepeats, [&] {
    at::Tensor masked = g.clone();
    masked.masked_fill_(aten_pooled.le(0), 0);
    return at::max_pool2d_with_indices_backward(masked, x, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false, indices);
  });
  std::printf("%s %3lld x %4lld x %-4lld  one pass %5.2f / %5.2f   ATen %5.2f / %5.2f   copy %5.2f   (forward / backward)\n",
              bf16 ? "bf16 channels-last" : "fp32 NCHW         ", static_cast<long long>(c), static_cast<long long>(h),
              static_cast<long long>(w), f, b, af, ab, copy);
}

}  // namespace

int main(int argc, char** argv) {
  int size = 512, threads = 2;
  if (!stylize_bench::set_up(argc, argv, "stylize_relu_pool_bench", size, threads)) return 2;
  std::printf("loops: %s; %d threads; ms, best of 20\n",
              stylize::to_string(stylize::resolve_vector_copy(stylize::VectorCopy::widest)), threads);
  // (channels, scale): relu1_2 + pool1, relu2_2 + pool2, relu3_4 + pool3, relu4_4 + pool4.
  const int shapes[][2] = {{64, 1}, {128, 2}, {256, 4}, {512, 8}};
  for (bool bf16 : {false, true}) {
    for (const auto& s : shapes) time_shape(s[0], size * 3 / 4 / s[1], size / s[1], bf16);
  }
  return 0;
}
