// `stylize CONTENT STYLE [STYLE...] -o OUT`: one stylisation, with a progress display and a report.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.hpp"
#include "common.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image.hpp"
#include "stylize/stylizer.hpp"

namespace stylize::cli {
namespace {

struct StylizeOptions {
  std::vector<std::string> images;  // content, then one or more styles
  std::string output = "out.png";
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
  int iterations = 1000;
  std::string init = "content";
  uint64_t seed = 0;
  int size = 512;
  double style_scale = 1.0;
  std::vector<double> style_blend;
  bool original_colors = false;
  int quality = 95;
  std::string device = "auto";
  int threads = 0;
  int print_every = 50;
  int save_every = 0;
  int quiet = 0, verbose = 0;
  std::string report;
  double max_megapixels = kDefaultMaxPixels / 1e6;
};

// Defaults that depend on the preprocessing convention (README "Losses" says why).
struct LossDefaults {
  double content, style, tv;
};
LossDefaults loss_defaults(Preprocessing p) {
  if (p == Preprocessing::caffe) return {5.0, 100.0, 1e-3};
  return {1.0, 1e6, 0.5};
}

void setup(CLI::App& app, StylizeOptions& o) {
  app.description(
      "Repaints a photo in the style of one or more paintings (Gatys et al. neural style transfer on VGG19).\n"
      "Subcommands: 'stylize weights --help' (get weights). Exit codes: see README.md.");
  app.add_option("images", o.images, "CONTENT STYLE [STYLE...]: the photo, then one or more style images")
      ->required()
      ->expected(2, 1 << 20)
      ->type_name("FILE");
  app.add_option("-o,--output", o.output, "Output image; format from the extension (.png .jpg .webp .tif .bmp)")
      ->capture_default_str();
  app.add_option("--weights", o.weights,
                 "VGG19 safetensors file (default: $STYLIZE_WEIGHTS, ./models/vgg19.safetensors, "
                 "$XDG_DATA_HOME/stylize/vgg19.safetensors)");
  app.add_option("--preprocess", o.preprocess, "Input convention: auto (from the weights file, else caffe), caffe, torchvision")
      ->check(CLI::IsMember({"auto", "caffe", "torchvision"}))
      ->capture_default_str();
  app.add_option("--pooling", o.pooling, "Pooling layers: max or avg")
      ->check(CLI::IsMember({"max", "avg"}))
      ->capture_default_str();
  app.add_option("--content-layers", o.content_layers, "Comma-separated content layers")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--style-layers", o.style_layers, "Comma-separated style layers")->delimiter(',')->capture_default_str();
  app.add_option("--style-layer-weights", o.style_layer_weights,
                 "Comma-separated weight per style layer (default: 1 each)")
      ->delimiter(',');
  app.add_option("--content-weight", o.content_weight, "Content weight alpha [default: 5 caffe, 1 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--style-weight", o.style_weight, "Style weight beta [default: 100 caffe, 1e6 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tv-weight", o.tv_weight, "Total-variation weight [default: 1e-3 caffe, 0.5 torchvision]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--optimizer", o.optimizer, "lbfgs or adam")->check(CLI::IsMember({"lbfgs", "adam"}))->capture_default_str();
  app.add_option("--learning-rate", o.learning_rate,
                 "Step size [default: 1 for lbfgs; 10 caffe units (neural-style) for adam]")
      ->check(CLI::PositiveNumber);
  app.add_option("--lbfgs-history", o.lbfgs_history, "L-BFGS history size (memory: 2 images per entry)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--line-search", o.line_search, "L-BFGS line search: none or strong-wolfe")
      ->check(CLI::IsMember({"none", "strong-wolfe"}))
      ->capture_default_str();
  app.add_option("-n,--iterations", o.iterations, "Optimiser iterations")->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--init", o.init, "Starting image: content, random, style, or an image FILE")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed (random init); same seed + same threads = same bytes on CPU")
      ->capture_default_str();
  app.add_option("-s,--size", o.size, "Longest side of the output in pixels")->check(CLI::Range(16, 16384))->capture_default_str();
  app.add_option("--style-scale", o.style_scale, "Style images' longest side = style-scale x size")
      ->check(CLI::Range(0.05, 8.0))
      ->capture_default_str();
  app.add_option("--style-blend", o.style_blend, "Comma-separated weight per style image (normalised to sum 1)")
      ->delimiter(',');
  app.add_flag("--original-colors", o.original_colors, "Keep the content's colours (transfer luminance only)");
  app.add_option("--quality", o.quality, "JPEG/WebP quality")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--device", o.device, "auto (CUDA when present), cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024))->capture_default_str();
  app.add_option("--print-every", o.print_every, "Log a line every N iterations when not on a terminal (0 = never)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--save-every", o.save_every, "Also write OUT_N.ext every N iterations (0 = never)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--report", o.report, "Write a JSON summary of the run to this file");
  app.add_option("--max-megapixels", o.max_megapixels, "Refuse input images larger than this before decoding")
      ->check(CLI::Range(0.001, 1000.0))
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", o.verbose, "Debug logging");
  app.set_version_flag("--version", std::string("stylize ") + STYLIZE_VERSION);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

nlohmann::json loss_json(const LossValues& v, const LossWeights& w) {
  nlohmann::json content = nlohmann::json::object(), style = nlohmann::json::object();
  for (size_t i = 0; i < v.content.size(); ++i) content[w.content_layers[i]] = v.content[i];
  for (size_t i = 0; i < v.style.size(); ++i) style[w.style_layers[i]] = v.style[i];
  return {{"total", v.total}, {"content", v.content_sum()}, {"style", v.style_sum()}, {"tv", v.tv},
          {"content_layers", content}, {"style_layers", style}};
}

int run(const StylizeOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  nlohmann::json report;
  report["program"] = {{"name", "stylize"}, {"version", STYLIZE_VERSION}};

  // Everything that can be checked cheaply is checked before the slow parts.
  check_output_image_path(o.output);
  if (!o.report.empty()) check_output_folder(o.report);
  if (!o.style_blend.empty() && o.style_blend.size() != o.images.size() - 1) {
    throw UsageError("--style-blend has " + std::to_string(o.style_blend.size()) + " weights for " +
                     std::to_string(o.images.size() - 1) + " style images");
  }
  LossWeights loss;
  loss.content_layers = o.content_layers;
  loss.style_layers = o.style_layers;
  loss.style_layer_weights = o.style_layer_weights;
  const int last_index = deepest_layer(loss);  // validates layer names
  const at::Device device = resolve_device(o.device);
  const int threads = configure_threads(o.threads);
  spdlog::debug("device {}, {} threads", device.str(), threads);
  const int64_t max_pixels = static_cast<int64_t>(o.max_megapixels * 1e6);

  // Images first: reading them is cheap and most bad inputs are images.
  auto t = std::chrono::steady_clock::now();
  LoadedImage content_file = load_image(o.images[0], "content image", max_pixels);
  auto [cw, ch] = fit_longest(content_file.width, content_file.height, o.size);
  at::Tensor content = resize_image(content_file.rgb, cw, ch);
  content_file.rgb = at::Tensor();
  std::vector<at::Tensor> styles;
  nlohmann::json style_json = nlohmann::json::array();
  const int style_longest = std::max(16, static_cast<int>(std::lround(o.size * o.style_scale)));
  for (size_t i = 1; i < o.images.size(); ++i) {
    LoadedImage s = load_image(o.images[i], "style image", max_pixels);
    auto [sw, sh] = fit_longest(s.width, s.height, style_longest);
    styles.push_back(resize_image(s.rgb, sw, sh));
    style_json.push_back({{"path", o.images[i]}, {"format", s.format}, {"width", s.width}, {"height", s.height},
                          {"working_width", sw}, {"working_height", sh}, {"conversion", s.conversion},
                          {"blend", o.style_blend.empty() ? 1.0 / (o.images.size() - 1) : o.style_blend[i - 1]}});
    if (!s.conversion.empty()) spdlog::info("style image '{}': {}", o.images[i], s.conversion);
  }
  if (!content_file.conversion.empty()) spdlog::info("content image '{}': {}", o.images[0], content_file.conversion);
  at::Tensor init_image;
  if (o.init == "style") {
    init_image = resize_image(styles[0], cw, ch);
  } else if (o.init != "content" && o.init != "random") {
    init_image = resize_image(load_image(o.init, "init image", max_pixels).rgb, cw, ch);
  }
  const double t_images = seconds_since(t);

  // Weights.
  t = std::chrono::steady_clock::now();
  const std::string weights_path = locate_weights(o.weights);
  Vgg19Weights weights = load_vgg19_weights(weights_path, last_index);
  Preprocessing pre = Preprocessing::caffe;
  if (o.preprocess != "auto") {
    pre = parse_preprocessing(o.preprocess);
  } else if (weights.preprocessing) {
    pre = *weights.preprocessing;
  } else {
    spdlog::warn("weights file '{}' does not say its preprocessing; assuming caffe (set --preprocess)", weights_path);
  }
  const LossDefaults d = loss_defaults(pre);
  loss.content_weight = o.content_weight.value_or(d.content);
  loss.style_weight = o.style_weight.value_or(d.style);
  loss.tv_weight = o.tv_weight.value_or(d.tv);
  Stylizer stylizer(weights, pre, o.pooling == "avg" ? Pooling::avg : Pooling::max, last_index, device);
  weights.params.clear();
  const double t_weights = seconds_since(t);
  spdlog::info("weights {} ({} preprocessing), {} on {} thread(s)", weights_path, to_string(pre), device.str(), threads);

  StylizeParams params;
  params.loss = loss;
  params.optimizer.kind = o.optimizer == "adam" ? OptimizerKind::adam : OptimizerKind::lbfgs;
  params.optimizer.iterations = o.iterations;
  params.optimizer.lbfgs_history = o.lbfgs_history;
  params.optimizer.line_search = o.line_search == "strong-wolfe" ? LineSearch::strong_wolfe : LineSearch::none;
  params.optimizer.learning_rate =
      o.learning_rate.value_or(o.optimizer == "adam" ? 10.0 * input_units_per_level(pre) : 1.0);
  params.seed = o.seed;
  params.original_colors = o.original_colors;
  params.init = o.init == "content" ? InitKind::content : o.init == "random" ? InitKind::random : InitKind::image;
  params.init_image = init_image;

  t = std::chrono::steady_clock::now();
  StyleTargets style_targets = stylizer.style_targets(loss, styles, o.style_blend);
  const double t_style_targets = seconds_since(t);

  spdlog::info("stylising {}x{} with {} style image(s), {} {} iterations", cw, ch, styles.size(), o.iterations,
               o.optimizer);
  ProgressDisplay progress(o.print_every, o.quiet > 0);
  TransferCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& p) { progress.update(p.iteration, p.total, p.loss, p.seconds); };
  callbacks.should_stop = [] { return interrupt_requested(); };
  callbacks.snapshot_every = o.save_every;
  callbacks.on_snapshot = [&](int iteration, const at::Tensor& input) {
    const std::string path = numbered_path(o.output, iteration);
    save_image(path, stylizer.to_rgb(input, content, o.original_colors), o.quality);
    spdlog::debug("saved {}", path);
  };
  install_interrupt_handler();
  StylizeOutput result = stylizer.stylize(content, style_targets, params, callbacks);
  progress.finish();
  if (result.transfer.interrupted) {
    spdlog::warn("interrupted after {} iterations; writing the best image so far", result.transfer.iterations);
  }

  t = std::chrono::steady_clock::now();
  save_image(o.output, result.rgb, o.quality);
  const double t_save = seconds_since(t);
  spdlog::info("wrote {} ({}x{}), loss {:.6g} -> {:.6g} in {:.1f} s", o.output, cw, ch, result.transfer.initial.total,
               result.transfer.final.total, seconds_since(t_start));

  if (!o.report.empty()) {
    report["inputs"] = {{"content", {{"path", o.images[0]}, {"format", content_file.format},
                                     {"width", content_file.width}, {"height", content_file.height},
                                     {"conversion", content_file.conversion}}},
                        {"styles", style_json},
                        {"weights", {{"path", weights_path}, {"metadata", weights.metadata}}}};
    report["output"] = {{"path", o.output}, {"width", cw}, {"height", ch}};
    report["settings"] = {
        {"size", o.size}, {"style_scale", o.style_scale}, {"preprocessing", to_string(pre)}, {"pooling", o.pooling},
        {"content_layers", loss.content_layers}, {"style_layers", loss.style_layers},
        {"style_layer_weights", loss.style_layer_weights.empty() ? std::vector<double>(loss.style_layers.size(), 1.0)
                                                                  : loss.style_layer_weights},
        {"content_weight", loss.content_weight}, {"style_weight", loss.style_weight}, {"tv_weight", loss.tv_weight},
        {"optimizer", o.optimizer}, {"learning_rate", params.optimizer.learning_rate},
        {"lbfgs_history", o.lbfgs_history}, {"line_search", o.line_search}, {"iterations", o.iterations},
        {"init", o.init}, {"seed", o.seed}, {"original_colors", o.original_colors}, {"quality", o.quality},
        {"max_megapixels", o.max_megapixels}};
    report["device"] = device.str();
    report["threads"] = threads;
    report["losses"] = {{"initial", loss_json(result.transfer.initial, loss)},
                        {"final", loss_json(result.transfer.final, loss)}};
    report["iterations_done"] = result.transfer.iterations;
    report["evaluations"] = result.transfer.evaluations;
    report["interrupted"] = result.transfer.interrupted;
    report["seconds"] = {{"load_weights", t_weights}, {"load_images", t_images},
                         {"targets", t_style_targets + result.seconds_content_targets},
                         {"style_targets", t_style_targets}, {"content_targets", result.seconds_content_targets},
                         {"optimise", result.seconds_optimise}, {"save", t_save}, {"total", seconds_since(t_start)}};
    report["seconds_per_iteration"] =
        result.transfer.evaluations > 0 ? result.seconds_optimise / result.transfer.evaluations : 0.0;
    report["peak_memory_mib"] = peak_rss_mib();
    write_file_atomic(o.report, report.dump(2) + "\n");
  }
  return static_cast<int>(result.transfer.interrupted ? ExitCode::interrupted : ExitCode::ok);
}

}  // namespace

int stylize_main(int argc, char** argv) {
  CLI::App app("stylize", "stylize");
  StylizeOptions o;
  setup(app, o);
  const int parsed = parse_or_exit(app, argc, argv);
  if (parsed >= 0) return parsed;
  init_logging(o.quiet > 0 ? -1 : o.verbose);
  return run_guarded([&] { return run(o); });
}

}  // namespace stylize::cli
