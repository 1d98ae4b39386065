// The safetensors reader/writer and the VGG19 weights loader: valid files load exactly, and every
// malformed file is refused with its own message (never a crash).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::TempDir;

namespace {

// Raw file: 8-byte length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t len = -1) {
  std::vector<uint8_t> bytes;
  const uint64_t n = len < 0 ? header.size() : static_cast<uint64_t>(len);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>((n >> (8 * i)) & 0xff));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  stylize::test::write_bytes(path, bytes);
}

std::string weights_error(const std::function<void()>& f) { return stylize::test::error_of<WeightsError>(f); }

// The synthetic VGG19 tensors in order, optionally changed by `edit` before writing.
std::vector<std::pair<std::string, at::Tensor>> vgg_tensors() {
  const auto params = synthetic_vgg19(3);
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (const auto& name : vgg19_parameter_names()) t.emplace_back(name, params.at(name));
  return t;
}

}  // namespace

TEST(Safetensors, RoundTripKeepsValuesAndMetadata) {
  TempDir dir;
  at::Tensor a = at::arange(12, at::kFloat).view({3, 4}) * 0.5;
  at::Tensor b = at::tensor({-1.5f, 2.25f});
  write_safetensors(dir / "x.safetensors", {{"a", a}, {"b", b}}, {{"preprocessing", "caffe"}});
  SafetensorsFile f = read_safetensors_header(dir / "x.safetensors");
  EXPECT_EQ(f.metadata.at("preprocessing"), "caffe");
  EXPECT_EQ(f.tensors.at("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(f.data_start % 8, 0u) << "data section must be 8-byte aligned";
  EXPECT_TRUE(at::equal(read_safetensors_tensor(f, "a"), a));
  EXPECT_TRUE(at::equal(read_safetensors_tensor(f, "b"), b));
}

TEST(Safetensors, HalfAndBFloat16AreConvertedToFloat) {
  TempDir dir;
  // 1.0, -2.0, 0.5 in IEEE half: 0x3C00, 0xC000, 0x3800; in bfloat16: 0x3F80, 0xC000, 0x3F00.
  const std::string half("\x00\x3C\x00\xC0\x00\x38", 6);
  const std::string bf16("\x80\x3F\x00\xC0\x00\x3F", 6);
  write_raw(dir / "h.st",
            R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]}})",
            half + bf16);
  auto f = read_safetensors_header(dir / "h.st");
  at::Tensor expected = at::tensor({1.0f, -2.0f, 0.5f});
  EXPECT_TRUE(at::equal(read_safetensors_tensor(f, "h"), expected));
  EXPECT_TRUE(at::equal(read_safetensors_tensor(f, "b"), expected));
}

TEST(Safetensors, MalformedFilesEachHaveTheirOwnMessage) {
  TempDir dir;
  const std::string ok_tensor = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data(8, '\0');
  struct Case {
    std::string name, header, data;
    int64_t len;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"bad_length", "{" + ok_tensor + "}", data, 1 << 30, "exceeds the file size"},
      {"bad_json", "{\"t\": [1, 2", data, -1, "not valid JSON"},
      {"not_object", "[1,2,3]", data, -1, "not an object"},
      {"out_of_range", R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data, -1, "outside the data section"},
      {"inconsistent", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data, -1, "needs 12 bytes"},
      {"unknown_dtype", R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", data, -1, "unknown dtype 'Q7'"},
      {"no_offsets", R"({"t":{"dtype":"F32","shape":[2]}})", data, -1, "lacks dtype, shape or data_offsets"},
      {"negative_dim", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data, -1, "negative"},
  };
  for (const auto& c : cases) {
    const std::string path = dir / (c.name + ".safetensors");
    write_raw(path, c.header, c.data, c.len);
    const std::string msg = weights_error([&] { read_safetensors_header(path); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << c.name << " message must name the file: " << msg;
  }
  stylize::test::write_bytes(dir / "tiny", {1, 2, 3});
  EXPECT_NE(weights_error([&] { read_safetensors_header(dir / "tiny"); }).find("too short"), std::string::npos);
  stylize::test::write_bytes(dir / "empty", {});
  EXPECT_NE(weights_error([&] { read_safetensors_header(dir / "empty"); }).find("0 bytes"), std::string::npos);
  EXPECT_NE(weights_error([&] { read_safetensors_header(dir / "absent"); }).find("no such file"), std::string::npos);
}

TEST(Weights, LoadsVgg19AndIgnoresClassifier) {
  TempDir dir;
  auto tensors = vgg_tensors();
  tensors.emplace_back("classifier.0.weight", at::ones({8, 4}));
  write_safetensors(dir / "w.safetensors", tensors, {{"preprocessing", "torchvision"}});
  Vgg19Weights w = load_vgg19_weights(dir / "w.safetensors");
  EXPECT_EQ(w.params.size(), 32u);
  EXPECT_EQ(w.params.count("classifier.0.weight"), 0u);
  ASSERT_TRUE(w.preprocessing.has_value());
  EXPECT_EQ(*w.preprocessing, Preprocessing::torchvision);
  EXPECT_TRUE(at::equal(w.params.at("features.34.weight"), tensors[30].second));
  // Cut after relu2_1 (index 6): only conv1_1, conv1_2, conv2_1 are kept.
  EXPECT_EQ(load_vgg19_weights(dir / "w.safetensors", 6).params.size(), 6u);
}

TEST(Weights, WrongShapeMissingTensorAndTruncationAreRefused) {
  TempDir dir;
  auto tensors = vgg_tensors();
  auto wrong = tensors;
  wrong[0].second = at::zeros({64, 3, 5, 5});
  write_safetensors(dir / "shape.safetensors", wrong, {});
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "shape.safetensors"); })
                .find("tensor 'features.0.weight' has shape [64, 3, 5, 5] in file, expected [64, 3, 3, 3]"),
            std::string::npos);

  auto missing = tensors;
  missing.erase(missing.begin() + 5);  // features.5.bias
  write_safetensors(dir / "missing.safetensors", missing, {});
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "missing.safetensors"); }).find("'features.5.bias'"),
            std::string::npos);

  write_safetensors(dir / "full.safetensors", tensors, {});
  auto bytes = stylize::test::read_bytes(dir / "full.safetensors");
  bytes.resize(bytes.size() / 2);
  stylize::test::write_bytes(dir / "cut.safetensors", bytes);
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "cut.safetensors"); }).find("truncated"), std::string::npos);

  auto nan = tensors;
  nan[2].second = nan[2].second.clone();
  nan[2].second.view(-1)[7] = std::nanf("");
  write_safetensors(dir / "nan.safetensors", nan, {});
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "nan.safetensors"); }).find("NaN"), std::string::npos);

  write_safetensors(dir / "meta.safetensors", tensors, {{"preprocessing", "opencv"}});
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "meta.safetensors"); }).find("'opencv'"),
            std::string::npos);
}

// A file may hold VGG19 up to any convolution (the real shallow file stops at conv3_4): it loads for
// layers it covers, and a deeper layer is refused naming the layer, the missing convolutions and the way out.
TEST(Weights, APrefixOfTheNetworkServesTheLayersItCovers) {
  TempDir dir;
  auto tensors = vgg_tensors();
  tensors.resize(16);  // features.0 … features.16: conv1_1 … conv3_4
  write_safetensors(dir / "prefix.safetensors", tensors, {{"preprocessing", "caffe"}});
  EXPECT_EQ(check_vgg19_prefix(read_safetensors_header(dir / "prefix.safetensors")), 8);
  EXPECT_EQ(describe_vgg19_prefix(8), "conv1_1 \u2026 conv3_4: 8 of 16 convolutions");
  EXPECT_EQ(deepest_usable_layer(8), "relu3_4");

  const Vgg19Weights w = load_vgg19_weights(dir / "prefix.safetensors", vgg19_layer_index("pool3"));
  EXPECT_EQ(w.convolutions, 8);
  EXPECT_EQ(w.params.size(), 16u);
  EXPECT_TRUE(at::equal(w.params.at("features.16.bias"), tensors[15].second));
  EXPECT_EQ(load_vgg19_prefix(dir / "prefix.safetensors").params.size(), 16u);

  const std::string deeper =
      weights_error([&] { load_vgg19_weights(dir / "prefix.safetensors", vgg19_layer_index("relu4_2")); });
  EXPECT_NE(deeper.find("holds only conv1_1 \u2026 conv3_4 (8 of 16 convolutions), but layer relu4_2 needs "
                        "conv4_1 \u2026 conv4_2 too (features.19 \u2026 features.21)"),
            std::string::npos)
      << deeper;
  EXPECT_NE(deeper.find("'stylize weights fetch'"), std::string::npos) << deeper;
  EXPECT_NE(deeper.find("layers up to relu3_4"), std::string::npos) << deeper;
  EXPECT_NE(deeper.find(dir / "prefix.safetensors"), std::string::npos) << deeper;
  // One convolution short is said without a range.
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "prefix.safetensors", vgg19_layer_index("conv4_1")); })
                .find("needs conv4_1 too (features.19)"),
            std::string::npos);
  // The whole network (fetch, convert, the default) still needs every tensor, and says which is first missing.
  const std::string full = weights_error([&] { load_vgg19_weights(dir / "prefix.safetensors"); });
  EXPECT_NE(full.find("tensor 'features.19.weight' (shape [512, 256, 3, 3]) is missing"), std::string::npos) << full;
  // A valid prefix is short, not misnamed: it says so, and where such a file serves as it is.
  const std::string header = weights_error([&] { check_vgg19_header(read_safetensors_header(dir / "prefix.safetensors")); });
  EXPECT_NE(header.find("it holds only conv1_1 \u2026 conv3_4: 8 of 16 convolutions, and the whole VGG19 is needed "
                        "here (tensor 'features.19.weight'"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find("for loss layers up to relu3_4"), std::string::npos) << header;
  EXPECT_EQ(header.find("torchvision"), std::string::npos) << header;
}

TEST(Weights, APrefixWithAGapOrAHalfLayerOrAWrongShapeIsRefused) {
  TempDir dir;
  auto tensors = vgg_tensors();
  tensors.resize(16);
  auto gap = tensors;
  gap.erase(gap.begin() + 4, gap.begin() + 6);  // features.5 (conv2_1) gone, features.7 still there
  write_safetensors(dir / "gap.safetensors", gap, {});
  const std::string g = weights_error([&] { load_vgg19_prefix(dir / "gap.safetensors"); });
  EXPECT_NE(g.find("it has conv2_2 ('features.7.weight') but not conv2_1 ('features.5.weight') before it"),
            std::string::npos)
      << g;
  EXPECT_NE(weights_error([&] { load_vgg19_weights(dir / "gap.safetensors", 3); }).find("conv2_1"),
            std::string::npos)
      << "a gap is an error even below the layers a run needs";

  auto half = tensors;
  half.pop_back();  // features.16.bias
  write_safetensors(dir / "half.safetensors", half, {});
  EXPECT_NE(weights_error([&] { load_vgg19_prefix(dir / "half.safetensors"); }).find("'features.16.bias'"),
            std::string::npos);

  auto shape = tensors;
  shape[14].second = at::zeros({256, 128, 3, 3});
  write_safetensors(dir / "shape.safetensors", shape, {});
  EXPECT_NE(weights_error([&] { load_vgg19_prefix(dir / "shape.safetensors"); })
                .find("tensor 'features.16.weight' has shape [256, 128, 3, 3] in file, expected [256, 256, 3, 3]"),
            std::string::npos);

  write_safetensors(dir / "none.safetensors", {{"classifier.0.weight", at::ones({2, 2})}}, {});
  EXPECT_NE(weights_error([&] { load_vgg19_prefix(dir / "none.safetensors"); }).find("'features.0.weight'"),
            std::string::npos);
}

TEST(Weights, SearchOrderAndNotFoundMessage) {
  TempDir dir;
  const std::string cwd = std::filesystem::current_path().string();
  std::filesystem::current_path(dir.path());
  setenv("XDG_DATA_HOME", (dir / "xdg").c_str(), 1);
  unsetenv("STYLIZE_WEIGHTS");
  const std::string msg = weights_error([] { locate_weights(""); });
  EXPECT_NE(msg.find("no VGG19 weights found"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir / "xdg/stylize/vgg19.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stylize weights fetch"), std::string::npos) << msg;

  std::filesystem::create_directories(dir / "xdg/stylize");
  stylize::test::write_bytes(dir / "xdg/stylize/vgg19.safetensors", {0});
  EXPECT_EQ(locate_weights(""), dir / "xdg/stylize/vgg19.safetensors");
  std::filesystem::create_directories(dir / "models");
  stylize::test::write_bytes(dir / "models/vgg19.safetensors", {0});
  EXPECT_EQ(locate_weights(""), "models/vgg19.safetensors");
  setenv("STYLIZE_WEIGHTS", (dir / "env.safetensors").c_str(), 1);
  EXPECT_NE(weights_error([] { locate_weights(""); }).find("$STYLIZE_WEIGHTS"), std::string::npos);
  stylize::test::write_bytes(dir / "env.safetensors", {0});
  EXPECT_EQ(locate_weights(""), dir / "env.safetensors");
  EXPECT_EQ(locate_weights(dir / "env.safetensors"), dir / "env.safetensors");
  EXPECT_NE(weights_error([&] { locate_weights(dir / "nope"); }).find("given by `weights`"), std::string::npos)
      << "the engine names the request field; each front-end renders it (render_fields)";
  unsetenv("STYLIZE_WEIGHTS");
  std::filesystem::current_path(cwd);
}

// Found by fuzz/fuzz_safetensors.cpp (fuzz/regressions/safetensors/empty-tensor): a tensor of shape
// [0] has no storage, and reading it passed a null pointer to memcpy (undefined, even for 0 bytes).
TEST(Safetensors, AnEmptyTensorReadsAsEmpty) {
  TempDir dir;
  const std::string header = R"({"x":{"data_offsets":[4,4],"dtype":"F32","shape":[0]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header + std::string(4, '\0');
  test::write_bytes(dir / "e.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  const SafetensorsFile f = read_safetensors_header(dir / "e.safetensors");
  EXPECT_EQ(safetensors_tensor_from_bytes(f, "x", bytes.data() + f.data_start).numel(), 0);
  EXPECT_EQ(read_safetensors_tensor(f, "x").numel(), 0);
}
