#include "stylize/stylizer.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"
#include "stylize/tiling.hpp"

namespace stylize {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void check_size(const at::Tensor& rgb, int last_index, const char* what) {
  if (last_index < 0) return;  // no layer to reach (a style image with no style layers)
  check_working_size(static_cast<int>(rgb.size(3)), static_cast<int>(rgb.size(2)), last_index, what);
}

}  // namespace

int style_longest_side(int size, double style_scale) {
  return std::max(16, static_cast<int>(std::lround(size * style_scale)));
}

void check_working_size(int width, int height, int last_index, const std::string& what, const std::string& grows) {
  const int need = vgg19_min_side(last_index);
  if (height < need || width < need) {
    const std::string layer = vgg19_layers()[static_cast<size_t>(last_index)].name;
    // The fix that grows this image: the tile's own size, the style's scale, or the output's size.
    const std::string larger = !grows.empty()                              ? grows
                               : what.find("tile") != std::string::npos  ? field("tile")
                               : what.find("style") != std::string::npos ? field("style_scale") + " or " + field("size")
                                                                         : field("size");
    throw UsageError(what + " is " + std::to_string(width) + "x" + std::to_string(height) + " px, but layer " + layer +
                     " needs at least " + std::to_string(need) + " px on each side; use a larger " + larger +
                     ", or shallower layers");
  }
}

Stylizer::Stylizer(const Vgg19Weights& weights, Preprocessing preprocessing, Pooling pooling, int last_index,
                   const at::Device& device, Precision precision)
    : net_(std::make_shared<Vgg19>(weights.params, pooling, last_index, precision)),
      preprocessing_(preprocessing),
      device_(device) {
  net_->to(device_);
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
}

StyleTargets Stylizer::style_targets(const LossWeights& loss, const std::vector<at::Tensor>& style_rgbs,
                                     const std::vector<double>& blend) const {
  const bool large = std::any_of(style_rgbs.begin(), style_rgbs.end(), [](const at::Tensor& s) {
    return s.size(2) * s.size(3) > kWholeStylePixels;
  });
  if (large) return style_targets_tiled(loss, style_rgbs, blend, kStyleTile, kStyleTileOverlap);
  std::vector<at::Tensor> inputs;
  for (const auto& s : style_rgbs) {
    check_size(s, deepest_style_layer(loss), "the style image at its working size");
    inputs.push_back(preprocess(s.to(device_), preprocessing_));
  }
  return compute_style_targets(*net_, loss, inputs, blend);
}

StyleTargets Stylizer::style_targets_tiled(const LossWeights& loss, const std::vector<at::Tensor>& style_rgbs,
                                           const std::vector<double>& blend, int tile, int overlap) const {
  std::vector<double> b = blend.empty() ? std::vector<double>(style_rgbs.size(), 1.0) : blend;
  if (b.size() != style_rgbs.size()) throw UsageError(field("style_blend") + " has the wrong number of weights");
  const double total = std::accumulate(b.begin(), b.end(), 0.0);
  std::vector<int> idx;
  for (const auto& l : loss.style_layers) idx.push_back(vgg19_layer_index(l));
  c10::NoGradGuard no_grad;
  StyleTargets t;
  t.grams.resize(idx.size());
  for (size_t k = 0; k < style_rgbs.size(); ++k) {
    const at::Tensor& style = style_rgbs[k];
    check_size(style, deepest_style_layer(loss), "the style image at its working size");
    // Per layer: Σ over tiles of F·Fᵀ over the interior's features, then / (C · Σ interior pixels):
    // the whole image's Gram matrix up to the features near tile borders (which see the margin).
    std::vector<at::Tensor> sums(idx.size());
    std::vector<double> counts(idx.size(), 0.0);
    for (const Tile& tl : tile_grid(static_cast<int>(style.size(3)), static_cast<int>(style.size(2)), tile, overlap, 0, 0)) {
      const at::Tensor crop = style.narrow(2, tl.crop.y, tl.crop.height).narrow(3, tl.crop.x, tl.crop.width);
      const std::vector<at::Tensor> feats = net_->forward(preprocess(crop.to(device_), preprocessing_), idx);
      for (size_t l = 0; l < idx.size(); ++l) {
        const int f = vgg19_min_side(idx[l]);
        const int64_t fw = feats[l].size(3), fh = feats[l].size(2);
        const int64_t x0 = (tl.interior.x - tl.crop.x) / f, y0 = (tl.interior.y - tl.crop.y) / f;
        const int64_t x1 = std::min<int64_t>(fw, (tl.interior.x + tl.interior.width - tl.crop.x) / f);
        const int64_t y1 = std::min<int64_t>(fh, (tl.interior.y + tl.interior.height - tl.crop.y) / f);
        if (x1 <= x0 || y1 <= y0) continue;
        const double n = static_cast<double>((x1 - x0) * (y1 - y0));
        const at::Tensor g = gram_matrix(feats[l].narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0).contiguous()) * n;
        sums[l] = sums[l].defined() ? sums[l] + g : g;
        counts[l] += n;
      }
    }
    for (size_t l = 0; l < idx.size(); ++l) {
      const at::Tensor g = sums[l] * (b[k] / total / counts[l]);
      t.grams[l] = t.grams[l].defined() ? t.grams[l] + g : g;
    }
  }
  return t;
}

at::Tensor Stylizer::to_rgb(const at::Tensor& input, const at::Tensor& content_rgb, bool original_colors) const {
  c10::NoGradGuard no_grad;
  at::Tensor rgb = deprocess(input.detach(), preprocessing_).to(at::kCPU);
  if (original_colors) rgb = transfer_luminance(rgb, content_rgb.to(at::kCPU));
  return rgb;
}

void Stylizer::prepare_memory(const at::Tensor& content_rgb, const StylizeParams& params) const {
  check_size(content_rgb, deepest_layer(params.loss), "the output");  // the request's depth, not the network's
  if (device_.is_cuda()) return;
  const int width = static_cast<int>(content_rgb.size(3)), height = static_cast<int>(content_rgb.size(2));
  check_cpu_memory(width, height, params.optimizer, precision());
  // The allocator's cache headroom saves ~126,000 page faults per 512 px iteration but can
  // hold half the activations again (cpu_allocator.hpp); near the memory limit the run goes without.
  const uint64_t have = available_memory_bytes();
  const bool roomy = have == 0 || static_cast<double>(have) >= 1.25 * estimate_cpu_peak_bytes(width, height, params.optimizer, precision());
  set_cpu_cache_headroom(roomy ? kDefaultCacheHeadroom : 0.0);
}

at::Tensor Stylizer::start_input(const at::Tensor& content, const at::Tensor& content_rgb, const StylizeParams& params) const {
  switch (params.init) {
    case InitKind::content:
      return content;
    case InitKind::random: {
      // N(0, 0.001²) in caffe units as neural-style; scaled to the same pixel amplitude for torchvision.
      // Drawn on the CPU so a seed gives the same start on every device.
      auto gen = at::make_generator<at::CPUGeneratorImpl>(params.seed);
      return (at::randn(content.sizes(), gen, at::kFloat) * (0.001 * input_units_per_level(preprocessing_))).to(device_);
    }
    case InitKind::image:
      break;
  }
  if (!params.init_image.defined() || params.init_image.sizes() != content_rgb.sizes()) {
    throw Error(ExitCode::internal, "init image must have the content's size");
  }
  return preprocess(params.init_image.to(device_), preprocessing_);
}

void Stylizer::optimise(const StyleLoss& loss, const at::Tensor& init, const at::Tensor& content,
                        const at::Tensor& content_rgb, const StylizeParams& params, const TransferCallbacks& callbacks,
                        StylizeOutput& out) const {
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor mask = params.update_mask.defined() ? params.update_mask.to(device_) : at::Tensor();
  out.transfer = optimize_image(loss, init, params.optimizer, callbacks, input_range(preprocessing_, content), mask);
  out.rgb = to_rgb(out.transfer.input, content_rgb, params.original_colors);
  if (params.score_written) {
    c10::NoGradGuard no_grad;
    out.written = to_values(loss.evaluate(preprocess(out.rgb.round().to(device_), preprocessing_)));
  }
  out.seconds_optimise = seconds_since(t0);
}

StylizeOutput Stylizer::stylize(const at::Tensor& content_rgb, const StyleTargets& style, const StylizeParams& params,
                                const TransferCallbacks& callbacks) const {
  StylizeOutput out;
  prepare_memory(content_rgb, params);
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor content = preprocess(content_rgb.to(device_), preprocessing_);
  const StyleLoss loss(net_, params.loss, compute_content_targets(*net_, params.loss, content), style);
  const at::Tensor init = start_input(content, content_rgb, params);
  out.seconds_content_targets = seconds_since(t0);
  optimise(loss, init, content, content_rgb, params, callbacks, out);
  return out;
}

LossSums Stylizer::region_sums(const at::Tensor& content_rgb, const at::Tensor& rgb, const StyleTargets& style,
                               const LossWeights& weights, const LossRegion& region) const {
  c10::NoGradGuard no_grad;
  const at::Tensor content = preprocess(content_rgb.to(device_), preprocessing_);
  const StyleLoss loss(net_, weights, compute_content_targets(*net_, weights, content), style);
  return loss.sums(preprocess(rgb.to(device_), preprocessing_), region);
}

Stylizer::RegionVisit Stylizer::stylize_region(const at::Tensor& content_rgb, const StyleTargets& style,
                                               const StylizeParams& params, LossRegion region, const LossSums& whole,
                                               const TransferCallbacks& callbacks) const {
  RegionVisit v;
  prepare_memory(content_rgb, params);
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor content = preprocess(content_rgb.to(device_), preprocessing_);
  StyleLoss loss(net_, params.loss, compute_content_targets(*net_, params.loss, content), style);
  const at::Tensor init = start_input(content, content_rgb, params);
  v.before = loss.sums(init, region);
  region.gram_rest.clear();
  for (size_t k = 0; k < whole.grams.size(); ++k) region.gram_rest.push_back(whole.grams[k] - v.before.grams[k]);
  if (region.gram_share > 0) region.gram_before = v.before.grams;
  loss.set_region(region);
  v.out.seconds_content_targets = seconds_since(t0);
  optimise(loss, init, content, content_rgb, params, callbacks, v.out);
  v.after = loss.sums(v.out.transfer.input, region);
  return v;
}

uint64_t estimate_cpu_peak_bytes(int width, int height, const OptimizerOptions& optimizer, Precision precision) {
  const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  // Image-sized optimiser state: L-BFGS's pairs (and backtracking's base point), Adam's two moments.
  const uint64_t history = optimizer.kind != OptimizerKind::lbfgs ? 2ull
                           : 2ull * optimizer.lbfgs_history + (optimizer.line_search == LineSearch::backtracking ? 1 : 0);
  // Activations per output pixel: fitted ~1600 (bf16) on peak RSS at 256 and 1024 px (BENCHMARKS.md,
  // "Memory"), 1319 since the bf16 ReLU + pool keeps neither the activation nor int64 indices
  // (2026-12-03, Zen 5: 1024×768 bf16 peak 1528 → 1272 MiB); kept ~6% above the fit, as before.
  // mixed (bf16 to pool2, fp32 after): 1024×768, 3 iterations, Zen 4: bf16 1274, mixed 1747, fp32
  // 2419 MiB peak (2026-12-05); 1700 with fp32's fixed part puts mixed ~10% above, as bf16 is.
  const uint64_t activations = precision == Precision::bf16    ? 1400ull
                               : precision == Precision::mixed ? 1700ull
                                                               : 3000ull;
  // fp32 adds the Winograd kernels (4x conv1_2 .. conv5_1's weights, ~207 MB) and its bands of
  // transformed tiles: measured +205, +254 and +345 MiB at 256, 512 and 1024 px with 32 MiB bands
  // (BENCHMARKS.md); the bands are 8 MiB now (512 px real weights: 89 MiB less), so this is generous.
  // mixed keeps nearly all of them (conv3_1 .. conv5_1 hold 98% of conv1_2 .. conv5_1's weights).
  const uint64_t fixed = precision == Precision::bf16 ? (370ull << 20) : (670ull << 20);
  return fixed + pixels * activations + pixels * 12ull * history;
}

void check_cpu_memory(int width, int height, const OptimizerOptions& optimizer, Precision precision) {
  const uint64_t need = estimate_cpu_peak_bytes(width, height, optimizer, precision);
  const uint64_t have = available_memory_bytes();
  if (have == 0 || need <= have) return;
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "a %dx%d run needs about %.1f GB of memory, but %.1f GB is available; use a smaller `size`, "
                "a smaller `lbfgs_history` (each entry costs %.1f GB here), or `optimizer` adam",
                width, height, need / 1e9, have / 1e9,
                2.0 * 12.0 * static_cast<double>(width) * height / 1e9);
  throw ResourceError(buf);
}

}  // namespace stylize
