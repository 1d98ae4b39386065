// What the two parity suites share: a fixture config's loss weights, and the comparison of one
// evaluation (every term and the input gradient) with the PyTorch reference's, to 1e-4 relative.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stylize/losses.hpp"
#include "support.hpp"

namespace stylize::test {

inline LossWeights parity_loss_weights(const nlohmann::json& cfg) {
  LossWeights w;
  w.content_layers = cfg["content_layers"].get<std::vector<std::string>>();
  w.style_layers = cfg["style_layers"].get<std::vector<std::string>>();
  w.style_layer_weights = cfg["style_layer_weights"].get<std::vector<double>>();
  w.content_weight = cfg["content_weight"];
  w.style_weight = cfg["style_weight"];
  w.tv_weight = cfg["tv_weight"];
  return w;
}

// `v` and `grad` (the gradient at the evaluated input) against the fixture's "expected" object.
inline void expect_parity(const LossValues& v, const at::Tensor& grad, const nlohmann::json& e, const LossWeights& w) {
  ASSERT_EQ(v.content.size(), e["content"].size());
  ASSERT_EQ(v.style.size(), e["style"].size());
  for (size_t i = 0; i < v.content.size(); ++i) {
    EXPECT_LT(rel_diff(v.content[i], e["content"][i]), 1e-4) << "content " << w.content_layers[i] << ": "
                                                             << v.content[i] << " vs " << e["content"][i];
  }
  for (size_t i = 0; i < v.style.size(); ++i) {
    EXPECT_LT(rel_diff(v.style[i], e["style"][i]), 1e-4) << "style " << w.style_layers[i] << ": " << v.style[i]
                                                         << " vs " << e["style"][i];
  }
  EXPECT_LT(rel_diff(v.tv, e["tv"]), 1e-4) << v.tv << " vs " << e["tv"];
  EXPECT_LT(rel_diff(v.total, e["total"]), 1e-4) << v.total << " vs " << e["total"];
  at::Tensor expected = at::tensor(e["grad"].get<std::vector<double>>(), at::kDouble).view(grad.sizes());
  at::Tensor got = grad.to(at::kDouble);
  EXPECT_LT((got - expected).norm().item<double>() / expected.norm().item<double>(), 1e-4)
      << "gradient relative L2 error";
  EXPECT_LT((got - expected).abs().max().item<double>() / expected.abs().max().item<double>(), 1e-4)
      << "gradient worst element, relative to the largest";
  // The check can fail: a gradient that is off by a small factor would be far outside it.
  EXPECT_GT((got * 1.001 - expected).norm().item<double>() / expected.norm().item<double>(), 1e-4);
}

}  // namespace stylize::test
