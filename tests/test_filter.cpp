// Fast filters in the engine: the network's shape and sizes, its file (save, load, every malformed
// case), and training (the loss falls; a resumed run is the uninterrupted one; batches by seed and step).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "stylize/error.hpp"
#include "stylize/filter.hpp"
#include "stylize/runtime.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/train.hpp"
#include "support.hpp"

namespace stylize {
namespace {

using test::error_of;
using test::TempDir;

const FilterArch kTiny{4, 1};

TEST(Filter, OutputHasTheInputsSizeForOddSidesAndBatches) {
  const FilterNet net(kTiny, 7);
  for (const auto& [h, w] : std::vector<std::pair<int, int>>{{16, 16}, {37, 53}, {30, 17}, {64, 48}}) {
    const at::Tensor x = at::cat({synthetic_image(h, w, 1), synthetic_image(h, w, 2)}, 0);
    const at::Tensor y = apply_filter(net, x);
    EXPECT_EQ(y.sizes(), x.sizes()) << h << "x" << w;
    EXPECT_GE(y.min().item<float>(), 0.0f);
    EXPECT_LE(y.max().item<float>(), 255.0f);
    // Each image of a batch is its own (instance norm): the batch gives what each alone gives.
    EXPECT_TRUE(at::allclose(y[1], apply_filter(net, x.narrow(0, 1, 1))[0], 1e-4, 1e-3));
  }
}

TEST(Filter, Bf16ApplyRunsAndStaysCloseToFp32) {
  // bf16 is what --precision auto picks on CPUs with AMX or AVX512-BF16 (LibTorch 1.13 has no bf16
  // reflection padding: the first run of this path on such a CPU failed there).
  FilterNet net({8, 2}, 5);
  const at::Tensor x = synthetic_image(37, 53, 3);
  const at::Tensor fp32 = apply_filter(net, x);
  net.set_precision(Precision::bf16);
  const at::Tensor bf16 = apply_filter(net, x);
  ASSERT_EQ(bf16.sizes(), x.sizes());
  ASSERT_EQ(bf16.scalar_type(), at::kFloat);
  const double diff = (bf16 - fp32).abs().mean().item<double>();
  // With bf16 dot products (AMX, AVX512-BF16) oneDNN sums in fp32 and rounds each output once. On a
  // CPU without them LibTorch 1.13 runs other bf16 kernels: on an AVX2-only AMD EPYC (Zen 1,
  // 2026-12-04) a 32-channel 3x3 convolution erred 12x its output's own rounding (0.071 against
  // 0.0057 mean), and this network's output 4.2 levels from fp32. --precision auto picks fp32 there.
  const CpuVectorFeatures cpu = engine_vector_features();
  const double bound = cpu.amx_bf16 || cpu.avx512_bf16 ? 3.0 : 8.0;
  EXPECT_LT(diff, bound) << "levels of 255 on average";
  EXPECT_GT(diff, 0.0) << "the bf16 weights were used";
}

TEST(Filter, TooSmallAnInputIsRefusedInWords) {
  const FilterNet net(kTiny, 7);
  EXPECT_NE(error_of<UsageError>([&] { apply_filter(net, synthetic_image(15, 40, 1)); }).find("at least 16 px"),
            std::string::npos);
}

TEST(Filter, TheSeedDecidesTheInitialWeights) {
  const FilterNet a(kTiny, 7), b(kTiny, 7), c(kTiny, 8);
  ASSERT_EQ(a.parameters().size(), filter_parameter_shapes(kTiny).size());
  EXPECT_TRUE(at::equal(a.parameters()[0], b.parameters()[0]));
  EXPECT_FALSE(at::equal(a.parameters()[0], c.parameters()[0]));
  // PyTorch's default bound for a 9×9×3 convolution: 1/sqrt(243).
  EXPECT_LE(a.parameters()[0].abs().max().item<float>(), 1.0f / std::sqrt(243.0f));
  EXPECT_GT(a.parameters()[0].abs().max().item<float>(), 0.9f / std::sqrt(243.0f));
}

TEST(Filter, ShapesFollowTheWidth) {
  const auto shapes = filter_parameter_shapes({16, 2});
  EXPECT_EQ(shapes.front().first, "in.conv.weight");
  EXPECT_EQ(shapes.front().second, (std::vector<int64_t>{16, 3, 9, 9}));
  EXPECT_EQ(shapes.back().first, "out.conv.bias");
  EXPECT_EQ(shapes.back().second, (std::vector<int64_t>{3}));
  size_t res = 0;
  for (const auto& s : shapes) res += s.first.rfind("res", 0) == 0;
  EXPECT_EQ(res, 2u * 2u * 4u);  // two blocks, two convolutions each, weight/bias/scale/shift
  EXPECT_NE(error_of<UsageError>([] { validate(FilterArch{3, 5}); }).find("`width` must be in 4..256"),
            std::string::npos);
}

TEST(Filter, SaveLoadApplyGivesTheSameBytes) {
  TempDir dir;
  const FilterNet net({8, 2}, 3);
  FilterInfo info{net.arch(), {{"style", "starry.jpg"}, {"steps", "12"}}};
  save_filter(dir / "f.safetensors", net, info);
  const LoadedFilter back = load_filter(dir / "f.safetensors");
  EXPECT_EQ(back.info.arch.width, 8);
  EXPECT_EQ(back.info.training.at("style"), "starry.jpg");
  EXPECT_EQ(back.info.training.count("format"), 0u);
  const at::Tensor x = synthetic_image(45, 61, 4);
  EXPECT_TRUE(at::equal(apply_filter(net, x), apply_filter(back.net, x)));
}

// A filter file with one thing changed, for the malformed cases.
struct Broken {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::string> meta{{"format", "stylize-filter"}, {"version", "1"}, {"width", "4"},
                                          {"residual_blocks", "1"}};
  Broken() {
    const FilterNet net(kTiny, 1);
    for (size_t i = 0; i < net.names().size(); ++i) tensors.push_back({net.names()[i], net.parameters()[i]});
  }
  std::string load_error(const std::string& path) const {
    write_safetensors(path, tensors, meta);
    return error_of<WeightsError>([&] { load_filter(path); });
  }
};

TEST(Filter, EachMalformedFileHasItsOwnMessage) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  auto expect = [&](const Broken& b, const std::string& part) {
    const std::string e = b.load_error(path);
    EXPECT_NE(e.find(part), std::string::npos) << "got: " << e;
    EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << "names the file: " << e;
  };
  Broken ok;
  EXPECT_EQ(ok.load_error(path), test::kNoError);
  Broken not_filter;
  not_filter.meta.erase("format");
  expect(not_filter, "is not a filter file");
  Broken version;
  version.meta["version"] = "2";
  expect(version, "format version '2'; this build reads version '1'");
  Broken width;
  width.meta["width"] = "four";
  expect(width, "'width' = 'four' in its metadata, not a whole number");
  Broken range;
  range.meta["width"] = "1000";
  expect(range, "'width' must be in 4..256");
  Broken missing;
  missing.tensors.erase(missing.tensors.begin() + 3);
  expect(missing, "tensor 'in.norm.bias' is missing from filter file");
  Broken shape;
  shape.tensors[4].second = at::zeros({8, 3, 3, 3});
  expect(shape, "tensor 'down1.conv.weight' has shape [8, 3, 3, 3] in");
  expect(shape, "expected [8, 4, 3, 3]");
  Broken extra;
  extra.tensors.push_back({"adam.m.in.conv.weight", at::zeros({1})});
  expect(extra, "unexpected tensor 'adam.m.in.conv.weight'");
  Broken nan;
  nan.tensors[0].second = nan.tensors[0].second.clone();
  nan.tensors[0].second.view(-1)[5] = NAN;
  expect(nan, "tensor 'in.conv.weight' in filter file");
  expect(nan, "NaN or infinite");
  // Truncated: the header promises more data than the file holds.
  write_safetensors(path, ok.tensors, ok.meta);
  std::vector<uint8_t> bytes = test::read_bytes(path);
  bytes.resize(bytes.size() - 100);
  test::write_bytes(path, bytes);
  EXPECT_NE(error_of<WeightsError>([&] { load_filter(path); }), test::kNoError);
}

// Training on the synthetic VGG19 (cut after relu2_2) with tiny crops.
struct TinyTraining {
  std::shared_ptr<const Vgg19> vgg;
  std::vector<at::Tensor> photos;
  PhotoSource source;
  TrainRequest request = train_defaults();
  TinyTraining() {
    request.loss.content_layers = {"relu2_1"};
    request.loss.style_layers = {"relu1_1", "relu2_1"};
    request.arch = kTiny;
    request.crop_size = 32;
    request.batch_size = 2;
    request.learning_rate = 1e-2;
    request.seed = 5;
    vgg = std::make_shared<Vgg19>(synthetic_vgg19(1), Pooling::max, vgg19_layer_index("relu2_1"));
    for (uint32_t k = 0; k < 3; ++k) photos.push_back(synthetic_image(40 + 4 * k, 48, 10 + k));
    source = {photos.size(), [this](size_t i) { return photos[i]; }};
  }
  FilterTrainer trainer() const {
    return FilterTrainer(vgg, Preprocessing::caffe, request, synthetic_image(48, 48, 99), at::kCPU);
  }
};

TEST(Train, TheLossFallsOnAFixedBatch) {
  const TinyTraining t;
  FilterTrainer trainer = t.trainer();
  const at::Tensor fixed = trainer.batch(t.source, 1000);
  const double before = trainer.evaluate(fixed).total;
  for (int i = 0; i < 40; ++i) trainer.step(t.source);
  const double after = trainer.evaluate(fixed).total;
  EXPECT_LT(after, 0.7 * before) << before << " -> " << after;
  EXPECT_EQ(trainer.steps_done(), 40);
  EXPECT_EQ(trainer.images_seen(), 80);
}

TEST(Train, BatchesAreAFunctionOfSeedAndStep) {
  TinyTraining t;
  const FilterTrainer a = t.trainer();
  EXPECT_TRUE(at::equal(a.batch(t.source, 3), a.batch(t.source, 3)));
  EXPECT_FALSE(at::equal(a.batch(t.source, 3), a.batch(t.source, 4)));
  EXPECT_EQ(a.batch(t.source, 3).sizes(), (at::IntArrayRef{2, 3, 32, 32}));
  t.request.seed = 6;
  EXPECT_FALSE(at::equal(a.batch(t.source, 3), t.trainer().batch(t.source, 3)));
}

TEST(Train, AResumedRunIsTheUninterruptedOne) {
  const TinyTraining t;
  TempDir dir;
  FilterTrainer whole = t.trainer();
  std::vector<double> losses;
  for (int i = 0; i < 6; ++i) losses.push_back(whole.step(t.source).loss.total);

  FilterTrainer first = t.trainer();
  for (int i = 0; i < 3; ++i) first.step(t.source);
  save_filter(dir / "c.safetensors", first.net(), {first.net().arch(), {{"steps", "3"}}}, first.optimiser_state());
  const LoadedFilter ckpt = load_filter(dir / "c.safetensors", "adam.");
  FilterTrainer second = t.trainer();
  second.resume(ckpt.net, ckpt.extra, 3);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(second.step(t.source).loss.total, losses[static_cast<size_t>(i)]) << i;
  for (size_t k = 0; k < whole.net().parameters().size(); ++k) {
    EXPECT_TRUE(at::equal(whole.net().parameters()[k], second.net().parameters()[k])) << whole.net().names()[k];
  }
}

TEST(Train, SettingsAreCheckedByFieldName) {
  TrainRequest r = train_defaults();
  r.crop_size = 30;
  EXPECT_NE(error_of<UsageError>([&] { validate(r); }).find("`crop_size` must be a multiple of 4"), std::string::npos);
  r = train_defaults();
  r.learning_rate = 0;
  EXPECT_NE(error_of<UsageError>([&] { validate(r); }).find("`learning_rate` must be in (0, 1], got 0"),
            std::string::npos);
  r = train_defaults();
  r.loss.style_layers.clear();
  EXPECT_NE(error_of<UsageError>([&] { validate(r); }).find("`style_layers`"), std::string::npos);
  r = train_defaults();
  r.loss.style_weight = -1;
  EXPECT_NE(error_of<UsageError>([&] { validate(r); }).find("`style_weight` must be a finite number >= 0, got -1"),
            std::string::npos);
  r = train_defaults();  // inf passes ">= 0" and would end the first step as a divergence
  r.loss.content_weight = std::numeric_limits<double>::infinity();
  EXPECT_NE(error_of<UsageError>([&] { validate(r); }).find("`content_weight` must be a finite number >= 0, got inf"),
            std::string::npos);
  EXPECT_EQ(error_of<UsageError>([] { validate(train_defaults()); }), test::kNoError);
}

}  // namespace
}  // namespace stylize
