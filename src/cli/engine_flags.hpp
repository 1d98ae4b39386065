// The flags every stylising command shares and turning them into a loaded engine and a request.
// Request fields (recipe settings: sizes, losses, optimiser...) become flags by their names
// (style_weight -> --style-weight) and are read and checked by the engine (request.hpp), so a flag
// accepts exactly what a batch job-file key or an HTTP form field of the same name accepts. The rest
// (weights, device, threads, logging, image limits) belongs to the command line alone.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/request.hpp"
#include "stylize/stylizer.hpp"

namespace stylize::cli {

struct EngineFlags {
  std::map<std::string, std::string> fields;  // request field -> its text, for the fields given
  std::string init_file;                      // --init FILE (not content, random or style)
  std::string weights;
  std::string preprocess = "auto";
  std::string pooling = "max";
  int quality = 95;
  std::string device = "auto";
  std::string precision = "auto";
  int threads = 0;
  int print_every = 50;
  double max_megapixels = kDefaultMaxPixels / 1e6;
  std::string max_memory;  // "8G", "512M", "" = what the machine has free
  int quiet = 0, verbose = 0;
};

// One flag per request field (help and defaults from request_fields() and request_defaults()), then
// the command line's own. Every flag takes one word: lists are comma-separated (`-n 400,300,100`).
void add_engine_flags(CLI::App& app, EngineFlags& f);

// The parts of those that other commands share: --weights, --preprocess, --pooling (the VGG19 a
// command loads), and --device, --precision, --threads, --max-megapixels, -q, -v.
void add_network_flags(CLI::App& app, EngineFlags& f);
void add_device_flags(CLI::App& app, EngineFlags& f);

// The request the flags describe, over request_defaults(p); images not set. Validated (validate(),
// then check_given_fields_apply() for the flags given): throws FieldError, so a front-end calls it
// before loading anything.
StylizeRequest request_from_flags(const EngineFlags& f, Preprocessing p);

// A loaded network plus what the report says about it.
struct Engine {
  std::unique_ptr<Stylizer> stylizer;
  std::string weights_path;
  std::map<std::string, std::string> weights_metadata;
  Preprocessing preprocessing = Preprocessing::caffe;
  at::Device device = at::kCPU;
  int threads = 1;
  double seconds_load = 0;
};

// The VGG19 weights the flags name (--weights or the search path) up to `last_index`, and their
// preprocessing (--preprocess, else the file's metadata, else caffe with a warning).
struct VggWeights {
  std::string path;
  Vgg19Weights weights;
  Preprocessing preprocessing = Preprocessing::caffe;
};
// The weights file the flags name or the search path finds; "" when there is none (load_engine says
// why later). For the list of what a command reads.
std::string weights_path_if_any(const EngineFlags& f);

// `whole`: keep every convolution the file holds (it must still reach `last_index`).
VggWeights load_vgg_weights(const EngineFlags& f, int last_index, bool whole = false);

// Loads the weights and cuts the network after `last_index` (deepest_layer of the request's losses),
// or, `whole`, after the deepest layer the file serves: for serve, worker and batch, whose jobs may
// name their own layers (throws WeightsError when the file does not reach `last_index`).
Engine load_engine(const EngineFlags& f, int last_index, bool whole = false);

// The precision the engine will run in (--precision on --device), for plan() before loading.
Precision planned_precision(const EngineFlags& f);

// --precision `spec` on `device`, resolved (throws UsageError on an unknown value), with one warning
// per process where the choice is a poor one on this CPU (precision_caveat): every command that
// loads a network or a filter resolves --precision through this.
Precision resolve_precision_flag(const std::string& spec, const at::Device& device);

// --max-memory in bytes (0 when not given); throws UsageError naming the flag on anything else.
uint64_t max_memory_bytes(const EngineFlags& f);

// Reads an image for a request (content, style or init), logging how it was converted.
LoadedImage read_image(const std::string& path, const std::string& role, const EngineFlags& f);

// The start image as the command line names it, for init_stretch_warning / run_warnings (field
// names): "the `init` image 'FILE'" or "the first style image 'FIRST_STYLE' (`init` style)".
std::string init_start_name(const StylizeRequest& r, const EngineFlags& f, const std::string& first_style);

// Warns when the run starts from an image stretched to the content's shape (init_is_stretched: an
// --init FILE or --init style of another aspect ratio), naming it and both sizes. `first_style` is
// the first style image's path, `label` prefixes the line (a batch job's "[3/10] ").
void warn_if_init_stretched(const StylizeRequest& r, const EngineFlags& f, const std::string& first_style,
                            const std::string& label = "");

// A report's "warnings": run_warnings' lines in the command line's words (flags).
nlohmann::json warnings_json(const std::vector<std::string>& warnings);

// Logs how scale `k` of `plan` is tiled, if it is (tile, context, why, sweeps, what the context
// costs), and warns of its tiling_caveat; `label` prefixes the lines. Nothing for an untiled scale.
void log_tiling(const StylizeRequest& r, const StylizePlan& plan, int k, const std::string& label);

// Every effective setting, for reports: settings_json() of the engine plus the command line's own.
nlohmann::json settings_json(const StylizeRequest& r, const EngineFlags& f, const Engine& e);

}  // namespace stylize::cli
