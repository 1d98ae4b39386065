// The JSON a run reports (README "Reports"): settings, losses per term and layer, per-scale timings.
// `stylize --report`, `stylize batch --report` and serve's job status share these shapes.
#pragma once

#include <nlohmann/json.hpp>

#include "stylize/recipe.hpp"

namespace stylize {

// {"total", "content", "style", "tv", "content_layers": {layer: value}, "style_layers": {...}}
nlohmann::json loss_json(const LossValues& v, const LossWeights& w);

// {"initial", "final", "written"}: the start, the optimiser's image, that image in 8 bits.
nlohmann::json losses_json(const LossValues& initial, const LossValues& final, const LossValues& written,
                           const LossWeights& w);

// Every request field as it took effect (learning_rate resolved, style_layer_weights filled in,
// keep_in_range as the optimiser ran), plus the stylizer's preprocessing, device and precision.
nlohmann::json settings_json(const StylizeRequest& r, const Stylizer& s);

// One entry per scale run: size, width, height, iterations, timings, a profile, the losses and the
// memory estimate; a tiled scale adds "tiling": tile, sweeps, tile_iterations, reason and the last
// sweep's tile interiors as [x, y, width, height] (they partition the image).
nlohmann::json scales_json(const StylizeResult& result, const LossWeights& w);

}  // namespace stylize
