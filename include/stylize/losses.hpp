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

// [1, C, H, W] -> [C, C], normalised by C·H·W. One matrix product.
at::Tensor gram_matrix(const at::Tensor& features);

// Σ of squared neighbour differences over all channels, both directions.
at::Tensor total_variation(const at::Tensor& x);

// Style targets for one size: per style layer, the blend of the style images' Gram matrices.
struct StyleTargets {
  std::vector<at::Tensor> grams;  // one per LossWeights::style_layers, on the network's device
};

// Content targets: per content layer, the content image's features.
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

class StyleLoss {
 public:
  StyleLoss(std::shared_ptr<const Vgg19> net, LossWeights weights, ContentTargets content, StyleTargets style);
  // x: [1, 3, H, W] network input (requires grad when optimising).
  LossTerms evaluate(const at::Tensor& x) const;
  const LossWeights& weights() const { return weights_; }

 private:
  std::shared_ptr<const Vgg19> net_;
  LossWeights weights_;
  ContentTargets content_;
  StyleTargets style_;
  std::vector<int> layer_indices_;  // content layers, then style layers
  std::vector<double> style_layer_weights_;
};

}  // namespace stylize
