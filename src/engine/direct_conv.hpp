// 3×3 convolutions (stride 1, padding 1) computed directly on fp32 CPU tensors in NCHW, forward and
// input gradient, for layers with few input channels: conv1_1 (3 → 64), where Winograd's transforms
// cost more than they save and oneDNN's kernels ran far below the FMA rate (its backward-data at ~45
// GFLOP/s on Zen 5; its forward at 8-12 GFLOP/s on the AVX2 EPYC, BENCHMARKS.md "Where an iteration
// goes"). Vectorised along a row: each loaded input vector feeds several output channels' sums in
// registers. Internal to the engine (src/engine/vgg19.cpp uses it); kept out of the public headers.
#pragma once

#include <ATen/core/Tensor.h>

#include "vector_copies.hpp"

namespace stylize {

// y = conv2d(x, weight, bias, stride 1, padding 1).
// x: [N, C, H, W] fp32 CPU (other layouts are made NCHW-contiguous first); weight: [K, C, 3, 3] fp32
// CPU; bias: [K] fp32 or undefined. Returns [N, K, H, W] fp32, NCHW-contiguous.
// Each output is summed in the same order (bias, then input channel, kernel row, kernel column) in
// every copy, on any number of threads; the AVX-512 and AVX2 copies fuse each multiply-add (FMA), the
// baseline rounds both, so copies differ in the last bits (~1e-7 relative) and each is within ~1e-6 of
// the definition computed in double (tests/test_engine.cpp, DirectConv*). Costs C·K·9 multiply-adds
// per pixel: meant for small C (the work grows with C while the reads of x do not shrink).
// `which`: the copy to run (vector_copies.hpp). Throws std::invalid_argument on other shapes, types or
// devices, or a copy this CPU cannot run.
at::Tensor direct_conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          VectorCopy which = VectorCopy::widest);

// The gradient of direct_conv3x3's output with respect to its input (the transposed convolution).
// dy: [N, K, H, W] fp32 CPU (other layouts are made NCHW-contiguous first); weight: [K, C, 3, 3]
// fp32 CPU. Returns dx [N, C, H, W] fp32, NCHW-contiguous. Summed over output channels, then kernel
// rows and columns, in that order, in every copy; rounding as above. Throws as above.
at::Tensor direct_conv3x3_input_gradient(const at::Tensor& dy, const at::Tensor& weight,
                                         VectorCopy which = VectorCopy::widest);

}  // namespace stylize
