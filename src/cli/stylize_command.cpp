// `stylize CONTENT STYLE [STYLE...] -o OUT`: one stylisation, with a progress display and a report.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image.hpp"
#include "stylize/stylizer.hpp"

namespace stylize::cli {
namespace {

struct StylizeOptions {
  std::vector<std::string> images;  // content, then one or more styles
  std::string output = "out.png";
  int save_every = 0;
  std::string report;
  EngineFlags engine;
};

void setup(CLI::App& app, StylizeOptions& o) {
  app.description(
      "Repaints a photo in the style of one or more paintings (Gatys et al. neural style transfer on VGG19).\n"
      "Subcommands: 'stylize batch --help' (many images), 'stylize weights --help' (get weights).\n"
      "Exit codes: 0 ok, 2 usage, 3 input image, 4 weights, 5 output, 6 device, 7 memory, 130 interrupted.");
  app.add_option("images", o.images, "CONTENT STYLE [STYLE...]: the photo, then one or more style images")
      ->required()
      ->expected(2, 1 << 20)
      ->type_name("FILE");
  app.add_option("-o,--output", o.output, "Output image; format from the extension (.png .jpg .webp .tif .bmp)")
      ->capture_default_str();
  add_engine_flags(app, o.engine);
  app.add_option("--save-every", o.save_every, "Also write OUT_N.ext every N iterations (0 = never)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--report", o.report, "Write a JSON summary of the run to this file");
  app.set_version_flag("--version", std::string("stylize ") + STYLIZE_VERSION);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run(const StylizeOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const EngineFlags& f = o.engine;

  // Everything that can be checked cheaply is checked before the slow parts.
  check_output_image_path(o.output);
  if (!o.report.empty()) check_output_folder(o.report);
  const size_t n_styles = o.images.size() - 1;
  if (!f.style_blend.empty() && f.style_blend.size() != n_styles) {
    throw UsageError("--style-blend has " + std::to_string(f.style_blend.size()) + " weights for " +
                     std::to_string(n_styles) + " style images");
  }
  validate_engine_flags(f);
  resolve_device(f.device);

  // Images first: reading them is cheap and most bad inputs are images. Originals are kept for
  // --scales, which resizes them once per scale.
  auto t = std::chrono::steady_clock::now();
  const int64_t max_pixels = static_cast<int64_t>(f.max_megapixels * 1e6);
  LoadedImage content_info = load_image(o.images[0], "content image", max_pixels);
  if (!content_info.conversion.empty()) spdlog::info("content image '{}': {}", o.images[0], content_info.conversion);
  std::vector<LoadedImage> style_files;
  for (size_t i = 1; i < o.images.size(); ++i) {
    style_files.push_back(load_image(o.images[i], "style image", max_pixels));
    if (!style_files.back().conversion.empty()) {
      spdlog::info("style image '{}': {}", o.images[i], style_files.back().conversion);
    }
  }
  at::Tensor init_file;
  if (f.init != "content" && f.init != "random" && f.init != "style") {
    init_file = load_image(f.init, "init image", max_pixels).rgb;
  }
  const double t_images = seconds_since(t);
  {
    // Too small for the deepest layer: say so before loading anything (checked for every scale).
    LossWeights layers;
    layers.content_layers = f.content_layers;
    layers.style_layers = f.style_layers;
    const int last = deepest_layer(layers);
    const auto [ow, oh] = fit_longest(content_info.width, content_info.height, f.size);
    const at::Device device = resolve_device(f.device);
    if (!device.is_cuda()) {
      check_cpu_memory(ow, oh, engine_optimizer_options(f), resolve_precision(f.precision, device, cpu_vector_features()));
    }
    for (int k = 0; k < f.scales; ++k) {
      const int size = scale_size(f, k);
      auto [cw, ch] = fit_longest(content_info.width, content_info.height, size);
      check_working_size(cw, ch, last, "the output" + std::string(f.scales > 1 ? " at scale " + std::to_string(k + 1) : ""));
      const int style_longest = style_longest_side(size, f.style_scale);
      for (const auto& s : style_files) {
        auto [sw, sh] = fit_longest(s.width, s.height, style_longest);
        check_working_size(sw, sh, last, "the style image at its working size");
      }
    }
  }

  Engine engine = load_engine(f);
  install_interrupt_handler();
  StylizeOutput result;
  at::Tensor content;
  nlohmann::json scales_json = nlohmann::json::array(), style_json = nlohmann::json::array();
  double t_style_targets = 0, t_content_targets = 0, t_optimise = 0;
  int iterations_done = 0, evaluations = 0;
  LossValues initial;
  for (int k = 0; k < f.scales; ++k) {
    const int size = scale_size(f, k);
    auto [cw, ch] = fit_longest(content_info.width, content_info.height, size);
    content = resize_image(content_info.rgb, cw, ch);
    const int style_longest = style_longest_side(size, f.style_scale);
    std::vector<at::Tensor> styles;
    style_json = nlohmann::json::array();
    for (size_t i = 0; i < style_files.size(); ++i) {
      auto [sw, sh] = fit_longest(style_files[i].width, style_files[i].height, style_longest);
      styles.push_back(resize_image(style_files[i].rgb, sw, sh));
      style_json.push_back({{"path", o.images[i + 1]}, {"format", style_files[i].format},
                            {"width", style_files[i].width}, {"height", style_files[i].height},
                            {"working_width", sw}, {"working_height", sh}, {"conversion", style_files[i].conversion},
                            {"blend", f.style_blend.empty() ? 1.0 / n_styles : f.style_blend[i]}});
    }
    StylizeParams params = engine.params;
    params.optimizer.iterations = scale_iterations(f, k);
    if (k > 0) {
      // The previous scale's result, upsampled, is this scale's start.
      params.init = InitKind::image;
      params.init_image = resize_image(result.rgb, cw, ch);
    } else if (f.init == "style") {
      params.init_image = resize_image(styles[0], cw, ch);
    } else if (init_file.defined()) {
      params.init_image = resize_image(init_file, cw, ch);
    }
    t = std::chrono::steady_clock::now();
    StyleTargets style_targets = engine.stylizer->style_targets(params.loss, styles, f.style_blend);
    const double t_st = seconds_since(t);
    t_style_targets += t_st;

    const std::string label = f.scales > 1 ? "scale " + std::to_string(k + 1) + "/" + std::to_string(f.scales) + " " : "";
    spdlog::info("{}stylising {}x{} with {} style image(s), {} {} iterations", label, cw, ch, styles.size(),
                 params.optimizer.iterations, f.optimizer);
    ProgressDisplay progress(f.print_every, f.quiet > 0, label);
    TransferCallbacks callbacks;
    callbacks.on_progress = [&](const Progress& p) { progress.update(p.iteration, p.total, p.loss, p.seconds); };
    callbacks.progress_at = [&](int iteration, int total) { return progress.due(iteration, total); };
    callbacks.should_stop = [] { return interrupt_requested(); };
    // Snapshots only at the final scale: earlier ones are smaller than the output.
    callbacks.snapshot_every = k == f.scales - 1 ? o.save_every : 0;
    callbacks.on_snapshot = [&](int iteration, const at::Tensor& input) {
      const std::string path = numbered_path(o.output, iteration);
      save_image(path, engine.stylizer->to_rgb(input, content, f.original_colors), f.quality);
      spdlog::debug("saved {}", path);
    };
    result = engine.stylizer->stylize(content, style_targets, params, callbacks);
    progress.finish();
    if (k == 0) initial = result.transfer.initial;
    t_content_targets += result.seconds_content_targets;
    t_optimise += result.seconds_optimise;
    iterations_done += result.transfer.iterations;
    evaluations += result.transfer.evaluations;
    scales_json.push_back({{"size", size}, {"width", cw}, {"height", ch}, {"iterations", result.transfer.iterations},
                           {"seconds_style_targets", t_st}, {"seconds_optimise", result.seconds_optimise},
                           {"profile_seconds", {{"forward_and_loss", result.transfer.seconds_forward},
                                                {"backward", result.transfer.seconds_backward},
                                                {"optimizer_and_callbacks", result.transfer.seconds_loop -
                                                                                result.transfer.seconds_forward -
                                                                                result.transfer.seconds_backward},
                                                {"final_evaluation", result.seconds_optimise -
                                                                         result.transfer.seconds_loop}}},
                           {"seconds_per_iteration", result.transfer.evaluations > 0
                                                         ? result.transfer.seconds_loop / result.transfer.evaluations
                                                         : 0.0},
                           {"losses", {{"initial", loss_json(result.transfer.initial, params.loss)},
                                       {"final", loss_json(result.transfer.final, params.loss)},
                                       {"written", loss_json(result.written, params.loss)}}}});
    if (result.transfer.interrupted) break;
  }
  if (result.transfer.interrupted) {
    spdlog::warn("interrupted after {} iterations; writing the best image so far", iterations_done);
  }

  t = std::chrono::steady_clock::now();
  // An interrupted coarse scale is smaller than asked: enlarge it so the output has the promised size.
  const auto [ow, oh] = fit_longest(content_info.width, content_info.height, f.size);
  save_image(o.output, resize_image(result.rgb, ow, oh), f.quality);
  const double t_save = seconds_since(t);
  spdlog::info("wrote {} ({}x{}), loss {:.6g} -> {:.6g} (written image {:.6g}) in {:.1f} s", o.output, ow, oh,
               initial.total, result.transfer.final.total, result.written.total, seconds_since(t_start));
  const StylizeParams& params = engine.params;
  content_info.rgb = at::Tensor();

  if (!o.report.empty()) {
    nlohmann::json report;
    report["program"] = {{"name", "stylize"}, {"version", STYLIZE_VERSION}};
    report["inputs"] = {{"content", {{"path", o.images[0]}, {"format", content_info.format},
                                     {"width", content_info.width}, {"height", content_info.height},
                                     {"conversion", content_info.conversion}}},
                        {"styles", style_json},
                        {"weights", {{"path", engine.weights_path}, {"metadata", engine.weights_metadata}}}};
    report["output"] = {{"path", o.output}, {"width", ow}, {"height", oh}};
    report["settings"] = settings_json(f, engine);
    report["device"] = engine.device.str();
    report["threads"] = engine.threads;
    report["blas_core"] = openblas_core();
    // Initial: at the start of the first scale; final: the optimiser's image at the last scale;
    // written: that image in 8 bits, as the file holds it (before any JPEG/WebP compression).
    report["losses"] = {{"initial", loss_json(initial, params.loss)},
                        {"final", loss_json(result.transfer.final, params.loss)},
                        {"written", loss_json(result.written, params.loss)}};
    report["scales"] = scales_json;
    report["iterations_done"] = iterations_done;
    report["evaluations"] = evaluations;
    report["interrupted"] = result.transfer.interrupted;
    report["seconds"] = {{"load_weights", engine.seconds_load}, {"load_images", t_images},
                         {"targets", t_style_targets + t_content_targets},
                         {"style_targets", t_style_targets}, {"content_targets", t_content_targets},
                         {"optimise", t_optimise}, {"save", t_save}, {"total", seconds_since(t_start)}};
    report["seconds_per_iteration"] = scales_json.back()["seconds_per_iteration"];
    report["peak_memory_mib"] = peak_rss_mib();
    write_file_atomic(o.report, report.dump(2) + "\n");
  }
  return static_cast<int>(result.transfer.interrupted ? ExitCode::interrupted : ExitCode::ok);
}

}  // namespace

int stylize_main(int argc, char** argv) {
  return command_main<StylizeOptions>("stylize", argc, argv, setup, run);
}

}  // namespace stylize::cli
