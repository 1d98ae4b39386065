#include "engine_flags.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <chrono>

#include "common.hpp"
#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"
#include "stylize/recipe.hpp"
#include "stylize/report.hpp"
#include "stylize/runtime.hpp"
#include "stylize/vgg19.hpp"

namespace stylize::cli {
namespace {

std::string flag_of(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return "--" + name;
}

// " [default: 512]", or " [default: 5 caffe, 1 torchvision]" where the weights' convention decides.
std::string default_value(const RequestField& field) {
  const StylizeRequest caffe = request_defaults(Preprocessing::caffe);
  if (field.per_preprocessing) {
    return " [default: " + field_text(caffe, field.name) + " caffe, " +
           field_text(request_defaults(Preprocessing::torchvision), field.name) + " torchvision]";
  }
  const std::string text = field_text(caffe, field.name);
  return text.empty() ? "" : " [default: " + text + "]";
}

// What --help adds to a field's sentence: the accepted range and the default.
std::string default_text(const RequestField& field) {
  if (field.is_switch) return "";
  const std::string range = to_string(field.range);
  return (range.empty() ? "" : " (" + range + ")") + default_value(field);
}

void add_request_flags(CLI::App& app, EngineFlags& f) {
  const std::map<std::string, std::string> short_names = {{"iterations", "-n,"}, {"size", "-s,"}};
  for (const RequestField& field : request_fields()) {
    const std::string name = field.name;
    const auto it = short_names.find(name);
    const std::string flag = (it == short_names.end() ? "" : it->second) + flag_of(name);
    if (field.is_switch) {
      app.add_flag_function(flag, [&f, name](int64_t) { f.fields[name] = "true"; }, field.help);
    } else if (name == "init") {
      // The command line also takes a file here: the engine's init = image, with that image.
      app.add_option_function<std::string>(
             flag,
             [&f](const std::string& v) {
               const bool word = v == "content" || v == "random" || v == "style";
               f.fields["init"] = word ? v : "image";
               f.init_file = word ? "" : v;
             },
             "Starting image: content, random, style (the first style image), or an image FILE" + default_text(field))
          ->type_name("content|random|style|FILE")
          ->check(not_empty("content, random, style or an image file"))
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    } else {
      app.add_option_function<std::string>(
             flag, [&f, name](const std::string& v) { f.fields[name] = v; }, field.help + default_text(field))
          ->type_name(field.value_name)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later flag overrides an earlier one
    }
  }
}

}  // namespace

void add_network_flags(CLI::App& app, EngineFlags& f) {
  app.add_option("--weights", f.weights,
                 "VGG19 safetensors file (default: $STYLIZE_WEIGHTS, ./models/vgg19.safetensors, "
                 "$XDG_DATA_HOME/stylize/vgg19.safetensors)");
  app.add_option("--preprocess", f.preprocess, "Input convention: auto (from the weights file, else caffe), caffe, torchvision")
      ->check(CLI::IsMember({"auto", "caffe", "torchvision"}))
      ->capture_default_str();
  app.add_option("--pooling", f.pooling, "Pooling layers: max or avg")
      ->check(CLI::IsMember({"max", "avg"}))
      ->capture_default_str();
}

void add_device_flags(CLI::App& app, EngineFlags& f) {
  app.add_option("--device", f.device, "auto (CUDA when present), cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--precision", f.precision,
                 "Network arithmetic: auto (bf16 on CPUs with AMX, mixed on CPUs with AVX512-BF16 and no AMX, else "
                 "fp32), fp32, bf16, or mixed (bf16 up to pool2, then fp32); on other CPUs bf16 is ~100x slower "
                 "than fp32 and mixed's bf16 layers too; losses stay fp32")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "mixed"}))
      ->capture_default_str();
  app.add_option("--threads", f.threads, "CPU threads (0 = all cores)")->transform(number_in(0, 1024))->capture_default_str();
  app.add_option("--max-megapixels", f.max_megapixels, "Refuse input images larger than this before decoding")
      ->transform(number_in(0.001, 1000.0))
      ->capture_default_str();
  auto* quiet = app.add_flag("-q,--quiet", f.quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", f.verbose, "Debug logging")->excludes(quiet);  // both: say so, not pick one
}

void add_engine_flags(CLI::App& app, EngineFlags& f) {
  add_request_flags(app, f);
  add_network_flags(app, f);
  app.add_option("--quality", f.quality, "JPEG/WebP quality")->transform(number_in(1, 100))->capture_default_str();
  app.add_option("--print-every", f.print_every, "Log a line every N iterations when not on a terminal (0 = never)")
      ->transform(number_in(0, 1000000))
      ->capture_default_str();
  app.add_option("--max-memory", f.max_memory,
                 "Memory a run may use, e.g. 8G or 512M (default: what the machine has free); a scale that would not "
                 "fit whole is tiled (see --tile)")
      ->type_name("SIZE");
  add_device_flags(app, f);
}

StylizeRequest request_from_flags(const EngineFlags& f, Preprocessing p) {
  StylizeRequest r = request_defaults(p);
  std::vector<std::string> given;
  for (const auto& [name, text] : f.fields) set_field(r, name, text), given.push_back(name);
  validate(r);  // first, as a job line and a form are: a value out of range is the error to report
  check_given_fields_apply(r, given);
  r.resize = resize_image;
  r.max_memory = max_memory_bytes(f);
  return r;
}

uint64_t max_memory_bytes(const EngineFlags& f) {
  if (f.max_memory.empty()) return 0;
  const std::string& t = f.max_memory;
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = t.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 2 && unit[1] == 'B') unit.pop_back();
  const std::map<std::string, double> scale = {{"", 1.0}, {"B", 1.0}, {"K", 1024.0}, {"M", 1048576.0},
                                               {"G", 1073741824.0}, {"T", 1099511627776.0}};
  const auto it = scale.find(unit);
  if (used == 0 || it == scale.end() || !(v > 0) || v * it->second < 1048576.0) {
    throw UsageError("--max-memory must be a size of at least 1M such as 8G or 512M, got " + in_quotes(t));
  }
  if (v * it->second > 1e18) {  // ~900 PB: beyond it the byte count would not fit (and no machine has it)
    throw UsageError("--max-memory must be at most 900000T, got " + in_quotes(t));
  }
  return static_cast<uint64_t>(v * it->second);
}

std::string weights_path_if_any(const EngineFlags& f) {
  try {
    return locate_weights(f.weights);
  } catch (const WeightsError&) {
    return "";
  }
}

VggWeights load_vgg_weights(const EngineFlags& f, int last_index, bool whole) {
  VggWeights v;
  v.path = locate_weights(f.weights);
  v.weights = whole ? load_vgg19_weights_whole(v.path, last_index) : load_vgg19_weights(v.path, last_index);
  if (f.preprocess != "auto") {
    v.preprocessing = parse_preprocessing(f.preprocess);
  } else if (v.weights.preprocessing) {
    v.preprocessing = *v.weights.preprocessing;
  } else {
    spdlog::warn("weights file '{}' does not say its preprocessing; assuming caffe (set --preprocess)", v.path);
  }
  return v;
}

Engine load_engine(const EngineFlags& f, int last_index, bool whole) {
  const auto t0 = std::chrono::steady_clock::now();
  Engine e;
  e.device = resolve_device(f.device);
  e.threads = configure_threads(f.threads);
  use_reusing_cpu_allocator();
  const VggWeights v = load_vgg_weights(f, last_index, whole);
  if (whole) last_index = deepest_usable_index(v.weights.convolutions);
  e.weights_path = v.path;
  e.weights_metadata = v.weights.metadata;
  e.preprocessing = v.preprocessing;
  const Precision precision = resolve_precision_flag(f.precision, e.device);
  e.stylizer = std::make_unique<Stylizer>(v.weights, e.preprocessing, f.pooling == "avg" ? Pooling::avg : Pooling::max,
                                          last_index, e.device, precision);
  e.seconds_load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("weights {} ({} preprocessing), {} on {} thread(s), {} arithmetic", e.weights_path,
               to_string(e.preprocessing), e.device.str(), e.threads, to_string(precision));
  return e;
}

Precision planned_precision(const EngineFlags& f) {
  return resolve_precision_flag(f.precision, resolve_device(f.device));
}

Precision resolve_precision_flag(const std::string& spec, const at::Device& device) {
  const CpuVectorFeatures cpu = engine_vector_features();
  const Precision p = resolve_precision(spec, device, cpu);
  static std::atomic<bool> warned{false};  // planned_precision, then load_engine; batch per filter
  const std::string caveat = precision_caveat(p, device, cpu);
  if (!caveat.empty() && !warned.exchange(true)) spdlog::warn("--precision {}: {}", spec, caveat);
  return p;
}

LoadedImage read_image(const std::string& path, const std::string& role, const EngineFlags& f) {
  LoadedImage img = load_image(path, role, static_cast<int64_t>(f.max_megapixels * 1e6));
  if (!img.conversion.empty()) spdlog::info("{} '{}': {}", role, path, img.conversion);
  return img;
}

std::string init_start_name(const StylizeRequest& r, const EngineFlags& f, const std::string& first_style) {
  return r.init == InitFrom::image ? "the " + field("init") + " image " + in_quotes(f.init_file)
                                   : "the first style image " + in_quotes(first_style) + " (" + field("init") + " style)";
}

void warn_if_init_stretched(const StylizeRequest& r, const EngineFlags& f, const std::string& first_style,
                            const std::string& label) {
  const std::string warning = init_stretch_warning(r, init_start_name(r, f, first_style));
  if (!warning.empty()) spdlog::warn("{}{}", label, render_fields(warning, FieldWords::flag));
}

nlohmann::json warnings_json(const std::vector<std::string>& warnings) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& w : warnings) out.push_back(render_fields(w, FieldWords::flag));
  return out;
}

void log_tiling(const StylizeRequest& r, const StylizePlan& plan, int k, const std::string& label) {
  const ScalePlan& sp = plan.scales[static_cast<size_t>(k)];
  if (sp.tile == 0) return;
  const std::string raised = sp.tile_overlap > r.tile_overlap
                                 ? " (--tile-overlap " + std::to_string(r.tile_overlap) + " raised to " +
                                       vgg19_layers()[static_cast<size_t>(plan.last_index)].name +
                                       "'s receptive radius: less would show the tiles' borders)"
                                 : "";
  spdlog::info("{}tiled by {} px, {} px overlap{}: {}; {} sweep(s) of {} iterations per tile, the network over "
               "{:.1f}x the image's pixels",
               label, sp.tile, sp.tile_overlap, raised, render_fields(sp.tiling_reason, FieldWords::flag), sp.sweeps,
               sp.tile_iterations, sp.network_pixels_ratio);
  if (!sp.tiling_caveat.empty()) spdlog::warn("{}{}", label, render_fields(sp.tiling_caveat, FieldWords::flag));
}

nlohmann::json settings_json(const StylizeRequest& r, const EngineFlags& f, const Engine& e) {
  nlohmann::json s = stylize::settings_json(r, *e.stylizer);
  if (!f.init_file.empty()) s["init"] = f.init_file;
  s["pooling"] = f.pooling;
  s["quality"] = f.quality;
  s["max_megapixels"] = f.max_megapixels;
  s["threads"] = e.threads;
  s["weights"] = e.weights_path;
  return s;
}

}  // namespace stylize::cli
