// 3×3 convolutions (stride 1, padding 1) by Winograd's F(4×4, 3×3) on fp32 CPU tensors: 36
// multiplications per 4×4 output tile and channel pair instead of 144, the products done as 36 large
// matrix products on oneDNN's matmul (BLAS where the build has no oneDNN). On CPUs without AVX-512
// oneDNN has only direct fp32 convolutions, which run at ~75% of the FMA peak already (BENCHMARKS.md,
// the AVX2 profile); fewer multiplications is what is left. Internal to the engine (src/engine/vgg19.cpp
// uses it); kept out of the public headers.
#pragma once

#include <ATen/core/Tensor.h>

#include "vector_copies.hpp"

namespace stylize {

// The 3×3 kernels transformed once for the Winograd pass (U = G·g·Gᵀ per output/input channel pair):
// 4x the kernels' memory. weight: [K, C, 3, 3], any float type, any device. Returns [36, K, C] fp32
// CPU, contiguous. Throws std::invalid_argument on another shape.
at::Tensor winograd_weights(const at::Tensor& weight);

// y = conv2d(x, w, bias, stride 1, padding 1) with u = winograd_weights(w).
// x: [N, C, H, W] fp32 CPU (other layouts are made NCHW-contiguous first); u: [36, K, C];
// bias: [K] fp32 or undefined. Returns [N, K, H, W] fp32, NCHW-contiguous.
// Rounding differs from a direct convolution's: relative error ~1e-5 of the output's largest value
// (tests/test_engine.cpp, Winograd*), against ~1e-6 for oneDNN's direct kernels.
// `which`: the copy of the transforms (vector_copies.hpp; all give the same bits). Throws
// std::invalid_argument on other shapes, types or devices, or a copy this CPU cannot run.
at::Tensor winograd_conv3x3(const at::Tensor& x, const at::Tensor& u, const at::Tensor& bias,
                            VectorCopy which = VectorCopy::widest);

// The gradient of winograd_conv3x3's output with respect to its input: the exact adjoint of the same
// arithmetic (the transposed products with the same u, the transforms' transposes), so the gradient
// is that of the function the forward computed, not of a differently rounded convolution.
// dy: [N, K, H, W] fp32 CPU; u: [36, K, C]. Returns dx [N, C, H, W] fp32, NCHW-contiguous.
// `which`: the copy of the transforms (vector_copies.hpp; all give the same bits). Throws
// std::invalid_argument on other shapes, types or devices, or a copy this CPU cannot run.
at::Tensor winograd_conv3x3_input_gradient(const at::Tensor& dy, const at::Tensor& u,
                                           VectorCopy which = VectorCopy::widest);

}  // namespace stylize
