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
#include "parity_check.hpp"
#include "support.hpp"

using namespace stylize;

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
  const LossWeights w = stylize::test::parity_loss_weights(cfg);
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

  stylize::test::expect_parity(v, x.grad(), cfg["expected"], w);
}

INSTANTIATE_TEST_SUITE_P(Configs, Parity, ::testing::Values(0, 1));
