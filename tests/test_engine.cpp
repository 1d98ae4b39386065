// The engine on tiny tensors: layer naming, the cut network, preprocessing, losses, the optimiser.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/optim/lbfgs.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include <memory>

#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"
#include "stylize/lbfgs.hpp"
#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/transfer.hpp"
#include "stylize/vgg19.hpp"
#include "support.hpp"
#include "../src/engine/direct_conv.hpp"
#include "../src/engine/lbfgs_passes.hpp"
#include "../src/engine/relu_pool.hpp"
#include "../src/engine/vector_copies.hpp"
#include "../src/engine/winograd.hpp"

using namespace stylize;
using stylize::test::host_reads_during;

namespace {

std::shared_ptr<Vgg19> tiny_net(int last_index = 36, Pooling pooling = Pooling::max) {
  static const auto params = synthetic_vgg19(1);
  return std::make_shared<Vgg19>(params, pooling, last_index);
}

}  // namespace

TEST(Vgg19, LayerNamesFollowTorchvisionIndices) {
  EXPECT_EQ(vgg19_layers().size(), 37u);
  EXPECT_EQ(vgg19_layer_index("conv1_1"), 0);
  EXPECT_EQ(vgg19_layer_index("relu1_1"), 1);
  EXPECT_EQ(vgg19_layer_index("pool1"), 4);
  EXPECT_EQ(vgg19_layer_index("relu4_2"), 22);
  EXPECT_EQ(vgg19_layer_index("relu5_1"), 29);
  EXPECT_EQ(vgg19_layer_index("pool5"), 36);
  EXPECT_THROW(vgg19_layer_index("relu6_1"), UsageError);
  EXPECT_EQ(vgg19_parameter_shape("features.28.weight"), (std::vector<int64_t>{512, 512, 3, 3}));
  EXPECT_EQ(vgg19_parameter_names().size(), 32u);
  EXPECT_EQ(vgg19_min_side(vgg19_layer_index("relu1_1")), 1);
  EXPECT_EQ(vgg19_min_side(vgg19_layer_index("relu4_2")), 8);
  EXPECT_EQ(vgg19_min_side(vgg19_layer_index("relu5_1")), 16);
  EXPECT_EQ(vgg19_min_side(vgg19_layer_index("pool5")), 16);
}

TEST(Vgg19, ForwardGivesFeatureShapesAndStopsAtTheCut) {
  auto net = tiny_net(22);
  at::Tensor x = at::randn({1, 3, 32, 48});
  auto f = net->forward(x, {22, 1, 4});
  EXPECT_EQ(f[0].sizes(), (std::vector<int64_t>{1, 512, 4, 6}));
  EXPECT_EQ(f[1].sizes(), (std::vector<int64_t>{1, 64, 32, 48}));
  EXPECT_EQ(f[2].sizes(), (std::vector<int64_t>{1, 64, 16, 24}));
  EXPECT_GE(f[1].min().item<float>(), 0.0f) << "relu output";
  EXPECT_THROW(net->forward(x, {29}), std::exception) << "layers beyond the cut are not built";
  // A conv output that is also a loss layer must not be altered by the in-place ReLU after it.
  auto g = net->forward(x, {0, 1});
  EXPECT_LT(g[0].min().item<float>(), 0.0f);
  EXPECT_TRUE(at::equal(at::relu(g[0]), g[1]));
}

TEST(Vgg19, WeightsNeverReceiveGradients) {
  auto params = synthetic_vgg19(1);
  Vgg19 net(params, Pooling::avg, 8);
  at::Tensor x = at::randn({1, 3, 16, 16}).set_requires_grad(true);
  net.forward(x, {8})[0].sum().backward();
  EXPECT_TRUE(x.grad().defined());
  for (const auto& [name, t] : params) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_FALSE(t.grad().defined()) << name;
  }
}

namespace {

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

}  // namespace

TEST(Vgg19, Bf16ArithmeticGivesFeaturesAndGradientsCloseToFp32) {
  const auto params = synthetic_vgg19(1);
  // Average pooling: with max pooling, rounding flips which pixel of a 2x2 window wins, which moves
  // gradient between neighbours (fp32 has the same discontinuity; the optimisation test below is
  // the end-to-end check) and would hide how close the arithmetic itself is.
  Vgg19 exact(params, Pooling::avg, 29, Precision::fp32), fast(params, Pooling::avg, 29, Precision::bf16);
  EXPECT_EQ(fast.precision(), Precision::bf16);
  const at::Tensor image = preprocess(stylize::synthetic_image(64, 48, 5), Preprocessing::caffe);
  std::vector<at::Tensor> features[2], grads;
  for (const Vgg19* net : {&exact, &fast}) {
    at::Tensor x = image.clone().set_requires_grad(true);
    auto f = net->forward(x, {1, 11, 22, 29});
    at::Tensor loss = at::zeros({}, at::kFloat);
    for (const auto& t : f) loss = loss + t.to(at::kFloat).pow(2).mean();
    loss.backward();
    features[net == &fast] = f;
    grads.push_back(x.grad());
  }
  for (size_t k = 0; k < 4; ++k) {
    const at::Tensor& f = features[1][k];
    EXPECT_EQ(f.scalar_type(), at::kBFloat16) << "features come out in the network's arithmetic";
    const double d = relative_difference(f.to(at::kFloat), features[0][k]);
    EXPECT_GT(d, 1e-5) << "layer " << k << ": bf16 arithmetic must actually be used";
    EXPECT_LT(d, 0.02) << "layer " << k << " (measured 0.3-0.6%)";
  }
  EXPECT_EQ(grads[1].scalar_type(), at::kFloat);
  EXPECT_LT(relative_difference(grads[1], grads[0]), 0.06) << "measured 2.4%";
}

// mixed: bf16 (channels-last) up to pool2, then fp32 (NCHW, Winograd) from conv3_1. Its first
// features are the bf16 network's bit for bit; its later ones are fp32 and agree with the same
// network on oneDNN's direct kernels to Winograd's rounding; its input gradient is fp32's to bf16's
// error. Average pooling, as above, so that no window's winner flips.
TEST(Vgg19, MixedIsBf16UpToPool2AndFp32FromConv3_1) {
  const auto params = synthetic_vgg19(1);
  const std::vector<int> asked = vgg19_layer_indices({"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"});
  ASSERT_EQ(asked[2], Vgg19::kMixedFp32From + 1) << "relu3_1 follows the first fp32 layer";
  std::vector<at::Tensor> features[4];
  at::Tensor grads[4];
  const Precision kinds[4] = {Precision::fp32, Precision::bf16, Precision::mixed, Precision::mixed};
  for (int k = 0; k < 4; ++k) {
    Vgg19 net(params, Pooling::avg, 29, kinds[k]);
    if (k == 3) net.set_conv_algorithm(ConvAlgorithm::direct);
    EXPECT_EQ(net.layer_type(7), kinds[k] == Precision::fp32 ? at::kFloat : at::kBFloat16) << "conv2_2";
    EXPECT_EQ(net.layer_type(10), kinds[k] == Precision::bf16 ? at::kBFloat16 : at::kFloat) << "conv3_1";
    at::Tensor x = preprocess(stylize::synthetic_image(45, 37, 8), Preprocessing::caffe).set_requires_grad(true);
    features[k] = net.forward(x, asked);
    at::Tensor loss = at::zeros({}, at::kFloat);
    for (const auto& t : features[k]) loss = loss + t.to(at::kFloat).pow(2).mean();
    loss.backward();
    grads[k] = x.grad();
  }
  const auto& mixed = features[2];
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(mixed[i].scalar_type(), at::kBFloat16) << "layer " << asked[i];
    EXPECT_TRUE(at::equal(mixed[i], features[1][i])) << "layer " << asked[i] << ": the bf16 network's arithmetic";
  }
  for (size_t i = 2; i < asked.size(); ++i) {
    EXPECT_EQ(mixed[i].scalar_type(), at::kFloat) << "layer " << asked[i];
    EXPECT_TRUE(mixed[i].is_contiguous()) << "layer " << asked[i] << ": fp32 runs NCHW";
    EXPECT_FALSE(at::equal(mixed[i], features[3][i])) << "layer " << asked[i] << ": fp32 layers run Winograd";
    EXPECT_LT(relative_difference(mixed[i], features[3][i]), 1e-4) << "layer " << asked[i] << ": Winograd against direct";
    const double d = relative_difference(mixed[i], features[0][i]);
    EXPECT_GT(d, 1e-5) << "layer " << asked[i] << ": its input came through bf16 layers";
    EXPECT_LT(d, 0.02) << "layer " << asked[i];
  }
  EXPECT_EQ(grads[2].scalar_type(), at::kFloat);
  EXPECT_LT(relative_difference(grads[2], grads[0]), 0.06) << "as bf16's (measured 2.4% there)";
  // The two fp32 parts differ by ~1e-6; their gradients are then rounded to bf16 at the cast back,
  // where a different rounding moves a value by up to 2^-8: measured 1.3e-3.
  EXPECT_LT(relative_difference(grads[2], grads[3]), 1e-2) << "Winograd against direct, through the cast";
  std::printf("[ measured ] mixed against fp32: relu5_1 %.2e, input gradient %.2e; against its direct pass: %.2e, %.2e\n",
              relative_difference(mixed[4], features[0][4]), relative_difference(grads[2], grads[0]),
              relative_difference(mixed[4], features[3][4]), relative_difference(grads[2], grads[3]));
}

// A ReLU whose output is no feature is fused with the max pool after it (ReluMaxPoolOnePass in
// vgg19.cpp, one pass each way in either precision; the ReLU's rule applied to the pooled gradient). Asking for the conv outputs as well turns the
// fusion off without changing any arithmetic, so both passes must give the same features and the
// same input gradient, bit for bit: in both precisions, on odd sizes (pools drop the last row and
// column), for max pooling (fused) and average pooling (never fused, the same check).
TEST(Vgg19, ReluFusedWithMaxPoolGivesTheSameGradientAsTheSeparateOps) {
  const auto params = synthetic_vgg19(1);
  for (Pooling pooling : {Pooling::max, Pooling::avg}) {
    for (Precision precision : {Precision::fp32, Precision::bf16, Precision::mixed}) {
      Vgg19 net(params, pooling, 19, precision);
      const at::Tensor image = preprocess(stylize::synthetic_image(37, 29, 11), Preprocessing::caffe);
      const at::Tensor weights = at::randn({1, 256, 9, 7}, at::TensorOptions().dtype(at::kFloat));
      at::Tensor features[2], grads[2];
      // {relu1_1, pool3} fuses relu1_2+pool1, relu2_2+pool2, relu3_4+pool3; adding conv1_2, conv2_2
      // and conv3_4 as features (unused by the loss) keeps every ReLU separate.
      const std::vector<int> fused = {1, 18}, separate = {1, 18, 2, 7, 16};
      for (int k = 0; k < 2; ++k) {
        at::Tensor x = image.clone().set_requires_grad(true);
        auto f = net.forward(x, k == 0 ? fused : separate);
        ASSERT_EQ(f[1].sizes(), (std::vector<int64_t>{1, 256, 4, 3}));  // 37x29 -> 18x14 -> 9x7 -> 4x3
        (f[0].to(at::kFloat).pow(2).mean() + (f[1].to(at::kFloat) * weights.narrow(2, 0, 4).narrow(3, 0, 3)).sum())
            .backward();
        features[k] = f[1];
        grads[k] = x.grad();
      }
      const std::string what = std::string(pooling == Pooling::max ? "max" : "avg") + " pooling, " + to_string(precision);
      EXPECT_TRUE(at::equal(features[0], features[1])) << what;
      EXPECT_TRUE(at::equal(grads[0], grads[1])) << what << ": max |difference| "
                                                 << (grads[0] - grads[1]).abs().max().item<double>();
      EXPECT_GT(grads[0].abs().max().item<double>(), 0.0) << what;
    }
  }
}

// Winograd's F(4×4, 3×3) against the definition, computed in double: odd sizes (tiles cut at the
// edge), images smaller than a tile, batches, a channels-last input, with and without a bias. A
// transposed, flipped or shifted transform is wrong by O(1); the arithmetic's own error is ~1e-5.
TEST(Winograd, ConvolutionMatchesTheDefinitionComputedInDouble) {
  at::manual_seed(3);
  const int64_t shapes[][5] = {{1, 3, 5, 7, 9}, {2, 4, 6, 8, 8}, {1, 2, 3, 1, 1}, {2, 5, 4, 13, 6}, {1, 16, 32, 21, 30}};
  for (const auto& s : shapes) {
    const int64_t n = s[0], c = s[1], k = s[2], h = s[3], w = s[4];
    const at::Tensor x = at::randn({n, c, h, w}), weight = at::randn({k, c, 3, 3}) / std::sqrt(9.0 * c);
    const at::Tensor bias = at::randn({k});
    const at::Tensor u = winograd_weights(weight);
    ASSERT_EQ(u.sizes(), (std::vector<int64_t>{36, k, c}));
    for (bool with_bias : {true, false}) {
      const at::Tensor b = with_bias ? bias : at::Tensor();
      const at::Tensor want = at::conv2d(x.to(at::kDouble), weight.to(at::kDouble),
                                         with_bias ? bias.to(at::kDouble) : at::Tensor(), 1, 1);
      for (bool channels_last : {false, true}) {
        const at::Tensor in = channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
        const at::Tensor got = winograd_conv3x3(in, u, b);
        ASSERT_EQ(got.sizes(), want.sizes());
        const double err = ((got.to(at::kDouble) - want).abs().max() / want.abs().max()).item<double>();
        EXPECT_LT(err, 5e-5) << n << "x" << c << "x" << h << "x" << w << " -> " << k
                             << (with_bias ? " with bias" : "") << (channels_last ? ", channels-last" : "");
      }
    }
  }
}

// The input gradient is the adjoint of the forward arithmetic: <conv(x), dy> = <x, grad(dy)> (in
// double, both sides from the fp32 results), and it is the definition's gradient to the same ~1e-5.
TEST(Winograd, InputGradientIsTheConvolutionsAdjoint) {
  at::manual_seed(4);
  const int64_t shapes[][5] = {{1, 3, 5, 7, 9}, {2, 6, 4, 9, 4}, {1, 2, 3, 1, 2}, {1, 24, 16, 19, 26}};
  for (const auto& s : shapes) {
    const int64_t n = s[0], c = s[1], k = s[2], h = s[3], w = s[4];
    const at::Tensor x = at::randn({n, c, h, w}), weight = at::randn({k, c, 3, 3}) / std::sqrt(9.0 * c);
    const at::Tensor dy = at::randn({n, k, h, w});
    const at::Tensor u = winograd_weights(weight);
    const at::Tensor dx = winograd_conv3x3_input_gradient(dy, u);
    ASSERT_EQ(dx.sizes(), x.sizes());
    const double lhs = (winograd_conv3x3(x, u, at::Tensor()).to(at::kDouble) * dy.to(at::kDouble)).sum().item<double>();
    const double rhs = (x.to(at::kDouble) * dx.to(at::kDouble)).sum().item<double>();
    const double scale = (x.abs() * dx.abs()).sum().item<double>();
    EXPECT_LT(std::abs(lhs - rhs) / scale, 1e-5) << c << "x" << h << "x" << w;
    at::Tensor xd = x.to(at::kDouble).set_requires_grad(true);
    (at::conv2d(xd, weight.to(at::kDouble), {}, 1, 1) * dy.to(at::kDouble)).sum().backward();
    const double err = ((dx.to(at::kDouble) - xd.grad()).abs().max() / xd.grad().abs().max()).item<double>();
    EXPECT_LT(err, 5e-5) << c << "x" << h << "x" << w;
  }
}

// The copies of a loop (vector_copies.hpp) this CPU runs besides the baseline, widest first.
std::vector<VectorCopy> wider_copies_here() {
  std::vector<VectorCopy> copies;
  for (VectorCopy c : {VectorCopy::avx512, VectorCopy::avx2}) {
    if (vector_copy_runs_here(c)) copies.push_back(c);
  }
  return copies;
}

// The Winograd transforms are compiled for AVX-512, AVX2 and the baseline, and the engine runs the
// widest the CPU allows: all must round alike, bit for bit, or a run's pixels would depend on the
// CPU. Each copy this CPU runs against the baseline: widths of 1 to 17 tiles (the vector loops'
// remainders), cut tiles, batches, bias or none, forward and input gradient. Failed with FMA
// contraction left on (AVX-512 brings FMA; GCC contracts by default in C++).
TEST(Winograd, VectorisedTransformsRoundAsTheBaseline) {
  const std::vector<VectorCopy> copies = wider_copies_here();
  if (copies.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512: one copy only";
  EXPECT_EQ(resolve_vector_copy(VectorCopy::widest), copies[0]);
  at::manual_seed(5);
  const int64_t shapes[][5] = {{1, 3, 5, 1, 1}, {2, 5, 7, 9, 13}, {1, 16, 8, 6, 67}, {1, 8, 24, 21, 30}, {1, 32, 32, 40, 36}};
  for (const auto& s : shapes) {
    const int64_t n = s[0], c = s[1], k = s[2], h = s[3], w = s[4];
    const at::Tensor x = at::randn({n, c, h, w}), dy = at::randn({n, k, h, w}), bias = at::randn({k});
    const at::Tensor u = winograd_weights(at::randn({k, c, 3, 3}) / std::sqrt(9.0 * c));
    const at::Tensor base[3] = {winograd_conv3x3(x, u, bias, VectorCopy::baseline),
                                winograd_conv3x3(x, u, {}, VectorCopy::baseline),
                                winograd_conv3x3_input_gradient(dy, u, VectorCopy::baseline)};
    for (VectorCopy t : copies) {
      const at::Tensor got[3] = {winograd_conv3x3(x, u, bias, t), winograd_conv3x3(x, u, {}, t),
                                 winograd_conv3x3_input_gradient(dy, u, t)};
      const char* what[3] = {"forward with bias", "forward", "input gradient"};
      for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(at::equal(got[i], base[i])) << to_string(t) << " " << what[i] << ", " << c << "->" << k << " at "
                                                << h << "x" << w << ": max |difference| "
                                                << (got[i] - base[i]).abs().max().item<double>();
      }
    }
  }
}

// The hand-written direct 3×3 kernels (conv1_1's, direct_conv.hpp) against the definition computed
// in double, in every copy this CPU runs: widths from 1 to past two of the widest copy's chunks (64
// columns) with and without a tail, so the first, last, single and middle chunks all occur; heights
// 1 to 7 (rows of padding above and below); input channels 1 to 5 (blocks of three and what is left
// for the gradient), output channels 1 to 9 (blocks of four and what is left for the forward);
// batches, bias or none, a channels-last input. A shifted, flipped or transposed tap is wrong by O(1);
// fp32 sums of these lengths are within ~1e-6.
TEST(DirectConv, ConvolutionAndInputGradientMatchTheDefinitionInDouble) {
  std::vector<VectorCopy> copies = wider_copies_here();
  copies.push_back(VectorCopy::baseline);
  at::manual_seed(7);
  const int64_t shapes[][5] = {{1, 3, 64, 7, 1},  {2, 3, 8, 5, 17},  {1, 1, 5, 1, 64},  {1, 2, 9, 2, 65},
                               {1, 4, 4, 3, 131}, {2, 5, 3, 4, 130}, {1, 3, 64, 6, 37}, {1, 3, 1, 3, 2}};
  for (const auto& s : shapes) {
    const int64_t n = s[0], c = s[1], k = s[2], h = s[3], w = s[4];
    const at::Tensor x = at::randn({n, c, h, w}), weight = at::randn({k, c, 3, 3}), bias = at::randn({k});
    const at::Tensor dy = at::randn({n, k, h, w});
    const at::Tensor xd = x.to(at::kDouble).set_requires_grad(true);
    at::Tensor want = at::conv2d(xd, weight.to(at::kDouble), bias.to(at::kDouble), 1, 1);
    (want * dy.to(at::kDouble)).sum().backward();
    want = want.detach();
    const at::Tensor want_dx = xd.grad(), want_nobias = want - bias.to(at::kDouble).view({1, k, 1, 1});
    auto rel = [](const at::Tensor& got, const at::Tensor& ref) {
      return ((got.to(at::kDouble) - ref).abs().max() / ref.abs().max()).item<double>();
    };
    for (VectorCopy t : copies) {
      const std::string what = std::string(to_string(t)) + ", " + std::to_string(n) + "x" + std::to_string(c) + "x" +
                               std::to_string(h) + "x" + std::to_string(w) + " -> " + std::to_string(k);
      const at::Tensor y = direct_conv3x3(x, weight, bias, t);
      ASSERT_EQ(y.sizes(), want.sizes()) << what;
      EXPECT_LT(rel(y, want), 1e-6) << what;
      EXPECT_LT(rel(direct_conv3x3(x.contiguous(at::MemoryFormat::ChannelsLast), weight, {}, t), want_nobias), 1e-6)
          << what << ", channels-last, no bias";
      const at::Tensor dx = direct_conv3x3_input_gradient(dy, weight, t);
      ASSERT_EQ(dx.sizes(), x.sizes()) << what;
      EXPECT_LT(rel(dx, want_dx), 1e-6) << what << ", input gradient";
    }
  }
}

// Each output is one row's sum in a fixed order, whichever thread computes it: the same bits on one
// thread as on two, forward and input gradient (an image of 40 rows is split between them).
TEST(DirectConv, SameBitsOnOneThreadAndTwo) {
  at::manual_seed(8);
  const at::Tensor x = at::randn({1, 3, 40, 70}), weight = at::randn({64, 3, 3, 3}), bias = at::randn({64});
  const at::Tensor dy = at::randn({1, 64, 40, 70});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor y1 = direct_conv3x3(x, weight, bias), dx1 = direct_conv3x3_input_gradient(dy, weight);
  at::set_num_threads(2);
  const at::Tensor y2 = direct_conv3x3(x, weight, bias), dx2 = direct_conv3x3_input_gradient(dy, weight);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(y1, y2));
  EXPECT_TRUE(at::equal(dx1, dx2));
}

TEST(DirectConv, RefusesWhatItCannotRun) {
  const at::Tensor w = at::randn({4, 3, 3, 3});
  EXPECT_THROW(direct_conv3x3(at::randn({1, 3, 8, 8}).to(at::kBFloat16), w, {}), std::invalid_argument);
  EXPECT_THROW(direct_conv3x3(at::randn({1, 5, 8, 8}), w, {}), std::invalid_argument);  // channels
  EXPECT_THROW(direct_conv3x3(at::randn({3, 8, 8}), w, {}), std::invalid_argument);
  EXPECT_THROW(direct_conv3x3(at::randn({1, 3, 8, 8}), w, at::randn({5})), std::invalid_argument);
  EXPECT_THROW(direct_conv3x3(at::randn({1, 3, 8, 8}), at::randn({4, 3, 5, 5}), {}), std::invalid_argument);
  EXPECT_THROW(direct_conv3x3_input_gradient(at::randn({1, 3, 8, 8}), w), std::invalid_argument);  // K = 4
  EXPECT_THROW(direct_conv3x3_input_gradient(at::randn({1, 4, 8, 8}), w.to(at::kDouble)), std::invalid_argument);
}

namespace {

struct PoolResult {
  at::Tensor pooled, indices, dx;  // indices: ATen's, the input position (row * width + column) of each winner
};

// ATen's separate ops, as the engine ran them before the one-pass loops: relu, then
// max_pool2d_with_indices and its backward after threshold_backward's rule.
PoolResult aten_relu_max_pool(const at::Tensor& x, const at::Tensor& grad) {
  if (x.size(2) < 2 || x.size(3) < 2) {  // no window at all: nothing pooled, a zero gradient
    return {at::empty(grad.sizes(), x.options()), at::empty(grad.sizes(), x.options().dtype(at::kLong)), at::zeros_like(x)};
  }
  const at::Tensor xr = at::relu(x);
  auto [pooled, indices] = at::max_pool2d_with_indices(xr, {2, 2}, {2, 2});
  return {pooled, indices,
          at::max_pool2d_with_indices_backward(grad.masked_fill(pooled.le(0), 0), xr, {2, 2}, {2, 2}, {0, 0}, {1, 1},
                                               false, indices)};
}

// Activations for the one-pass loops: normal values; ties (many windows hold equal values, and
// at::round gives -0 for small negatives); NaN, two of them in plane 0's first window (a later NaN
// wins); and in the last plane's last window a -0 first among negatives (at::relu keeps -0, so -0
// is pooled).
at::Tensor activation_with_ties_and_nan(at::IntArrayRef shape) {
  at::Tensor x = at::randn(shape);
  x = at::where(at::rand_like(x) < 0.3, at::round(x), x);
  if (x.numel() > 8) {
    x.view(-1)[3] = std::nanf("");
    x.view(-1)[x.numel() - 5] = std::nanf("");
  }
  const int64_t n = shape[0], c = shape[1], h = shape[2], w = shape[3];
  if (h >= 2 && w >= 2) {
    x[0][0][0][0] = std::nanf("");
    x[0][0][1][0] = std::nanf("");
    if (n * c > 1 || h >= 4 || w >= 4) {
      const int64_t i = (h / 2 - 1) * 2, j = (w / 2 - 1) * 2;
      at::Tensor last = x[n - 1][c - 1];
      last[i][j] = -0.0f, last[i][j + 1] = -1.0f, last[i + 1][j] = -0.0f, last[i + 1][j + 1] = -2.0f;
    }
  }
  return x;
}

// Equal to the bit, NaN positions aside (a NaN's payload is compared as "a NaN").
void expect_same_bits(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(at::equal(got.isnan(), want.isnan())) << what << ": NaN elsewhere";
  const at::ScalarType bits = got.element_size() == 2 ? at::kShort : at::kInt;
  const at::Tensor mask = got.isnan();
  const at::Tensor a = got.contiguous().view(bits).masked_fill(mask, 0), b = want.contiguous().view(bits).masked_fill(mask, 0);
  EXPECT_TRUE(at::equal(a, b)) << what << ": " << a.ne(b).sum().item<int64_t>() << " values differ in their bits (max |difference| "
                               << (at::nan_to_num(got.to(at::kFloat)) - at::nan_to_num(want.to(at::kFloat))).abs().max().item<double>()
                               << ")";
}

// Every winner as ATen names it: the input position (2i + k / 2) * width + 2j + k % 2 of window (i, j).
void expect_atens_winners(const at::Tensor& winner, const at::Tensor& indices, int64_t width, const std::string& what) {
  const at::Tensor k = winner.to(at::kLong);
  const at::Tensor i = at::arange(winner.size(2)).view({1, 1, -1, 1}), j = at::arange(winner.size(3)).view({1, 1, 1, -1});
  EXPECT_TRUE(at::equal((2 * i + k.div(2, "floor")) * width + 2 * j + k.remainder(2), indices)) << what << ": winners";
}

// Gradients with -0 among them (ATen sums onto zeros: a -0 passed on becomes +0).
at::Tensor pooled_gradient(at::IntArrayRef shape) {
  const at::Tensor g = at::randn(shape);
  return at::where(at::rand_like(g) < 0.2, at::full({}, -0.0f), g);
}

}  // namespace

// The fused ReLU + 2×2 max pool for NCHW fp32 activations against ATen's separate ops, in every copy
// this CPU runs: odd sizes, batches, ties, negatives only, -0, NaN (two in a window). Winners must be
// ATen's (the first largest, a NaN over anything, a later NaN over an earlier one) and every value the
// same to the bit.
TEST(ReluPool, EveryCopyGivesAtensValuesAndGradient) {
  at::manual_seed(6);
  const int64_t shapes[][4] = {{1, 3, 5, 7}, {2, 4, 8, 38}, {1, 2, 2, 2}, {1, 5, 9, 67}, {1, 1, 1, 4}, {1, 2, 4, 1}, {2, 3, 7, 9}};
  std::vector<VectorCopy> copies = wider_copies_here();
  copies.push_back(VectorCopy::baseline);
  for (const auto& s : shapes) {
    const at::Tensor x = activation_with_ties_and_nan({s[0], s[1], s[2], s[3]});
    const at::Tensor grad = pooled_gradient({s[0], s[1], s[2] / 2, s[3] / 2});
    const PoolResult want = aten_relu_max_pool(x, grad);
    for (VectorCopy t : copies) {
      const std::string what = std::string(to_string(t)) + ", " + std::to_string(s[0]) + "x" + std::to_string(s[1]) +
                               "x" + std::to_string(s[2]) + "x" + std::to_string(s[3]);
      auto [pooled, winner] = relu_max_pool_nchw(x, t);
      expect_same_bits(pooled, want.pooled, what + ", pooled");
      expect_atens_winners(winner, want.indices, s[3], what);
      expect_same_bits(relu_max_pool_nchw_backward(grad, pooled, winner, s[2], s[3], t), want.dx, what + ", gradient");
    }
  }
}

// The same for channels-last bf16 (the bf16 pass), against ATen's ops on the same bf16 channels-last
// tensors: channel counts below, at and above a vector's width (1, 3, 16, 40, 64), odd sizes, batches
// with an odd height, ties (bf16 rounding makes many more), -0, NaN. Outputs keep the layout, and the
// gradient's type and layout are converted (an fp32 NCHW gradient gives the same result).
TEST(ReluPool, ChannelsLastBf16EveryCopyGivesAtensValuesAndGradient) {
  at::manual_seed(7);
  const int64_t shapes[][4] = {{1, 3, 5, 7}, {2, 16, 8, 38}, {1, 64, 2, 2}, {1, 40, 9, 67}, {1, 1, 1, 4},
                               {1, 64, 4, 1}, {2, 1, 6, 5}, {2, 16, 7, 9}, {3, 3, 5, 6}};
  std::vector<VectorCopy> copies = wider_copies_here();
  copies.push_back(VectorCopy::baseline);
  const auto cl = at::MemoryFormat::ChannelsLast;
  for (const auto& s : shapes) {
    const at::Tensor x = activation_with_ties_and_nan({s[0], s[1], s[2], s[3]}).to(at::kBFloat16).contiguous(cl);
    const at::Tensor grad = pooled_gradient({s[0], s[1], s[2] / 2, s[3] / 2}).to(at::kBFloat16).contiguous(cl);
    const PoolResult want = aten_relu_max_pool(x, grad);
    for (VectorCopy t : copies) {
      const std::string what = std::string(to_string(t)) + ", " + std::to_string(s[0]) + "x" + std::to_string(s[1]) +
                               "x" + std::to_string(s[2]) + "x" + std::to_string(s[3]);
      auto [pooled, winner] = relu_max_pool_nhwc(x, t);
      EXPECT_TRUE(pooled.is_contiguous(cl) && winner.is_contiguous(cl)) << what;
      expect_same_bits(pooled, want.pooled, what + ", pooled");
      expect_atens_winners(winner, want.indices, s[3], what);
      for (const at::Tensor& g : {grad, grad.to(at::kFloat).contiguous()}) {
        const at::Tensor dx = relu_max_pool_nhwc_backward(g, pooled, winner, s[2], s[3], t);
        EXPECT_TRUE(dx.is_contiguous(cl)) << what;
        expect_same_bits(dx, want.dx, what + ", gradient");
      }
    }
  }
  EXPECT_THROW(relu_max_pool_nhwc(at::randn({1, 4, 4, 4}).to(at::kBFloat16)), std::invalid_argument);  // NCHW
  EXPECT_THROW(relu_max_pool_nhwc(at::randn({1, 4, 4, 4}).contiguous(cl)), std::invalid_argument);     // fp32
}

TEST(Winograd, RefusesWhatItCannotRun) {
  const at::Tensor u = winograd_weights(at::randn({4, 3, 3, 3}));
  EXPECT_THROW(winograd_conv3x3(at::randn({1, 3, 8, 8}).to(at::kBFloat16), u, {}), std::invalid_argument);
  EXPECT_THROW(winograd_conv3x3(at::randn({1, 5, 8, 8}), u, {}), std::invalid_argument);  // channels
  EXPECT_THROW(winograd_conv3x3(at::randn({3, 8, 8}), u, {}), std::invalid_argument);
  EXPECT_THROW(winograd_conv3x3(at::randn({1, 3, 8, 8}), u, at::randn({5})), std::invalid_argument);
  EXPECT_THROW(winograd_conv3x3_input_gradient(at::randn({1, 3, 8, 8}), u), std::invalid_argument);  // K = 4
  EXPECT_THROW(winograd_weights(at::randn({4, 3, 5, 5})), std::invalid_argument);
}

// The fp32 CPU pass runs conv1_2 .. conv5_1 by Winograd and conv1_1 on the engine's direct kernels
// (ConvAlgorithm::automatic); oneDNN's direct kernels are the reference. Every style layer's
// features and the input gradient of a loss over them agree to 1e-4 of their largest value: max and
// average pooling, an odd size (pools drop the last row and column), down to relu5_1. A pass that
// silently fell back to oneDNN would agree exactly, so the test also checks that the two differ at all.
// Selections can flip. Max pooling: where two values of a window are within the last digits of each
// other, the other arithmetic can pick the other winner, which moves that window's gradient to a
// neighbouring pixel and, through the layers below, changes the input gradient by up to ~1% over a
// wide area (one such window at pool3, with AVX2 kernels, gave 0.8%). ReLU: a pre-activation within
// the last digits of zero passes its gradient on one side only (one of 15360 at conv4_3 gave 0.13%
// once conv1_2 and conv2_1 ran by Winograd). So every convolution's output is asked for too (that
// turns the in-place ReLUs and the ReLU/pool fusion off without changing any arithmetic: the test
// above), the signs and the winners compared, and the gradient held to 1e-4 when nothing flipped;
// when something did, only the count is.
TEST(Vgg19, WinogradPassGivesTheDirectPassFeaturesAndGradient) {
  const auto params = synthetic_vgg19(1);
  const std::vector<int> style = vgg19_layer_indices({"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"});
  const std::vector<int> convs = vgg19_layer_indices({"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                                      "conv3_3", "conv3_4", "conv4_1", "conv4_2", "conv4_3", "conv4_4",
                                                      "conv5_1"});
  const std::vector<int> before_pools = vgg19_layer_indices({"conv1_2", "conv2_2", "conv3_4", "conv4_4"});
  std::vector<int> asked = style;
  asked.insert(asked.end(), convs.begin(), convs.end());
  auto rel = [](const at::Tensor& a, const at::Tensor& b) { return ((a - b).abs().max() / b.abs().max()).item<double>(); };
  for (Pooling pooling : {Pooling::max, Pooling::avg}) {
    std::vector<at::Tensor> features[2];
    at::Tensor grads[2];
    for (int k = 0; k < 2; ++k) {
      Vgg19 net(params, pooling, 29, Precision::fp32);
      net.set_conv_algorithm(k == 0 ? ConvAlgorithm::direct : ConvAlgorithm::automatic);
      at::Tensor x = preprocess(stylize::synthetic_image(53, 45, 12), Preprocessing::caffe).set_requires_grad(true);
      features[k] = net.forward(x, asked);
      at::Tensor loss = at::zeros({}, at::kFloat);
      for (size_t i = 0; i < style.size(); ++i) loss = loss + features[k][i].pow(2).mean();
      loss.backward();
      grads[k] = x.grad();
    }
    const std::string what = pooling == Pooling::max ? "max pooling" : "avg pooling";
    for (size_t i = 0; i < asked.size(); ++i) {
      EXPECT_LT(rel(features[1][i], features[0][i]), 1e-4) << what << ", layer " << asked[i];
    }
    EXPECT_LT(rel(features[1][0], features[0][0]), 1e-6) << what << ": relu1_1 is before any Winograd layer (conv1_1 direct)";
    EXPECT_FALSE(at::equal(features[1][4], features[0][4])) << what << ": relu5_1 should come from Winograd layers";
    int64_t flipped = 0, values = 0, moved = 0, windows = 0;
    for (size_t i = style.size(); i < asked.size(); ++i) {
      flipped += ((features[0][i] > 0) != (features[1][i] > 0)).sum().item<int64_t>();
      values += features[0][i].numel();
      if (pooling != Pooling::max ||
          std::find(before_pools.begin(), before_pools.end(), asked[i]) == before_pools.end()) {
        continue;
      }
      const auto a = at::max_pool2d_with_indices(at::relu(features[0][i]).contiguous(), {2, 2}, {2, 2});
      const auto b = at::max_pool2d_with_indices(at::relu(features[1][i]).contiguous(), {2, 2}, {2, 2});
      const at::Tensor positive = std::get<0>(a) > 0;  // a window of zeros passes no gradient
      moved += ((std::get<1>(a) != std::get<1>(b)) & positive).sum().item<int64_t>();
      windows += positive.sum().item<int64_t>();
    }
    if (moved == 0 && flipped == 0) {
      EXPECT_LT(rel(grads[1], grads[0]), 1e-4) << what;
    } else {  // each flip moves or drops one value's gradient: ~1% at most seen
      EXPECT_LE(moved, windows / 1000) << what << ": winners moved in " << moved << " of " << windows << " windows";
      EXPECT_LE(flipped, values / 10000) << what << ": " << flipped << " of " << values << " pre-activations changed sign";
      EXPECT_LT(rel(grads[1], grads[0]), 3e-2) << what;
    }
    std::printf("[ measured ] %s: gradient max |difference| %.2e of its largest; %lld of %lld pooling winners moved, "
                "%lld of %lld pre-activations changed sign\n",
                what.c_str(), rel(grads[1], grads[0]), static_cast<long long>(moved), static_cast<long long>(windows),
                static_cast<long long>(flipped), static_cast<long long>(values));
  }
}

// conv1_1 in fp32 (ConvAlgorithm::automatic) runs on the engine's own direct kernels, forward and
// input gradient: relu1_1 and the image gradient of a loss on it are oneDNN's (the direct pass's) to
// fp32 rounding, and not the same bits (a pass that fell back to oneDNN would give them). Odd sizes,
// batch of two (rows and chunks cut at both edges, images apart).
TEST(Vgg19, Conv1_1RunsTheEnginesDirectKernels) {
  const auto params = synthetic_vgg19(1);
  const std::vector<int> relu1_1 = vgg19_layer_indices({"relu1_1"});
  const at::Tensor image = at::cat({preprocess(stylize::synthetic_image(29, 37, 3), Preprocessing::caffe),
                                    preprocess(stylize::synthetic_image(29, 37, 4), Preprocessing::caffe)});
  at::manual_seed(6);
  const at::Tensor upstream = at::randn({2, 64, 29, 37});
  at::Tensor features[2], grads[2];
  for (int k = 0; k < 2; ++k) {
    Vgg19 net(params, Pooling::max, 1, Precision::fp32);
    net.set_conv_algorithm(k == 0 ? ConvAlgorithm::direct : ConvAlgorithm::automatic);
    at::Tensor x = image.clone().set_requires_grad(true);
    features[k] = net.forward(x, relu1_1)[0];
    (features[k] * upstream).sum().backward();
    grads[k] = x.grad();
  }
  auto rel = [](const at::Tensor& a, const at::Tensor& b) { return ((a - b).abs().max() / b.abs().max()).item<double>(); };
  const double frel = rel(features[1], features[0]), grel = rel(grads[1], grads[0]);
  EXPECT_LT(frel, 1e-6) << "relu1_1, the engine's forward against oneDNN's";
  EXPECT_LT(grel, 1e-5) << "the image gradient, the engine's against oneDNN's";
  EXPECT_GT(frel, 0.0) << "the automatic pass should run conv1_1's forward on the engine's kernel";
  EXPECT_GT(grel, 0.0) << "the automatic pass should run conv1_1's input gradient on the engine's kernel";
  std::printf("[ measured ] conv1_1, the engine's direct kernels against oneDNN: relu1_1 max |difference| %.2e, "
              "input gradient %.2e of its largest\n", frel, grel);
}

// CPUID read directly agrees with the kernel's own reading of it (/proc/cpuinfo's flags, which Linux
// also clears for what the OS does not enable), feature by feature, on whatever CPU runs the test.
TEST(Runtime, CpuFeaturesFromCpuidMatchTheKernelsFlags) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = line.substr(line.find(':') + 1) + " ";
      break;
    }
  }
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo on this machine";
  auto has = [&](const std::string& f) { return flags.find(" " + f + " ") != std::string::npos; };
  const CpuVectorFeatures f = cpu_vector_features();
  EXPECT_EQ(f.avx2_fma, has("avx2") && has("fma"));
  EXPECT_EQ(f.avx512, has("avx512f") && has("avx512dq") && has("avx512bw") && has("avx512vl"));
  EXPECT_EQ(f.avx512_bf16, f.avx512 && has("avx512_bf16"));
  EXPECT_EQ(f.amx_bf16, f.avx512_bf16 && has("amx_bf16") && has("amx_tile"));
  std::printf("[ measured ] avx2+fma %d, avx512 %d, avx512_bf16 %d, amx_bf16 %d\n", f.avx2_fma, f.avx512,
              f.avx512_bf16, f.amx_bf16);
}

// Engine messages name request fields; the CLI renders them as flags, job files and HTTP as keys.
TEST(Errors, FieldNamesRenderInEachFrontEndsWords) {
  const std::string m = "use a larger " + field("size") + " (or " + field("style_scale") + "), or shallower layers";
  EXPECT_EQ(render_fields(m, FieldWords::flag), "use a larger --size (or --style-scale), or shallower layers");
  EXPECT_EQ(render_fields(m, FieldWords::key), "use a larger 'size' (or 'style_scale'), or shallower layers");
  EXPECT_EQ(render_fields("no fields here", FieldWords::flag), "no fields here");
  EXPECT_EQ(render_fields("an odd ` quote", FieldWords::flag), "an odd ` quote");
  const auto r = error_report(std::make_exception_ptr(UsageError(field("lbfgs_history") + " must be >= 1")),
                              FieldWords::flag);
  EXPECT_EQ(r.code, ExitCode::usage);
  EXPECT_EQ(r.message, "--lbfgs-history must be >= 1");
  EXPECT_EQ(error_report(std::make_exception_ptr(std::bad_alloc())).code, ExitCode::resources);
}

// A user's text reads as it is beside field names: backticks in a quoted name are not taken for a
// field, and a control character cannot split the one-line message.
TEST(Errors, QuotedUserTextKeepsItsBackticksAndStaysOneLine) {
  const std::string m = "cannot read " + in_quotes("my `best` photo.jpg") + "; check " + field("tile") + " and " +
                        in_quotes("``") + field("size");
  EXPECT_EQ(render_fields(m, FieldWords::flag), "cannot read 'my `best` photo.jpg'; check --tile and '``'--size");
  EXPECT_EQ(render_fields(m, FieldWords::key), "cannot read 'my `best` photo.jpg'; check 'tile' and '``''size'");
  EXPECT_EQ(in_quotes("a\nb\tc\r\x01\x7f"), "$'a\\nb\\tc\\r\\x01\\x7f'");
  // A backslash is text in plain quotes; beside a control character or a quote it is escaped, as
  // is the quote, so the two names below cannot be mistaken for each other and each pastes into
  // bash as itself ('it's.jpg' would not).
  EXPECT_EQ(in_quotes("two\\nlines.jpg"), "'two\\nlines.jpg'");
  EXPECT_EQ(in_quotes("two\\nlines's.jpg"), "$'two\\\\nlines\\'s.jpg'");
  EXPECT_EQ(in_quotes("two\nlines's\\.jpg"), "$'two\\nlines\\'s\\\\.jpg'");
  EXPECT_EQ(as_literal("a\xc2\x9b" "b"), "a\\u009bb") << "outside $'...': the code point";
  // For a suggested shell command: the same string, backticks left for as_literal to double.
  EXPECT_EQ(ansi_c_string("a`\n'"), "$'a`\\n\\''");
  EXPECT_EQ(render_fields(as_literal(ansi_c_string("a`\n")), FieldWords::flag), "$'a`\\n'");
  EXPECT_EQ(in_quotes("Tübingen.jpg"), "'Tübingen.jpg'");  // UTF-8 bytes are not control characters
  EXPECT_EQ(in_quotes("a\xc2\x9b" "31m\xc2\xa0" "b"), "$'a\\xc2\\x9b31m\xc2\xa0" "b'");  // C1 CSI as its bytes; U+00A0 is text
  // A name that is no identifier is quoted as user text (an unknown setting from a job file).
  EXPECT_EQ(field("we`ird name"), "'we``ird name'");
  EXPECT_EQ(render_fields("unknown setting " + field("we`ird name"), FieldWords::flag), "unknown setting 'we`ird name'");
  // Backticks that are not a marker stay text: around anything but an identifier, or unclosed.
  EXPECT_EQ(render_fields("`two words` and `tile", FieldWords::flag), "`two words` and `tile");
  EXPECT_EQ(render_fields("`tile``", FieldWords::key), "'tile'`");
  // Text rendered once and put into another message reads the same after the second render.
  const std::string inner = render_fields(in_quotes("x`y`.jpg") + " " + field("style_blend"), FieldWords::key);
  EXPECT_EQ(render_fields("filter file: " + as_literal(inner), FieldWords::flag), "filter file: 'x`y`.jpg' 'style_blend'");
  const auto r = error_report(std::make_exception_ptr(InputError("cannot read " + in_quotes("`a`.png"))), FieldWords::flag);
  EXPECT_EQ(r.message, "cannot read '`a`.png'");
  // OpenCV's allocation failure (a std::exception here) is out of memory, exit 7, not a bug.
  const auto cv = error_report(std::make_exception_ptr(std::runtime_error(
      "OpenCV(4.6.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 38654705664 bytes")));
  EXPECT_EQ(cv.code, ExitCode::resources);
  EXPECT_EQ(cv.message.rfind("out of memory: ", 0), 0u) << cv.message;
}

TEST(Vgg19, AutoPrecisionIsBf16OnAmxMixedOnAvx512Bf16Fp32Elsewhere) {
  CpuVectorFeatures amx{true, true, true, true}, avx512_bf16{true, true, true, false};
  const at::Device cpu(at::kCPU), cuda(at::kCUDA, 0);
  EXPECT_EQ(resolve_precision("auto", cpu, amx), Precision::bf16);
  EXPECT_EQ(resolve_precision("auto", cpu, avx512_bf16), Precision::mixed)
      << "AVX512-BF16 without AMX: fp32's Winograd beats bf16 from conv3_1 on a Zen 4";
  CpuVectorFeatures avx512;
  avx512.avx2_fma = avx512.avx512 = true;
  EXPECT_EQ(resolve_precision("auto", cpu, avx512), Precision::fp32) << "no bf16 dot products";
  EXPECT_EQ(resolve_precision("auto", cuda, amx), Precision::fp32) << "not measured on CUDA";
  EXPECT_EQ(resolve_precision("bf16", cpu, CpuVectorFeatures{}), Precision::bf16) << "asked for: given";
  EXPECT_EQ(resolve_precision("fp32", cpu, amx), Precision::fp32);
  EXPECT_EQ(resolve_precision("mixed", cpu, amx), Precision::mixed);
  EXPECT_THROW(resolve_precision("fp16", cpu, amx), UsageError);
  EXPECT_EQ(to_string(Precision::bf16), "bf16");
  EXPECT_EQ(to_string(Precision::mixed), "mixed");
}

TEST(Vgg19, Bf16WithoutBf16DotProductsHasACaveatAndNothingElseDoes) {
  CpuVectorFeatures amx{true, true, true, true}, avx512_bf16{true, true, true, false}, avx2;
  avx2.avx2_fma = true;
  const at::Device cpu(at::kCPU), cuda(at::kCUDA, 0);
  const std::string caveat = precision_caveat(Precision::bf16, cpu, avx2);
  EXPECT_NE(caveat.find("no bf16 dot products"), std::string::npos) << caveat;
  EXPECT_NE(caveat.find("100x slower than fp32"), std::string::npos) << caveat;
  EXPECT_EQ(caveat.find("--"), std::string::npos) << "front-ends name their own flag: " << caveat;
  EXPECT_EQ(precision_caveat(Precision::bf16, cpu, amx), "");
  EXPECT_EQ(precision_caveat(Precision::bf16, cpu, avx512_bf16), "");
  EXPECT_EQ(precision_caveat(Precision::fp32, cpu, avx2), "");
  EXPECT_NE(precision_caveat(Precision::mixed, cpu, avx2).find("mixed's bf16 layers (conv1_1 .. conv2_2"),
            std::string::npos) << "its first layers are bf16";
  EXPECT_EQ(precision_caveat(Precision::mixed, cpu, avx512_bf16), "");
  EXPECT_EQ(precision_caveat(Precision::bf16, cuda, avx2), "") << "cuDNN's bf16, not the CPU's";
}

TEST(Vgg19, Bf16RunsAreEstimatedSmallerByTheirActivations) {
  OptimizerOptions o;
  const uint64_t fp32 = estimate_cpu_peak_bytes(1000, 1000, o), bf16 = estimate_cpu_peak_bytes(1000, 1000, o, Precision::bf16);
  EXPECT_EQ(fp32 - bf16, 1600ull * 1000 * 1000 + (300ull << 20))
      << "3000 vs 1400 bytes of activations per pixel, and fp32's Winograd kernels and bands";
  EXPECT_EQ(estimate_cpu_peak_bytes(1000, 1000, o, Precision::fp32), fp32);
  const uint64_t mixed = estimate_cpu_peak_bytes(1000, 1000, o, Precision::mixed);
  EXPECT_EQ(mixed - bf16, 300ull * 1000 * 1000 + (300ull << 20)) << "1700 bytes per pixel, fp32's Winograd kernels";
}

TEST(Preprocess, CaffeAndTorchvisionConventions) {
  at::Tensor rgb = at::tensor({10.0f, 20.0f, 30.0f}).view({1, 3, 1, 1});
  at::Tensor c = preprocess(rgb, Preprocessing::caffe).flatten();
  EXPECT_NEAR(c[0].item<float>(), 30 - 103.939, 1e-4);  // B first
  EXPECT_NEAR(c[1].item<float>(), 20 - 116.779, 1e-4);
  EXPECT_NEAR(c[2].item<float>(), 10 - 123.68, 1e-4);
  at::Tensor t = preprocess(rgb, Preprocessing::torchvision).flatten();
  EXPECT_NEAR(t[0].item<float>(), (10 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(t[2].item<float>(), (30 / 255.0 - 0.406) / 0.225, 1e-5);
  at::Tensor img = stylize::synthetic_image(8, 8, 5);
  for (auto p : {Preprocessing::caffe, Preprocessing::torchvision}) {
    EXPECT_LT((deprocess(preprocess(img, p), p) - img).abs().max().item<float>(), 1e-3);
  }
  EXPECT_EQ(deprocess(at::full({1, 3, 1, 1}, 1000.0f), Preprocessing::caffe).max().item<float>(), 255.0f);
}

TEST(Preprocess, OriginalColorsKeepsContentChrominance) {
  at::Tensor content = at::tensor({200.0f, 40.0f, 40.0f}).view({1, 3, 1, 1});  // red
  at::Tensor stylised = at::tensor({90.0f, 90.0f, 90.0f}).view({1, 3, 1, 1});  // grey, Y = 90
  at::Tensor out = transfer_luminance(stylised, content).flatten();
  const double y = 0.299 * out[0].item<float>() + 0.587 * out[1].item<float>() + 0.114 * out[2].item<float>();
  EXPECT_NEAR(y, 90.0, 1e-3) << "luminance from the stylised image";
  EXPECT_GT(out[0].item<float>(), out[1].item<float>() + 100) << "still red";
  EXPECT_NEAR(out[1].item<float>(), out[2].item<float>(), 1e-3);
}

TEST(Losses, GramAndTotalVariationValues) {
  // F = [[1, 2], [3, 4]] as C=2, H=1, W=2: F·Fᵀ = [[5, 11], [11, 25]], / (C·H·W = 4).
  at::Tensor f = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 2, 1, 2});
  at::Tensor g = gram_matrix(f);
  EXPECT_TRUE(at::allclose(g, at::tensor({1.25f, 2.75f, 2.75f, 6.25f}).view({2, 2})));
  // x = [[0, 1], [3, 5]] one channel: vertical (3-0)²+(5-1)² = 25, horizontal 1²+2² = 5.
  at::Tensor x = at::tensor({0.0f, 1.0f, 3.0f, 5.0f}).view({1, 1, 2, 2});
  EXPECT_FLOAT_EQ(total_variation(x).item<float>(), 30.0f);
}

TEST(Losses, GramAndItsGradientAreTheSameInEitherMemoryLayout) {
  // A bf16 VGG pass runs channels-last on CPU; the Gram must read that layout in place and
  // hand back a gradient equal to the NCHW one. The large shape takes the threaded products
  // (split by inner dimension forward; by rows or by columns backward), the small one plain BLAS.
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  at::manual_seed(3);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 5, 4, 3}, {1, 16, 256, 130}}) {
    at::Tensor base = at::randn(shape);
    const int64_t c = shape[1], hw = shape[2] * shape[3];
    at::Tensor upstream = at::randn({c, c});
    auto grad_of = [&](const at::Tensor& layout) {
      at::Tensor f = layout.detach().requires_grad_(true);
      at::Tensor g = gram_matrix(f);
      (g * upstream).sum().backward();
      return std::make_pair(g.detach(), f.grad());
    };
    auto [g_nchw, d_nchw] = grad_of(base.contiguous());
    auto [g_nhwc, d_nhwc] = grad_of(base.contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(d_nhwc.is_contiguous(at::MemoryFormat::ChannelsLast)) << "gradient keeps the activation's layout";
    // Against the definitions in double: G = F·Fᵀ/(C·H·W), dF = (U + Uᵀ)·F/(C·H·W).
    at::Tensor f64 = base.to(at::kDouble).view({c, hw});
    at::Tensor g_expected = at::mm(f64, f64.t()).div(base.numel()).to(at::kFloat);
    at::Tensor d_expected = at::mm((upstream + upstream.t()).to(at::kDouble), f64).div(base.numel());
    d_expected = d_expected.to(at::kFloat).view(shape);
    for (const auto& [g, d] : {std::make_pair(g_nchw, d_nchw), std::make_pair(g_nhwc, d_nhwc)}) {
      EXPECT_TRUE(at::allclose(g, g_expected, 1e-4, 1e-6)) << "shape " << base.sizes();
      EXPECT_TRUE(at::allclose(d, d_expected, 1e-4, 1e-6)) << "shape " << base.sizes();
    }
  }
  at::set_num_threads(threads_before);
}

// The fp32 Gram products split their work over ATen's OpenMP threads (losses.cpp): the forward by
// SYRK on partial triangles, summed and mirrored; the backward by rows or columns. Each worker must
// run with grad mode off, as the calling thread does inside the autograd function: OpenMP's threads
// start with it on, and mm_out then refuses inputs that require grad.
TEST(Losses, Fp32GramSplitOverThreadsMatchesTheDoubleGram) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  at::manual_seed(5);
  ASSERT_TRUE(fp32_gram_by_syrk()) << "libblas.so.3 without ssyrk: the Gram products would fall back to sgemm";
  // Long k and m = n > k (both backward splits); odd m past one 32-row mirror block with odd k
  // (split); k = 1, split though fewer columns than threads; a tiny one (not split).
  const std::vector<std::vector<int64_t>> shapes{{1, 64, 96, 128}, {1, 256, 8, 16}, {1, 37, 67, 129},
                                                 {1, 2048, 1, 1}, {1, 3, 2, 5}};
  for (const auto& shape : shapes) {
    for (const auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      at::Tensor f = at::randn(shape).contiguous(layout).set_requires_grad(true);
      at::Tensor target = at::randn({shape[1], shape[1]});
      at::Tensor g = gram_matrix(f);
      at::mse_loss(g, target).backward();
      at::Tensor fd = f.detach().to(at::kDouble).set_requires_grad(true);
      at::Tensor m = fd.reshape({shape[1], -1});
      at::Tensor gd = m.mm(m.t()) / static_cast<double>(f.numel());
      at::mse_loss(gd, target.to(at::kDouble)).backward();
      EXPECT_LT(relative_difference(g.to(at::kDouble), gd), 1e-5) << at::IntArrayRef(shape) << " " << layout;
      EXPECT_LT(relative_difference(f.grad().to(at::kDouble), fd.grad()), 1e-4) << at::IntArrayRef(shape);
      EXPECT_TRUE(at::equal(g, g.t())) << "G exactly symmetric " << at::IntArrayRef(shape) << " " << layout;
      EXPECT_NO_THROW(gram_matrix(f).mul_(2.0)) << "G is no view of a buffer: it can be changed in place";
    }
  }
  at::set_num_threads(before);
}

TEST(Losses, GramOfBf16FeaturesIsTheFp32GramOfTheirValues) {
  // A bf16 network's features go to the Gram products as they are (oneDNN, fp32 accumulation, where
  // the CPU has native bf16 products; a cast to fp32 elsewhere): either way G is fp32 and equals the
  // Gram of the bf16 values to fp32 accuracy, and the gradient comes back in bf16, in the
  // activation's layout, within bf16 rounding of the exact one.
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  at::manual_seed(4);
  // relu1_1-like: 64 channels, long and thin (the inner dimension split over the threads, evenly and
  // not); a tiny one (one product).
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 64, 96, 80}, {1, 70, 33, 65}, {1, 3, 2, 5}}) {
    const at::Tensor base = at::randn(shape).to(at::kBFloat16);
    const int64_t c = shape[1], hw = shape[2] * shape[3];
    const at::Tensor upstream = at::randn({c, c});
    const at::Tensor f64 = base.to(at::kDouble).view({c, hw});
    const at::Tensor g_expected = at::mm(f64, f64.t()).div(base.numel());
    const at::Tensor d_expected =
        at::mm((upstream + upstream.t()).to(at::kDouble), f64).div(base.numel()).view(shape);
    for (const auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      at::Tensor f = base.contiguous(layout).detach().requires_grad_(true);
      at::Tensor g = gram_matrix(f);
      ASSERT_EQ(g.scalar_type(), at::kFloat);
      EXPECT_LT((g.to(at::kDouble) - g_expected).abs().max().item<double>(),
                1e-5 * g_expected.abs().max().item<double>())
          << at::IntArrayRef(shape) << " " << layout;
      (g * upstream).sum().backward();
      const at::Tensor d = f.grad();
      EXPECT_EQ(d.scalar_type(), at::kBFloat16);
      EXPECT_TRUE(d.is_contiguous(layout)) << "gradient keeps the activation's layout";
      const double err = (d.to(at::kDouble) - d_expected).abs().max().item<double>();
      EXPECT_LT(err, 0.02 * d_expected.abs().max().item<double>()) << "bf16 rounding of the gradient";
    }
  }
  at::set_num_threads(threads_before);
}

// The content term's own autograd node (losses.cpp ContentMse) runs ATen's mse_loss forward and
// backward arithmetic, so its value and gradient must be the bits of the term as it was, at::mse_loss
// against an NCHW target, with the target now in either layout (it is stored in the features');
// what it changes is where the gradient lands: in the features' type and memory layout (autograd's
// comes back NCHW, which the channels-last bf16 pass then meets on ATen's slow mixed-layout loops).
TEST(Losses, ContentLossIsMseLossBitsWithTheGradientInTheFeaturesLayout) {
  at::manual_seed(5);
  const auto layouts = {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast};
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 5, 3, 7}, {1, 64, 24, 20}}) {
    for (const auto type : {at::kFloat, at::kBFloat16}) {
      const at::Tensor base = at::randn(shape).relu().to(type);
      const at::Tensor target_values = at::randn(shape);
      for (const auto f_layout : layouts) {
        for (const auto p_layout : layouts) {
          const at::Tensor target = target_values.contiguous(p_layout);
          at::Tensor f_ref = base.contiguous(f_layout).detach().requires_grad_(true);
          at::Tensor f = base.contiguous(f_layout).detach().requires_grad_(true);
          // The gradient as the node hands it back: a leaf's .grad is restrided to the leaf's layout.
          at::Tensor d;
          f.register_hook([&d](const at::Tensor& g) { d = g; });
          // The reference is the term as it was: the target NCHW whatever the features' layout.
          const at::Tensor ref = at::mse_loss(f_ref.to(at::kFloat), target_values) * 3.0;
          const at::Tensor ours = content_loss(f, target) * 3.0;
          ref.backward();
          ours.backward();
          ASSERT_TRUE(d.defined());
          const std::string where = std::string("shape ") + std::to_string(shape[1]) + "x" +
                                    std::to_string(shape[2]) + "x" + std::to_string(shape[3]) + " " +
                                    c10::toString(type) + (f_layout == at::MemoryFormat::Contiguous ? " F NCHW" : " F NHWC") +
                                    (p_layout == at::MemoryFormat::Contiguous ? " P NCHW" : " P NHWC");
          ASSERT_EQ(ours.scalar_type(), at::kFloat) << where;
          const float a = ref.item<float>(), b = ours.item<float>();
          EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << where << ": " << a << " vs " << b;
          EXPECT_EQ(d.scalar_type(), type) << where;
          EXPECT_TRUE(d.is_contiguous(f_layout)) << where << ": the gradient keeps the features' layout";
          const at::ScalarType bits = type == at::kFloat ? at::kInt : at::kShort;
          EXPECT_TRUE(at::equal(d.contiguous().view(bits), f_ref.grad().contiguous().view(bits))) << where;
          EXPECT_GT(d.abs().max().item<float>(), 0) << where;
        }
      }
    }
  }
}

// The content targets are kept in the features' layout (channels-last for a bf16 pass on the CPU),
// fp32, so that the content term runs in one layout; the loss at the target is exactly zero.
TEST(Losses, ContentTargetsKeepTheFeaturesLayoutAndTheirValues) {
  const auto params = synthetic_vgg19(1);
  const at::Tensor img = preprocess(stylize::synthetic_image(40, 32, 6), Preprocessing::caffe);  // relu4_2: 5×4
  for (const auto precision : {Precision::fp32, Precision::bf16, Precision::mixed}) {
    auto net = std::make_shared<Vgg19>(params, Pooling::max, 29, precision);
    LossWeights w;
    w.style_layers = {"relu1_1"};
    const ContentTargets t = compute_content_targets(*net, w, img);
    ASSERT_EQ(t.features.size(), 1u);
    c10::NoGradGuard no_grad;
    const at::Tensor f = net->forward(img, vgg19_layer_indices(w.content_layers))[0];
    if (precision == Precision::bf16) {
      ASSERT_FALSE(f.is_contiguous()) << "a bf16 pass on the CPU runs channels-last";
    }
    EXPECT_EQ(t.features[0].scalar_type(), at::kFloat);
    EXPECT_EQ(t.features[0].suggest_memory_format(), f.suggest_memory_format());
    EXPECT_TRUE(t.features[0].is_contiguous(f.suggest_memory_format()));
    EXPECT_TRUE(at::equal(t.features[0], f.to(at::kFloat)));
    EXPECT_NE(t.features[0].data_ptr(), f.data_ptr());
    StyleLoss loss(net, w, t, compute_style_targets(*net, w, {img}, {}));
    EXPECT_EQ(to_values(loss.evaluate(img)).content_sum(), 0.0);
  }
}

TEST(Losses, StyleBlendIsNormalisedWeightedSumOfGrams) {
  auto net = tiny_net(8);
  LossWeights w;
  w.content_layers = {};
  w.style_layers = {"relu1_1", "relu2_1"};
  at::Tensor a = preprocess(stylize::synthetic_image(16, 16, 1), Preprocessing::caffe);
  at::Tensor b = preprocess(stylize::synthetic_image(24, 20, 2), Preprocessing::caffe);
  auto ta = compute_style_targets(*net, w, {a}, {});
  auto tb = compute_style_targets(*net, w, {b}, {});
  auto tab = compute_style_targets(*net, w, {a, b}, {3, 1});
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_TRUE(at::allclose(tab.grams[l], ta.grams[l] * 0.75 + tb.grams[l] * 0.25, 1e-5, 1e-6));
  }
  EXPECT_THROW(compute_style_targets(*net, w, {a, b}, {1}), UsageError);
  EXPECT_THROW(compute_style_targets(*net, w, {a, b}, {0, 0}), UsageError);
  EXPECT_THROW(compute_style_targets(*net, w, {a}, {-1}), UsageError);
}

TEST(Losses, ZeroAtTheTargetsAndWeightsScaleTerms) {
  auto net = tiny_net();
  LossWeights w;
  at::Tensor img = preprocess(stylize::synthetic_image(32, 32, 3), Preprocessing::caffe);
  auto loss = StyleLoss(net, w, compute_content_targets(*net, w, img), compute_style_targets(*net, w, {img}, {}));
  c10::NoGradGuard no_grad;
  LossValues v = to_values(loss.evaluate(img));
  EXPECT_EQ(v.content_sum(), 0.0);
  EXPECT_EQ(v.style_sum(), 0.0);
  EXPECT_NEAR(v.tv, total_variation(img).item<double>() * 1e-3, 1e-3);
  LossWeights w2 = w;
  w2.content_weight *= 2;
  at::Tensor other = preprocess(stylize::synthetic_image(32, 32, 4), Preprocessing::caffe);
  auto l1 = StyleLoss(net, w, compute_content_targets(*net, w, other), compute_style_targets(*net, w, {other}, {}));
  auto l2 = StyleLoss(net, w2, compute_content_targets(*net, w2, other), compute_style_targets(*net, w2, {other}, {}));
  EXPECT_NEAR(to_values(l2.evaluate(img)).content_sum(), 2 * to_values(l1.evaluate(img)).content_sum(), 1e-3);
  LossWeights bad = w;
  bad.style_layer_weights = {1, 2};
  EXPECT_THROW(deepest_layer(bad), UsageError);
  bad = w;
  bad.content_layers = {"relu9_9"};
  EXPECT_THROW(deepest_layer(bad), UsageError);
  EXPECT_EQ(deepest_layer(w), 29);
}

namespace {

struct Problem {
  std::shared_ptr<Vgg19> net = tiny_net(29);
  LossWeights w;
  at::Tensor content = preprocess(stylize::synthetic_image(32, 32, 11), Preprocessing::caffe);
  at::Tensor style = preprocess(stylize::synthetic_image(32, 32, 12), Preprocessing::caffe);
  StyleLoss loss{net, w, compute_content_targets(*net, w, content), compute_style_targets(*net, w, {style}, {})};
};

}  // namespace

namespace {

// The points at which torch's L-BFGS (no line search) and SyncFreeLbfgs evaluate f, in double.
struct Trajectories {
  std::vector<at::Tensor> torch_points, ours;
  int curvature_rejections = 0;  // pairs of torch's run with y·s <= 1e-10
};

Trajectories lbfgs_trajectories(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& start,
                                int history, int iterations) {
  Trajectories out;
  std::vector<at::Tensor> grads;
  at::Tensor x = start.clone().set_requires_grad(true);
  torch::optim::LBFGS reference({x}, torch::optim::LBFGSOptions(1.0)
                                         .max_iter(iterations)
                                         .history_size(history)
                                         .tolerance_grad(-1)
                                         .tolerance_change(-1));
  reference.step([&] {
    if (x.grad().defined()) x.mutable_grad().zero_();
    at::Tensor v = f(x);
    v.backward();
    out.torch_points.push_back(x.detach().clone());
    grads.push_back(x.grad().clone());
    return v;
  });
  for (size_t k = 1; k < grads.size(); ++k) {
    const double ys = at::dot(grads[k] - grads[k - 1], out.torch_points[k] - out.torch_points[k - 1]).item<double>();
    if (ys <= 1e-10) ++out.curvature_rejections;
  }

  at::Tensor y = start.clone().set_requires_grad(true);
  SyncFreeLbfgs ours(y, history, iterations, 1.0, false);
  for (int i = 0; i < iterations; ++i) {
    if (y.grad().defined()) y.mutable_grad().zero_();
    f(y).backward();
    out.ours.push_back(y.detach().clone());
    ours.step(y.grad(), at::zeros({}, y.options()));
  }
  return out;
}

void expect_same_path(const Trajectories& t, int iterations) {
  ASSERT_EQ(t.torch_points.size(), static_cast<size_t>(iterations));
  ASSERT_EQ(t.ours.size(), t.torch_points.size());
  for (size_t k = 0; k < t.ours.size(); ++k) {
    const double scale = t.torch_points[k].abs().max().item<double>();
    EXPECT_LE((t.ours[k] - t.torch_points[k]).abs().max().item<double>(), 1e-9 * scale) << "evaluation " << k + 1;
  }
}

}  // namespace

TEST(Lbfgs, FollowsTorchsLbfgsWhenTheHistoryRingWraps) {
  // Convex and not quadratic; 16 iterations through a 5-pair history (near the minimum, y·s falls
  // under 1e-10 and torch drops pairs that ours keeps as no-ops, so the rings would differ).
  const at::Tensor scale = at::linspace(0.5, 4.0, 48, at::kDouble);
  auto f = [&](const at::Tensor& x) { return (scale * (x - 1).pow(2)).sum() + 0.25 * x.pow(4).sum(); };
  const auto t = lbfgs_trajectories(f, at::linspace(-2.0, 3.0, 48, at::kDouble), 5, 16);
  EXPECT_EQ(t.curvature_rejections, 0);
  expect_same_path(t, 16);
  auto gradient_size = [&](const at::Tensor& at_point) {
    at::Tensor x = at_point.clone().set_requires_grad(true);
    f(x).backward();
    return x.grad().abs().max().item<double>();
  };
  EXPECT_LT(gradient_size(t.ours.back()), 1e-3 * gradient_size(t.ours.front())) << "16 steps near the minimum";
}

// SyncFreeLbfgs's two-loop recursion on the CPU in fp32 runs as fused passes (lbfgs_passes.hpp),
// other dtypes and devices on ATen's ops. On a problem large enough for the passes to be split over
// threads, and of a length that leaves a ragged last block, both fp32 paths must stay together to
// within their own rounding (2.4e-6 measured) while each is ~2% from the double path (the rounding of
// f, of its gradient and of the first step's length, not the passes); and a second run gives the
// same bits.
TEST(Lbfgs, Fp32FusedPassesFollowAtensOps) {
  const int64_t n = kPassParallelFrom + kPassBlock + 37;
  const at::Tensor scale = at::linspace(0.5, 4.0, n, at::kDouble);
  auto f = [&](const at::Tensor& x) {
    const at::Tensor s = scale.to(x.scalar_type());
    return (s * (x - 1).pow(2)).sum() + 0.25 * x.pow(4).sum();
  };
  const at::Tensor start = at::linspace(-2.0, 3.0, n, at::kDouble);
  auto path = [&](at::ScalarType type, bool fused) {
    at::Tensor x = start.to(type, /*non_blocking=*/false, /*copy=*/true).set_requires_grad(true);
    SyncFreeLbfgs opt(x, 5, 16, 1.0, true);
    opt.set_fused_passes(fused);
    std::vector<at::Tensor> points;
    for (int i = 0; i < 16; ++i) {
      if (x.grad().defined()) x.mutable_grad().zero_();
      const at::Tensor v = f(x);
      v.backward();
      opt.step(x.grad(), v.detach());
      points.push_back(x.detach().to(at::kDouble, /*non_blocking=*/false, /*copy=*/true));
    }
    return points;
  };
  const auto exact = path(at::kDouble, true), fused = path(at::kFloat, true), again = path(at::kFloat, true),
             aten = path(at::kFloat, false);
  double fused_error = 0, aten_error = 0, apart = 0;
  for (size_t k = 0; k < exact.size(); ++k) {
    const double size = exact[k].abs().max().item<double>();
    fused_error = std::max(fused_error, (fused[k] - exact[k]).abs().max().item<double>() / size);
    aten_error = std::max(aten_error, (aten[k] - exact[k]).abs().max().item<double>() / size);
    apart = std::max(apart, (fused[k] - aten[k]).abs().max().item<double>() / size);
    EXPECT_TRUE(at::equal(fused[k], again[k])) << "step " << k + 1 << ": a second run differs";
  }
  EXPECT_GT(apart, 0) << "the two paths must be different code";
  EXPECT_LT(apart, 3e-5) << "from the double path: fused " << fused_error << ", ATen's ops " << aten_error;
  EXPECT_GT(exact.back().sub(exact.front()).abs().max().item<double>(), 0.5) << "the path must go somewhere";
}

// One pass of the recursion (lbfgs_passes.hpp), every variant (from, v, w each there or not; v = w), every
// copy this CPU runs, lengths around the lanes, blocks and the parallel threshold: the update within
// fp32 rounding of the double formula and the same bits in every copy and thread count; the dot
// within the error of its fp32 products of the double sum.
TEST(Lbfgs, TwoLoopPassesMatchTheFormulaInEveryCopyAndThreadCount) {
  const int before = at::get_num_threads();
  at::manual_seed(6);
  for (const int64_t n : {int64_t{0}, int64_t{5}, int64_t{16}, int64_t{33}, kPassBlock + 17, kPassParallelFrom + 1001}) {
    const at::Tensor q0 = at::randn({n}), from = at::randn({n}), v = at::randn({n}), w = at::randn({n});
    const float a = -1.25f, c = 0.375f, m = 1.5f;
    for (int variant = 0; variant < 9; ++variant) {
      // 0-7: from, v and w each there or not; 8: v and w the same array, as after the oldest pair.
      const bool same = variant == 8;
      const bool has_from = !same && (variant & 4), has_v = same || (variant & 2), has_w = same || (variant & 1);
      const at::Tensor& wt = same ? v : w;
      const at::Tensor in = (has_from ? from : q0).to(at::kDouble);
      at::Tensor expected = in * a;
      if (has_v) expected = expected + v.to(at::kDouble) * c;
      expected = expected * m;
      const double expected_dot = has_w ? (expected * wt.to(at::kDouble)).sum().item<double>() : 0.0;
      const double dot_size = has_w ? (expected * wt.to(at::kDouble)).abs().sum().item<double>() : 0.0;
      at::Tensor first;
      double first_dot = 0;
      for (const VectorCopy copy : {VectorCopy::baseline, VectorCopy::avx2, VectorCopy::avx512}) {
        if (!vector_copy_runs_here(copy)) continue;
        for (const int threads : {1, 2}) {
          at::set_num_threads(threads);
          at::Tensor q = q0.clone();
          const double dot = two_loop_pass(q.data_ptr<float>(), has_from ? from.data_ptr<float>() : nullptr, a,
                                           has_v ? v.data_ptr<float>() : nullptr, c, m,
                                           has_w ? wt.data_ptr<float>() : nullptr, n, copy);
          const std::string where = "n " + std::to_string(n) + ", variant " + std::to_string(variant) + ", " +
                                    to_string(copy) + ", threads " + std::to_string(threads);
          EXPECT_TRUE(at::allclose(q.to(at::kDouble), expected, 1e-6, 1e-6)) << where;
          EXPECT_LE(std::abs(dot - expected_dot), 1e-6 * dot_size + 1e-12) << where;
          if (!first.defined()) {
            first = q;
            first_dot = dot;
          } else {
            EXPECT_TRUE(at::equal(q, first)) << where << ": the update differs from the baseline's";
            EXPECT_EQ(dot, first_dot) << where << ": the dot differs from the baseline's";
          }
        }
      }
    }
  }
  at::set_num_threads(before);
}

TEST(Lbfgs, PairsFailingTheCurvatureTestChangeNothing) {
  // Non-convex (curvature 1 - 4 cos 2x changes sign): torch drops some pairs; ours keeps them with
  // rho = 0. With room for every pair both must take the same steps.
  auto f = [](const at::Tensor& x) { return 0.5 * x.pow(2).sum() + at::cos(2 * x).sum(); };
  const auto t = lbfgs_trajectories(f, at::linspace(-1.5, 1.5 - 3.0 / 64, 64, at::kDouble), 100, 30);
  EXPECT_GE(t.curvature_rejections, 3) << "the test needs rejected pairs to mean anything";
  expect_same_path(t, 30);
}

namespace {

// Every point SyncFreeLbfgs evaluates f at, with f and the gradient there, in double.
struct Evaluations {
  std::vector<at::Tensor> points, grads;
  std::vector<double> losses;
};

Evaluations sync_free_run(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& start,
                          int history, int iterations, bool backtrack) {
  Evaluations out;
  at::Tensor x = start.clone().set_requires_grad(true);
  SyncFreeLbfgs opt(x, history, iterations, 1.0, backtrack);
  for (int i = 0; i < iterations; ++i) {
    if (x.grad().defined()) x.mutable_grad().zero_();
    const at::Tensor v = f(x);
    v.backward();
    out.points.push_back(x.detach().clone());
    out.grads.push_back(x.grad().clone());
    out.losses.push_back(v.item<double>());
    opt.step(x.grad(), v);
  }
  return out;
}

}  // namespace

TEST(Lbfgs, BacktrackingTakesTheSameStepsWhileTheLossFalls) {
  const at::Tensor scale = at::linspace(0.5, 4.0, 48, at::kDouble);
  auto f = [&](const at::Tensor& x) { return (scale * (x - 1).pow(2)).sum() + 0.25 * x.pow(4).sum(); };
  const at::Tensor start = at::linspace(-2.0, 3.0, 48, at::kDouble);
  const Evaluations plain = sync_free_run(f, start, 5, 16, false), guarded = sync_free_run(f, start, 5, 16, true);
  for (size_t k = 1; k < plain.losses.size(); ++k) {
    ASSERT_LE(plain.losses[k], plain.losses[k - 1]) << "the test needs a path that only falls; evaluation " << k + 1;
  }
  for (size_t k = 0; k < plain.points.size(); ++k) {
    EXPECT_TRUE(at::equal(plain.points[k], guarded.points[k])) << "evaluation " << k + 1;
  }
}

TEST(Lbfgs, BacktrackingRetriesAStepThatRaisedTheLossAlongItsParabola) {
  // Pseudo-Huber: nearly flat far out, so a secant pair from out there asks for a step far past
  // the minimum, which raises f. Without the guard L-BFGS carries on from there.
  const at::Tensor c = at::linspace(0.2, 3.0, 32, at::kDouble);
  auto f = [&](const at::Tensor& x) { return ((c * x).pow(2) + 1).sqrt().sum(); };
  const at::Tensor start = at::linspace(4.0, 9.0, 32, at::kDouble);
  const Evaluations run = sync_free_run(f, start, 10, 40, true);
  const Evaluations plain = sync_free_run(f, start, 10, 40, false);

  // Replays the rule: base = last accepted evaluation; a loss more than 1e-3 above the lowest so
  // far is rejected, and the next point is base + σ (rejected − base) with σ the parabola's minimiser.
  size_t base = 0;
  double lowest = run.losses[0];
  int rejections = 0;
  for (size_t k = 1; k + 1 < run.points.size(); ++k) {
    if (run.losses[k] <= lowest + 1e-3 * std::abs(lowest)) {
      base = k;
    } else {
      ++rejections;
      const at::Tensor s = run.points[k] - run.points[base];
      const double slope = at::dot(run.grads[base], s).item<double>();
      const double sigma = std::clamp(-slope / (2 * (run.losses[k] - run.losses[base] - slope)), 0.1, 0.5);
      const at::Tensor expected = run.points[base] + sigma * s;
      EXPECT_LE((run.points[k + 1] - expected).abs().max().item<double>(), 1e-9 * expected.abs().max().item<double>())
          << "the trial after rejected evaluation " << k + 1;
    }
    lowest = std::min(lowest, run.losses[k]);
  }
  EXPECT_GE(rejections, 1) << "the test needs a step that overshoots";
  const double plain_worst = *std::max_element(plain.losses.begin() + 1, plain.losses.end());
  EXPECT_GT(plain_worst, 2 * plain.losses[0]) << "without the guard the same start overshoots";
  EXPECT_LT(*std::min_element(run.losses.begin(), run.losses.end()), 1e-3 * (run.losses[0] - 32) + 32)
      << "and with it the run still gets near the minimum (32)";
}

TEST(Lbfgs, BacktrackingRetriesANonFiniteLossAtATenthThenGrowsTheStepsBackByTwo) {
  // f = |x|²/2 (g = x, Hessian I: every pair gives H = I, so L-BFGS's own step is -x, to 0), with
  // the loss the optimiser is told at each point chosen by the test.
  at::Tensor x = at::ones({4}, at::kDouble);
  SyncFreeLbfgs opt(x, 5, 10, 1.0, true);
  auto step = [&](double loss) { opt.step(x.clone(), at::full({}, loss, at::kDouble)); };
  auto at_value = [&](double v) { return at::allclose(x, at::full({4}, v, at::kDouble), 0, 1e-12); };
  step(1.0);  // first step: lr / |g|₁ = 0.25 of -g
  EXPECT_TRUE(at_value(0.75)) << x;
  step(std::nan(""));  // rejected: a tenth of the way from the base (1)
  EXPECT_TRUE(at_value(0.975)) << x;
  step(0.5);  // accepted at 0.1 of its step: the next fresh step is 0.2 of L-BFGS's (-x)
  EXPECT_TRUE(at_value(0.975 * 0.8)) << x;
  step(0.3);  // accepted: 0.4
  EXPECT_TRUE(at_value(0.975 * 0.8 * 0.6)) << x;
  step(0.2);  // 0.8, then 1
  EXPECT_TRUE(at_value(0.975 * 0.8 * 0.6 * 0.2)) << x;
  step(0.1);
  EXPECT_TRUE(at_value(0.0)) << x;
}

TEST(Lbfgs, BacktrackingForgetsANonFiniteGradient) {
  // f = Σ d_i x_i² / 2: after a trial whose loss and gradient are NaN, the run must go on exactly as
  // one whose rejected pair carried no curvature (y = 0), not fall back to steepest descent for
  // as long as the NaN pair stays in the history.
  const at::Tensor d = at::arange(1, 5, at::kDouble);
  auto run = [&](bool nan_gradient) {
    at::Tensor x = at::ones({4}, at::kDouble);
    SyncFreeLbfgs opt(x, 5, 10, 1.0, true);
    auto f = [&] { return (0.5 * d * x * x).sum(); };
    const at::Tensor g0 = d * x;
    opt.step(g0.clone(), f());
    opt.step(nan_gradient ? at::full({4}, std::nan(""), at::kDouble) : g0.clone(),
             at::full({}, std::nan(""), at::kDouble));
    std::vector<at::Tensor> points;
    for (int i = 0; i < 4; ++i) {
      opt.step(d * x, f());
      points.push_back(x.clone());
    }
    return points;
  };
  const auto with_nan = run(true), without = run(false);
  for (size_t k = 0; k < with_nan.size(); ++k) {
    EXPECT_TRUE(at::allclose(with_nan[k], without[k], 0, 1e-12)) << "point " << k + 1 << ": " << with_nan[k];
  }
}

TEST(Transfer, LbfgsReadsTheLossBackOnlyWhereProgressIsAsked) {
  Problem p;
  OptimizerOptions o;
  o.iterations = 30;
  o.lbfgs_history = 10;
  TransferCallbacks cb;
  std::vector<int> reported;
  cb.progress_at = [](int evaluation, int) { return evaluation % 10 == 0; };
  cb.on_progress = [&](const Progress& pr) { reported.push_back(pr.iteration); };

  TransferResult r;
  const int reads = host_reads_during([&] { r = optimize_image(p.loss, p.content, o, cb); });

  EXPECT_EQ(reported, (std::vector<int>{10, 20, 30}));
  // One read per report, one for the closing comparison with the best loss; the start and the end
  // are read as a whole (to_values), which is not a scalar read. torch's L-BFGS: ~10 per iteration.
  EXPECT_EQ(reads, 3 + 1);
  EXPECT_LT(r.final.total, 0.5 * r.initial.total);
  reported.clear();
  o.line_search = LineSearch::none;  // the same for the unguarded steps
  EXPECT_EQ(host_reads_during([&] { optimize_image(p.loss, p.content, o, cb); }), 3 + 1);
  EXPECT_EQ(reported, (std::vector<int>{10, 20, 30}));

  // The counter itself: the same run on torch's L-BFGS (via a line search) is seen reading.
  o.line_search = LineSearch::strong_wolfe;
  o.iterations = 5;
  EXPECT_GT(host_reads_during([&] { optimize_image(p.loss, p.content, o, cb); }), 20);
}

TEST(Transfer, LbfgsLowersTheLossAndRunsExactlyTheIterationsAsked) {
  Problem p;
  OptimizerOptions o;
  o.iterations = 15;
  int calls = 0;
  TransferCallbacks cb;
  cb.on_progress = [&](const Progress& pr) {
    ++calls;
    EXPECT_EQ(pr.iteration, calls);
    EXPECT_EQ(pr.total, 15);
  };
  TransferResult r = optimize_image(p.loss, p.content, o, cb);
  EXPECT_EQ(r.iterations, 15);
  EXPECT_EQ(r.evaluations, 15);
  EXPECT_EQ(calls, 15);
  EXPECT_FALSE(r.interrupted);
  EXPECT_LT(r.final.total, 0.5 * r.initial.total) << r.initial.total << " -> " << r.final.total;
  EXPECT_EQ(r.initial.content_sum(), 0.0) << "started from the content image";
}

// Progress reports the lowest loss so far: unguarded steps this long overshoot, and a log that
// jumps up reads as divergence although the best image is kept.
TEST(Transfer, ProgressReportsTheLowestLossSoFar) {
  Problem p;
  OptimizerOptions o;
  o.iterations = 12;
  o.line_search = LineSearch::none;
  o.learning_rate = 50;
  std::vector<double> losses;
  TransferCallbacks cb;
  cb.on_progress = [&](const Progress& pr) { losses.push_back(pr.loss); };
  TransferResult r = optimize_image(p.loss, p.content, o, cb);
  ASSERT_EQ(losses.size(), 12u);
  EXPECT_DOUBLE_EQ(losses[0], r.initial.total);
  for (size_t i = 1; i < losses.size(); ++i) EXPECT_LE(losses[i], losses[i - 1]) << "at evaluation " << i + 1;
  EXPECT_LE(r.final.total, losses.back() * (1 + 1e-6)) << "the result is at least as good as the last report";
}

TEST(Transfer, Bf16NetworkStartsAtZeroContentLossAndEndsNearTheFp32Loss) {
  Problem exact;
  Problem fast;
  fast.net = std::make_shared<Vgg19>(synthetic_vgg19(1), Pooling::max, 29, Precision::bf16);
  fast.loss = StyleLoss(fast.net, fast.w, compute_content_targets(*fast.net, fast.w, fast.content),
                        compute_style_targets(*fast.net, fast.w, {fast.style}, {}));
  OptimizerOptions o;
  o.iterations = 15;
  TransferResult a = optimize_image(exact.loss, exact.content, o), b = optimize_image(fast.loss, fast.content, o);
  EXPECT_EQ(b.initial.content_sum(), 0.0) << "targets and iterations use the same arithmetic";
  EXPECT_NEAR(b.initial.total, a.initial.total, 0.02 * a.initial.total);
  EXPECT_LT(b.final.total, 0.5 * b.initial.total);
  EXPECT_NEAR(b.final.total, a.final.total, 0.05 * a.final.total);
}

TEST(Transfer, AdamAlsoLowersTheLoss) {
  Problem p;
  OptimizerOptions o;
  o.kind = OptimizerKind::adam;
  o.learning_rate = 10;
  o.iterations = 20;
  TransferResult r = optimize_image(p.loss, p.content, o);
  EXPECT_EQ(r.iterations, 20);
  EXPECT_LT(r.final.total, r.initial.total);
}

TEST(Transfer, StrongWolfeLineSearchRuns) {
  Problem p;
  OptimizerOptions o;
  o.line_search = LineSearch::strong_wolfe;
  o.iterations = 5;
  TransferResult r = optimize_image(p.loss, p.content, o);
  EXPECT_GE(r.evaluations, 5);
  EXPECT_LT(r.final.total, r.initial.total);
}

TEST(Transfer, StopRequestReturnsTheBestImageSoFar) {
  Problem p;
  OptimizerOptions o;
  o.iterations = 1000;
  TransferCallbacks cb;
  int seen = 0;
  std::vector<int> snapshots;
  cb.on_progress = [&](const Progress&) { ++seen; };
  cb.should_stop = [&] { return seen >= 6; };
  cb.snapshot_every = 2;
  cb.on_snapshot = [&](int it, const at::Tensor&) { snapshots.push_back(it); };
  TransferResult r = optimize_image(p.loss, p.content, o, cb);
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.evaluations, 6);
  EXPECT_LT(r.final.total, r.initial.total);
  EXPECT_EQ(snapshots, (std::vector<int>{2, 4, 6}));
}

TEST(Transfer, ZeroIterationsReturnsTheStart) {
  Problem p;
  OptimizerOptions o;
  o.iterations = 0;
  TransferResult r = optimize_image(p.loss, p.content, o);
  EXPECT_TRUE(at::equal(r.input, p.content));
  EXPECT_EQ(r.initial.total, r.final.total);
}

TEST(Stylizer, SameSeedSameResultAndRandomInitScale) {
  Vgg19Weights w;
  w.params = synthetic_vgg19(1);
  Stylizer s(w, Preprocessing::caffe, Pooling::max, 29, at::Device(at::kCPU));
  StylizeParams params;
  params.init = InitKind::random;
  params.seed = 42;
  params.optimizer.iterations = 3;
  at::Tensor content = stylize::synthetic_image(24, 24, 1);
  auto targets = s.style_targets(params.loss, {stylize::synthetic_image(24, 24, 2)}, {});
  auto a = s.stylize(content, targets, params);
  auto b = s.stylize(content, targets, params);
  EXPECT_TRUE(at::equal(a.rgb, b.rgb));
  params.seed = 43;
  auto c = s.stylize(content, targets, params);
  EXPECT_FALSE(at::equal(a.rgb, c.rgb));
  EXPECT_EQ(a.rgb.sizes(), content.sizes());
}

TEST(Device, CudaAbsentIsADeviceErrorAndNamesAreChecked) {
  EXPECT_EQ(resolve_device("cpu").type(), at::kCPU);
  EXPECT_THROW(resolve_device("gpu"), UsageError);
  EXPECT_THROW(resolve_device("cuda:x"), UsageError);
  if (!at::hasCUDA()) {
    EXPECT_THROW(resolve_device("cuda"), DeviceError);
    EXPECT_THROW(resolve_device("cuda:1"), DeviceError);
    EXPECT_EQ(resolve_device("auto").type(), at::kCPU);
  }
}

namespace {
constexpr uint64_t kMiB = uint64_t{1} << 20;
}

TEST(CpuAllocator, AFreedLargeBlockServesTheNextRequestOfItsSize) {
  use_reusing_cpu_allocator();
  set_cpu_cache_headroom(kDefaultCacheHeadroom);
  release_cached_cpu_memory();
  const void* first = nullptr;
  {
    at::Tensor a = at::full({1 << 20}, 3.0f);  // 4 MiB
    first = a.data_ptr();
  }
  const CpuAllocatorStats before = cpu_allocator_stats();
  EXPECT_EQ(before.cached_bytes, 4 * kMiB);
  at::Tensor b = at::ones({1 << 20});
  EXPECT_EQ(b.data_ptr(), first);
  EXPECT_EQ(b.sum().item<float>(), float(1 << 20)) << "a reused block holds the new tensor's values";
  const CpuAllocatorStats after = cpu_allocator_stats();
  EXPECT_EQ(after.reused, before.reused + 1);
  EXPECT_EQ(after.fresh, before.fresh);
  EXPECT_EQ(after.cached_bytes, 0u);
  at::Tensor c = at::empty({(1 << 20) + 1000});  // another size: a block of its own
  EXPECT_NE(c.data_ptr(), b.data_ptr());
  EXPECT_EQ(cpu_allocator_stats().fresh, before.fresh + 1);
  at::Tensor small = at::ones({1000});  // below the threshold: not counted
  EXPECT_EQ(cpu_allocator_stats().fresh, before.fresh + 1);
}

TEST(CpuAllocator, HeldMemoryStaysWithinThePeakInUsePlusTheHeadroom) {
  use_reusing_cpu_allocator();
  set_cpu_cache_headroom(0.0);
  release_cached_cpu_memory();
  { at::Tensor a = at::empty({1 << 20}); }  // 4 MiB in use at the peak, then cached
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 4 * kMiB);
  at::Tensor b = at::empty({2 << 20});  // 8 MiB: keeping the cached 4 would hold 12 > the 8 in use
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
  b.reset();
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 8 * kMiB);
  set_cpu_cache_headroom(0.5);  // now up to 1.5 x the peak (everything in use + 8 MiB) may be held
  { at::Tensor c = at::empty({1 << 19}); }  // 2 MiB: the cached 8 is over the slack, so a block of its own
  const CpuAllocatorStats s = cpu_allocator_stats();
  EXPECT_EQ(s.cached_bytes, 10 * kMiB);
  EXPECT_LE(s.in_use_bytes + s.cached_bytes, static_cast<uint64_t>(1.5 * static_cast<double>(s.peak_in_use_bytes)));
  set_cpu_cache_headroom(0.0);  // lowering the headroom gives back what is over the peak at once
  const CpuAllocatorStats t = cpu_allocator_stats();
  EXPECT_LE(t.in_use_bytes + t.cached_bytes, t.peak_in_use_bytes);
  set_cpu_cache_headroom(kDefaultCacheHeadroom);
}

TEST(CpuAllocator, ARequestTakesTheSmallestCachedBlockWithinTheSlack) {
  use_reusing_cpu_allocator();
  set_cpu_cache_headroom(kDefaultCacheHeadroom);
  release_cached_cpu_memory();
  const uint64_t base = cpu_allocator_stats().in_use_bytes;
  const void *four = nullptr, *six = nullptr, *sixteen = nullptr;
  {
    at::Tensor a = at::empty({1 << 20}), b = at::empty({3 << 19}), c = at::empty({4 << 20});  // 4, 6, 16 MiB
    four = a.data_ptr(), six = b.data_ptr(), sixteen = c.data_ptr();
  }
  ASSERT_EQ(cpu_allocator_stats().cached_bytes, 26 * kMiB);
  at::Tensor three = at::empty({3 << 18});  // 3 MiB: the 4 and the 6 fit, the smaller is taken
  EXPECT_EQ(three.data_ptr(), four);
  at::Tensor five = at::empty({5 << 18});  // 5 MiB: only the 6 is left within twice the size
  EXPECT_EQ(five.data_ptr(), six);
  const uint64_t fresh = cpu_allocator_stats().fresh;
  at::Tensor seven = at::empty({7 << 18});  // 7 MiB: the 16 is more than twice as large
  EXPECT_NE(seven.data_ptr(), sixteen);
  EXPECT_EQ(cpu_allocator_stats().fresh, fresh + 1);
  EXPECT_EQ(cpu_allocator_stats().in_use_bytes - base, 17 * kMiB) << "in use counts the blocks' own sizes (4 + 6 + 7)";
}

TEST(CpuAllocator, RawAllocationsOfEverySizeComeBack) {
  // oneDNN's scratch buffers use raw_allocate/raw_deallocate: one deleter for small and large blocks.
  use_reusing_cpu_allocator();
  release_cached_cpu_memory();
  c10::Allocator* allocator = c10::GetCPUAllocator();
  void* small = allocator->raw_allocate(100);
  void* large = allocator->raw_allocate(3 * kMiB);
  static_cast<char*>(small)[99] = 1;
  static_cast<char*>(large)[3 * kMiB - 1] = 1;
  allocator->raw_deallocate(small);
  allocator->raw_deallocate(large);
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 3 * kMiB);
  release_cached_cpu_memory();
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
}

TEST(Blas, GenericOpenblasKernelsAreReplacedOnlyWhenTheCpuHasBetter) {
  const CpuVectorFeatures none, avx2{true, false, false}, avx512{true, true, false}, bf16{true, true, true};
  EXPECT_EQ(better_openblas_core("Prescott", none), "");
  EXPECT_EQ(better_openblas_core("Prescott", avx2), "Haswell");
  EXPECT_EQ(better_openblas_core("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(better_openblas_core("Prescott", bf16), "Cooperlake");
  EXPECT_EQ(better_openblas_core("Zen", bf16), "") << "a core OpenBLAS recognised is kept";
  EXPECT_EQ(better_openblas_core("SkylakeX", bf16), "");
  EXPECT_EQ(better_openblas_core("", bf16), "") << "not OpenBLAS";
}
