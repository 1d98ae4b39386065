// The fp32 convolutions of VGG19 one at a time (#20): Winograd (src/engine/winograd.hpp) forward and
// input gradient against oneDNN's direct kernels, the shapes of a 512×384 pass (or --size), random
// data, best of five after a warm-up; prints one line per layer shape, in ms. What BENCHMARKS.md
// "Vectorised Winograd transforms" quotes; capped to AVX2 with ONEDNN_MAX_CPU_ISA=AVX2
// ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell (the transforms follow oneDNN's cap).
//
//   stylize_winograd_bench [--size 512] [--threads 2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>

#include "../src/engine/direct_conv.hpp"
#include "../src/engine/winograd.hpp"
#include "layer_bench.hpp"

namespace {
constexpr int kRepeats = 5;  // best of
}  // namespace

int main(int argc, char** argv) {
  int size = 512, threads = 2;
  if (!stylize_bench::set_up(argc, argv, "stylize_winograd_bench", size, threads)) return 2;
  // (in, out, scale): conv1_1 (in the engine its input gradient by Winograd, its forward direct: the
  // forward is transform-bound), conv1_2, conv2_1, conv2_2, conv3_2..4, conv4_2..4 at the width
  // `size`, 3:4 aspect.
  const int shapes[][3] = {{3, 64, 1}, {64, 64, 1}, {64, 128, 2}, {128, 128, 2}, {256, 256, 4}, {512, 512, 8}};
  std::printf("transforms: %s; %d threads; ms, best of 5\n",
              stylize::to_string(stylize::resolve_vector_copy(stylize::VectorCopy::widest)), threads);
  for (const auto& s : shapes) {
    const int64_t c = s[0], k = s[1], w = size / s[2], h = size * 3 / 4 / s[2];
    const at::Tensor x = at::randn({1, c, h, w}), weight = at::randn({k, c, 3, 3}) * 0.05, bias = at::randn({k});
    const at::Tensor dy = at::randn({1, k, h, w}), u = stylize::winograd_weights(weight);
    const double fw = stylize_bench::best_ms(kRepeats, [&] { stylize::winograd_conv3x3(x, u, bias); });
    const double bw = stylize_bench::best_ms(kRepeats, [&] { stylize::winograd_conv3x3_input_gradient(dy, u); });
    const double dfw = stylize_bench::best_ms(kRepeats, [&] { at::conv2d(x, weight, bias, 1, 1); });
    const double dbw = stylize_bench::best_ms(kRepeats, [&] {
      at::convolution_backward(dy, x, weight, at::OptionalIntArrayRef(), {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1,
                               {true, false, false});
    });
    std::printf("%3lld -> %3lld at %4lldx%-4lld  Winograd %6.1f / %6.1f   direct %6.1f / %6.1f",
                static_cast<long long>(c), static_cast<long long>(k), static_cast<long long>(h),
                static_cast<long long>(w), fw, bw, dfw, dbw);
    if (c < 64) {  // the engine's own direct kernels, where it runs them (direct_conv.hpp: conv1_1)
      const double hfw = stylize_bench::best_ms(kRepeats, [&] { stylize::direct_conv3x3(x, weight, bias); });
      const double hbw = stylize_bench::best_ms(kRepeats, [&] { stylize::direct_conv3x3_input_gradient(dy, weight); });
      std::printf("   hand-written direct %6.1f / %6.1f", hfw, hbw);
    }
    std::printf("   (forward / input gradient)\n");
  }
  return 0;
}
