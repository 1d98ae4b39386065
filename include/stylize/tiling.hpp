// Print size: optimising an image larger than memory tile by tile. The whole image stays on the host
// (RGB 0-255 float); each tile, with a margin of context on every side, goes through the network.
// A visit optimises the WHOLE image's objective restricted to its crop (losses.hpp LossRegion): the
// content and TV terms of its pixels normalised by the whole image's size, and one Gram matrix per
// style layer for the whole image, the other tiles' part of it held as it is. So every tile is pulled
// toward the same global style statistics, and the sum the tiles optimise is the untiled loss. Each
// visit answers for its share of the style deficit (a mean field, LossRegion::gram_share), so that
// the first tiles of a sweep do not paint the whole image's deficit into themselves. The
// interior moves freely, the margin's inner (overlap − 2 × receptive radius) px with a weight
// falling 1 -> 0, the rest of the margin not at all (it is context whose terms are counted), and
// the grid moves by a seeded random offset every sweep so that no border stays in one place
// (README "Print size").
#pragma once

#include <algorithm>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "stylize/stylizer.hpp"

namespace stylize {

struct TileRect {
  int x = 0, y = 0, width = 0, height = 0;  // pixels of the scale's image
};

struct Tile {
  TileRect interior;  // the part this tile owns (weight 1); the interiors of a grid partition the image
  TileRect crop;      // the interior plus `overlap` px of context on each side, clipped to the image
};

// The grid of sweep `sweep`: interiors of about `tile` px (between tile/2 and 1.5·tile, so that the
// random offset leaves no sliver) starting at an offset drawn from (seed, sweep); raster order.
// Sweep 0 of any seed and a tile ≥ the image give one tile covering everything. Cuts and crop
// origins fall on multiples of `align` (a network's pooling stride: then a crop's features are the
// whole image's, not a shifted pooling of it), crops reaching at least `overlap` px past the interior.
std::vector<Tile> tile_grid(int width, int height, int tile, int overlap, uint64_t seed, int sweep, int align = 1);

// How far (input px) a feature at VGG19 layer `last_index` sees: its receptive field's radius
// (relu3_2: 17, relu5_1: 85). A tile's context narrower than this leaves the features along its
// border seeing the crop's edge instead of the image: seams, and sums that are not the image's.
int receptive_radius(int last_index);

// The context a tile gets: the request's overlap, at least the deepest layer's receptive radius.
inline int tile_context(int overlap, int last_index) { return std::max(overlap, receptive_radius(last_index)); }

// Pixels sweep 0's grid (tile_grid(width, height, tile, overlap, any seed, 0, align)) runs through
// the network, its crops' areas, over the image's: what the context costs a tiled run per sweep
// (1 = one tile of the whole image; later sweeps' offsets cut about as many tiles). Cheap: it builds
// no grid. Needs width, height, tile > 0.
double network_pixels_ratio(int width, int height, int tile, int overlap, int align = 1);

// Peak host memory of a tiled CPU run: one tile's run at its largest crop (1.5·tile + 2·overlap per
// side) plus the whole image's buffers (image, content, start: 3 float RGB copies).
uint64_t estimate_tiled_peak_bytes(int width, int height, int tile, int overlap, const OptimizerOptions& optimizer,
                                   Precision precision);

// The largest tile (a multiple of 32, at least `min_tile`) whose tiled run fits in `budget` bytes;
// 0 when none does.
int largest_fitting_tile(int width, int height, int overlap, int min_tile, const OptimizerOptions& optimizer,
                         Precision precision, uint64_t budget);

struct TileProgress {
  int sweep = 0, sweeps = 0;  // 1-based
  int tile = 0, tiles = 0;    // 1-based, within the sweep
  Tile rect;
  double seconds = 0;         // since the tiled scale began
  double eta_seconds = -1;    // -1 until one tile has run
};

struct TiledCallbacks {
  std::function<void(const TileProgress&)> on_tile;  // before each tile
  TransferCallbacks transfer;                        // each tile's optimisation (should_stop included)
  std::function<void(int sweep, const at::Tensor& rgb)> on_sweep;  // after each sweep: the whole image
};

struct TiledResult {
  at::Tensor rgb;                // [1, 3, H, W] RGB 0-255 on the CPU (colours not transferred)
  std::vector<Tile> last_grid;   // the tiles of the last sweep run
  int sweeps = 0;                // completed (an interrupted one counts when some tile ran)
  int iterations = 0, evaluations = 0;
  bool interrupted = false;
  LossValues initial;            // the whole image's loss at the start (one tile in every sweep: that run's own)
  LossValues final;              // the whole image's loss at the end, from a last pass over the tiles
                                 // (interrupted: the sums kept up visit by visit)
  double seconds = 0;
};

// Optimises `start` (RGB 0-255 at the content's size) toward `content_rgb` and the global `style`
// targets, each tile with tile_context(overlap) px of context: `sweeps` sweeps, each giving every
// tile `params.optimizer.iterations` iterations from a fresh optimiser. Besides the visits, two passes of forward passes over the tiles (start and end)
// and two forward passes per visit keep the whole image's sums. params.init/init_image and original_colors are ignored (the start is `start`;
// colours are the caller's). One tile covering everything with one sweep is exactly
// Stylizer::stylize from `start`.
TiledResult optimize_tiled(const Stylizer& stylizer, const at::Tensor& content_rgb, const at::Tensor& start,
                           const StyleTargets& style, const StylizeParams& params, int tile, int overlap, int sweeps,
                           uint64_t seed, const TiledCallbacks& callbacks = {});

// The whole image's loss terms of `rgb` (RGB 0-255, content's size), tile by tile over `grid` (a
// forward pass per tile; exact where each crop holds the receptive radius as context, as
// optimize_tiled's grids do): how a tiled scale scores an image it cannot evaluate whole.
LossValues tiled_loss(const Stylizer& stylizer, const at::Tensor& content_rgb, const at::Tensor& rgb,
                      const StyleTargets& style, const LossWeights& loss, const std::vector<Tile>& grid);

}  // namespace stylize
