// The flags every stylising command shares (weights, losses, optimiser, size, device, threads) and
// turning them into a loaded engine. `stylize`, `stylize batch` and `stylize serve` all use these,
// so a flag means the same everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "stylize/image.hpp"
#include "stylize/stylizer.hpp"

namespace stylize::cli {

struct EngineFlags {
  std::string weights;
  std::string preprocess = "auto";
  std::string pooling = "max";
  std::vector<std::string> content_layers{"relu4_2"};
  std::vector<std::string> style_layers{"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"};
  std::vector<double> style_layer_weights;
  std::optional<double> content_weight, style_weight, tv_weight;
  std::string optimizer = "lbfgs";
  std::optional<double> learning_rate;
  int lbfgs_history = 100;
  std::string line_search = "none";
  bool unbounded = false;  // let pixels leave 0..255 while optimising
  std::vector<int> iterations{1000};  // one value, or one per scale
  int scales = 1;                     // coarse-to-fine: sizes size/2^(scales-1) ... size
  std::string init = "content";
  uint64_t seed = 0;
  int size = 512;
  double style_scale = 1.0;
  std::vector<double> style_blend;
  bool original_colors = false;
  int quality = 95;
  std::string device = "auto";
  std::string precision = "auto";
  int threads = 0;
  int print_every = 50;
  double max_megapixels = kDefaultMaxPixels / 1e6;
  int quiet = 0, verbose = 0;
};

void add_engine_flags(CLI::App& app, EngineFlags& f);

// A loaded network plus the settings derived from the flags and the weights file.
struct Engine {
  std::unique_ptr<Stylizer> stylizer;
  std::string weights_path;
  std::map<std::string, std::string> weights_metadata;
  Preprocessing preprocessing = Preprocessing::caffe;
  at::Device device = at::kCPU;
  int threads = 1;
  StylizeParams params;  // losses and optimiser from the flags; init kind set, no init image
  double seconds_load = 0;
};

// Validates layer names and the device first (cheap), then loads and cuts the network.
Engine load_engine(const EngineFlags& f);

// Checks that need no weights: layer names, device name syntax, --init value. Throws UsageError.
void validate_engine_flags(const EngineFlags& f);

// An image resized for the run: content to --size, styles to --style-scale × --size.
at::Tensor load_content(const std::string& path, const EngineFlags& f, LoadedImage* info = nullptr);
at::Tensor load_style(const std::string& path, const EngineFlags& f, LoadedImage* info = nullptr);

// The optimiser settings the flags describe (what load_engine puts into Engine::params).
OptimizerOptions engine_optimizer_options(const EngineFlags& f, Preprocessing p = Preprocessing::caffe);

// Longest side and iterations of scale k (0 = coarsest) of a --scales run.
int scale_size(const EngineFlags& f, int k);
int scale_iterations(const EngineFlags& f, int k);

// Every effective setting, for reports.
nlohmann::json settings_json(const EngineFlags& f, const Engine& e);
nlohmann::json loss_json(const LossValues& v, const LossWeights& w);

}  // namespace stylize::cli
