// The whole stylisation of one request: plan() checks what can be checked without a network (sizes
// at every scale, memory), run() does it — style targets, coarse-to-fine scales, the optimiser, the
// colours — reporting through callbacks. `stylize`, `stylize batch` and `stylize serve` all call run(),
// so the same request gives the same image bytes from each (on the CPU, same threads).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "stylize/request.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/tiling.hpp"

namespace stylize {

struct ScalePlan {
  int size = 0;                                  // longest side at this scale
  int width = 0, height = 0;                     // the image optimised at this scale
  int iterations = 0;
  int style_longest = 0;                         // style images' longest side at this scale
  std::vector<std::pair<int, int>> style_sizes;  // (width, height) per style image
  // Tiled (tiling.hpp) when tile > 0: `sweeps` sweeps of `tile_iterations` iterations per tile visit
  // (request.hpp: at most the request's tile_iterations, at least 4 sweeps where visits keep 10).
  int tile = 0, sweeps = 0, tile_iterations = 0;
  int tile_overlap = 0;                          // each tile's context: the request's, at least the receptive radius
  std::string tiling_reason;                     // why it is tiled, for the log ("" = untiled)
  // Pixels a sweep runs through the network (the tiles' crops) over the image's: what the context
  // costs (tiling.hpp's network_pixels_ratio(), the report's field of that name; 1 = untiled). When
  // an asked-for tile makes it over 4x, the output's scale gets `tiling_caveat`, in field names: what
  // it costs and the tile that costs at most 3x
  // ("" = none; memory's own tile, the largest that fits, never gets one).
  double network_pixels_ratio = 1;
  std::string tiling_caveat;
  uint64_t estimated_peak_bytes = 0;             // CPU host memory, the model of stylizer.hpp / tiling.hpp
};

struct StylizePlan {
  std::vector<ScalePlan> scales;  // coarsest first; the last one is the output's
  int width = 0, height = 0;      // the output
  int last_index = 0;             // deepest network layer a loss uses
};

// Validates the request (validate()), then plans every scale: the content and each style image at
// their working sizes against the deepest layer, and whether it is tiled — when the request's `tile`
// is smaller than the image, or on the CPU when a whole run would need more than r.max_memory (else
// the free memory): then with the largest tile that fits. Throws FieldError/UsageError (invalid, too
// small: exit 2), ResourceError (not even a tiled run fits: exit 7). Needs only the images' sizes.
StylizePlan plan(const StylizeRequest& r, const at::Device& device, Precision precision);

// Resizes the request's images to the sizes the output's scale uses, so that a queue holds no more
// than that; run() gives the same bytes with or without it (coarser scales are made from these sizes).
void shrink_to_output(StylizeRequest& r);

// Whether the run starts from an image the recipe stretches to the content's shape: init = image,
// or style (the first style image), with an aspect ratio more than 2% away from the content's.
// Front-ends warn of it; call it before shrink_to_output, which does the stretching.
bool init_is_stretched(const StylizeRequest& r);

// What a front-end tells whoever asked (a log line, a report's or a job's "warnings"): the run goes
// ahead, but not as they may think. In field names (render_fields), each one line:
//   - the start image is stretched (init_is_stretched): "START is WxH and the content WxH: it is
//     stretched to the content's shape", START being `start` or, when empty, "the `init` image" /
//     "the first style image (`init` style)";
//   - the output's scale's tiling_caveat (an asked-for tile that costs over 4x).
// Empty when neither. `p` is plan(r, ...); call before shrink_to_output (it does the stretching).
std::string init_stretch_warning(const StylizeRequest& r, const std::string& start = "");
std::vector<std::string> run_warnings(const StylizeRequest& r, const StylizePlan& p, const std::string& start = "");

// Gram targets shared between runs of one process, keyed by the request's style_key, the style
// layers, the blend and the working size. Thread-safe; a key's targets are computed once.
class StyleTargetCache {
 public:
  // The cached targets, or compute() stored under `key`; `computed` says which.
  std::shared_ptr<const StyleTargets> get(const std::string& key, const std::function<StyleTargets()>& compute,
                                          bool* computed = nullptr);
  int computations() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const StyleTargets>> targets_;
  int computations_ = 0;
};

struct ScaleResult {
  ScalePlan plan;
  StylizeOutput output;          // output.rgb at this scale's size (tiled: losses summed over the tiles)
  std::vector<Tile> tiles;       // a tiled scale's last sweep
  bool style_targets_cached = false;
  double seconds_style_targets = 0;
};

struct StylizeResult {
  StylizePlan plan;
  at::Tensor rgb;                // [1, 3, H, W] RGB 0-255 on the CPU at the output size, colours applied
  std::vector<ScaleResult> scales;  // those that ran (fewer when interrupted)
  LossValues initial;            // at the start of the first scale
  LossValues final;              // the optimiser's image at the last scale run
  LossValues written;            // that image in 8 bits, as a file holds it
  int iterations = 0, evaluations = 0;  // over all scales
  bool interrupted = false;      // should_stop: rgb is the best image so far, enlarged to the output size
  double seconds_style_targets = 0, seconds_content_targets = 0, seconds_optimise = 0;
};

struct RunCallbacks {
  std::function<void(int scale, const StylizePlan&)> on_scale_begin;   // scale: 0-based
  std::function<void(int scale, const ScaleResult&)> on_scale_end;
  std::function<void(int scale, const TileProgress&)> on_tile;  // before each tile of a tiled scale
  // As TransferCallbacks (transfer.hpp): at the evaluations progress_at selects (all when empty).
  std::function<void(int scale, const Progress&)> on_progress;
  std::function<bool(int evaluation, int total)> progress_at;
  std::function<bool()> should_stop;
  // Every snapshot_every evaluations of the last scale, before its last (0 = never; a tiled last
  // scale: after each sweep that reaches a multiple of it, each tile's iterations counted): the
  // image so far, as rgb above.
  int snapshot_every = 0;
  std::function<void(int iteration, const at::Tensor& rgb)> on_snapshot;
};

// Throws FieldError (range; content_layers or style_layers), naming the layer and where the network
// ends, when a loss layer of `r` is deeper than `stylizer`'s network (its weights file stops before it).
void check_network_reaches(const Stylizer& stylizer, const StylizeRequest& r);

// Runs the request on `stylizer`: plan(), then per scale the style targets (from `cache` when given
// and the request has a style_key), the start (the content, noise, the first style image, init_image,
// or the previous scale's result enlarged) and the optimisation. Throws what plan() throws, UsageError
// when a loss layer is deeper than the stylizer's network, ResourceError on out-of-memory.
StylizeResult run(const Stylizer& stylizer, const StylizeRequest& r, const RunCallbacks& callbacks = {},
                  StyleTargetCache* cache = nullptr);

}  // namespace stylize
