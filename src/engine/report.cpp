#include "stylize/report.hpp"

namespace stylize {

nlohmann::json loss_json(const LossValues& v, const LossWeights& w) {
  nlohmann::json content = nlohmann::json::object(), style = nlohmann::json::object();
  for (size_t i = 0; i < v.content.size(); ++i) content[w.content_layers[i]] = v.content[i];
  for (size_t i = 0; i < v.style.size(); ++i) style[w.style_layers[i]] = v.style[i];
  return {{"total", v.total}, {"content", v.content_sum()}, {"style", v.style_sum()}, {"tv", v.tv},
          {"content_layers", content}, {"style_layers", style}};
}

nlohmann::json losses_json(const LossValues& initial, const LossValues& final, const LossValues& written,
                           const LossWeights& w) {
  return {{"initial", loss_json(initial, w)}, {"final", loss_json(final, w)}, {"written", loss_json(written, w)}};
}

nlohmann::json settings_json(const StylizeRequest& r, const Stylizer& s) {
  const LossWeights& loss = r.loss;
  const OptimizerOptions o = optimizer_options(r, s.preprocessing(), r.iterations.back());
  return {{"size", r.size},
          {"style_scale", r.style_scale},
          // In effect: equal weights when none were given, as style_layer_weights below.
          {"style_blend", r.style_blend.empty() ? std::vector<double>(r.styles.size(), 1.0) : r.style_blend},
          {"preprocessing", to_string(s.preprocessing())},
          {"content_layers", loss.content_layers},
          {"style_layers", loss.style_layers},
          {"style_layer_weights", loss.style_layer_weights.empty() ? std::vector<double>(loss.style_layers.size(), 1.0)
                                                                   : loss.style_layer_weights},
          {"content_weight", loss.content_weight},
          {"style_weight", loss.style_weight},
          {"tv_weight", loss.tv_weight},
          {"optimizer", to_string(r.optimizer)},
          {"learning_rate", o.learning_rate},
          {"lbfgs_history", r.lbfgs_history},
          {"line_search", to_string(r.line_search)},
          {"keep_in_range", keeps_in_range(o)},
          {"iterations", r.iterations},
          {"scales", r.scales},
          {"init", to_string(r.init)},
          {"seed", r.seed},
          {"original_colors", r.original_colors},
          {"tile", r.tile},
          {"tile_overlap", r.tile_overlap},
          {"tile_iterations", r.tile_iterations},
          {"max_memory_bytes", r.max_memory},
          {"device", s.device().str()},
          {"precision", to_string(s.precision())}};
}

nlohmann::json scales_json(const StylizeResult& result, const LossWeights& w) {
  nlohmann::json out = nlohmann::json::array();
  for (const ScaleResult& sr : result.scales) {
    const TransferResult& t = sr.output.transfer;
    out.push_back({{"size", sr.plan.size}, {"width", sr.plan.width}, {"height", sr.plan.height},
                   {"iterations", t.iterations}, {"style_targets", sr.style_targets_cached ? "cached" : "computed"},
                   {"seconds_style_targets", sr.seconds_style_targets}, {"seconds_optimise", sr.output.seconds_optimise},
                   {"profile_seconds", {{"forward_and_loss", t.seconds_forward}, {"backward", t.seconds_backward},
                                        {"optimizer_and_callbacks", t.seconds_loop - t.seconds_forward - t.seconds_backward},
                                        {"final_evaluation", sr.output.seconds_optimise - t.seconds_loop}}},
                   {"seconds_per_iteration", t.evaluations > 0 ? t.seconds_loop / t.evaluations : 0.0},
                   {"losses", losses_json(t.initial, t.final, sr.output.written, w)},
                   {"estimated_peak_mib", static_cast<double>(sr.plan.estimated_peak_bytes) / (1 << 20)}});
    if (sr.plan.tile > 0) {
      nlohmann::json rects = nlohmann::json::array();
      for (const Tile& tile : sr.tiles) {
        rects.push_back({tile.interior.x, tile.interior.y, tile.interior.width, tile.interior.height});
      }
      out.back()["tiling"] = {{"tile", sr.plan.tile}, {"overlap", sr.plan.tile_overlap}, {"sweeps", sr.plan.sweeps},
                              {"tile_iterations", sr.plan.tile_iterations}, {"reason", sr.plan.tiling_reason},
                              {"network_pixels_ratio", sr.plan.network_pixels_ratio}, {"last_sweep_tiles", rects}};
    }
  }
  return out;
}

}  // namespace stylize
