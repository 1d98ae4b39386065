// Parity with an independent implementation: torchvision's VGG19 in PyTorch (float64), see
// tests/fixtures/make_parity.py. Same synthetic weights and images (integer hash, bit-identical);
// every loss term and the input gradient must agree to 1e-4 relative.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::rel_diff;

namespace {

nlohmann::json load_fixture() {
  std::ifstream in(std::string(STYLIZE_FIXTURES) + "/parity.json");
  return nlohmann::json::parse(in);
}

at::Tensor hashed_image(int64_t h, int64_t w, uint32_t stream) {
  return (hash_uniform(3 * h * w, stream) * 255.0f).view({1, 3, h, w});
}

class Parity : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(Parity, LossTermsAndGradientMatchPyTorch) {
  const auto fixture = load_fixture();
  const auto& cfg = fixture["configs"][GetParam()];
  SCOPED_TRACE(cfg["name"].get<std::string>());
  LossWeights w;
  w.content_layers = cfg["content_layers"].get<std::vector<std::string>>();
  w.style_layers = cfg["style_layers"].get<std::vector<std::string>>();
  w.style_layer_weights = cfg["style_layer_weights"].get<std::vector<double>>();
  w.content_weight = cfg["content_weight"];
  w.style_weight = cfg["style_weight"];
  w.tv_weight = cfg["tv_weight"];
  const Preprocessing pre = parse_preprocessing(cfg["preprocessing"]);
  auto net = std::make_shared<Vgg19>(synthetic_vgg19(cfg["seed"].get<uint32_t>()),
                                     cfg["pooling"] == "avg" ? Pooling::avg : Pooling::max, deepest_layer(w));
  at::Tensor content = preprocess(hashed_image(32, 32, 9001), pre);
  at::Tensor style = preprocess(hashed_image(36, 40, 9002), pre);
  at::Tensor x = preprocess(hashed_image(32, 32, 9003), pre).detach().set_requires_grad(true);

  StyleLoss loss(net, w, compute_content_targets(*net, w, content), compute_style_targets(*net, w, {style}, {}));
  LossTerms terms = loss.evaluate(x);
  terms.total.backward();
  LossValues v = to_values(terms);

  const auto& e = cfg["expected"];
  ASSERT_EQ(v.content.size(), e["content"].size());
  ASSERT_EQ(v.style.size(), e["style"].size());
  for (size_t i = 0; i < v.content.size(); ++i) {
    EXPECT_LT(rel_diff(v.content[i], e["content"][i]), 1e-4) << "content " << w.content_layers[i] << ": " << v.content[i]
                                                             << " vs " << e["content"][i];
  }
  for (size_t i = 0; i < v.style.size(); ++i) {
    EXPECT_LT(rel_diff(v.style[i], e["style"][i]), 1e-4) << "style " << w.style_layers[i] << ": " << v.style[i]
                                                         << " vs " << e["style"][i];
  }
  EXPECT_LT(rel_diff(v.tv, e["tv"]), 1e-4) << v.tv << " vs " << e["tv"];
  EXPECT_LT(rel_diff(v.total, e["total"]), 1e-4) << v.total << " vs " << e["total"];

  at::Tensor expected = at::tensor(e["grad"].get<std::vector<double>>(), at::kDouble).view(x.sizes());
  at::Tensor got = x.grad().to(at::kDouble);
  const double rel_l2 = (got - expected).norm().item<double>() / expected.norm().item<double>();
  const double rel_max = (got - expected).abs().max().item<double>() / expected.abs().max().item<double>();
  EXPECT_LT(rel_l2, 1e-4) << "gradient relative L2 error";
  EXPECT_LT(rel_max, 1e-4) << "gradient worst element, relative to the largest";
  // The check can fail: a gradient that is off by a small factor would be far outside it.
  EXPECT_GT((got * 1.001 - expected).norm().item<double>() / expected.norm().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Configs, Parity, ::testing::Values(0, 1));
