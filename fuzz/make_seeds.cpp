// Seed corpora for the fuzz targets, made by the same generators as the tests (synthetic images,
// safetensors and filter files as stylize writes them, the Keras layout of tests/keras_h5_writer),
// each small: libFuzzer mutates seeds of a few KB far faster than files of megabytes.
//   fuzz_make_seeds DIR   -> DIR/<target>/<seed>
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "../tests/keras_h5_writer.hpp"
#include "stylize/filter.hpp"
#include "stylize/image/image.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"

namespace fs = std::filesystem;
using namespace stylize;

namespace {

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string encoded(int h, int w, const std::string& ext, uint32_t stream) {
  const auto b = encode_image(synthetic_image(h, w, stream), ext, 90);
  return std::string(b.begin(), b.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = out / "tmp";
  fs::create_directories(tmp);

  write_safetensors((tmp / "a.safetensors").string(), {{"w", at::arange(6, at::kFloat).reshape({2, 3})}, {"b", at::ones({3})}},
                    {{"format", "pt"}, {"preprocessing", "caffe"}});
  put(out / "safetensors", "two_tensors", slurp(tmp / "a.safetensors"));
  write_safetensors((tmp / "b.safetensors").string(), {{"x", at::zeros({1})}}, {});
  put(out / "safetensors", "one_tensor", slurp(tmp / "b.safetensors"));

  const char* exts[] = {"png", "jpg", "webp", "bmp", "tif"};
  for (int i = 0; i < 5; ++i) put(out / "image", exts[i], std::string(1, static_cast<char>(i)) + encoded(8, 12, exts[i], i + 1));

  put(out / "job_line", "style", R"({"content": "c.jpg", "style": "s.jpg", "size": 256, "output": "o.png"})");
  put(out / "job_line", "fields", R"({"content": "c.jpg", "styles": ["a.jpg", "b.jpg"], "style_blend": [3, 1], "iterations": [400, 200], "scales": 2, "original_colors": true, "init": "random"})");
  put(out / "job_line", "filter", R"({"content": "c.jpg", "filter": "f.safetensors", "size": 64})");

  const std::string nul(1, '\0');
  const std::string png = encoded(8, 12, "png", 1), style = encoded(8, 8, "png", 2);
  put(out / "form", "upload", "content" + nul + png + nul + "style" + nul + style + nul + "size" + nul + "32" + nul +
                                  "iterations" + nul + "3" + nul + "format" + nul + "jpg");
  put(out / "form", "fields", "content" + nul + png + nul + "style_id" + nul + "x" + nul + "style_weight" + nul + "1e5" +
                                  nul + "scales" + nul + "2" + nul + "tile" + nul + "32");

  std::map<std::string, at::Tensor> params;
  for (const auto& name : vgg19_parameter_names()) {
    params[name] = name.find("weight") != std::string::npos ? at::ones({2, 2, 3, 3}) : at::zeros({2});
  }
  test::write_keras_vgg19((tmp / "k.h5").string(), params);
  put(out / "keras_h5", "tiny_shapes", slurp(tmp / "k.h5"));

  FilterInfo info;
  info.arch = {4, 0};
  info.training = {{"style", "s.jpg"}, {"steps", "1"}};
  save_filter((tmp / "f.safetensors").string(), FilterNet(info.arch, 1), info);
  put(out / "filter", "width4", slurp(tmp / "f.safetensors"));
  fs::remove_all(tmp);
  return 0;
}
