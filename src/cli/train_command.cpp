// `stylize train --style S --data DIR -o F.safetensors`: trains a fast filter (train.hpp) with
// checkpoints, resume, a JSON-lines loss log, preview sheets and a loss plot.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "stylize/weights_tools/checksum.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/runtime.hpp"
#include "stylize/train.hpp"

namespace fs = std::filesystem;

namespace stylize::cli {
namespace {

struct TrainOptions {
  std::string style, data, output, log;
  TrainRequest request = train_defaults();
  std::string content_layers, style_layers, style_layer_weights;  // comma-separated, "" = the defaults
  int checkpoint_every = 500, preview_every = 500, print_every = 50;
  bool resume = false, force = false;
  EngineFlags engine;
};

void setup(CLI::App& app, TrainOptions& o) {
  TrainRequest& r = o.request;
  app.description(
      "Trains a fast filter for one style (Johnson et al.'s feed-forward network, the Gatys losses on VGG19)\n"
      "on random crops of the photos in a folder; 'stylize apply --filter F' then stylises any photo in one pass.\n"
      "Writes F (at the end), F.ckpt.safetensors (every --checkpoint-every steps and on Ctrl-C), F.preview.png\n"
      "and F.losses.png. Exit codes: 0 ok, 1 internal (a bug), 2 usage, 3 style image or no usable photo,\n"
      "4 weights or checkpoint, 5 output, 6 device, 7 memory, 130 interrupted (checkpoint written; rerun with --resume).");
  app.add_option("--style", o.style, "The style image")->required()->type_name("FILE");
  app.add_option("--data", o.data, "Folder of photos to train on (searched recursively)")->required()->type_name("DIR");
  app.add_option("-o,--output", o.output, "The filter file to write (.safetensors)")->required()->type_name("FILE");
  app.add_option("--crop-size", r.crop_size, "Side of the square random crops, px (multiple of 4, 32..2048)")
      ->capture_default_str();
  app.add_option("--batch-size", r.batch_size, "Crops per step (1..64)")->capture_default_str();
  app.add_option("--steps", r.steps, "Adam steps in all, counted over resumes (1..10000000)")->capture_default_str();
  app.add_option("--learning-rate", r.learning_rate, "Adam's step size, in (0, 1]")->capture_default_str();
  app.add_option("--content-weight", r.loss.content_weight, "Content loss weight (alpha, >= 0)")->capture_default_str();
  app.add_option("--style-weight", r.loss.style_weight, "Style loss weight (beta, >= 0)")->capture_default_str();
  app.add_option("--tv-weight", r.loss.tv_weight, "Total-variation weight (smoothness, >= 0)")->capture_default_str();
  app.add_option("--content-layers", o.content_layers, "Comma-separated content layers, or none [default: relu3_2]");
  app.add_option("--style-layers", o.style_layers, "Comma-separated style layers [default: relu1_1,relu2_1,relu3_1]");
  app.add_option("--style-layer-weights", o.style_layer_weights, "One weight per style layer [default: all 1]");
  app.add_option("--style-size", r.style_size, "Longest side of the style image while training, px (16..8192)")
      ->capture_default_str();
  app.add_option("--width", r.arch.width, "Channels of the filter's first layer (4..256; 32 = Johnson's; fewer is faster)")
      ->capture_default_str();
  app.add_option("--residual-blocks", r.arch.residual_blocks, "Residual blocks in the filter (0..16)")->capture_default_str();
  app.add_option("--seed", r.seed, "Seeds the initial network and every batch's crops")
      ->check(seed_number())
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every, "Write F.ckpt.safetensors every N steps (0 = only at the end)")
      ->transform(number_in(0, 10000000))
      ->capture_default_str();
  app.add_flag("--resume", o.resume, "Continue from F.ckpt.safetensors (same settings; the data may change)");
  app.add_flag("--force", o.force, "Start anew over an existing F or F.ckpt.safetensors (refused without it)");
  app.add_option("--preview-every", o.preview_every, "Write F.preview.png every N steps (0 = only at the end)")
      ->transform(number_in(0, 10000000))
      ->capture_default_str();
  app.add_option("--log", o.log, "Write each step's losses to this JSON-lines file (a fresh run starts it anew; --resume keeps "
                 "the lines up to the checkpoint and appends)")->type_name("FILE.jsonl");
  app.add_option("--print-every", o.print_every, "Log a line every N steps when not on a terminal (0 = never)")
      ->transform(number_in(0, 10000000))
      ->capture_default_str();
  add_network_flags(app, o.engine);
  add_device_flags(app, o.engine);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void apply_lists(TrainOptions& o) {
  if (o.content_layers == "none") {
    o.request.loss.content_layers.clear();
  } else if (!o.content_layers.empty()) {
    o.request.loss.content_layers = split_list(o.content_layers);
  }
  if (!o.style_layers.empty()) o.request.loss.style_layers = split_list(o.style_layers);
  if (!o.style_layer_weights.empty()) {
    o.request.loss.style_layer_weights.clear();
    for (const auto& w : split_list(o.style_layer_weights)) {
      size_t used = 0;
      double v = NAN;
      try {
        v = std::stod(w, &used);
      } catch (const std::exception&) {
      }
      if (used != w.size() || !std::isfinite(v)) {  // "2x" and "inf" are not weights
        throw UsageError("--style-layer-weights must be comma-separated numbers, got " + in_quotes(w));
      }
      o.request.loss.style_layer_weights.push_back(v);
    }
  }
}

// The training photos, shrunk once so their shorter side is crop_size·5/4 (a crop then covers 80%
// of it; smaller photos, down to crop_size, are kept as they are), kept as 8-bit in memory up to a
// budget and decoded again beyond it.
class PhotoSet {
 public:
  PhotoSet(const std::string& folder, int crop_size, const EngineFlags& f) : crop_(crop_size), flags_(f) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) throw InputError("training data " + in_quotes(folder) + " is not a folder");
    const auto files = expand_inputs({folder}, true);
    size_t skipped = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      at::Tensor img = read(files[i], /*warn=*/true);
      if (!img.defined()) {
        ++skipped;
        continue;
      }
      paths_.push_back(files[i]);
      cached_bytes_ += static_cast<uint64_t>(img.numel());
      cache_.push_back(cached_bytes_ <= kCacheBytes ? img : at::Tensor());
      if ((i + 1) % 500 == 0) spdlog::info("read {}/{} photos", i + 1, files.size());
    }
    if (paths_.empty()) {
      throw InputError("training data " + in_quotes(folder) + " holds no usable photo (" + std::to_string(files.size()) +
                       " image file(s), each unreadable or shorter than --crop-size " + std::to_string(crop_size) +
                       " px on a side)");
    }
    spdlog::info("training on {} photos from '{}' ({} skipped)", paths_.size(), folder, skipped);
  }

  PhotoSource source() {
    return {paths_.size(), [this](size_t i) {
              at::Tensor t = cache_[i].defined() ? cache_[i] : read(paths_[i], false);
              if (!t.defined()) throw InputError("photo " + in_quotes(paths_[i]) + " can no longer be read");
              return t.to(at::kFloat);
            }};
  }
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  static constexpr uint64_t kCacheBytes = 2ULL << 30;

  at::Tensor read(const std::string& path, bool warn) const {
    try {
      LoadedImage img = load_image(path, "training photo", static_cast<int64_t>(flags_.max_megapixels * 1e6));
      if (std::min(img.width, img.height) < crop_) {
        if (warn) spdlog::warn("training photo '{}' is {}x{}, smaller than the {} px crops; skipped", path, img.width, img.height, crop_);
        return {};
      }
      const double scale = crop_ * 1.25 / std::min(img.width, img.height);
      at::Tensor rgb = img.rgb;
      if (scale < 1) {
        rgb = resize_image(rgb, std::max(crop_, static_cast<int>(img.width * scale + 0.5)),
                           std::max(crop_, static_cast<int>(img.height * scale + 0.5)));
      }
      return rgb.round().clamp(0, 255).to(at::kByte);
    } catch (const Error& e) {
      if (warn) spdlog::warn("{}; skipped", render_fields(e.what(), FieldWords::flag));
      return {};
    }
  }

  int crop_;
  const EngineFlags& flags_;
  std::vector<std::string> paths_;
  std::vector<at::Tensor> cache_;
  uint64_t cached_bytes_ = 0;
};

std::string checkpoint_path(const std::string& output) {
  const fs::path p(output);
  return (p.parent_path() / (p.stem().string() + ".ckpt.safetensors")).string();
}

std::string side_path(const std::string& output, const std::string& what) {
  const fs::path p(output);
  return (p.parent_path() / (p.stem().string() + "." + what + ".png")).string();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::string join(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ",") + fmt::format("{}", x);
  return s;
}

// How the filter was made, for its metadata (and to refuse a resume with other settings).
std::map<std::string, std::string> settings_metadata(const TrainRequest& r) {
  return {{"content_layers", join(r.loss.content_layers)},
          {"style_layers", join(r.loss.style_layers)},
          {"style_layer_weights", join(r.loss.style_layer_weights)},
          {"content_weight", fmt::format("{}", r.loss.content_weight)},
          {"style_weight", fmt::format("{}", r.loss.style_weight)},
          {"tv_weight", fmt::format("{}", r.loss.tv_weight)},
          {"crop_size", std::to_string(r.crop_size)},
          {"batch_size", std::to_string(r.batch_size)},
          {"seed", std::to_string(r.seed)},
          {"style_size", std::to_string(r.style_size)}};
}

struct Run {
  const TrainOptions& o;
  FilterTrainer& trainer;
  PhotoSet& photos;
  std::map<std::string, std::string> identity;  // what a resume must share: the style's and weights' hashes, settings
  std::map<std::string, std::string> recorded;  // what the file also says: names, the learning rate
  std::vector<at::Tensor> preview_photos{};     // a few fixed photos, 192 px squares
  // Every step's losses for the plot, as plain numbers (10^7 steps stay ~300 MB, not JSON objects).
  int first_step = 1;
  std::vector<double> content{}, style{}, tv{}, total{};
  void record(const nlohmann::json& j) {
    auto number = [&j](const char* key) {  // NaN is written as null
      auto it = j.find(key);
      return it != j.end() && it->is_number() ? it->get<double>() : NAN;
    };
    if (content.empty()) first_step = j.value("step", 1);
    content.push_back(number("content"));
    style.push_back(number("style"));
    tv.push_back(number("tv"));
    total.push_back(number("total"));
  }
};

FilterInfo info_of(const Run& run) {
  FilterInfo info{run.trainer.net().arch(), run.identity};
  info.training.insert(run.recorded.begin(), run.recorded.end());
  info.training["steps"] = std::to_string(run.trainer.steps_done());
  info.training["images_seen"] = std::to_string(run.trainer.images_seen());
  info.training["created_by"] = std::string("stylize ") + STYLIZE_VERSION;
  return info;
}

bool weights_finite(const FilterNet& net) {
  for (const auto& p : net.parameters()) {
    if (!at::isfinite(p).all().item<bool>()) return false;
  }
  return true;
}

void write_checkpoint(const Run& run) {
  const std::string path = checkpoint_path(run.o.output);
  save_filter(path, run.trainer.net(), info_of(run), run.trainer.optimiser_state());
  spdlog::info("checkpoint at step {}: {}", run.trainer.steps_done(), path);
}

// The preview photos side by side, above the filter's output of each.
void write_preview(const Run& run) {
  std::vector<at::Tensor> top, bottom;
  for (const auto& p : run.preview_photos) {
    top.push_back(p);
    bottom.push_back(apply_filter(run.trainer.net(), p));
  }
  const at::Tensor sheet = at::cat({at::cat(top, 3), at::cat(bottom, 3)}, 2);
  save_image(side_path(run.o.output, "preview"), sheet, 90);
}

// The loss plot is a picture for people: failing to draw it never costs the filter or a checkpoint.
void write_plot(const Run& run) {
  if (run.total.empty()) return;
  try {
    const std::vector<PlotSeries> series{
        {"content", run.content}, {"style", run.style}, {"tv", run.tv}, {"total", run.total}};
    save_image(side_path(run.o.output, "losses"),
               render_loss_plot(series, run.first_step,
                                "loss per step (log scale), " + fs::path(run.o.output).filename().string()),
               95);
  } catch (const std::exception& e) {
    spdlog::warn("could not write the loss plot: {}", render_fields(e.what(), FieldWords::flag));
  }
}

// A resumed run's log: the lines of steps 1..`step` in order, once each (what came after the
// checkpoint is done again; a line cut by a kill or from another run is dropped), rewritten
// atomically, and recorded for the plot.
void reload_log(Run& run, int step) {
  std::map<int, nlohmann::json> kept;
  std::ifstream in(run.o.log);
  std::string line;
  while (std::getline(in, line)) {
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      const int k = j.at("step").get<int>();
      if (k >= 1 && k <= step && j.at("total").is_number()) kept[k] = j;
    } catch (const std::exception&) {
    }
  }
  std::string text;
  int expected = 1;
  for (const auto& [k, j] : kept) {
    if (k != expected++) break;  // a gap: the lines before it are all this run's history can trust
    text += j.dump() + "\n";
    run.record(j);
  }
  write_file_atomic(run.o.log, text);
}

void resume_from_checkpoint(Run& run) {
  const std::string path = checkpoint_path(run.o.output);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw UsageError("--resume: no checkpoint " + in_quotes(path) + " (it is written every --checkpoint-every steps)");
  }
  LoadedFilter ckpt = load_filter(path, "adam.");
  for (const auto& [key, value] : run.identity) {
    auto it = ckpt.info.training.find(key);
    const std::string was = it == ckpt.info.training.end() ? "(none)" : it->second;
    if (was == value) continue;
    std::string flag = "--" + key;  // the key's flag; the values keep their underscores (relu3_2)
    std::replace(flag.begin(), flag.end(), '_', '-');
    const std::string what = key == "style_sha256"     ? "another style image"
                             : key == "weights_sha256" ? "other VGG19 weights"
                                                       : flag + " " + in_quotes(was);
    throw UsageError("--resume: checkpoint " + in_quotes(path) + " was trained with " + what +
                     (key.find("sha256") == std::string::npos ? ", this run asks for " + in_quotes(value) : "") +
                     "; resume with the same settings (--learning-rate and --steps may change) or start anew");
  }
  long long step = -1;
  size_t used = 0;
  const auto steps = ckpt.info.training.find("steps");
  try {
    if (steps != ckpt.info.training.end()) step = std::stoll(steps->second, &used);
  } catch (const std::exception&) {
  }
  // A negative or partly numeric step would seed Adam's bias correction with nonsense (1 - 0.9^0 = 0).
  if (steps == ckpt.info.training.end() || used != steps->second.size() || step < 0 || step > 10'000'000) {
    throw WeightsError("checkpoint " + in_quotes(path) + " does not say its step ('steps' metadata: a whole number in "
                       "0..10000000); start anew without --resume");
  }
  run.trainer.resume(ckpt.net, ckpt.extra, static_cast<int>(step));
  if (!run.o.log.empty()) reload_log(run, static_cast<int>(step));
  if (step >= run.o.request.steps) {
    spdlog::warn("the checkpoint is at step {}, --steps is {}: nothing left to train; writing the filter as it stands "
                 "(a larger --steps trains on)", step, run.o.request.steps);
  } else {
    spdlog::info("resuming from step {} of {}", step, run.o.request.steps);
  }
}

void show_progress(const Run& run, const TrainStepResult& s, double images_per_second, double seconds) {
  const TrainOptions& o = run.o;
  static const bool tty = isatty(fileno(stderr)) != 0;
  const double eta = images_per_second > 0 ? (o.request.steps - s.step) * o.request.batch_size / images_per_second : -1;
  const std::string line =
      fmt::format("step {}/{}  loss {:.4g} (content {:.3g}, style {:.3g}, tv {:.3g})  {:.2f} images/s  ETA {}", s.step,
                  o.request.steps, s.loss.total, s.loss.content_sum(), s.loss.style_sum(), s.loss.tv, images_per_second,
                  format_duration(eta));
  if (o.engine.quiet > 0) return;
  if (tty) {
    std::fprintf(stderr, "\r\x1b[K%s", line.c_str());
    if (s.step == o.request.steps) std::fprintf(stderr, "\n");
  } else if (o.print_every > 0 && (s.step % o.print_every == 0 || s.step == o.request.steps || s.step == 1)) {
    spdlog::info("{} ({:.0f} s)", line, seconds);
  }
}

// A run failing for another reason than divergence (a photo that can no longer be read, memory, a
// full disk) first keeps the steps done so far for --resume. A checkpoint that cannot be written
// either is a warning: the first failure is the one to report.
void keep_progress(const Run& run) noexcept {
  try {
    if (run.trainer.steps_done() > 0 && weights_finite(run.trainer.net())) write_checkpoint(run);
  } catch (const std::exception& e) {
    spdlog::warn("could not write a checkpoint either: {}", render_fields(e.what(), FieldWords::flag));
  }
}

std::ofstream open_log(const TrainOptions& o) {
  std::ofstream log;
  if (o.log.empty()) return log;
  // A fresh run starts its log anew; a resumed one continues the lines reload_log kept.
  log.open(o.log, o.resume ? std::ios::app : std::ios::trunc);
  if (!log) {
    throw OutputError("cannot write the --log file " + in_quotes(o.log) + ": " + std::strerror(errno) +
                      "; give another --log");
  }
  return log;
}

// One step's line in the --log file, flushed (a kill loses no step), or OutputError.
void append_log(std::ofstream& log, const TrainOptions& o, const nlohmann::json& line) {
  if (log.is_open() && !(log << line.dump() << "\n" << std::flush)) {
    throw OutputError("could not append to the --log file " + in_quotes(o.log) + " (disk full?); free space or give "
                      "another --log, and --resume");
  }
}

// The loop: a step, its log line, checkpoints and previews when due; Ctrl-C ends it after the step.
bool train_loop(Run& run) {
  const TrainOptions& o = run.o;
  std::ofstream log = open_log(o);
  const PhotoSource source = run.photos.source();
  const auto t0 = std::chrono::steady_clock::now();
  double compute = 0;
  int done_here = 0;
  while (run.trainer.steps_done() < o.request.steps) {
    TrainStepResult s;
    try {
      s = run.trainer.step(source);
    } catch (...) {
      keep_progress(run);
      throw;
    }
    compute += s.seconds;
    ++done_here;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ips = done_here * o.request.batch_size / std::max(seconds, 1e-9);
    nlohmann::json j = {{"step", s.step}, {"content", s.loss.content_sum()}, {"style", s.loss.style_sum()},
                        {"tv", s.loss.tv}, {"total", s.loss.total}, {"images_per_second", ips},
                        {"seconds", seconds}};
    run.record(j);
    show_progress(run, s, ips, seconds);
    if (!std::isfinite(s.loss.total) || !weights_finite(run.trainer.net())) {
      append_log(log, o, j);
      // The last checkpoint stays as it was: it is the state to go back to.
      throw UsageError("training diverged at step " + std::to_string(s.step) + " (loss " +
                       fmt::format("{}", s.loss.total) + "); lower --learning-rate or the loss weights, and --resume " +
                       "from the last checkpoint or start anew");
    }
    try {
      append_log(log, o, j);
      if (o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0 && s.step < o.request.steps) write_checkpoint(run);
      if (o.preview_every > 0 && s.step % o.preview_every == 0) write_preview(run);
    } catch (...) {
      keep_progress(run);
      throw;
    }
    if (interrupt_requested()) return false;
  }
  spdlog::debug("{} steps in {:.1f} s of compute", done_here, compute);
  return true;
}

std::map<std::string, std::string> identity_of(const TrainOptions& o, const VggWeights& vgg) {
  std::map<std::string, std::string> id = settings_metadata(o.request);
  id["style_sha256"] = digest_file(o.style).sha256;
  id["weights_sha256"] = digest_file(vgg.path).sha256;  // the loss network itself, whatever the file is called
  id["preprocessing"] = to_string(vgg.preprocessing);
  id["pooling"] = o.engine.pooling;
  return id;
}

// What a run writes never replaces what it reads, and never lands where a later run would read it:
// the preview and loss plot are images, so inside --data they would become training photos.
void check_outputs(const TrainOptions& o) {
  check_output_folder(o.output);
  if (!o.log.empty()) check_output_folder(o.log);
  const std::string folder = fs::path(o.output).parent_path().empty() ? "." : fs::path(o.output).parent_path().string();
  check_out_dir_outside_inputs(folder, {o.data}, true, "the folder of -o",
                               "write the filter outside --data (its preview and loss plot are images)");
  check_outputs_spare_inputs({{"-o", o.output},
                              {"the checkpoint", checkpoint_path(o.output)},
                              {"the preview", side_path(o.output, "preview")},
                              {"the loss plot", side_path(o.output, "losses")},
                              {"--log", o.log}},
                             {{"the style image", o.style}, {"the weights file", weights_path_if_any(o.engine)}},
                             "give -o (or --log) another path");
  // Hours of training sit in a checkpoint: a fresh run does not replace one (or a finished filter) unasked.
  std::error_code ec;
  if (!o.resume && !o.force) {
    for (const std::string& p : {checkpoint_path(o.output), o.output}) {
      if (fs::exists(p, ec)) {
        throw OutputError(in_quotes(p) + " exists: a fresh run would replace it; continue its training with --resume, "
                          "start anew with --force, or give another -o");
      }
    }
  }
}

int run(TrainOptions& o) {
  apply_lists(o);
  validate(o.request);
  if (file_extension(o.output) != "safetensors") {  // an output's name: exit 5, as every writer's
    throw OutputError("-o " + in_quotes(o.output) + ": a filter file ends in .safetensors; give -o a .safetensors path");
  }
  check_outputs(o);
  const at::Device device = resolve_device(o.engine.device);
  configure_threads(o.engine.threads);  // before the photos: their resizing runs on ATen's threads
  const LoadedImage style = read_image(o.style, "style image", o.engine);
  const auto [sw, sh] = fit_longest(style.width, style.height, o.request.style_size);
  check_working_size(sw, sh, deepest_layer(o.request.loss),
                     "the style image " + in_quotes(o.style) + " at --style-size " + std::to_string(o.request.style_size),
                     field("style_size"));
  PhotoSet photos(o.data, o.request.crop_size, o.engine);

  const VggWeights vgg = load_vgg_weights(o.engine, deepest_layer(o.request.loss));
  const Precision precision = resolve_precision_flag(o.engine.precision, device);
  auto net = std::make_shared<Vgg19>(vgg.weights.params, o.engine.pooling == "avg" ? Pooling::avg : Pooling::max,
                                     deepest_layer(o.request.loss), precision);
  net->to(device);
  FilterTrainer trainer(net, vgg.preprocessing, o.request, resize_image(style.rgb, sw, sh), device);
  spdlog::info("training a width-{} filter on {}, {} arithmetic in the loss network, {} steps of {} crops of {} px",
               o.request.arch.width, device.str(), to_string(precision), o.request.steps, o.request.batch_size,
               o.request.crop_size);

  Run r{o, trainer, photos, identity_of(o, vgg), {}};
  r.recorded = {{"style", fs::path(o.style).filename().string()}, {"weights", fs::path(vgg.path).filename().string()},
                {"learning_rate", fmt::format("{}", o.request.learning_rate)}};
  for (size_t i = 0; i < std::min<size_t>(4, photos.paths().size()); ++i) {
    const LoadedImage p = read_image(photos.paths()[i], "training photo", o.engine);
    // 192 px squares from the middle of each: the same few photos at every preview.
    const double scale = 192.0 / std::min(p.width, p.height);
    const int w = std::max(192, static_cast<int>(p.width * scale + 0.5));
    const int h = std::max(192, static_cast<int>(p.height * scale + 0.5));
    r.preview_photos.push_back(resize_image(p.rgb, w, h).narrow(2, (h - 192) / 2, 192).narrow(3, (w - 192) / 2, 192));
  }
  if (o.resume) resume_from_checkpoint(r);
  install_interrupt_handler();
  const bool finished = train_loop(r);
  if (!finished) {
    write_checkpoint(r);
    write_plot(r);
    spdlog::warn("interrupted at step {}; continue with the same command and --resume", trainer.steps_done());
    return static_cast<int>(ExitCode::interrupted);
  }
  // The checkpoint first: if F cannot be written, --resume (nothing left to train) writes it then.
  write_checkpoint(r);  // and a later run can train on: --steps N --resume
  save_filter(o.output, trainer.net(), info_of(r));
  write_preview(r);
  write_plot(r);
  spdlog::info("wrote {} after {} steps ({} images)", o.output, trainer.steps_done(), trainer.images_seen());
  return 0;
}

}  // namespace

int train_main(int argc, char** argv) {
  return command_main<TrainOptions>("stylize train", argc, argv, setup, run);
}

}  // namespace stylize::cli
