// Deterministic synthetic data for tests and benchmarks: real VGG19 weights cannot be downloaded
// here. Values come from an integer hash, so the Python reference (tests/fixtures/make_parity.py,
// bench/reference.py) reproduces them bit for bit without sharing a random number generator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace stylize {

// Uniform floats in [0, 1), 24-bit resolution: u[i] = (mix32(mix32(i) ^ mix32(stream)) >> 8) / 2^24.
at::Tensor hash_uniform(int64_t numel, uint32_t stream);

// He-uniform VGG19 conv weights (bound sqrt(6 / fan_in)) and biases uniform in [-0.1, 0.1).
// Layer with torchvision index k uses streams seed*1000 + 2k (weight) and seed*1000 + 2k + 1 (bias).
std::map<std::string, at::Tensor> synthetic_vgg19(uint32_t seed);

// An RGB 0-255 image [1, 3, h, w] with smooth structure (gradients plus hashed noise) from `stream`.
at::Tensor synthetic_image(int64_t h, int64_t w, uint32_t stream);

}  // namespace stylize
