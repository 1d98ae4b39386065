// Parity with an independent implementation: torchvision's VGG19 in PyTorch (float64), see
// tests/fixtures/make_parity.py. Same synthetic weights and images (integer hash, bit-identical);
// every loss term and the input gradient must agree to 1e-4 relative, on the CPU and on a CUDA GPU.
// The CUDA cases skip, saying so, where LibTorch has no GPU (Debian's LibTorch, CI); bench/gpu.sh
// builds and runs them on a GPU machine.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "parity_check.hpp"
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

// cuDNN's TF32 (LibTorch's default on Ampere and later: 10-bit mantissas in the convolutions, about
// 1e-3 relative) off while a check runs, so that CUDA is held to the CPU's 1e-4.
class NoTf32 {
 public:
  NoTf32() : was_(at::globalContext().allowTF32CuDNN()) { at::globalContext().setAllowTF32CuDNN(false); }
  ~NoTf32() { at::globalContext().setAllowTF32CuDNN(was_); }
  NoTf32(const NoTf32&) = delete;
  NoTf32& operator=(const NoTf32&) = delete;

 private:
  bool was_;
};

const char* const kNoCuda = "no CUDA device in this LibTorch or machine: run bench/gpu.sh on a GPU machine";

// One evaluation of a fixture config on `device`: its loss terms and the input gradient (on the CPU).
std::pair<LossValues, at::Tensor> evaluate_config(const nlohmann::json& cfg, const at::Device& device) {
  const LossWeights w = stylize::test::parity_loss_weights(cfg);
  const Preprocessing pre = parse_preprocessing(cfg["preprocessing"]);
  auto net = std::make_shared<Vgg19>(synthetic_vgg19(cfg["seed"].get<uint32_t>()),
                                     cfg["pooling"] == "avg" ? Pooling::avg : Pooling::max, deepest_layer(w));
  net->to(device);
  at::Tensor content = preprocess(hashed_image(32, 32, 9001), pre).to(device);
  at::Tensor style = preprocess(hashed_image(36, 40, 9002), pre).to(device);
  at::Tensor x = preprocess(hashed_image(32, 32, 9003), pre).to(device).detach().set_requires_grad(true);

  StyleLoss loss(net, w, compute_content_targets(*net, w, content), compute_style_targets(*net, w, {style}, {}));
  LossTerms terms = loss.evaluate(x);
  terms.total.backward();
  return {to_values(terms), x.grad().cpu()};
}

class Parity : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

}  // namespace

TEST_P(Parity, LossTermsAndGradientMatchPyTorch) {
  const auto fixture = load_fixture();
  const auto& [index, device] = GetParam();
  const auto& cfg = fixture["configs"][index];
  SCOPED_TRACE(cfg["name"].get<std::string>() + " on " + device);
  if (device == "cuda" && !at::hasCUDA()) GTEST_SKIP() << kNoCuda;
  NoTf32 exact;
  const auto [values, grad] = evaluate_config(cfg, at::Device(device));
  stylize::test::expect_parity(values, grad, cfg["expected"], stylize::test::parity_loss_weights(cfg));
}

INSTANTIATE_TEST_SUITE_P(Configs, Parity, ::testing::Combine(::testing::Values(0, 1), ::testing::Values("cpu", "cuda")));

namespace {

struct RunOn {
  StylizeOutput out;
  int host_reads = 0;
};

// A whole stylize() of `iterations` (the CLI's losses, synthetic VGG19; its L-BFGS, or Adam with a
// step of 1 level) on `device`.
RunOn run_on(const at::Device& device, Precision precision, int iterations = 10,
             OptimizerKind kind = OptimizerKind::lbfgs) {
  Vgg19Weights weights;
  weights.params = synthetic_vgg19(1);
  StylizeParams params;
  params.optimizer.iterations = iterations;
  params.optimizer.kind = kind;
  if (kind == OptimizerKind::adam) params.optimizer.learning_rate = 1.0;
  Stylizer stylizer(weights, Preprocessing::caffe, Pooling::max, deepest_layer(params.loss), device, precision);
  const StyleTargets targets = stylizer.style_targets(params.loss, {hashed_image(44, 60, 9002)}, {});
  const at::Tensor content = hashed_image(48, 64, 9001);
  RunOn r;
  r.host_reads = stylize::test::host_reads_during([&] { r.out = stylizer.stylize(content, targets, params, {}); });
  return r;
}

}  // namespace

// What the parity cases cannot see: the style targets, the optimisers and the written image on the
// GPU, against the same runs on the CPU; and no wait for the GPU that the CPU run does not also make.
// L-BFGS's trajectories are not compared: its first step is tiny (1/|g|_1), so its second divides
// by the difference of two nearly equal gradients and a 1e-5 difference in a gradient becomes a
// percent in the step. Measured on an H200 with TF32 off: 1.0% apart in loss and 0.42 levels in the
// image after 2 iterations, 5.7% and 10.8 levels after 10 (the CPU's own two convolution paths,
// Winograd and oneDNN direct: 2e-4 after 2). Adam has no such division. L-BFGS on the GPU is held to
// lowering the loss here, and by bench/gpu.sh to ending 500 iterations within 0.25% of PyTorch's
// L-BFGS on the same GPU.
TEST(Cuda, ShortRunsMatchTheCpusAndReadNoMoreBack) {
  if (!at::hasCUDA()) GTEST_SKIP() << kNoCuda;
  NoTf32 exact;
  const RunOn cpu = run_on(at::Device("cpu"), Precision::fp32, 10, OptimizerKind::adam);
  const RunOn gpu = run_on(at::Device("cuda"), Precision::fp32, 10, OptimizerKind::adam);
  const TransferResult &c = cpu.out.transfer, &g = gpu.out.transfer;
  EXPECT_EQ(g.iterations, 10);
  EXPECT_LT(rel_diff(g.initial.total, c.initial.total), 1e-4) << g.initial.total << " vs " << c.initial.total;
  EXPECT_LT(rel_diff(g.final.total, c.final.total), 1e-3) << g.final.total << " vs " << c.final.total;
  ASSERT_TRUE(gpu.out.rgb.device().is_cpu());
  const double mean_levels = (gpu.out.rgb - cpu.out.rgb).abs().mean().item<double>();
  const double moved = (cpu.out.rgb - hashed_image(48, 64, 9001)).abs().mean().item<double>();
  EXPECT_LT(mean_levels, 0.05 * moved) << "mean |GPU - CPU| of the written image, levels of 255; Adam moved it "
                                       << moved;
  std::printf("cuda: adam: loss %.8g -> %.8g (cpu %.8g -> %.8g), image mean |diff| %.5f levels of %.4f moved\n",
              g.initial.total, g.final.total, c.initial.total, c.final.total, mean_levels, moved);

  const RunOn cpu10 = run_on(at::Device("cpu"), Precision::fp32, 10);
  const RunOn gpu10 = run_on(at::Device("cuda"), Precision::fp32, 10);
  const TransferResult& g10 = gpu10.out.transfer;
  EXPECT_LT(rel_diff(g10.initial.total, cpu10.out.transfer.initial.total), 1e-4);
  EXPECT_LT(g10.final.total, 0.9 * g10.initial.total) << g10.initial.total << " -> " << g10.final.total;
  EXPECT_LE(gpu10.host_reads, cpu10.host_reads) << "reads back from the GPU; the CPU run makes " << cpu10.host_reads;
  std::printf("cuda: lbfgs: loss %.7g -> %.7g (cpu -> %.7g), host reads %d (cpu %d)\n", g10.initial.total,
              g10.final.total, cpu10.out.transfer.final.total, gpu10.host_reads, cpu10.host_reads);
}

// bf16 on CUDA (cuDNN's bf16 convolutions, the Gram products in fp32): asked for explicitly (auto
// picks fp32 there), so it must run and stay near the fp32 problem. Compared under Adam, for the
// reason Cuda.ShortRuns... gives: ten L-BFGS steps from gradients 0.4% apart end anywhere in a
// band of losses (fp32 alone ended at 117950-123571 over three calls on an H200 and at 166183 on an
// H100, where bf16 ended at 120517). L-BFGS in bf16 is held to lowering the loss.
TEST(Cuda, Bf16RunsAndStaysNearFp32) {
  if (!at::hasCUDA()) GTEST_SKIP() << kNoCuda;
  const at::Device device("cuda");
  const RunOn fp32 = run_on(device, Precision::fp32, 10, OptimizerKind::adam);
  const RunOn bf16 = run_on(device, Precision::bf16, 10, OptimizerKind::adam);
  const TransferResult &f = fp32.out.transfer, &b = bf16.out.transfer;
  EXPECT_LT(rel_diff(b.initial.total, f.initial.total), 5e-2) << b.initial.total << " vs " << f.initial.total;
  // On this Zen 4's CPU (AVX512-BF16): 181937 against 181848, images 0.44 levels apart of 6.96 moved.
  EXPECT_LT(rel_diff(b.final.total, f.final.total), 2e-2) << b.final.total << " vs " << f.final.total;
  const double mean_levels = (bf16.out.rgb - fp32.out.rgb).abs().mean().item<double>();
  const double moved = (fp32.out.rgb - hashed_image(48, 64, 9001)).abs().mean().item<double>();
  EXPECT_LT(mean_levels, 0.2 * moved) << "mean |bf16 - fp32| of the written image, levels of 255; Adam moved it " << moved;
  const RunOn lbfgs = run_on(device, Precision::bf16, 10);
  const TransferResult& l = lbfgs.out.transfer;
  EXPECT_LT(l.final.total, 0.9 * l.initial.total) << l.initial.total << " -> " << l.final.total;
  std::printf("%s bf16: adam: loss %.6g -> %.6g (fp32 %.6g -> %.6g), image mean |diff| %.4f levels of %.4f moved; "
              "lbfgs: %.6g -> %.6g\n", device.str().c_str(), b.initial.total, b.final.total, f.initial.total,
              f.final.total, mean_levels, moved, l.initial.total, l.final.total);
}
