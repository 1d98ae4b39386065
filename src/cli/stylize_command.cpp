// `stylize CONTENT STYLE [STYLE...] -o OUT`: one stylisation, with a progress display and a report.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/report.hpp"
#include "stylize/runtime.hpp"
#include "stylize/stylizer.hpp"

namespace fs = std::filesystem;

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
      "Subcommands: 'stylize batch --help' (many images), 'stylize weights --help' (get weights),\n"
      "'stylize train --help' (make a fast filter for a style), 'stylize apply --help' (use one),\n"
      "'stylize serve --help' (an HTTP API), 'stylize worker --help' (its workers on a Redis queue).\n"
      "Exit codes: 0 ok, 1 internal (a bug), 2 usage, 3 input image, 4 weights, 5 output, 6 device, 7 memory, "
      "8 batch/apply: some failed, 9 batch/apply: all failed, 10 network, 130 interrupted.");
  app.add_option("images", o.images, "CONTENT STYLE [STYLE...]: the photo, then one or more style images")
      ->required()
      ->expected(2, CLI::detail::expected_max_vector_size)
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw)  // the one policy that holds the 2 (not the default TakeLast)
      ->type_name("FILE");
  app.add_option("-o,--output", o.output, "Output image; format from the extension (.png .jpg/.jpeg .webp .tif/.tiff .bmp)")
      ->capture_default_str();
  add_engine_flags(app, o.engine);
  app.add_option("--save-every", o.save_every, "Also write OUT_N.ext every N iterations of the last scale (tiled: after each sweep) (0 = never)")
      ->transform(number_in(0, 1000000))
      ->capture_default_str();
  app.add_option("--report", o.report, "Write a JSON summary of the run to this file (- for standard output)");
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The images as read, for the report.
struct Inputs {
  LoadedImage content;
  std::vector<LoadedImage> styles;
  double seconds = 0;
};

// Reads the images into the request (cheap next to loading the network, and most bad inputs are
// images: they are read before it).
Inputs read_inputs(const StylizeOptions& o, StylizeRequest& r) {
  const auto t = std::chrono::steady_clock::now();
  Inputs in;
  in.content = read_image(o.images[0], "content image", o.engine);
  r.content = in.content.rgb;
  for (size_t i = 1; i < o.images.size(); ++i) {
    in.styles.push_back(read_image(o.images[i], "style image", o.engine));
    r.styles.push_back(in.styles.back().rgb);
  }
  if (!o.engine.init_file.empty()) {
    const LoadedImage init = read_image(o.engine.init_file, "init image", o.engine);
    r.init_image = init.rgb;
  }
  warn_if_init_stretched(r, o.engine, o.images.size() > 1 ? o.images[1] : "");
  in.seconds = seconds_since(t);
  return in;
}

// A progress display per scale, snapshots OUT_N.ext, Ctrl-C.
struct Display {
  std::unique_ptr<ProgressDisplay> progress;
  std::string label;
};

RunCallbacks callbacks(const StylizeOptions& o, const StylizeRequest& r, Display& d) {
  RunCallbacks cb;
  cb.on_scale_begin = [&o, &r, &d](int k, const StylizePlan& plan) {
    const ScalePlan& sp = plan.scales[static_cast<size_t>(k)];
    const int n = static_cast<int>(plan.scales.size());
    d.label = n > 1 ? "scale " + std::to_string(k + 1) + "/" + std::to_string(n) + " " : "";
    spdlog::info("{}stylising {}x{} with {} style image(s), {} {} iterations", d.label, sp.width, sp.height,
                 r.styles.size(), sp.iterations, to_string(r.optimizer));
    log_tiling(r, plan, k, d.label);
    d.progress = std::make_unique<ProgressDisplay>(o.engine.print_every, o.engine.quiet > 0, d.label);
  };
  cb.on_scale_end = [&d](int, const ScaleResult&) { d.progress->finish(); };
  cb.on_tile = [&d](int, const TileProgress& t) {
    d.progress->finish();
    spdlog::info("{}sweep {}/{} tile {}/{} ({}x{} at {},{}), ETA {}", d.label, t.sweep, t.sweeps, t.tile, t.tiles,
                 t.rect.interior.width, t.rect.interior.height, t.rect.interior.x, t.rect.interior.y,
                 format_duration(t.eta_seconds));
  };
  cb.on_progress = [&d](int, const Progress& p) { d.progress->update(p.iteration, p.total, p.loss, p.seconds); };
  cb.progress_at = [&d](int iteration, int total) { return d.progress->due(iteration, total); };
  cb.should_stop = [] { return interrupt_requested(); };
  cb.snapshot_every = o.save_every;
  cb.on_snapshot = [&o](int iteration, const at::Tensor& rgb) {
    const std::string path = numbered_path(o.output, iteration);
    save_image(path, rgb, o.engine.quality);
    spdlog::debug("saved {}", path);
  };
  return cb;
}

nlohmann::json image_json(const std::string& path, const LoadedImage& img) {
  return {{"path", path}, {"format", img.format}, {"width", img.width}, {"height", img.height},
          {"conversion", img.conversion}};
}

std::string report_text(const StylizeOptions& o, const StylizeRequest& r, const Inputs& in, const Engine& engine,
                        const StylizeResult& result, double seconds_save, double seconds_total) {
  nlohmann::json styles = nlohmann::json::array();
  const ScalePlan& last = result.plan.scales.back();
  const std::vector<double> shares = blend_shares(r.style_blend, in.styles.size());  // 3,1 -> 0.75, 0.25
  for (size_t i = 0; i < in.styles.size(); ++i) {
    nlohmann::json s = image_json(o.images[i + 1], in.styles[i]);
    s["working_width"] = last.style_sizes[i].first;
    s["working_height"] = last.style_sizes[i].second;
    s["blend"] = shares[i];
    styles.push_back(s);
  }
  nlohmann::json report;
  report["program"] = {{"name", "stylize"}, {"version", STYLIZE_VERSION}};
  report["inputs"] = {{"content", image_json(o.images[0], in.content)}, {"styles", styles},
                      {"weights", {{"path", engine.weights_path}, {"metadata", engine.weights_metadata}}}};
  report["output"] = {{"path", o.output}, {"width", result.plan.width}, {"height", result.plan.height}};
  report["settings"] = settings_json(r, o.engine, engine);
  report["device"] = engine.device.str();
  report["threads"] = engine.threads;
  report["blas_core"] = openblas_core();
  report["losses"] = losses_json(result.initial, result.final, result.written, r.loss);
  report["scales"] = scales_json(result, r.loss);
  report["iterations_done"] = result.iterations;
  report["evaluations"] = result.evaluations;
  report["interrupted"] = result.interrupted;
  const std::string start = init_start_name(r, o.engine, o.images.size() > 1 ? o.images[1] : "");
  report["warnings"] = warnings_json(run_warnings(r, result.plan, start));
  report["seconds"] = {{"load_weights", engine.seconds_load}, {"load_images", in.seconds},
                       {"targets", result.seconds_style_targets + result.seconds_content_targets},
                       {"style_targets", result.seconds_style_targets},
                       {"content_targets", result.seconds_content_targets}, {"optimise", result.seconds_optimise},
                       {"save", seconds_save}, {"total", seconds_total}};
  report["seconds_per_iteration"] = report["scales"].back()["seconds_per_iteration"];
  report["peak_memory_mib"] = peak_rss_mib();
  return report.dump(2) + "\n";
}

// --save-every writes OUT_N.ext beside -o (N: an iteration of the last scale, or a tiled sweep's
// end): a file among `files` named so would be replaced or would replace the snapshot. Any N is
// refused, since which ones are written depends on the plan.
void check_snapshots_spare(const StylizeOptions& o, const NamedPaths& files) {
  if (o.save_every <= 0) return;
  const std::string first = numbered_path(o.output, 0);  // ".../out_0.png": its folder, prefix and suffix
  const std::string prefix = first.substr(0, first.rfind("_0") + 1), suffix = first.substr(first.rfind("_0") + 2);
  const std::string name_prefix = fs::path(prefix).filename().string();
  for (const auto& [what, path] : files) {
    if (path.empty()) continue;
    const std::string name = fs::path(path).filename().string();
    if (name.size() <= name_prefix.size() + suffix.size() || name.rfind(name_prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string digits = name.substr(name_prefix.size(), name.size() - name_prefix.size() - suffix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const fs::path folder = fs::path(path).parent_path(), out_folder = fs::path(prefix).parent_path();
    if (!same_file(folder.empty() ? "." : folder.string(), out_folder.empty() ? "." : out_folder.string())) continue;
    throw OutputError("--save-every writes snapshots " + in_quotes(prefix + "N" + suffix) + " beside -o, and " + what +
                      " " + in_quotes(path) + " is named like one: a snapshot would replace it; give -o another name");
  }
}

int run(const StylizeOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  // Everything that can be checked cheaply is checked before the slow parts.
  check_output_image_path(o.output);
  if (!o.report.empty()) check_output_folder(o.report);
  NamedPaths inputs = {{"the content image", o.images[0]}, {"the --init image", o.engine.init_file},
                       {"the weights file", weights_path_if_any(o.engine)}};
  for (size_t i = 1; i < o.images.size(); ++i) inputs.push_back({"style image " + std::to_string(i), o.images[i]});
  check_outputs_spare_inputs({{"-o", o.output}, {"--report", o.report}}, inputs);
  inputs.push_back({"--report", o.report});
  check_snapshots_spare(o, inputs);
  StylizeRequest r = request_from_flags(o.engine, Preprocessing::caffe);  // validated
  const at::Device device = resolve_device(o.engine.device);  // a missing CUDA: exit 6 before any image is read
  Inputs in = read_inputs(o, r);
  plan(r, device, planned_precision(o.engine));  // sizes at every scale, memory

  Engine engine = load_engine(o.engine, deepest_layer(r.loss));
  StylizeRequest request = request_from_flags(o.engine, engine.preprocessing);  // its loss defaults
  request.content = r.content, request.styles = r.styles, request.init_image = r.init_image;
  r = StylizeRequest();
  in.content.rgb = at::Tensor();
  for (auto& s : in.styles) s.rgb = at::Tensor();
  install_interrupt_handler();
  Display display;
  const StylizeResult result = run(*engine.stylizer, request, callbacks(o, request, display));
  if (result.interrupted) spdlog::warn("interrupted after {} iterations; writing the best image so far", result.iterations);

  // The image and the report are staged, then put in place together: a report that cannot be
  // written (a full disk) leaves no image either, as every failure leaves no output.
  const auto t = std::chrono::steady_clock::now();
  const std::vector<uint8_t> encoded = encode_image(result.rgb, file_extension(o.output), o.engine.quality);
  StagedFile image(o.output, encoded.data(), encoded.size());
  const double t_save = seconds_since(t);
  std::optional<StagedFile> report;
  if (!o.report.empty()) report.emplace(o.report, report_text(o, request, in, engine, result, t_save, seconds_since(t_start)));
  image.commit();
  if (report) report->commit();
  spdlog::info("wrote {} ({}x{}), loss {:.6g} -> {:.6g} (written image {:.6g}) in {:.1f} s", o.output,
               result.plan.width, result.plan.height, result.initial.total, result.final.total, result.written.total,
               seconds_since(t_start));
  return static_cast<int>(result.interrupted ? ExitCode::interrupted : ExitCode::ok);
}

}  // namespace

int stylize_main(int argc, char** argv) {
  return command_main<StylizeOptions>("stylize", argc, argv, setup, run);
}

}  // namespace stylize::cli
