#include "stylize/vgg19.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "stylize/error.hpp"

namespace stylize {

const std::vector<Vgg19Layer>& vgg19_layers() {
  static const std::vector<Vgg19Layer> layers = [] {
    std::vector<Vgg19Layer> v;
    const int blocks[5] = {2, 2, 4, 4, 4};
    const int widths[5] = {64, 128, 256, 512, 512};
    int index = 0, in = 3;
    for (int b = 0; b < 5; ++b) {
      for (int c = 0; c < blocks[b]; ++c) {
        const std::string suffix = std::to_string(b + 1) + "_" + std::to_string(c + 1);
        v.push_back({"conv" + suffix, Vgg19Layer::Kind::conv, index++, in, widths[b]});
        v.push_back({"relu" + suffix, Vgg19Layer::Kind::relu, index++});
        in = widths[b];
      }
      v.push_back({"pool" + std::to_string(b + 1), Vgg19Layer::Kind::pool, index++});
    }
    return v;
  }();
  return layers;
}

int vgg19_layer_index(const std::string& name) {
  for (const auto& l : vgg19_layers()) {
    if (l.name == name) return l.index;
  }
  throw UsageError("unknown VGG19 layer " + in_quotes(name) +
                   "; valid names are conv1_1..conv5_4, relu1_1..relu5_4 and pool1..pool5 "
                   "(e.g. relu4_2)");
}

std::vector<int> vgg19_layer_indices(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const auto& n : names) out.push_back(vgg19_layer_index(n));
  return out;
}

int vgg19_min_side(int index) {
  int side = 1;
  for (const auto& l : vgg19_layers()) {
    if (l.index >= index) break;
    if (l.kind == Vgg19Layer::Kind::pool) side *= 2;
  }
  return side;
}

std::vector<std::string> vgg19_parameter_names(int last_index) {
  std::vector<std::string> names;
  for (const auto& l : vgg19_layers()) {
    if (l.kind != Vgg19Layer::Kind::conv || l.index > last_index) continue;
    names.push_back("features." + std::to_string(l.index) + ".weight");
    names.push_back("features." + std::to_string(l.index) + ".bias");
  }
  return names;
}

std::vector<int64_t> vgg19_parameter_shape(const std::string& name) {
  for (const auto& l : vgg19_layers()) {
    if (l.kind != Vgg19Layer::Kind::conv) continue;
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    if (name == prefix + "weight") return {l.out_channels, l.in_channels, 3, 3};
    if (name == prefix + "bias") return {l.out_channels};
  }
  return {};
}

std::string to_string(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

namespace {
at::ScalarType scalar_type(Precision p) { return p == Precision::bf16 ? at::kBFloat16 : at::kFloat; }
}  // namespace

Vgg19::Vgg19(const std::map<std::string, at::Tensor>& params, Pooling pooling, int last_index, Precision precision)
    : pooling_(pooling), last_index_(last_index), precision_(precision) {
  const at::ScalarType dtype = scalar_type(precision);
  for (const auto& l : vgg19_layers()) {
    if (l.kind != Vgg19Layer::Kind::conv || l.index > last_index) continue;
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    auto w = params.find(prefix + "weight");
    auto b = params.find(prefix + "bias");
    if (w == params.end() || b == params.end()) {
      throw WeightsError("VGG19 parameters for layer " + l.name + " (" + prefix + "*) are missing");
    }
    conv_[l.index] = {w->second.detach().to(dtype).contiguous(), b->second.detach().to(dtype).contiguous()};
  }
}

void Vgg19::to(const at::Device& device) {
  for (auto& [index, wb] : conv_) wb = {wb.first.to(device), wb.second.to(device)};
}

namespace {

// Memory layout per layer on CPU. oneDNN reads and writes channels-last (NHWC) directly, while an
// NCHW tensor is reordered to its blocked layout and back on every call; at full resolution with 3
// or 64 channels that reorder is most of a convolution's cost. Measured at 512×384 on one thread:
// conv1_1 forward 52 → 27 ms and input gradient 54 → 29 ms, conv1_2 134 → 85 and 137 → 94 ms.
// NHWC forward is as fast or faster at every layer, but its input-gradient convolution is slower
// from block 3 on (256 channels: 63 vs 93 ms). So the pass switches back to NCHW after pool2 (a
// sixteenth of the input's area: the copy is cheap). Whole iteration at 512 px, one thread: NCHW
// 1.94 s, NHWC to pool1 1.84 s, to pool2 1.80 s, everywhere 1.95 s. Targets use the same plan as
// the optimised passes (an all-NHWC forward would be faster there) so that the content loss at the
// content image is exactly zero: the same arithmetic on both sides. In bf16 the pass stays NHWC (below).
constexpr int kPool2 = 9;  // torchvision index

// NHWC → NCHW whose gradient goes back NHWC. Autograd's own contiguous() passes the NCHW gradient
// through unchanged, and pool2's backward with an NCHW gradient and an NHWC input falls off its fast
// path (47 ms plus a 39 ms copy of conv2_2's gradient, against 5 ms, at 512 px on one thread).
struct ToNchw : torch::autograd::Function<ToNchw> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& t) { return t.contiguous(); }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*, torch::autograd::tensor_list g) {
    return {g[0].contiguous(at::MemoryFormat::ChannelsLast)};
  }
};

}  // namespace

std::vector<at::Tensor> Vgg19::forward(const at::Tensor& x, const std::vector<int>& layer_indices) const {
  std::vector<at::Tensor> out(layer_indices.size());
  const int deepest = *std::max_element(layer_indices.begin(), layer_indices.end());
  auto wanted = [&](int index) {
    return std::find(layer_indices.begin(), layer_indices.end(), index) != layer_indices.end();
  };
  const bool low_precision = precision_ == Precision::bf16;
  auto capture = [&](int index, const at::Tensor& t) {
    for (size_t k = 0; k < layer_indices.size(); ++k) {
      if (layer_indices[k] == index) out[k] = t;
    }
  };
  const bool channels_last = x.is_cpu() && x.dim() == 4;  // measured for oneDNN; CUDA keeps NCHW
  const at::ScalarType dtype = scalar_type(precision_);  // the weights' type
  at::Tensor h = channels_last ? x.to(at::TensorOptions().dtype(dtype), false, false, at::MemoryFormat::ChannelsLast)
                               : x.to(dtype);
  // oneDNN's bf16 input-gradient convolutions do not have fp32's NHWC slowdown from block 3 on: all
  // channels-last, 512 px on 2 cores, 0.72-0.76 s per iteration against 0.83-0.84 with the switch.
  const bool back_to_nchw = channels_last && !low_precision;
  for (const auto& l : vgg19_layers()) {
    if (l.index > deepest) break;
    if (back_to_nchw && l.index == kPool2 + 1) h = ToNchw::apply(h);
    switch (l.kind) {
      case Vgg19Layer::Kind::conv: {
        const auto& wb = conv_.at(l.index);
        h = at::conv2d(h, wb.first, wb.second, /*stride=*/1, /*padding=*/1);
        break;
      }
      case Vgg19Layer::Kind::relu:
        // In place saves a full activation per layer; only when the conv output is not a wanted feature.
        h = wanted(l.index - 1) ? at::relu(h) : at::relu_(h);
        break;
      case Vgg19Layer::Kind::pool:
        h = pooling_ == Pooling::max ? at::max_pool2d(h, {2, 2}, {2, 2}) : at::avg_pool2d(h, {2, 2}, {2, 2});
        break;
    }
    capture(l.index, h);
  }
  return out;
}

}  // namespace stylize
