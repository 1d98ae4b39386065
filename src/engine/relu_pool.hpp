// ReLU then 2×2 max pooling (stride 2) over a CPU activation in one pass each way, for the network's
// fused ReLU + pool (src/engine/vgg19.cpp, ReluMaxPoolOnePass): contiguous NCHW fp32 (the fp32 pass)
// and channels-last bf16 (the bf16 pass). Internal to the engine; kept out of the public headers.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "vector_copies.hpp"

namespace stylize {

// x: [N, C, H, W] fp32 CPU, contiguous. Returns {pooled [N, C, H/2, W/2] fp32, winner
// [N, C, H/2, W/2] uint8}: pooled = max over each window of relu(x), winner = the window's position
// (0 top left, 1 top right, 2 bottom left, 3 bottom right) as ATen picks it: the first largest in
// row-major order, a NaN winning (and staying NaN through the ReLU). The last row or column of an
// odd size is in no window. `which`: the copy of the loop (vector_copies.hpp; all give the same
// bits). Throws std::invalid_argument on another layout, type or device, or a copy this CPU cannot run.
std::pair<at::Tensor, at::Tensor> relu_max_pool_nchw(const at::Tensor& x, VectorCopy which = VectorCopy::widest);

// What each takes: a contiguous NCHW fp32 CPU tensor [N, C, H, W] (relu_max_pool_nchw), a channels-last
// bf16 one (relu_max_pool_nhwc).
bool relu_max_pool_nchw_takes(const at::Tensor& x);
bool relu_max_pool_nhwc_takes(const at::Tensor& x);

// The gradient with respect to x of a loss over relu_max_pool_nchw's pooled output: `grad` (the
// pooled output's gradient, any float type and layout) goes to each window's winner where the pooled
// value is > 0 (ReLU's rule, threshold_backward's), zero elsewhere and on an odd size's last row or
// column. Returns [N, C, height, width] fp32, contiguous. Throws std::invalid_argument on shapes that
// do not match, or a copy this CPU cannot run.
at::Tensor relu_max_pool_nchw_backward(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& winner,
                                       int64_t height, int64_t width, VectorCopy which = VectorCopy::widest);

// The same for x: [N, C, H, W] bf16 CPU, channels-last (NHWC in memory). Returns {pooled
// [N, C, H/2, W/2] bf16, winner [N, C, H/2, W/2] uint8}, both channels-last; the pooled values are
// input values or zeros as at::relu gives them (-0 stays -0), copied bit for bit; a NaN keeps its
// payload (ATen's bf16 conversions rewrite it, the only bits that differ). Throws std::invalid_argument on another layout, type or
// device, or a copy this CPU cannot run.
std::pair<at::Tensor, at::Tensor> relu_max_pool_nhwc(const at::Tensor& x, VectorCopy which = VectorCopy::widest);

// Its gradient, as relu_max_pool_nchw_backward's: `grad` any float type and layout (taken as bf16,
// channels-last); returns [N, C, height, width] bf16, channels-last, each value a gradient value or +0.
// Throws std::invalid_argument on shapes that do not match, or a copy this CPU cannot run.
at::Tensor relu_max_pool_nhwc_backward(const at::Tensor& grad, const at::Tensor& pooled, const at::Tensor& winner,
                                       int64_t height, int64_t width, VectorCopy which = VectorCopy::widest);

}  // namespace stylize
