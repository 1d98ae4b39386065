#include "stylize/vgg19.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <mutex>

#include "stylize/error.hpp"
#include "direct_conv.hpp"
#include "relu_pool.hpp"
#include "winograd.hpp"

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

std::string to_string(Precision p) {
  return p == Precision::bf16 ? "bf16" : p == Precision::mixed ? "mixed" : "fp32";
}

at::ScalarType Vgg19::layer_type(int index) const {
  const bool bf16 = precision_ == Precision::bf16 || (precision_ == Precision::mixed && index < kMixedFp32From);
  return bf16 ? at::kBFloat16 : at::kFloat;
}

Vgg19::Vgg19(const std::map<std::string, at::Tensor>& params, Pooling pooling, int last_index, Precision precision)
    : pooling_(pooling), last_index_(last_index), precision_(precision) {
  for (const auto& l : vgg19_layers()) {
    if (l.kind != Vgg19Layer::Kind::conv || l.index > last_index) continue;
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    auto w = params.find(prefix + "weight");
    auto b = params.find(prefix + "bias");
    if (w == params.end() || b == params.end()) {
      throw WeightsError("VGG19 parameters for layer " + l.name + " (" + prefix + "*) are missing");
    }
    const at::ScalarType dtype = layer_type(l.index);
    conv_[l.index] = {w->second.detach().to(dtype).contiguous(), b->second.detach().to(dtype).contiguous()};
  }
}

// Winograd where it was measured faster than oneDNN's direct kernels, per convolution alone and per
// iteration (AMD EPYC Zen 5, 2 threads, native and capped to AVX2; BENCHMARKS.md "Winograd"): fp32 on
// the CPU, in NCHW; forward and input gradient from 64 input channels (kWinogradForwardFrom: all but
// conv1_1), where the transforms run vectorised (conv1_2 at 512 px, capped to AVX2: 33.5/35.1 ms
// against oneDNN's 70.9/70.1 ms forward/input gradient). conv1_1 runs on the engine's own direct
// kernels under the same condition (DirectConv3x3). bf16 stays on oneDNN (no bf16 Winograd there, and
// its direct kernels are ~3x fp32's; a mixed network's bf16 layers too). oneDNN's direct path stays
// the reference (ConvAlgorithm::direct) and CUDA's.
bool Vgg19::uses_own_kernels(const at::Tensor& x) const {
  return algorithm_ == ConvAlgorithm::automatic && x.is_cpu() &&
         x.scalar_type() == at::kFloat && x.dim() == 4 && x.is_contiguous();
}

// Transformed on first use (4x the kernels' memory: ~207 MB for conv1_2 .. conv5_1), so that a pass
// that never reaches a layer, a bf16 or CUDA network, or the direct path pays nothing.
const at::Tensor& Vgg19::winograd_weights_for(int index) const {
  std::lock_guard<std::mutex> lock(*winograd_mutex_);
  auto it = winograd_.find(index);
  if (it == winograd_.end()) it = winograd_.emplace(index, winograd_weights(conv_.at(index).first)).first;
  return it->second;
}

void Vgg19::set_conv_algorithm(ConvAlgorithm algorithm) { algorithm_ = algorithm; }

void Vgg19::to(const at::Device& device) {
  for (auto& [index, wb] : conv_) wb = {wb.first.to(device), wb.second.to(device)};
}

namespace {

// Memory layout per layer on CPU. oneDNN reads and writes channels-last (NHWC) directly, while an
// NCHW tensor is reordered to its blocked layout and back on every call. bf16 runs NHWC throughout
// (512 px on 2 cores: 0.72-0.76 s per iteration against 0.83-0.84 s switching back to NCHW after
// pool2, as fp32 once did). fp32 runs NCHW throughout: NHWC up to pool2 was measured faster on an
// AVX-512 Xeon when every convolution was oneDNN's direct one (1.80 against 1.94 s per 512 px
// iteration, one thread), but NCHW was faster even then on an AVX2 EPYC (2.69-2.78 against
// 2.88-3.08 s, 2 threads), and since the fp32 pass runs Winograd from 64 channels (NCHW only) it is
// faster on AVX-512 too (Zen 5, 2 threads, 512 px: 0.60-0.69 s against 0.69-0.80 s, three runs each,
// interleaved; 256 px: 0.180-0.190 against 0.191-0.198 s). The direct reference follows the same
// plan, so that its features up to conv1_1 equal Winograd's. Targets use the plan of the optimised
// passes, so that the content loss at the content image is exactly zero: the same arithmetic on both sides.
// mixed: channels-last while in bf16, NCHW from its first fp32 layer.
bool cpu_prefers_channels_last(Precision precision) { return precision != Precision::fp32; }

// ReLU then 2×2 max pooling, for a ReLU whose output is no loss feature (relu1_2, relu2_2, relu3_4,
// relu4_4 in the default recipe). The pooled value is the ReLU output at the window's argmax, so
// ReLU's gradient mask (output > 0) can be applied to the pooled gradient, a quarter of the size,
// before pooling's backward scatters it: the same values, by selection only, as ReLU's backward on
// the full activation, which ran at 2.5-3.8 GB/s on channels-last tensors (61 + 20 ms per 512 px
// iteration at relu1_2 + relu2_2 on an AVX2 EPYC, 2 threads; BENCHMARKS.md "Where an iteration goes").
// The ReLU runs in place on the convolution's output (nothing else keeps it), hence mark_dirty.
// Now used only where ReluMaxPoolOnePass (below) does not apply: another layout or type.
struct ReluMaxPool : torch::autograd::Function<ReluMaxPool> {
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx, at::Tensor x) {
    x.relu_();
    auto [pooled, indices] = at::max_pool2d_with_indices(x, {2, 2}, {2, 2});
    ctx->mark_dirty({x});
    // The ReLU output is returned only because it was modified in place; its gradient is none, and
    // materialised it would be a full activation of zeros, masked and added for nothing.
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x, pooled, indices});
    return {pooled, x};
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &pooled = saved[1], &indices = saved[2];
    at::Tensor dx;
    if (g[0].defined()) {
      // threshold_backward's rule (zero where the output is <= 0), on the pooled values. clone keeps
      // the gradient's channels-last layout, where masked_fill's copy would be NCHW and put pooling's
      // backward on its slow mixed-layout path (30 vs 190 ms at relu1_2, 512 px).
      at::Tensor masked = g[0].clone();
      masked.masked_fill_(pooled.le(0), 0);
      dx = at::max_pool2d_with_indices_backward(masked, x, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false, indices);
    }
    if (g[1].defined()) {  // never in the engine (the fused ReLU's output is no feature); kept exact anyway
      const at::Tensor r = at::where(x.le(0), at::zeros({}, x.options()), g[1]);
      dx = dx.defined() ? dx.add_(r) : r;
    }
    return {dx};
  }
};

// The same in one hand-written pass each way (relu_pool.hpp), for a contiguous NCHW fp32 activation
// (every fp32 pass on the CPU) and a channels-last bf16 one (every bf16 pass on the CPU). In NCHW,
// ATen's max pooling is a scalar loop: 39 ms forward and 65 ms backward at relu1_2 + pool1, 512 px,
// 2 threads on the AVX2 EPYC, at 3.5-4.2 GB/s; vectorised, 2.4 and 3.0 ms on Zen 5 capped to AVX2,
// about the copy rate. In bf16, ReluMaxPool's backward ran at ~4x the copy rate's time (10.8 ms at
// relu1_2, 512 px, Zen 5) and it kept the activation and int64 indices (50 MB there). The forward
// reads the conv output once and writes the pooled values and one byte per window naming its winner
// (the activation itself is neither written nor kept), the backward writes each input gradient once.
// Winners as ATen picks them and ReLU's rule on the pooled value: the same values as the separate ops.
struct ReluMaxPoolOnePass : torch::autograd::Function<ReluMaxPoolOnePass> {
  static bool applies(const at::Tensor& x) { return relu_max_pool_nchw_takes(x) || relu_max_pool_nhwc_takes(x); }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    RECORD_FUNCTION("stylize::relu_max_pool", std::vector<c10::IValue>({x}));  // named in profiles
    const bool in_nhwc = relu_max_pool_nhwc_takes(x);
    auto [pooled, winner] = in_nhwc ? relu_max_pool_nhwc(x) : relu_max_pool_nchw(x);
    ctx->save_for_backward({pooled, winner});
    ctx->saved_data["height"] = x.size(2);
    ctx->saved_data["width"] = x.size(3);
    ctx->saved_data["nhwc"] = in_nhwc;
    return pooled;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    const auto saved = ctx->get_saved_variables();
    RECORD_FUNCTION("stylize::relu_max_pool_backward", std::vector<c10::IValue>({g[0]}));
    const int64_t h = ctx->saved_data["height"].toInt(), w = ctx->saved_data["width"].toInt();
    return {ctx->saved_data["nhwc"].toBool() ? relu_max_pool_nhwc_backward(g[0], saved[0], saved[1], h, w)
                                              : relu_max_pool_nchw_backward(g[0], saved[0], saved[1], h, w)};
  }
};

// The input gradient of a convolution whose node saved Winograd's kernels ("u") and its layer index.
// The layer in the span's name: a custom node's backward has no forward op to be tied to by
// sequence number, and conv3_2 .. conv3_4 (and conv4_2 .. conv4_4) have the same shapes.
at::Tensor winograd_input_gradient(torch::autograd::AutogradContext* ctx, const at::Tensor& dy) {
  RECORD_FUNCTION("stylize::winograd_conv_input_gradient:" + vgg19_layers()[ctx->saved_data["layer"].toInt()].name,
                  std::vector<c10::IValue>({dy}));
  return winograd_conv3x3_input_gradient(dy, ctx->saved_data["u"].toTensor());
}

// conv1_1 in fp32 on the CPU, forward and input gradient by the engine's own direct kernels
// (direct_conv.hpp). With 3 input channels Winograd's transforms cost more than they save, and
// oneDNN's kernels ran far from the FMA rate: 512 px, 2 threads, Zen 5, alone: forward 1.8 against
// oneDNN's 4.0 ms, input gradient 4.5 against Winograd's 9.0 and oneDNN's 15.0; capped to AVX2 3.5
// against 5.5, and 4.7 against 11.0 and 13.0 (bench/winograd_layers.cpp). The real AVX2 EPYC once
// ran oneDNN's conv1_1 forward at 8-12 GFLOP/s (BENCHMARKS.md). Rounding: each output a plain fp32
// sum, ~1e-7 relative; different bits from oneDNN's.
struct DirectConv3x3 : torch::autograd::Function<DirectConv3x3> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, int64_t layer) {
    RECORD_FUNCTION("stylize::direct_conv", std::vector<c10::IValue>({x}));  // named in profiles
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["layer"] = layer;
    return direct_conv3x3(x, weight, bias);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    RECORD_FUNCTION("stylize::direct_conv_input_gradient:" + vgg19_layers()[ctx->saved_data["layer"].toInt()].name,
                    std::vector<c10::IValue>({grads[0]}));
    return {direct_conv3x3_input_gradient(grads[0], ctx->saved_data["weight"].toTensor()), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

// A 3×3 convolution by Winograd's F(4×4, 3×3) (winograd.hpp), forward and input gradient; the
// weights are frozen, so nothing else has a gradient. Saves only the transformed kernels.
struct WinogradConv : torch::autograd::Function<WinogradConv> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& u,
                            const at::Tensor& bias, int64_t layer) {
    RECORD_FUNCTION("stylize::winograd_conv", std::vector<c10::IValue>({x}));  // named in profiles
    ctx->saved_data["u"] = u;
    ctx->saved_data["layer"] = layer;
    return winograd_conv3x3(x, u, bias);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return {winograd_input_gradient(ctx, grads[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> Vgg19::forward(const at::Tensor& x, const std::vector<int>& layer_indices) const {
  std::vector<at::Tensor> out(layer_indices.size());
  const int deepest = *std::max_element(layer_indices.begin(), layer_indices.end());
  auto wanted = [&](int index) {
    return std::find(layer_indices.begin(), layer_indices.end(), index) != layer_indices.end();
  };
  auto capture = [&](int index, const at::Tensor& t) {
    for (size_t k = 0; k < layer_indices.size(); ++k) {
      if (layer_indices[k] == index) out[k] = t;
    }
  };
  const bool channels_last = x.is_cpu() && x.dim() == 4 && cpu_prefers_channels_last(precision_);
  const at::ScalarType dtype = layer_type(0);  // conv1_1's weights' type
  at::Tensor h = channels_last ? x.to(at::TensorOptions().dtype(dtype), false, false, at::MemoryFormat::ChannelsLast)
                               : x.to(dtype);
  // A ReLU fused with the max pool after it (ReluMaxPoolOnePass, or ReluMaxPool in another layout):
  // on the CPU, where it was measured, when neither the conv output nor the ReLU output is a feature
  // and the pool is within the pass.
  auto fuse_with_pool = [&](int relu_index) {
    const auto& all = vgg19_layers();
    return x.is_cpu() && pooling_ == Pooling::max && relu_index + 1 <= deepest &&
           all[relu_index + 1].kind == Vgg19Layer::Kind::pool && !wanted(relu_index) && !wanted(relu_index - 1);
  };
  for (const auto& l : vgg19_layers()) {
    if (l.index > deepest) break;
    // Each layer's operators under its name in a profile (bench/iteration_profile.py); a flag test
    // when no profiler runs.
    RECORD_FUNCTION("vgg19::" + l.name, std::vector<c10::IValue>());
    if (l.kind == Vgg19Layer::Kind::conv && h.scalar_type() != layer_type(l.index)) {
      // mixed: bf16 channels-last to fp32 NCHW before conv3_1, in one copy (to() alone keeps the layout).
      h = h.to(at::TensorOptions().dtype(layer_type(l.index)), false, false, at::MemoryFormat::Contiguous);
    }
    switch (l.kind) {
      case Vgg19Layer::Kind::conv: {
        const auto& wb = conv_.at(l.index);
        if (!uses_own_kernels(h)) {
          h = at::conv2d(h, wb.first, wb.second, /*stride=*/1, /*padding=*/1);
        } else if (l.in_channels >= kWinogradForwardFrom) {
          h = WinogradConv::apply(h, winograd_weights_for(l.index), wb.second, l.index);
        } else {
          h = DirectConv3x3::apply(h, wb.first, wb.second, l.index);
        }
        break;
      }
      case Vgg19Layer::Kind::relu:
        if (fuse_with_pool(l.index)) {
          h = ReluMaxPoolOnePass::applies(h) ? ReluMaxPoolOnePass::apply(h) : ReluMaxPool::apply(h)[0];
          capture(l.index + 1, h);  // the pool's output, in case it is a feature; the loop skips the pool
          break;
        }
        // In place saves a full activation per layer; only when the conv output is not a wanted feature.
        h = wanted(l.index - 1) ? at::relu(h) : at::relu_(h);
        break;
      case Vgg19Layer::Kind::pool:
        if (fuse_with_pool(l.index - 1)) continue;  // done with its ReLU
        h = pooling_ == Pooling::max ? at::max_pool2d(h, {2, 2}, {2, 2}) : at::avg_pool2d(h, {2, 2}, {2, 2});
        break;
    }
    capture(l.index, h);
  }
  return out;
}

}  // namespace stylize
