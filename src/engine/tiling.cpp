#include "stylize/tiling.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>
#include <vector>

namespace stylize {
namespace {

// Cut positions along one side: 0, offset, offset + tile, ..., length, with every piece between
// tile/2 and 1.5·tile (a piece shorter than tile/2 is merged into its neighbour; where both ends were
// short and merged into one piece of up to 2·tile, it is cut again at its middle).
std::vector<int> cuts(int length, int tile, int offset, int align) {
  std::vector<int> b{0};
  for (int p = offset; p < length; p += tile) {
    const int at = p / align * align;
    if (at > b.back()) b.push_back(at);
  }
  b.push_back(length);
  for (size_t i = 1; i + 1 < b.size();) {
    if (b[i] - b[i - 1] < tile / 2 || b[i + 1] - b[i] < tile / 2) {
      b.erase(b.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
  // Pieces past 1.5·tile would break the memory estimate (estimate_tiled_peak_bytes' largest crop).
  for (size_t i = 1; i < b.size(); ++i) {
    if (b[i] - b[i - 1] > tile * 3 / 2) {
      const int mid = (b[i - 1] + (b[i] - b[i - 1]) / 2) / align * align;
      if (mid > b[i - 1] && mid < b[i]) b.insert(b.begin() + static_cast<long>(i), mid);
    }
  }
  return b;
}

at::Tensor region(const at::Tensor& image, const TileRect& r) {
  return image.narrow(2, r.y, r.height).narrow(3, r.x, r.width);
}

// Along one side of a crop: 1 over the interior [start, start + inner), falling linearly to 0 over
// `reach` px on either side, 0 beyond.
at::Tensor ramp(int length, int start, int inner, int reach) {
  at::Tensor w = at::zeros({length});
  auto a = w.accessor<float, 1>();
  for (int i = 0; i < length; ++i) {
    const int d = i < start ? start - i : i >= start + inner ? i - (start + inner) + 1 : 0;
    a[i] = d == 0 ? 1.0f : d <= reach ? 1.0f - static_cast<float>(d) / static_cast<float>(reach + 1) : 0.0f;
  }
  return w;
}

// What a visit may move, [1, 1, crop h, crop w]: the interior, and `reach` px into the margin with a
// weight falling from 1 to 0, so that a border's pixels are optimised from both sides. With the
// whole image's objective restricted to the crop and every term the moved pixels reach counted
// (reach + 2 × the receptive radius <= the overlap), each visit would be an exact block-coordinate
// step that cannot raise the whole image's loss; the mean field on the Gram matrices (optimize_tiled)
// trades that for evenly painted tiles. (Measured on synthetic images, 24 px tiles, two sweeps:
// a ramp reaching the crop's edge moved pixels whose terms no visit counts, and the whole loss rose
// above the start, 27228 -> 29827; with the interior alone it fell to 11046, below an untiled run's
// 11434. On real weights at 512 px, 192 px tiles, overlap 48: the interior alone ended 1.035x the
// untiled loss with a border statistic of 1.086; moving the margin's inner 14 px too, 1.009x and
// 0.934, the untiled image scoring 0.932 on the same lines: BENCHMARKS.md "Print size".)
at::Tensor update_weight(const Tile& t, int reach) {
  const at::Tensor wx = ramp(t.crop.width, t.interior.x - t.crop.x, t.interior.width, reach);
  const at::Tensor wy = ramp(t.crop.height, t.interior.y - t.crop.y, t.interior.height, reach);
  return at::outer(wy, wx).reshape({1, 1, t.crop.height, t.crop.width});
}

// The crop of the interior [lo, hi) along a side of `length` px: `overlap` px of context either
// side, its start on the pooling grid (`align`), clipped to the image. Returns [begin, end).
std::pair<int, int> crop_span(int lo, int hi, int length, int overlap, int align) {
  return {std::max(0, (lo - overlap) / align * align), std::min(length, hi + overlap)};
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::vector<Tile> tile_grid(int width, int height, int tile, int overlap, uint64_t seed, int sweep, int align) {
  align = std::max(1, align);
  int ox = 0, oy = 0;
  if (sweep > 0 && tile < std::max(width, height)) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(sweep));
    ox = static_cast<int>(rng() % static_cast<uint64_t>(tile));
    oy = static_cast<int>(rng() % static_cast<uint64_t>(tile));
  }
  const std::vector<int> xs = cuts(width, tile, ox, align), ys = cuts(height, tile, oy, align);
  std::vector<Tile> grid;
  for (size_t j = 0; j + 1 < ys.size(); ++j) {
    for (size_t i = 0; i + 1 < xs.size(); ++i) {
      Tile t;
      t.interior = {xs[i], ys[j], xs[i + 1] - xs[i], ys[j + 1] - ys[j]};
      const auto [x0, x1] = crop_span(xs[i], xs[i + 1], width, overlap, align);
      const auto [y0, y1] = crop_span(ys[j], ys[j + 1], height, overlap, align);
      t.crop = {x0, y0, x1 - x0, y1 - y0};
      grid.push_back(t);
    }
  }
  return grid;
}

double network_pixels_ratio(int width, int height, int tile, int overlap, int align) {
  align = std::max(1, align);
  // A crop's width depends on its column alone and its height on its row alone (tile_grid), so the
  // crops' areas sum to (sum of widths) × (sum of heights): no grid of tiles is built.
  auto spans = [&](int length) {
    const std::vector<int> b = cuts(length, tile, 0, align);
    double sum = 0;
    for (size_t i = 0; i + 1 < b.size(); ++i) {
      const auto [begin, end] = crop_span(b[i], b[i + 1], length, overlap, align);
      sum += end - begin;
    }
    return sum;
  };
  return spans(width) * spans(height) / (static_cast<double>(width) * height);
}

uint64_t estimate_tiled_peak_bytes(int width, int height, int tile, int overlap, const OptimizerOptions& optimizer,
                                   Precision precision) {
  const int crop_w = std::min(width, tile * 3 / 2 + 2 * overlap), crop_h = std::min(height, tile * 3 / 2 + 2 * overlap);
  const uint64_t whole = 3ull * 3ull * 4ull * static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  return estimate_cpu_peak_bytes(crop_w, crop_h, optimizer, precision) + whole;
}

int largest_fitting_tile(int width, int height, int overlap, int min_tile, const OptimizerOptions& optimizer,
                         Precision precision, uint64_t budget) {
  for (int t = (std::max(width, height) / 32) * 32; t >= std::max(32, min_tile); t -= 32) {
    if (estimate_tiled_peak_bytes(width, height, t, overlap, optimizer, precision) <= budget) return t;
  }
  return 0;
}

int receptive_radius(int last_index) {
  int radius = 0, jump = 1;
  for (const Vgg19Layer& l : vgg19_layers()) {
    if (l.index > last_index) break;
    if (l.kind == Vgg19Layer::Kind::conv || l.kind == Vgg19Layer::Kind::pool) radius += jump;
    if (l.kind == Vgg19Layer::Kind::pool) jump *= 2;
  }
  return radius;
}

namespace {

LossRegion region_in_crop(const TileRect& r, const Tile& t, int width, int height) {
  LossRegion g;
  g.x = r.x - t.crop.x;
  g.y = r.y - t.crop.y;
  g.width = r.width;
  g.height = r.height;
  g.whole_width = width;
  g.whole_height = height;
  return g;
}

// What a visit counts: the crop less `band` px at each side that borders more image (the features
// there see the crop's edge instead of the image) but never less than the interior.
LossRegion visit_region(const Tile& t, int band, int width, int height) {
  const int left = t.crop.x > 0 ? std::min(band, t.interior.x - t.crop.x) : 0;
  const int top = t.crop.y > 0 ? std::min(band, t.interior.y - t.crop.y) : 0;
  const int crop_right = t.crop.x + t.crop.width, crop_bottom = t.crop.y + t.crop.height;
  const int right = crop_right < width ? std::min(band, crop_right - t.interior.x - t.interior.width) : 0;
  const int bottom = crop_bottom < height ? std::min(band, crop_bottom - t.interior.y - t.interior.height) : 0;
  const TileRect r{t.crop.x + left, t.crop.y + top, t.crop.width - left - right, t.crop.height - top - bottom};
  return region_in_crop(r, t, width, height);
}

// The whole image's sums, tile by tile (each interior counted once, with its margin as context):
// what the tiled objective starts from, and the whole image's loss at the end.
LossSums whole_sums(const Stylizer& stylizer, const at::Tensor& content, const at::Tensor& image,
                    const StyleTargets& style, const LossWeights& loss, const std::vector<Tile>& grid) {
  const int width = static_cast<int>(image.size(3)), height = static_cast<int>(image.size(2));
  LossSums sum;
  for (const Tile& t : grid) {
    sum += stylizer.region_sums(region(content, t.crop).contiguous(), region(image, t.crop).contiguous(), style, loss,
                                region_in_crop(t.interior, t, width, height));
  }
  return sum;
}

// A visit's parameters: from the image as it is now under tile `t`'s crop; no colour transfer, no
// scoring of the written crop (a forward pass per visit that nothing reads: the tiles' sums use `final`).
StylizeParams visit_params(const StylizeParams& params, const at::Tensor& image, const Tile& t) {
  StylizeParams p = params;
  p.init = InitKind::image;
  p.init_image = region(image, t.crop).contiguous();
  p.original_colors = false;
  p.score_written = false;
  return p;
}

// One visit of tile `t` for the whole image's objective (content and image: the whole, on the CPU):
// the crop optimised and written back into `image`, and `whole` (the image's sums) kept up with it.
TransferResult visit_region_of(const Stylizer& stylizer, const at::Tensor& content, at::Tensor& image, const Tile& t,
                               const StyleTargets& style, StylizeParams p, int band, int reach, LossSums& whole,
                               const TransferCallbacks& callbacks) {
  const int width = static_cast<int>(image.size(3)), height = static_cast<int>(image.size(2));
  // The margin is context, as the image has it now; its inner `reach` px move a little.
  p.update_mask = update_weight(t, reach);
  // Mean field (LossRegion::gram_share): each visit answers for its share of the style deficit, not
  // the whole image's. Held to the global Gram matrices alone, 512 px in 192 px tiles (real weights,
  // 200 iterations) ended with texture 0.30-1.85x the untiled run's region by region, painted heavily
  // where the sweep began and pale where it ended; with it 0.84-1.35x, and the whole image's loss
  // 1.005x the untiled run's where it had been 1.011x (BENCHMARKS.md "Print size"). Visiting the
  // tiles in a shuffled order instead made it worse (0.27-1.29).
  LossRegion counted = visit_region(t, band, width, height);
  counted.gram_share = static_cast<double>(counted.width) * counted.height / (static_cast<double>(width) * height);
  Stylizer::RegionVisit v =
      stylizer.stylize_region(region(content, t.crop).contiguous(), style, p, counted, whole, callbacks);
  region(image, t.crop).copy_(v.out.rgb);
  whole -= v.before;
  whole += v.after;
  return v.out.transfer;
}

}  // namespace

LossValues tiled_loss(const Stylizer& stylizer, const at::Tensor& content_rgb, const at::Tensor& rgb,
                      const StyleTargets& style, const LossWeights& loss, const std::vector<Tile>& grid) {
  return loss_values(loss, style, whole_sums(stylizer, content_rgb.to(at::kCPU), rgb.to(at::kCPU), style, loss, grid));
}

TiledResult optimize_tiled(const Stylizer& stylizer, const at::Tensor& content_rgb, const at::Tensor& start,
                           const StyleTargets& style, const StylizeParams& params, int tile, int requested_overlap,
                           int sweeps, uint64_t seed, const TiledCallbacks& cb) {
  const auto t0 = std::chrono::steady_clock::now();
  const int width = static_cast<int>(content_rgb.size(3)), height = static_cast<int>(content_rgb.size(2));
  TiledResult res;
  at::Tensor image = start.to(at::kCPU).clone();
  const at::Tensor content = content_rgb.to(at::kCPU);
  // Crops start on the deepest layer's pooling grid, so a tile's features are the whole image's.
  // The request's deepest layer, not the network's: a server loads every layer its file holds.
  const int deepest = deepest_layer(params.loss);
  const int align = vgg19_min_side(deepest);
  // Less context than the receptive radius: features along a border would see the crop's edge
  // (measured, real weights, overlap 0: seams, and a reported loss 2.2x the image's own).
  const int overlap = tile_context(requested_overlap, deepest);
  // Every sweep's tile count up front (a later sweep's offset can cut more tiles than sweep 0 has);
  // the grids themselves are made again when their sweep comes (cheap; up to 500000 sweeps).
  auto grid_of = [&](int sweep) { return tile_grid(width, height, tile, overlap, seed, sweep, align); };
  const std::vector<Tile> first = grid_of(0);
  size_t visits = 0;
  bool one_tile_each = true;
  for (int s = 0; s < sweeps; ++s) {
    const size_t n = s == 0 ? first.size() : grid_of(s).size();
    visits += n;
    one_tile_each = one_tile_each && n == 1;
  }
  // One tile covering everything in every sweep is the untiled run itself; otherwise every visit
  // optimises the whole image's objective restricted to its crop (LossRegion), from the whole
  // image's sums — a sweep of one tile included (its crop the whole image), so that no visit ever
  // optimises a crop as an image of its own.
  const bool untiled = first.size() == 1 && one_tile_each;
  LossSums whole;
  if (!untiled) {
    whole = whole_sums(stylizer, content, image, style, params.loss, first);
    res.initial = loss_values(params.loss, style, whole);
  }
  const int radius = receptive_radius(deepest);
  const int band = std::min(radius, overlap / 2);
  const int reach = std::max(0, overlap - 2 * radius);
  size_t tiles_run = 0;
  for (int s = 0; s < sweeps && !res.interrupted; ++s) {
    const std::vector<Tile> grid = s == 0 ? first : grid_of(s);
    for (size_t i = 0; i < grid.size(); ++i) {
      const Tile& t = grid[i];
      if (cb.on_tile) {
        const double elapsed = seconds_since(t0);
        const double left = static_cast<double>(visits - tiles_run);
        cb.on_tile({s + 1, sweeps, static_cast<int>(i + 1), static_cast<int>(grid.size()), t, elapsed,
                    tiles_run > 0 ? elapsed / static_cast<double>(tiles_run) * left : -1.0});
      }
      StylizeParams p = visit_params(params, image, t);
      TransferResult transfer;
      if (untiled) {
        const StylizeOutput out = stylizer.stylize(region(content, t.crop).contiguous(), style, p, cb.transfer);
        region(image, t.crop).copy_(out.rgb);
        transfer = out.transfer;
        res.final = out.transfer.final;
        if (s == 0) res.initial = out.transfer.initial;
      } else {
        transfer = visit_region_of(stylizer, content, image, t, style, p, band, reach, whole, cb.transfer);
      }
      res.iterations += transfer.iterations;
      res.evaluations += transfer.evaluations;
      ++tiles_run;
      if (transfer.interrupted) {
        res.interrupted = true;
        break;
      }
    }
    res.last_grid = grid;
    res.sweeps = s + 1;
    if (cb.on_sweep && !res.interrupted) cb.on_sweep(s + 1, image);
  }
  if (!untiled) {
    // The sums kept up visit by visit miss what a visit's margin did to features outside its region;
    // a last pass makes the reported loss the whole image's own (one forward pass per tile). An
    // interrupted run skips it: the person is waiting for the image.
    if (!res.interrupted && !res.last_grid.empty()) {
      whole = whole_sums(stylizer, content, image, style, params.loss, res.last_grid);
    }
    res.final = loss_values(params.loss, style, whole);
  }
  res.rgb = image;
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace stylize
