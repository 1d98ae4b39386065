// Conversions between images (RGB, 0-255, float32, [1, 3, H, W]) and VGG19's network input.
//   caffe:       BGR, 0-255, minus the mean [103.939, 116.779, 123.68] (B, G, R)
//   torchvision: RGB / 255, minus [0.485, 0.456, 0.406], divided by [0.229, 0.224, 0.225]
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>

namespace stylize {

enum class Preprocessing { caffe, torchvision };

std::string to_string(Preprocessing p);
// "caffe" / "torchvision"; throws UsageError otherwise.
Preprocessing parse_preprocessing(const std::string& s);

at::Tensor preprocess(const at::Tensor& rgb255, Preprocessing p);
// Inverse of preprocess, clamped to [0, 255].
at::Tensor deprocess(const at::Tensor& input, Preprocessing p);

// The network inputs that images can take: preprocess() of black and of white, per channel, as
// [1, 3, 1, 1] float32 tensors (lower, upper) in `like`'s device. An input outside them is clamped
// when it is written, which is why the optimisation keeps the image inside (transfer.hpp).
struct InputRange {
  at::Tensor lower, upper;  // undefined = unbounded
  bool defined() const { return lower.defined(); }
};
InputRange input_range(Preprocessing p, const at::Tensor& like);

// How many network-input units one 8-bit grey level is: 1 for caffe, 1/(255·std) for torchvision.
// Used to express random init and TV weights in comparable units.
double input_units_per_level(Preprocessing p);

// neural-style's --original_colors: luminance (Y of YUV, BT.601) from `stylised`, chrominance (U, V)
// from `content`. Both RGB 0-255 [1, 3, H, W] of the same size; result clamped to [0, 255].
at::Tensor transfer_luminance(const at::Tensor& stylised, const at::Tensor& content);

// Size whose longer side is `longest`, keeping the aspect ratio (each side at least 1);
// fit_longest(w, h, max(w, h)) == (w, h).
std::pair<int, int> fit_longest(int width, int height, int longest);

}  // namespace stylize
