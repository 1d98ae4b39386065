#include "engine_flags.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>

#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"

namespace stylize::cli {
namespace {

// Defaults that depend on the preprocessing convention (README "Losses" says why).
struct LossDefaults {
  double content, style, tv;
};
LossDefaults loss_defaults(Preprocessing p) {
  if (p == Preprocessing::caffe) return {5.0, 100.0, 1e-3};
  return {1.0, 1e6, 0.5};
}

}  // namespace

// List flags take one word, split at commas (`-n 400,300,100`): CLI11 lets a vector option go on
// taking words otherwise, so `stylize -n 100 photo.jpg style.jpg` would swallow the images.
void add_engine_flags(CLI::App& app, EngineFlags& f) {
  app.add_option("--weights", f.weights,
                 "VGG19 safetensors file (default: $STYLIZE_WEIGHTS, ./models/vgg19.safetensors, "
                 "$XDG_DATA_HOME/stylize/vgg19.safetensors)");
  app.add_option("--preprocess", f.preprocess, "Input convention: auto (from the weights file, else caffe), caffe, torchvision")
      ->check(CLI::IsMember({"auto", "caffe", "torchvision"}))
      ->capture_default_str();
  app.add_option("--pooling", f.pooling, "Pooling layers: max or avg")
      ->check(CLI::IsMember({"max", "avg"}))
      ->capture_default_str();
  app.add_option("--content-layers", f.content_layers, "Comma-separated content layers")
      ->delimiter(',')->allow_extra_args(false)
      ->capture_default_str();
  app.add_option("--style-layers", f.style_layers, "Comma-separated style layers")->delimiter(',')->allow_extra_args(false)->capture_default_str();
  app.add_option("--style-layer-weights", f.style_layer_weights,
                 "Comma-separated weight per style layer (default: 1 each)")
      ->delimiter(',')->allow_extra_args(false);
  app.add_option("--content-weight", f.content_weight, "Content weight alpha [default: 5 caffe, 1 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--style-weight", f.style_weight, "Style weight beta [default: 100 caffe, 1e6 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tv-weight", f.tv_weight, "Total-variation weight [default: 1e-3 caffe, 0.5 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--optimizer", f.optimizer, "lbfgs or adam")->check(CLI::IsMember({"lbfgs", "adam"}))->capture_default_str();
  app.add_option("--learning-rate", f.learning_rate,
                 "Step size [default: 1 for lbfgs; 10 caffe units (neural-style) for adam]")
      ->check(CLI::PositiveNumber);
  app.add_option("--lbfgs-history", f.lbfgs_history, "L-BFGS history size (memory: 2 images per entry)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--line-search", f.line_search, "L-BFGS line search: none or strong-wolfe")
      ->check(CLI::IsMember({"none", "strong-wolfe"}))
      ->capture_default_str();
  app.add_flag("--unbounded", f.unbounded,
               "Let pixels leave 0..255 while optimising (neural-style's way; the written image, clamped, then "
               "scores worse than the optimiser's)");
  app.add_option("-n,--iterations", f.iterations,
                 "Optimiser iterations; with --scales, one value for every scale or a comma-separated list, "
                 "coarsest first")
      ->type_name("N[,N...]")
      ->delimiter(',')->allow_extra_args(false)
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--scales", f.scales,
                 "Coarse-to-fine: solve at size/2^(N-1), upsample the result as the start of the next scale, "
                 "..., finish at --size")
      ->check(CLI::Range(1, 6))
      ->capture_default_str();
  app.add_option("--init", f.init, "Starting image: content, random, style, or an image FILE")->capture_default_str();
  app.add_option("--seed", f.seed, "Random seed (random init); same seed + same threads = same bytes on CPU")
      ->capture_default_str();
  app.add_option("-s,--size", f.size, "Longest side of the output in pixels")->check(CLI::Range(16, 16384))->capture_default_str();
  app.add_option("--style-scale", f.style_scale, "Style images' longest side = style-scale x size")
      ->check(CLI::Range(0.05, 8.0))
      ->capture_default_str();
  app.add_option("--style-blend", f.style_blend, "Comma-separated weight per style image (normalised to sum 1)")
      ->delimiter(',')->allow_extra_args(false);
  app.add_flag("--original-colors", f.original_colors, "Keep the content's colours (transfer luminance only)");
  app.add_option("--quality", f.quality, "JPEG/WebP quality")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--device", f.device, "auto (CUDA when present), cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--precision", f.precision,
                 "Network arithmetic: auto (bf16 on CPUs with AMX, else fp32), fp32 or bf16; losses stay fp32")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--threads", f.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024))->capture_default_str();
  app.add_option("--print-every", f.print_every, "Log a line every N iterations when not on a terminal (0 = never)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--max-megapixels", f.max_megapixels, "Refuse input images larger than this before decoding")
      ->check(CLI::Range(0.001, 1000.0))
      ->capture_default_str();
  app.add_flag("-q,--quiet", f.quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", f.verbose, "Debug logging");
}

void validate_engine_flags(const EngineFlags& f) {
  LossWeights loss;
  loss.content_layers = f.content_layers;
  loss.style_layers = f.style_layers;
  loss.style_layer_weights = f.style_layer_weights;
  deepest_layer(loss);
  if (f.iterations.size() != 1 && static_cast<int>(f.iterations.size()) != f.scales) {
    throw UsageError("--iterations has " + std::to_string(f.iterations.size()) + " values for " +
                     std::to_string(f.scales) + " scales; give one value or one per scale");
  }
  if (f.scales > 1 && scale_size(f, 0) < 32) {
    throw UsageError("--scales " + std::to_string(f.scales) + " makes the first scale " +
                     std::to_string(scale_size(f, 0)) + " px; use fewer scales or a larger --size (>= 32 px)");
  }
}

int scale_size(const EngineFlags& f, int k) {
  return static_cast<int>(std::lround(f.size / std::pow(2.0, f.scales - 1 - k)));
}

int scale_iterations(const EngineFlags& f, int k) {
  return f.iterations.size() == 1 ? f.iterations[0] : f.iterations[static_cast<size_t>(k)];
}

Engine load_engine(const EngineFlags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  Engine e;
  LossWeights& loss = e.params.loss;
  loss.content_layers = f.content_layers;
  loss.style_layers = f.style_layers;
  loss.style_layer_weights = f.style_layer_weights;
  const int last_index = deepest_layer(loss);
  e.device = resolve_device(f.device);
  e.threads = configure_threads(f.threads);
  use_reusing_cpu_allocator();
  e.weights_path = locate_weights(f.weights);
  Vgg19Weights weights = load_vgg19_weights(e.weights_path, last_index);
  e.weights_metadata = weights.metadata;
  if (f.preprocess != "auto") {
    e.preprocessing = parse_preprocessing(f.preprocess);
  } else if (weights.preprocessing) {
    e.preprocessing = *weights.preprocessing;
  } else {
    spdlog::warn("weights file '{}' does not say its preprocessing; assuming caffe (set --preprocess)", e.weights_path);
  }
  const LossDefaults d = loss_defaults(e.preprocessing);
  loss.content_weight = f.content_weight.value_or(d.content);
  loss.style_weight = f.style_weight.value_or(d.style);
  loss.tv_weight = f.tv_weight.value_or(d.tv);
  const Precision precision = resolve_precision(f.precision, e.device, cpu_vector_features());
  e.stylizer = std::make_unique<Stylizer>(weights, e.preprocessing, f.pooling == "avg" ? Pooling::avg : Pooling::max,
                                          last_index, e.device, precision);
  StylizeParams& p = e.params;
  p.optimizer = engine_optimizer_options(f, e.preprocessing);
  p.seed = f.seed;
  p.original_colors = f.original_colors;
  p.init = f.init == "content" ? InitKind::content : f.init == "random" ? InitKind::random : InitKind::image;
  e.seconds_load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("weights {} ({} preprocessing), {} on {} thread(s), {} arithmetic", e.weights_path,
               to_string(e.preprocessing), e.device.str(), e.threads, to_string(precision));
  return e;
}

OptimizerOptions engine_optimizer_options(const EngineFlags& f, Preprocessing pre) {
  OptimizerOptions o;
  o.kind = f.optimizer == "adam" ? OptimizerKind::adam : OptimizerKind::lbfgs;
  o.iterations = f.iterations.back();
  o.lbfgs_history = f.lbfgs_history;
  o.line_search = f.line_search == "strong-wolfe" ? LineSearch::strong_wolfe : LineSearch::none;
  o.keep_in_range = !f.unbounded;
  o.learning_rate = f.learning_rate.value_or(f.optimizer == "adam" ? 10.0 * input_units_per_level(pre) : 1.0);
  return o;
}

at::Tensor load_content(const std::string& path, const EngineFlags& f, LoadedImage* info) {
  LoadedImage img = load_image(path, "content image", static_cast<int64_t>(f.max_megapixels * 1e6));
  auto [w, h] = fit_longest(img.width, img.height, f.size);
  at::Tensor out = resize_image(img.rgb, w, h);
  if (!img.conversion.empty()) spdlog::info("content image '{}': {}", path, img.conversion);
  img.rgb = at::Tensor();
  if (info) *info = img;
  return out;
}

at::Tensor load_style(const std::string& path, const EngineFlags& f, LoadedImage* info) {
  LoadedImage img = load_image(path, "style image", static_cast<int64_t>(f.max_megapixels * 1e6));
  const int longest = style_longest_side(f.size, f.style_scale);
  auto [w, h] = fit_longest(img.width, img.height, longest);
  at::Tensor out = resize_image(img.rgb, w, h);
  if (!img.conversion.empty()) spdlog::info("style image '{}': {}", path, img.conversion);
  img.rgb = at::Tensor();
  if (info) *info = img;
  return out;
}

nlohmann::json settings_json(const EngineFlags& f, const Engine& e) {
  const LossWeights& loss = e.params.loss;
  return {{"size", f.size},
          {"style_scale", f.style_scale},
          {"preprocessing", to_string(e.preprocessing)},
          {"pooling", f.pooling},
          {"content_layers", loss.content_layers},
          {"style_layers", loss.style_layers},
          {"style_layer_weights", loss.style_layer_weights.empty()
                                      ? std::vector<double>(loss.style_layers.size(), 1.0)
                                      : loss.style_layer_weights},
          {"content_weight", loss.content_weight},
          {"style_weight", loss.style_weight},
          {"tv_weight", loss.tv_weight},
          {"optimizer", f.optimizer},
          {"learning_rate", e.params.optimizer.learning_rate},
          {"lbfgs_history", f.lbfgs_history},
          {"line_search", f.line_search},
          {"keep_in_range", keeps_in_range(e.params.optimizer)},
          {"iterations", f.iterations},
          {"scales", f.scales},
          {"init", f.init},
          {"seed", f.seed},
          {"original_colors", f.original_colors},
          {"quality", f.quality},
          {"max_megapixels", f.max_megapixels},
          {"device", e.device.str()},
          {"precision", to_string(e.stylizer->precision())},
          {"threads", e.threads},
          {"weights", e.weights_path}};
}

nlohmann::json loss_json(const LossValues& v, const LossWeights& w) {
  nlohmann::json content = nlohmann::json::object(), style = nlohmann::json::object();
  for (size_t i = 0; i < v.content.size(); ++i) content[w.content_layers[i]] = v.content[i];
  for (size_t i = 0; i < v.style.size(); ++i) style[w.style_layers[i]] = v.style[i];
  return {{"total", v.total}, {"content", v.content_sum()}, {"style", v.style_sum()}, {"tv", v.tv},
          {"content_layers", content}, {"style_layers", style}};
}

}  // namespace stylize::cli
