#include "stylize/recipe.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <cstdio>

#include "stylize/error.hpp"
#include "stylize/runtime.hpp"
#include "stylize/vgg19.hpp"

namespace stylize {
namespace {

// Sweeps of a tiled scale of n iterations, visits of at most `per_visit`: enough for that, and at
// least kMinSweeps where each visit still gets kMinVisit iterations. Each visit optimises the whole
// image's objective, so in a single sweep the first tiles take the whole picture's style deficit
// (their Gram contributions overshoot to make up for the photo still in the rest) and the last ones
// are left nearly untouched: real weights, 384×288, 200 px tiles, 32 px overlap, 100 iterations:
// one sweep of 100, loss 568712 and the right half still the photo (opened); four sweeps of 25,
// 505715, evenly painted, as the untiled run's 505982. Below kMinVisit iterations a visit is
// mostly its fresh L-BFGS's start and the passes that keep the sums (README "Print size").
constexpr int kMinSweeps = 4, kMinVisit = 10;
int tile_sweeps(int n, int per_visit) {
  if (n <= 0) return 0;
  return std::max((n + per_visit - 1) / per_visit, std::min(kMinSweeps, n / kMinVisit));
}

int scale_iterations(const StylizeRequest& r, int k) {
  return r.iterations.size() == 1 ? r.iterations[0] : r.iterations[static_cast<size_t>(k)];
}

std::pair<int, int> dims(const at::Tensor& rgb) { return {static_cast<int>(rgb.size(3)), static_cast<int>(rgb.size(2))}; }

at::Tensor sized(const ResizeFn& resize, const at::Tensor& rgb, int width, int height) {
  if (dims(rgb) == std::make_pair(width, height)) return rgb;
  if (!resize) throw Error(ExitCode::internal, "the request's images need resizing but it has no resize function");
  return resize(rgb, width, height);
}

void check_images(const StylizeRequest& r) {
  auto check = [](const at::Tensor& t, const std::string& what) {
    if (!t.defined() || t.dim() != 4 || t.size(0) != 1 || t.size(1) != 3 || t.size(2) < 1 || t.size(3) < 1) {
      throw UsageError("the request's " + what + " must be an RGB image [1, 3, H, W]");
    }
  };
  check(r.content, "content image");
  if (r.styles.empty()) throw UsageError("the request has no style image; give at least one");
  for (const auto& s : r.styles) check(s, "style image");
  if (r.init == InitFrom::image && !r.init_image.defined()) {
    // `init` image names a start image the front-end supplies (the command line reads a file);
    // a job line or form that says "image" has none to give.
    throw FieldError("init", FieldError::range, field("init") + " is image, but no start image came with the request; "
                                                "use content, random or style");
  }
  if (r.init == InitFrom::image) check(r.init_image, "init image");
}

// The style images' sizes at the output's scale: every coarser scale is made from these.
std::pair<int, int> final_style_size(const StylizeRequest& r, const at::Tensor& style) {
  const auto [w, h] = dims(style);
  return fit_longest(w, h, style_longest_side(r.size, r.style_scale));
}

std::string cache_key(const StylizeRequest& r, int style_longest) {
  std::string key = r.style_key + "|" + std::to_string(style_longest) + "|";
  for (const auto& l : r.loss.style_layers) key += l + ",";
  key += "|";
  // The blend as the targets mix it, each style's share: [1] for one style is the default, and 6,2
  // is 3,1, so such requests share their targets.
  for (double s : blend_shares(r.style_blend, r.styles.empty() ? r.style_blend.size() : r.styles.size())) {
    char share[32];
    std::snprintf(share, sizeof share, "%.9g,", s);
    key += share;
  }
  return key;
}

// The start of scale k: the previous scale's result enlarged, else what the request asks.
StylizeParams scale_params(const Stylizer& s, const StylizeRequest& r, const ScalePlan& sp, int k,
                           const at::Tensor& previous, const std::vector<at::Tensor>& styles) {
  StylizeParams p;
  p.loss = r.loss;
  p.optimizer = optimizer_options(r, s.preprocessing(), sp.iterations);
  p.seed = r.seed;
  p.original_colors = r.original_colors;
  p.init = InitKind::image;
  if (k > 0) {
    p.init_image = sized(r.resize, previous, sp.width, sp.height);
  } else if (r.init == InitFrom::style) {
    p.init_image = sized(r.resize, styles[0], sp.width, sp.height);
  } else if (r.init == InitFrom::image) {
    p.init_image = sized(r.resize, r.init_image, sp.width, sp.height);
  } else {
    p.init = r.init == InitFrom::random ? InitKind::random : InitKind::content;
  }
  return p;
}

TransferCallbacks scale_callbacks(const Stylizer& s, const RunCallbacks& cb, int k, bool last, const at::Tensor& content,
                                  bool original_colors) {
  TransferCallbacks tc;
  if (cb.on_progress) tc.on_progress = [&cb, k](const Progress& p) { cb.on_progress(k, p); };
  tc.progress_at = cb.progress_at;
  tc.should_stop = cb.should_stop;
  if (last && cb.snapshot_every > 0 && cb.on_snapshot) {
    tc.snapshot_every = cb.snapshot_every;
    tc.on_snapshot = [&s, &cb, content, original_colors](int iteration, const at::Tensor& input) {
      cb.on_snapshot(iteration, s.to_rgb(input, content, original_colors));
    };
  }
  return tc;
}

std::string gigabytes(uint64_t bytes) {
  char buf[32];
  // Two decimals: "needs about 0.41 GB, 0.40 GB is available" must not read as the same number twice.
  std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

// The other way to fit, a request's own: the optimiser's history is 2 images per entry. (A limit a
// front-end set, --max-memory, is its own to mention: a server's client cannot change it.)
std::string more_memory(const StylizeRequest& r) {
  return r.optimizer == OptimizerKind::lbfgs ? ", or a smaller `lbfgs_history` (or `optimizer` adam)" : "";
}

// A smaller overlap helps only down to the receptive radius (tile_context raises it to that).
std::string smaller_overlap(const StylizeRequest& r, int last_index) {
  return r.tile_overlap > receptive_radius(last_index) ? " or `tile_overlap`" : "";
}

// An asked-for tile so small next to its context that most of the work is context: say what it
// costs and the smallest tile (a multiple of 32) at most 3x (by the grid of tile_grid, interiors
// reach 1.5·tile, so from about 2/3 of the longest side one tile covers everything: 1x).
std::string tiling_caveat(const StylizeRequest& r, const ScalePlan& sp, int last_index) {
  constexpr double too_much = 4, enough = 3;
  if (std::round(sp.network_pixels_ratio * 10) / 10 <= too_much) return "";  // as the message rounds it
  const int longest = std::max(sp.width, sp.height), align = vgg19_min_side(last_index);
  int better = (sp.tile / 32 + 1) * 32;
  while (better < longest && network_pixels_ratio(sp.width, sp.height, better, sp.tile_overlap, align) > enough) {
    better += 32;
  }
  char work[32];
  std::snprintf(work, sizeof work, "%.1fx", sp.network_pixels_ratio);
  const int radius = receptive_radius(last_index);
  return field("tile") + " " + std::to_string(sp.tile) + " with " + std::to_string(sp.tile_overlap) +
         " px of context per side runs the network over " + work + " the image's pixels (untiled: 1x); " +
         (better < longest ? "a " + field("tile") + " of " + std::to_string(better) + " keeps it within 3x"
                           : "an untiled run (" + field("tile") + " 0) runs it once") +
         (r.tile_overlap > radius ? ", and a smaller " + field("tile_overlap") + " (down to " + std::to_string(radius) +
                                        ") costs less"
                                  : "") +
         ", if memory allows";
}

// Whether scale `sp` is tiled and how: the request's tile when smaller than the image; on the CPU,
// the largest tile that fits when a whole run does not. Throws ResourceError when nothing fits.
void plan_tiling(const StylizeRequest& r, ScalePlan& sp, int last_index, const at::Device& device, Precision precision) {
  const OptimizerOptions opt = optimizer_options(r, Preprocessing::caffe, sp.iterations);
  const int longest = std::max(sp.width, sp.height);
  const uint64_t budget = r.max_memory > 0 ? r.max_memory : available_memory_bytes();
  const uint64_t whole = estimate_cpu_peak_bytes(sp.width, sp.height, opt, precision);
  const std::string run = "a whole " + std::to_string(sp.width) + "x" + std::to_string(sp.height) + " run";
  const int overlap = tile_context(r.tile_overlap, last_index);  // what optimize_tiled gives each tile
  // A tile that would not cut this scale (its sweep-0 grid is one tile: no side over 1.5 tiles, the
  // coarse scales of a tiled print, say) runs it whole: one visit of the whole image per sweep would
  // only restart L-BFGS's history, and would be logged and reported as tiled.
  const bool asked = r.tile > 0 && r.tile < longest &&
                     tile_grid(sp.width, sp.height, r.tile, 0, 0, 0, vgg19_min_side(last_index)).size() > 1;
  if (asked) {
    sp.tile = r.tile;
    sp.tiling_reason = "asked for (" + field("tile") + " " + std::to_string(r.tile) + ")";
  } else if (!device.is_cuda() && budget > 0 && whole > budget) {
    const int min_tile = std::max(64, vgg19_min_side(last_index));
    sp.tile = largest_fitting_tile(sp.width, sp.height, overlap, min_tile, opt, precision, budget);
    if (sp.tile == 0) {
      throw ResourceError(run + " needs about " + gigabytes(whole) + " of memory and even a tiled one (" +
                          std::to_string(min_tile) + " px tiles) needs about " +
                          gigabytes(estimate_tiled_peak_bytes(sp.width, sp.height, min_tile, overlap, opt, precision)) +
                          ", but " + gigabytes(budget) + " is available; use a smaller `size`" +
                          smaller_overlap(r, last_index) + more_memory(r));
    }
    sp.tiling_reason = run + " needs about " + gigabytes(whole) + " of memory, " + gigabytes(budget) + " is available";
  }
  if (sp.tile == 0) {
    sp.estimated_peak_bytes = whole;
    if (!device.is_cuda()) check_cpu_memory(sp.width, sp.height, opt, precision);
    return;
  }
  check_working_size(sp.tile, sp.tile, last_index, "the tile");
  // An interior can be as small as tile/2 (tiling.hpp) and its crop adds the overlap on one side at least.
  sp.tile_overlap = overlap;
  check_working_size(sp.tile / 2 + overlap, sp.tile / 2 + overlap, last_index,
                     "the smallest tile with its overlap (" + field("tile") + "/2 + " + field("tile_overlap") + ")");
  sp.sweeps = tile_sweeps(sp.iterations, r.tile_iterations);
  sp.tile_iterations = sp.sweeps == 0 ? 0 : (sp.iterations + sp.sweeps - 1) / sp.sweeps;
  sp.estimated_peak_bytes = estimate_tiled_peak_bytes(sp.width, sp.height, sp.tile, overlap, opt, precision);
  sp.network_pixels_ratio = network_pixels_ratio(sp.width, sp.height, sp.tile, overlap, vgg19_min_side(last_index));
  if (asked) sp.tiling_caveat = tiling_caveat(r, sp, last_index);  // memory's own tile is the largest that fits
  if (!device.is_cuda() && budget > 0 && sp.estimated_peak_bytes > budget) {
    throw ResourceError("a run tiled by " + std::to_string(sp.tile) + " px needs about " +
                        gigabytes(sp.estimated_peak_bytes) + " of memory, but " + gigabytes(budget) +
                        " is available; use a smaller `tile`" + smaller_overlap(r, last_index) + more_memory(r));
  }
}

// A tiled scale through optimize_tiled(), reported as an untiled one is (its losses are the whole
// image's, from the tiles' sums).
StylizeOutput tiled_scale(const Stylizer& s, const StylizeRequest& r, const ScalePlan& sp, int k, bool last,
                          const at::Tensor& content, const StylizeParams& params, const StyleTargets& targets,
                          const RunCallbacks& cb, std::vector<Tile>& tiles) {
  at::Tensor start = content;
  if (params.init == InitKind::image) {
    start = params.init_image;
  } else if (params.init == InitKind::random) {
    // The untiled start (stylizer.cpp), drawn on the CPU for the whole image, in RGB.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(r.seed);
    start = s.to_rgb(at::randn(content.sizes(), gen, at::kFloat) * (0.001 * input_units_per_level(s.preprocessing())),
                     content, false);
  }
  StylizeParams p = params;
  p.optimizer.iterations = sp.tile_iterations;
  TiledCallbacks tc;
  if (cb.on_tile) tc.on_tile = [&cb, k](const TileProgress& t) { cb.on_tile(k, t); };
  tc.transfer = scale_callbacks(s, cb, k, false, content, false);
  if (last && cb.snapshot_every > 0 && cb.on_snapshot) {
    // After a sweep that reaches a multiple of snapshot_every (each tile's iterations so far), and
    // not after the last: that image is the output itself, as an untiled run's last iteration is.
    tc.on_sweep = [&](int sweep, const at::Tensor& rgb) {
      const int done = sweep * sp.tile_iterations, before = (sweep - 1) * sp.tile_iterations;
      if (sweep >= sp.sweeps || done / cb.snapshot_every == before / cb.snapshot_every) return;
      cb.on_snapshot(done, r.original_colors ? transfer_luminance(rgb, content) : rgb);
    };
  }
  const TiledResult t = optimize_tiled(s, content, start, targets, p, sp.tile, sp.tile_overlap, sp.sweeps,
                                       r.seed + static_cast<uint64_t>(k), tc);
  StylizeOutput out;
  out.rgb = r.original_colors ? transfer_luminance(t.rgb, content) : t.rgb;
  out.transfer.iterations = t.iterations;
  out.transfer.evaluations = t.evaluations;
  out.transfer.interrupted = t.interrupted;
  out.transfer.initial = t.initial;
  out.transfer.final = t.final;
  out.transfer.seconds_loop = t.seconds;
  // The whole image is never evaluated at once at a tiled scale: the image as written (8 bits, its
  // colours transferred) is scored tile by tile, as the optimised one was — one forward pass per
  // tile, at the last scale only (a coarser scale's is never reported), and not when interrupted
  // (the person is waiting for the image).
  out.written = last && !t.interrupted && !t.last_grid.empty()
                    ? tiled_loss(s, content, out.rgb.round(), targets, params.loss, t.last_grid)
                    : t.final;
  out.seconds_optimise = t.seconds;
  tiles = t.last_grid;
  return out;
}

}  // namespace

StylizePlan plan(const StylizeRequest& r, const at::Device& device, Precision precision) {
  validate(r);
  check_images(r);
  StylizePlan p;
  p.last_index = deepest_layer(r.loss);
  const auto [cw, ch] = dims(r.content);
  std::tie(p.width, p.height) = fit_longest(cw, ch, r.size);
  for (int k = 0; k < r.scales; ++k) {
    ScalePlan sp;
    sp.size = scale_size(r, k);
    std::tie(sp.width, sp.height) = fit_longest(p.width, p.height, sp.size);
    sp.iterations = scale_iterations(r, k);
    check_working_size(sp.width, sp.height, p.last_index,
                       "the output" + (r.scales > 1 ? " at scale " + std::to_string(k + 1) : std::string()));
    sp.style_longest = style_longest_side(sp.size, r.style_scale);
    for (const auto& style : r.styles) {
      const auto [fw, fh] = final_style_size(r, style);
      sp.style_sizes.push_back(fit_longest(fw, fh, sp.style_longest));
      // A style image goes through the style layers only: a deeper content layer asks nothing of it.
      if (const int deepest_style = deepest_style_layer(r.loss); deepest_style >= 0) {
        check_working_size(sp.style_sizes.back().first, sp.style_sizes.back().second, deepest_style,
                           "the style image at its working size");
      }
    }
    plan_tiling(r, sp, p.last_index, device, precision);
    p.scales.push_back(sp);
  }
  // One `tile` serves every scale: its advice is the output's, and a coarser scale's is not repeated.
  for (size_t k = 0; k + 1 < p.scales.size(); ++k) p.scales[k].tiling_caveat.clear();
  return p;
}

void shrink_to_output(StylizeRequest& r) {
  if (!r.content.defined()) return;
  const auto [cw, ch] = dims(r.content);
  const auto [w, h] = fit_longest(cw, ch, r.size);
  r.content = sized(r.resize, r.content, w, h);
  for (auto& style : r.styles) {
    const auto [sw, sh] = final_style_size(r, style);
    style = sized(r.resize, style, sw, sh);
  }
  if (r.init_image.defined()) r.init_image = sized(r.resize, r.init_image, w, h);
}

bool init_is_stretched(const StylizeRequest& r) {
  const at::Tensor* start = nullptr;
  if (r.init == InitFrom::image) start = &r.init_image;
  if (r.init == InitFrom::style && !r.styles.empty()) start = &r.styles[0];
  if (!start || !start->defined() || !r.content.defined()) return false;
  const auto [sw, sh] = dims(*start);
  const auto [cw, ch] = dims(r.content);
  if (sw <= 0 || sh <= 0 || cw <= 0 || ch <= 0) return false;  // validate()'s business, not a stretch
  const double ratio = (static_cast<double>(sw) / sh) / (static_cast<double>(cw) / ch);
  return ratio > 1.02 || ratio < 1 / 1.02;
}

std::string init_stretch_warning(const StylizeRequest& r, const std::string& start) {
  if (!init_is_stretched(r)) return "";
  const bool image = r.init == InitFrom::image;
  const auto [sw, sh] = dims(image ? r.init_image : r.styles[0]);
  const auto [cw, ch] = dims(r.content);
  const std::string name = !start.empty() ? start
                           : image        ? "the " + field("init") + " image"
                                          : "the first style image (" + field("init") + " style)";
  return name + " is " + std::to_string(sw) + "x" + std::to_string(sh) + " and the content " + std::to_string(cw) +
         "x" + std::to_string(ch) + ": it is stretched to the content's shape";
}

std::vector<std::string> run_warnings(const StylizeRequest& r, const StylizePlan& p, const std::string& start) {
  std::vector<std::string> out;
  std::string stretched = init_stretch_warning(r, start);
  if (!stretched.empty()) out.push_back(std::move(stretched));
  if (!p.scales.empty() && !p.scales.back().tiling_caveat.empty()) out.push_back(p.scales.back().tiling_caveat);
  return out;
}

std::shared_ptr<const StyleTargets> StyleTargetCache::get(const std::string& key,
                                                          const std::function<StyleTargets()>& compute, bool* computed) {
  std::lock_guard<std::mutex> lock(mu_);  // held while computing: a key is computed once
  auto it = targets_.find(key);
  if (computed) *computed = it == targets_.end();
  if (it != targets_.end()) return it->second;
  ++computations_;
  return targets_.emplace(key, std::make_shared<const StyleTargets>(compute())).first->second;
}

int StyleTargetCache::computations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return computations_;
}

void check_network_reaches(const Stylizer& s, const StylizeRequest& r) {
  const int last = deepest_layer(r.loss);
  if (last > s.last_index()) {
    const std::string& wanted = vgg19_layers()[static_cast<size_t>(last)].name;
    const std::string& end = vgg19_layers()[static_cast<size_t>(s.last_index())].name;
    const auto& content = r.loss.content_layers;
    // A layer name, but past what these weights hold: out of range (an unknown name is a syntax error).
    const std::string name =
        std::find(content.begin(), content.end(), wanted) != content.end() ? "content_layers" : "style_layers";
    throw FieldError(name, FieldError::range,
                     field(name) + ": layer " + wanted + " is deeper than the loaded network, which ends at " + end +
                         "; use layers up to " + end + ", or weights that reach " + wanted +
                         " (the full VGG19: 'stylize weights fetch')");
  }
}

StylizeResult run(const Stylizer& s, const StylizeRequest& request, const RunCallbacks& cb, StyleTargetCache* cache) {
  check_network_reaches(s, request);
  StylizeResult res;
  res.plan = plan(request, s.device(), s.precision());
  StylizeRequest r = request;
  shrink_to_output(r);  // every scale is made from the output-size images
  at::Tensor previous;
  const int n = static_cast<int>(res.plan.scales.size());
  for (int k = 0; k < n; ++k) {
    const ScalePlan& sp = res.plan.scales[static_cast<size_t>(k)];
    if (cb.on_scale_begin) cb.on_scale_begin(k, res.plan);
    ScaleResult sr;
    sr.plan = sp;
    const at::Tensor content = sized(r.resize, r.content, sp.width, sp.height);
    std::vector<at::Tensor> styles;
    for (size_t i = 0; i < r.styles.size(); ++i) {
      styles.push_back(sized(r.resize, r.styles[i], sp.style_sizes[i].first, sp.style_sizes[i].second));
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto compute = [&] { return s.style_targets(r.loss, styles, r.style_blend); };
    std::shared_ptr<const StyleTargets> targets;
    bool computed = true;
    if (cache && !r.style_key.empty()) {
      targets = cache->get(cache_key(r, sp.style_longest), compute, &computed);
    } else {
      targets = std::make_shared<const StyleTargets>(compute());
    }
    sr.style_targets_cached = !computed;
    sr.seconds_style_targets = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const StylizeParams params = scale_params(s, r, sp, k, previous, styles);
    if (sp.tile > 0) {
      sr.output = tiled_scale(s, r, sp, k, k == n - 1, content, params, *targets, cb, sr.tiles);
    } else {
      sr.output = s.stylize(content, *targets, params, scale_callbacks(s, cb, k, k == n - 1, content, r.original_colors));
    }
    if (k == 0) res.initial = sr.output.transfer.initial;
    res.final = sr.output.transfer.final;
    res.written = sr.output.written;
    res.iterations += sr.output.transfer.iterations;
    res.evaluations += sr.output.transfer.evaluations;
    res.interrupted = sr.output.transfer.interrupted;
    res.seconds_style_targets += sr.seconds_style_targets;
    res.seconds_content_targets += sr.output.seconds_content_targets;
    res.seconds_optimise += sr.output.seconds_optimise;
    previous = sr.output.rgb;
    if (cb.on_scale_end) cb.on_scale_end(k, sr);
    res.scales.push_back(std::move(sr));
    if (res.interrupted) break;
  }
  // An interrupted coarse scale is smaller than asked: enlarged, the output has the promised size.
  res.rgb = sized(r.resize, previous, res.plan.width, res.plan.height);
  return res;
}

}  // namespace stylize
