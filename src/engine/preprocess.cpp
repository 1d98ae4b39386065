#include "stylize/preprocess.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "stylize/error.hpp"

namespace stylize {
namespace {

at::Tensor channel_vector(const std::array<double, 3>& v, const at::Tensor& like) {
  return at::tensor({v[0], v[1], v[2]}, like.options().dtype(at::kDouble)).to(like.dtype()).view({1, 3, 1, 1});
}

const std::array<double, 3> kCaffeMeanBGR = {103.939, 116.779, 123.68};
const std::array<double, 3> kTorchvisionMean = {0.485, 0.456, 0.406};
const std::array<double, 3> kTorchvisionStd = {0.229, 0.224, 0.225};

}  // namespace

std::string to_string(Preprocessing p) { return p == Preprocessing::caffe ? "caffe" : "torchvision"; }

Preprocessing parse_preprocessing(const std::string& s) {
  if (s == "caffe") return Preprocessing::caffe;
  if (s == "torchvision") return Preprocessing::torchvision;
  throw UsageError("unknown preprocessing " + in_quotes(s) + "; expected caffe or torchvision");
}

at::Tensor preprocess(const at::Tensor& rgb255, Preprocessing p) {
  if (p == Preprocessing::caffe) {
    return rgb255.flip({1}) - channel_vector(kCaffeMeanBGR, rgb255);
  }
  return (rgb255 / 255.0 - channel_vector(kTorchvisionMean, rgb255)) / channel_vector(kTorchvisionStd, rgb255);
}

at::Tensor deprocess(const at::Tensor& input, Preprocessing p) {
  at::Tensor rgb;
  if (p == Preprocessing::caffe) {
    rgb = (input + channel_vector(kCaffeMeanBGR, input)).flip({1});
  } else {
    rgb = (input * channel_vector(kTorchvisionStd, input) + channel_vector(kTorchvisionMean, input)) * 255.0;
  }
  return rgb.clamp(0, 255);
}

InputRange input_range(Preprocessing p, const at::Tensor& like) {
  const at::Tensor black = preprocess(at::zeros({1, 3, 1, 1}, like.options().dtype(at::kFloat)), p);
  const at::Tensor white = preprocess(at::full({1, 3, 1, 1}, 255.0, like.options().dtype(at::kFloat)), p);
  return {at::minimum(black, white), at::maximum(black, white)};
}

double input_units_per_level(Preprocessing p) {
  return p == Preprocessing::caffe ? 1.0 : 1.0 / (255.0 * 0.226);
}

at::Tensor transfer_luminance(const at::Tensor& stylised, const at::Tensor& content) {
  // BT.601 RGB <-> YUV as in Torch's image.rgb2yuv, which neural-style uses.
  const auto opts = stylised.options();
  at::Tensor to_yuv = at::tensor({0.299, 0.587, 0.114, -0.14713, -0.28886, 0.436, 0.615, -0.51499, -0.10001},
                                 opts.dtype(at::kDouble)).view({3, 3}).to(stylised.dtype());
  at::Tensor to_rgb = at::linalg_inv(to_yuv.to(at::kDouble)).to(stylised.dtype());
  auto apply = [](const at::Tensor& m, const at::Tensor& img) {
    return at::einsum("ij,bjhw->bihw", {m, img});
  };
  at::Tensor y = apply(to_yuv, stylised).narrow(1, 0, 1);
  at::Tensor uv = apply(to_yuv, content.to(stylised.device())).narrow(1, 1, 2);
  return apply(to_rgb, at::cat({y, uv}, 1)).clamp(0, 255);
}

std::pair<int, int> fit_longest(int width, int height, int longest) {
  if (width >= height) {
    return {longest, std::max(1, static_cast<int>(std::lround(static_cast<double>(height) * longest / width)))};
  }
  return {std::max(1, static_cast<int>(std::lround(static_cast<double>(width) * longest / height))), longest};
}

}  // namespace stylize
