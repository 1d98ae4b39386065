// The engine's front door: a loaded VGG19 on a device plus the steps of one stylisation, on tensors
// only (RGB 0-255, [1, 3, H, W]). The CLI, `batch` and `serve` all drive this; none of them touch
// the network directly. Style targets are a separate step so callers can compute them once and reuse.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/runtime.hpp"
#include "stylize/transfer.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"

namespace stylize {

enum class InitKind { content, random, image };

struct StylizeParams {
  LossWeights loss;
  OptimizerOptions optimizer;
  InitKind init = InitKind::content;
  at::Tensor init_image;        // RGB 0-255 at the content's size, for InitKind::image
  uint64_t seed = 0;            // random init
  bool original_colors = false; // keep the content's colours (luminance transfer)
  at::Tensor update_mask;       // [1, 1, H, W] 1 where pixels may change (a tile's interior); undefined = all
  bool score_written = true;    // evaluate StylizeOutput::written (one forward pass); a tile visit skips it
};

struct StylizeOutput {
  at::Tensor rgb;         // [1, 3, H, W] RGB 0-255 on the CPU, colours already transferred if asked
  TransferResult transfer;
  // The loss of `rgb` rounded to 8 bits, as a PNG holds it: what the written image scores, beside
  // transfer.final (the optimiser's image). They differ by the rounding (and the colour transfer).
  // Empty when params.score_written is false.
  LossValues written;
  double seconds_content_targets = 0;
  double seconds_optimise = 0;
};

// Style images up to 2048x2048 go through the network whole, as always; larger ones (a print-size
// run's style scale) in 1024 px tiles with 64 px of context. The bound is a choice, not a measurement.
constexpr int64_t kWholeStylePixels = 2048LL * 2048LL;
constexpr int kStyleTile = 1024, kStyleTileOverlap = 64;

class Stylizer {
 public:
  // Cuts the network after `last_index` (deepest layer any loss will use) and moves it to `device`,
  // its convolutions in `precision`.
  Stylizer(const Vgg19Weights& weights, Preprocessing preprocessing, Pooling pooling, int last_index,
           const at::Device& device, Precision precision = Precision::fp32);

  Preprocessing preprocessing() const { return preprocessing_; }
  const at::Device& device() const { return device_; }
  int last_index() const { return net_->last_index(); }
  Precision precision() const { return net_->precision(); }
  // The network's convolution algorithm (vgg19.hpp ConvAlgorithm; automatic unless set), before a run.
  void set_conv_algorithm(ConvAlgorithm algorithm) { net_->set_conv_algorithm(algorithm); }

  // Blended Gram targets of the style images (each already at its working size). A style image over
  // kWholeStylePixels goes through the network tile by tile (style_targets_tiled), so a print-size
  // run's style scale never needs the whole style image's activations at once.
  StyleTargets style_targets(const LossWeights& loss, const std::vector<at::Tensor>& style_rgbs,
                             const std::vector<double>& blend) const;
  // The same targets from tiles of about `tile` px with `overlap` px of context (tiling.hpp's grid):
  // each tile's interior features, summed, as one image's Gram matrix.
  StyleTargets style_targets_tiled(const LossWeights& loss, const std::vector<at::Tensor>& style_rgbs,
                                   const std::vector<double>& blend, int tile, int overlap) const;

  // Optimises an image at the content's size. `style` must come from style_targets() with the same
  // style layers. Callbacks see network inputs; `to_rgb` turns one into a displayable image.
  StylizeOutput stylize(const at::Tensor& content_rgb, const StyleTargets& style, const StylizeParams& params,
                        const TransferCallbacks& callbacks = {}) const;

  // Network input -> RGB 0-255 on the CPU, with the content's colours if `original_colors`.
  at::Tensor to_rgb(const at::Tensor& input, const at::Tensor& content_rgb, bool original_colors) const;

  // Print size (tiling.hpp). The additive parts of the whole image's objective that lie in `region`
  // of a crop whose content is `content_rgb` and whose pixels are now `rgb` (RGB 0-255, [1, 3, h, w]):
  // two forward passes, no gradients.
  LossSums region_sums(const at::Tensor& content_rgb, const at::Tensor& rgb, const StyleTargets& style,
                       const LossWeights& loss, const LossRegion& region) const;

  // One tile visit: stylize() on a crop (params.init_image its pixels now) whose loss is the whole
  // image's restricted to `region`, the rest of each Gram matrix taken from `whole` (the whole image's
  // sums as they are now). `before` and `after` are the region's sums at the start and at the result,
  // for the caller to update `whole` with.
  struct RegionVisit {
    StylizeOutput out;
    LossSums before, after;
  };
  RegionVisit stylize_region(const at::Tensor& content_rgb, const StyleTargets& style, const StylizeParams& params,
                             LossRegion region, const LossSums& whole, const TransferCallbacks& callbacks = {}) const;

 private:
  void prepare_memory(const at::Tensor& content_rgb, const StylizeParams& params) const;
  at::Tensor start_input(const at::Tensor& content, const at::Tensor& content_rgb, const StylizeParams& params) const;
  void optimise(const StyleLoss& loss, const at::Tensor& init, const at::Tensor& content, const at::Tensor& content_rgb,
                const StylizeParams& params, const TransferCallbacks& callbacks, StylizeOutput& out) const;

  std::shared_ptr<Vgg19> net_;
  Preprocessing preprocessing_;
  at::Device device_;
};

// Longest side of a style image's working copy: style_scale × the output's longest side (at least 16).
int style_longest_side(int size, double style_scale);

// The network halves the image at each pooling layer, so an image smaller than 2^(pools before the
// deepest loss layer) fails deep inside LibTorch. This says so in words: UsageError naming `what`
// and the field that grows it (`larger`; "" = the one `what` suggests: tile, style_scale or size).
void check_working_size(int width, int height, int last_index, const std::string& what, const std::string& larger = "");

// Peak host memory of a CPU run, estimated from measurements (BENCHMARKS.md "Memory limits"):
// ~370 MiB fixed (670 in fp32: the Winograd kernels and bands, vgg19.hpp ConvAlgorithm) + activations
// (~3000 bytes per output pixel in fp32, ~1400 in bf16: fitted 3209 and ~1600 on 256..1024 px runs,
// bf16 1319 since its fused ReLU + pool keeps less; bf16 features go to the Gram products without
// fp32 copies; mixed: fp32's fixed part and ~1700 bytes per pixel, measured 1747 MiB at 1024×768
// against bf16's 1274 and fp32's 2419) + the optimiser's history (L-BFGS: 2 × history image-sized
// float tensors; Adam: 2 moments).
uint64_t estimate_cpu_peak_bytes(int width, int height, const OptimizerOptions& optimizer,
                                 Precision precision = Precision::fp32);

// Throws ResourceError when the estimate exceeds the available memory (a run that would be killed
// by the OOM killer hours in is refused at the start instead). CPU only.
void check_cpu_memory(int width, int height, const OptimizerOptions& optimizer, Precision precision = Precision::fp32);

}  // namespace stylize
