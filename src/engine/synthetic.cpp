#include "stylize/synthetic.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "stylize/vgg19.hpp"

namespace stylize {
namespace {

// A 32-bit integer mixer (the "lowbias" family). Multipliers below 2^27 keep every product under
// 2^59, so the Python reference can do the same arithmetic in int64 without overflow.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x = static_cast<uint32_t>((static_cast<uint64_t>(x) * 0x045d9f3bULL) & 0xffffffffULL);
  x ^= x >> 16;
  x = static_cast<uint32_t>((static_cast<uint64_t>(x) * 0x045d9f3bULL) & 0xffffffffULL);
  x ^= x >> 16;
  return x;
}

}  // namespace

at::Tensor hash_uniform(int64_t numel, uint32_t stream) {
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* p = out.data_ptr<float>();
  const uint32_t key = mix32(stream);
  for (int64_t i = 0; i < numel; ++i) {
    const uint32_t h = mix32(mix32(static_cast<uint32_t>(i)) ^ key);
    p[i] = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
  }
  return out;
}

std::map<std::string, at::Tensor> synthetic_vgg19(uint32_t seed) {
  std::map<std::string, at::Tensor> params;
  for (const auto& l : vgg19_layers()) {
    if (l.kind != Vgg19Layer::Kind::conv) continue;
    const uint32_t stream = seed * 1000u + 2u * static_cast<uint32_t>(l.index);
    const int64_t fan_in = static_cast<int64_t>(l.in_channels) * 9;
    const float bound = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in)));
    const int64_t n = static_cast<int64_t>(l.out_channels) * fan_in;
    at::Tensor w = (hash_uniform(n, stream) * 2.0f - 1.0f) * bound;
    at::Tensor b = (hash_uniform(l.out_channels, stream + 1) * 2.0f - 1.0f) * 0.1f;
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    params[prefix + "weight"] = w.view({l.out_channels, l.in_channels, 3, 3});
    params[prefix + "bias"] = b;
  }
  return params;
}

at::Tensor synthetic_image(int64_t h, int64_t w, uint32_t stream) {
  at::Tensor noise = hash_uniform(3 * h * w, stream).view({1, 3, h, w});
  at::Tensor ys = at::linspace(0, 1, h, at::kFloat).view({1, 1, h, 1});
  at::Tensor xs = at::linspace(0, 1, w, at::kFloat).view({1, 1, 1, w});
  at::Tensor phase = at::tensor({0.0f, 2.0f, 4.0f}).view({1, 3, 1, 1});
  at::Tensor smooth = (at::sin(xs * 6.0f + phase) * at::cos(ys * 4.0f - phase) + 1.0f) * 0.5f;
  return ((smooth * 0.7f + noise * 0.3f) * 255.0f).clamp(0, 255);
}

}  // namespace stylize
