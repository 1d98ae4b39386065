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

  // Images first: reading them is cheap and most bad inputs are images.
  auto t = std::chrono::steady_clock::now();
  LoadedImage content_info;
  const at::Tensor content = load_content(o.images[0], f, &content_info);
  std::vector<at::Tensor> styles;
  nlohmann::json style_json = nlohmann::json::array();
  for (size_t i = 1; i < o.images.size(); ++i) {
    LoadedImage info;
    styles.push_back(load_style(o.images[i], f, &info));
    style_json.push_back({{"path", o.images[i]}, {"format", info.format}, {"width", info.width},
                          {"height", info.height}, {"working_width", styles.back().size(3)},
                          {"working_height", styles.back().size(2)}, {"conversion", info.conversion},
                          {"blend", f.style_blend.empty() ? 1.0 / n_styles : f.style_blend[i - 1]}});
  }
  const int cw = static_cast<int>(content.size(3)), ch = static_cast<int>(content.size(2));
  at::Tensor init_image;
  if (f.init == "style") {
    init_image = resize_image(styles[0], cw, ch);
  } else if (f.init != "content" && f.init != "random") {
    init_image = resize_image(load_image(f.init, "init image", static_cast<int64_t>(f.max_megapixels * 1e6)).rgb, cw, ch);
  }
  const double t_images = seconds_since(t);

  Engine engine = load_engine(f);
  StylizeParams params = engine.params;
  params.init_image = init_image;

  t = std::chrono::steady_clock::now();
  StyleTargets style_targets = engine.stylizer->style_targets(params.loss, styles, f.style_blend);
  const double t_style_targets = seconds_since(t);

  spdlog::info("stylising {}x{} with {} style image(s), {} {} iterations", cw, ch, styles.size(), f.iterations,
               f.optimizer);
  ProgressDisplay progress(f.print_every, f.quiet > 0);
  TransferCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& p) { progress.update(p.iteration, p.total, p.loss, p.seconds); };
  callbacks.should_stop = [] { return interrupt_requested(); };
  callbacks.snapshot_every = o.save_every;
  callbacks.on_snapshot = [&](int iteration, const at::Tensor& input) {
    const std::string path = numbered_path(o.output, iteration);
    save_image(path, engine.stylizer->to_rgb(input, content, f.original_colors), f.quality);
    spdlog::debug("saved {}", path);
  };
  install_interrupt_handler();
  StylizeOutput result = engine.stylizer->stylize(content, style_targets, params, callbacks);
  progress.finish();
  if (result.transfer.interrupted) {
    spdlog::warn("interrupted after {} iterations; writing the best image so far", result.transfer.iterations);
  }

  t = std::chrono::steady_clock::now();
  save_image(o.output, result.rgb, f.quality);
  const double t_save = seconds_since(t);
  spdlog::info("wrote {} ({}x{}), loss {:.6g} -> {:.6g} in {:.1f} s", o.output, cw, ch, result.transfer.initial.total,
               result.transfer.final.total, seconds_since(t_start));

  if (!o.report.empty()) {
    nlohmann::json report;
    report["program"] = {{"name", "stylize"}, {"version", STYLIZE_VERSION}};
    report["inputs"] = {{"content", {{"path", o.images[0]}, {"format", content_info.format},
                                     {"width", content_info.width}, {"height", content_info.height},
                                     {"conversion", content_info.conversion}}},
                        {"styles", style_json},
                        {"weights", {{"path", engine.weights_path}, {"metadata", engine.weights_metadata}}}};
    report["output"] = {{"path", o.output}, {"width", cw}, {"height", ch}};
    report["settings"] = settings_json(f, engine);
    report["device"] = engine.device.str();
    report["threads"] = engine.threads;
    report["losses"] = {{"initial", loss_json(result.transfer.initial, params.loss)},
                        {"final", loss_json(result.transfer.final, params.loss)}};
    report["iterations_done"] = result.transfer.iterations;
    report["evaluations"] = result.transfer.evaluations;
    report["interrupted"] = result.transfer.interrupted;
    report["seconds"] = {{"load_weights", engine.seconds_load}, {"load_images", t_images},
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
  init_logging(o.engine.quiet > 0 ? -1 : o.engine.verbose);
  return run_guarded([&] { return run(o); });
}

}  // namespace stylize::cli
