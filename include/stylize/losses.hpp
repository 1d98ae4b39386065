// The Gatys et al. objective with neural-style's conventions (README "Losses"):
//   F: features at a layer as C×(H·W);  Gram G = F·Fᵀ / (C·H·W)
//   content  = content_weight · mean((F − P)²)                    per content layer
//   style    = style_weight · layer_weight · mean((G − A)²)        per style layer, A = Σ_k blend_k·Gram_k
//   tv       = tv_weight · (Σ (x[i+1,j] − x[i,j])² + Σ (x[i,j+1] − x[i,j])²) on the network input
//   total    = sum of all terms
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "stylize/vgg19.hpp"

namespace stylize {

struct LossWeights {
  std::vector<std::string> content_layers{"relu4_2"};
  std::vector<std::string> style_layers{"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"};
  std::vector<double> style_layer_weights;  // empty = 1 for every style layer
  double content_weight = 5.0;
  double style_weight = 100.0;
  double tv_weight = 1e-3;
};

// Deepest layer index any loss uses: the network is cut after it. Validates layer names.
int deepest_layer(const LossWeights& w);
// The deepest of the style layers alone (-1 when there are none): what a style image goes through.
int deepest_style_layer(const LossWeights& w);

// [1, C, H, W] -> [C, C] fp32, normalised by C·H·W (or multiplied by `scale`). One matrix product
// each way; fp32 features on the CPU by SYRK where the BLAS has it (exactly symmetric then), bf16
// ones on oneDNN with fp32 accumulation.
at::Tensor gram_matrix(const at::Tensor& features);
at::Tensor gram_matrix(const at::Tensor& features, double scale);

// Whether this process's BLAS has ssyrk, which the fp32 Gram products on the CPU then use (tests).
bool fp32_gram_by_syrk();

// mean((F − P)²), a 0-dim fp32 tensor: F a content layer's [1, C, H, W] features (fp32 or bf16, any
// layout), P its fp32 target of the same shape. The value and F's gradient are the same bits as
// at::mse_loss(F.to(kFloat), P); the gradient comes back in F's type and memory layout (autograd's
// own comes back NCHW, slow to meet a channels-last network's gradients).
at::Tensor content_loss(const at::Tensor& features, const at::Tensor& target);

// Σ of squared neighbour differences over all channels, both directions.
at::Tensor total_variation(const at::Tensor& x);

// Style targets for one size: per style layer, the blend of the style images' Gram matrices.
struct StyleTargets {
  std::vector<at::Tensor> grams;  // one per LossWeights::style_layers, on the network's device
};

// Content targets: per content layer, the content image's features: fp32 [1, C, H, W] in the
// features' own memory layout, on the network's device.
struct ContentTargets {
  std::vector<at::Tensor> features;
};

// Computes, without gradients, the blended Gram targets. `blend` has one weight per style image
// (normalised here to sum 1; empty = equal weights). Inputs are preprocessed network inputs.
StyleTargets compute_style_targets(const Vgg19& net, const LossWeights& w, const std::vector<at::Tensor>& styles,
                                   const std::vector<double>& blend);
ContentTargets compute_content_targets(const Vgg19& net, const LossWeights& w, const at::Tensor& content);

// Every term of one evaluation; scalars (0-dim tensors) that carry autograd history.
struct LossTerms {
  std::vector<at::Tensor> content;  // per content layer, weighted
  std::vector<at::Tensor> style;    // per style layer, weighted
  at::Tensor tv;
  at::Tensor total;
};

// Plain numbers of LossTerms for logs and reports.
struct LossValues {
  std::vector<double> content, style;
  double tv = 0, total = 0;
  double content_sum() const;
  double style_sum() const;
};
LossValues to_values(const LossTerms& t);

// Print size (tiling.hpp): a crop of a larger image, optimised for the WHOLE image's objective. The
// crop's loss is the whole image's restricted to the terms whose features lie in the rectangle
// (crop input pixels; at a layer of stride f, the positions rect/f), normalised by the whole image's
// size, with each Gram matrix's part from outside the rectangle held fixed (`gram_rest`). Every tile
// is then pulled toward one global Gram matrix, not each toward the style on its own few pixels.
struct LossRegion {
  int x = 0, y = 0, width = 0, height = 0;    // the counted part of the crop, in crop input pixels
  int64_t whole_width = 0, whole_height = 0;  // the whole image, input pixels
  std::vector<at::Tensor> gram_rest;          // per style layer, C×C fp32 on the network's device
  // Mean field (tiling's visits, when > 0: the region's share of the image's positions). Held to
  // the one global Gram matrix, the first tile of a sweep would answer for the whole image's style
  // deficit alone, over-painting itself and leaving the tiles after it pale (measured: texture
  // 0.30-1.85x the untiled run's, region by region, in raster order). Instead each Gram matrix is
  // taken as if every position of the image changed as the region's do,
  //   G(x) = G_before + (P(x) − P_before) / share   (P: the region's part, `gram_before` its start),
  // and its style term is weighted by `share`: at the visit's start the pull on each pixel is the
  // untiled run's, and a visit stops where the same change everywhere would balance.
  double gram_share = 0;
  std::vector<at::Tensor> gram_before;        // per style layer: P_before (set by Stylizer::stylize_region)
};

// The additive parts of the whole image's objective that lie in a region. Summed over regions that
// partition the image they are the whole image's (loss_values); differences of two states of one
// region update such a sum when only that region changed.
struct LossSums {
  std::vector<double> content;    // per content layer: Σ (F − P)² / (C · N), N the whole image's positions
  std::vector<at::Tensor> grams;  // per style layer: Σ f·fᵀ / (C · N), C×C fp32
  double tv = 0;                  // Σ squared neighbour differences whose first pixel is in the region
  LossSums& operator+=(const LossSums& o);
  LossSums& operator-=(const LossSums& o);
};

// The loss terms of a whole image from its sums (content and TV weighted, style against `style`).
LossValues loss_values(const LossWeights& w, const StyleTargets& style, const LossSums& whole);

class StyleLoss {
 public:
  StyleLoss(std::shared_ptr<const Vgg19> net, LossWeights weights, ContentTargets content, StyleTargets style);
  // x: [1, 3, H, W] network input (requires grad when optimising). With a region set, the whole
  // image's objective restricted to it (LossRegion); otherwise this image's own.
  LossTerms evaluate(const at::Tensor& x) const;
  // The region's additive parts at x, without gradients (one forward pass).
  LossSums sums(const at::Tensor& x, const LossRegion& region) const;
  void set_region(LossRegion region) { region_ = std::move(region); has_region_ = true; }
  const LossWeights& weights() const { return weights_; }
  const StyleTargets& style_targets() const { return style_; }

 private:
  struct RegionParts {
    std::vector<at::Tensor> content, grams;
    at::Tensor tv;
  };
  RegionParts region_parts(const at::Tensor& x, const LossRegion& region) const;
  LossTerms evaluate_region(const at::Tensor& x) const;
  std::shared_ptr<const Vgg19> net_;
  LossWeights weights_;
  ContentTargets content_;
  StyleTargets style_;
  std::vector<int> layer_indices_;  // content layers, then style layers
  std::vector<double> style_layer_weights_;
  LossRegion region_;
  bool has_region_ = false;
};

}  // namespace stylize
