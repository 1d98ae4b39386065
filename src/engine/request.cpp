#include "stylize/request.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

namespace stylize {
namespace {

std::string shown(const std::string& text) { return in_quotes(text.size() > 40 ? text.substr(0, 40) + "..." : text); }

[[noreturn]] void bad_syntax(const std::string& name, const std::string& what, const std::string& text) {
  throw FieldError(name, FieldError::syntax, field(name) + " must be " + what + ", got " + shown(text));
}

[[noreturn]] void out_of_range(const std::string& name, const std::string& rule, const std::string& got) {
  throw FieldError(name, FieldError::range, field(name) + " must be " + rule + ", got " + got);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    const auto b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    parts.push_back(b == std::string::npos ? "" : part.substr(b, e - b + 1));
  }
  if (!text.empty() && text.back() == ',') parts.push_back("");
  return parts;
}

double to_number(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double v = text.empty() ? 0 : std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) bad_syntax(name, "a number", text);
  return v;
}

int64_t to_integer(const std::string& name, const std::string& text) {
  const double v = to_number(name, text);
  if (v != std::floor(v) || std::fabs(v) > 9e15) bad_syntax(name, "a whole number", text);
  return static_cast<int64_t>(v);
}

int to_int(const std::string& name, const std::string& text) {
  const int64_t v = to_integer(name, text);
  // Far outside every int field's range (all within 0..16384 or 1e6): refused here, where the value
  // as typed is still known, rather than clamped and then reported as the clamped number.
  if (v < -2'000'000'000 || v > 2'000'000'000) {
    std::string rule = "within an int";
    for (const RequestField& f : request_fields()) {  // built by now: a field is parsed only through it
      if (f.name == name && f.range.numeric) rule = (std::isfinite(f.range.max) ? "in " : "") + to_string(f.range);
    }
    out_of_range(name, rule, text);
  }
  return static_cast<int>(v);
}

template <class T, class F>
std::vector<T> to_list(const std::string& name, const std::string& text, F&& one) {
  std::vector<T> out;
  for (const auto& part : split(text)) {
    if (part.empty()) bad_syntax(name, "a comma-separated list without empty entries", text);
    out.push_back(one(name, part));
  }
  if (out.empty()) bad_syntax(name, "a non-empty comma-separated list", text);
  return out;
}

bool to_bool(const std::string& name, const std::string& text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  bad_syntax(name, "true or false", text);
}

template <class E, size_t N>
E to_enum(const std::string& name, const std::string& text, const std::pair<const char*, E> (&words)[N]) {
  std::string list;
  for (const auto& [word, value] : words) {
    if (text == word) return value;
    list += (list.empty() ? "" : ", ") + std::string(word);
  }
  bad_syntax(name, "one of " + list, text);
}

constexpr std::pair<const char*, OptimizerKind> kOptimizers[] = {{"lbfgs", OptimizerKind::lbfgs}, {"adam", OptimizerKind::adam}};
constexpr std::pair<const char*, LineSearch> kLineSearches[] = {
    {"backtracking", LineSearch::backtracking}, {"none", LineSearch::none}, {"strong-wolfe", LineSearch::strong_wolfe}};
constexpr std::pair<const char*, InitFrom> kInits[] = {
    {"content", InitFrom::content}, {"random", InitFrom::random}, {"style", InitFrom::style}, {"image", InitFrom::image}};
constexpr std::pair<const char*, InitFrom> kInitWords[] = {
    {"content", InitFrom::content}, {"random", InitFrom::random}, {"style", InitFrom::style}};

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

template <class T, class F>
std::string join(const std::vector<T>& values, F&& one) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ",") + one(v);
  return out;
}

std::string layers_text(const std::vector<std::string>& v) { return join(v, [](const std::string& s) { return s; }); }
std::string numbers_text(const std::vector<double>& v) { return join(v, number_text); }

// One entry per field: how it is described, read and shown; validate() checks values() against
// info.range.
struct FieldEntry {
  RequestField info;
  std::function<void(StylizeRequest&, const std::string& name, const std::string& text)> set;
  std::function<std::string(const StylizeRequest&)> get;
  std::function<std::vector<double>(const StylizeRequest&)> values;  // numeric fields: what range checks
};

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr FieldRange kWeight{true, 0, kInf, false};

const std::vector<FieldEntry>& entries() {
  using R = StylizeRequest;
  using S = const std::string&;
  static const std::vector<FieldEntry> table = {
      {{"size", "PX", "Longest side of the output in pixels", false, false, {true, 16, 16384, false}},
       [](R& r, S n, S t) { r.size = to_int(n, t); }, [](const R& r) { return std::to_string(r.size); },
       [](const R& r) -> std::vector<double> { return {double(r.size)}; }},
      {{"style_scale", "X", "Style images' longest side = style_scale x size", false, false, {true, 0.05, 8, false}},
       [](R& r, S n, S t) { r.style_scale = to_number(n, t); }, [](const R& r) { return number_text(r.style_scale); },
       [](const R& r) -> std::vector<double> { return {r.style_scale}; }},
      {{"style_blend", "W[,W...]", "Weight per style image, normalised to sum 1 (default: equal)", false, false, kWeight},
       [](R& r, S n, S t) { r.style_blend = to_list<double>(n, t, to_number); },
       [](const R& r) { return numbers_text(r.style_blend); },
       [](const R& r) -> std::vector<double> { return r.style_blend; }},
      {{"scales", "N",
        "Coarse-to-fine: solve at size/2^(N-1), upsample the result as the start of the next scale, ..., finish at size",
        false, false, {true, 1, 6, false}},
       [](R& r, S n, S t) { r.scales = to_int(n, t); }, [](const R& r) { return std::to_string(r.scales); },
       [](const R& r) -> std::vector<double> { return {double(r.scales)}; }},
      {{"iterations", "N[,N...]", "Optimiser iterations: one value for every scale, or one per scale, coarsest first; a tiled scale gives every "
        "tile about N (see tile_iterations)",
        false, false, {true, 0, 1e6, false}},
       [](R& r, S n, S t) { r.iterations = to_list<int>(n, t, to_int); },
       [](const R& r) { return join(r.iterations, [](int i) { return std::to_string(i); }); },
       [](const R& r) -> std::vector<double> { return std::vector<double>(r.iterations.begin(), r.iterations.end()); }},
      {{"content_layers", "LAYER[,LAYER...]", "Content layers", false, false, {}},
       [](R& r, S n, S t) { r.loss.content_layers = to_list<std::string>(n, t, [](S, S p) { return p; }); },
       [](const R& r) { return layers_text(r.loss.content_layers); }, {}},
      {{"style_layers", "LAYER[,LAYER...]", "Style layers", false, false, {}},
       [](R& r, S n, S t) { r.loss.style_layers = to_list<std::string>(n, t, [](S, S p) { return p; }); },
       [](const R& r) { return layers_text(r.loss.style_layers); }, {}},
      {{"style_layer_weights", "W[,W...]", "Weight per style layer (default: 1 each)", false, false, kWeight},
       [](R& r, S n, S t) { r.loss.style_layer_weights = to_list<double>(n, t, to_number); },
       [](const R& r) { return numbers_text(r.loss.style_layer_weights); },
       [](const R& r) -> std::vector<double> { return r.loss.style_layer_weights; }},
      {{"content_weight", "ALPHA", "Content weight alpha", true, false, kWeight},
       [](R& r, S n, S t) { r.loss.content_weight = to_number(n, t); },
       [](const R& r) { return number_text(r.loss.content_weight); },
       [](const R& r) -> std::vector<double> { return {r.loss.content_weight}; }},
      {{"style_weight", "BETA", "Style weight beta", true, false, kWeight},
       [](R& r, S n, S t) { r.loss.style_weight = to_number(n, t); },
       [](const R& r) { return number_text(r.loss.style_weight); },
       [](const R& r) -> std::vector<double> { return {r.loss.style_weight}; }},
      {{"tv_weight", "T", "Total-variation weight (smoothness)", true, false, kWeight},
       [](R& r, S n, S t) { r.loss.tv_weight = to_number(n, t); }, [](const R& r) { return number_text(r.loss.tv_weight); },
       [](const R& r) -> std::vector<double> { return {r.loss.tv_weight}; }},
      {{"optimizer", "lbfgs|adam", "Optimiser", false, false, {}},
       [](R& r, S n, S t) { r.optimizer = to_enum(n, t, kOptimizers); }, [](const R& r) { return std::string(to_string(r.optimizer)); }, {}},
      {{"learning_rate", "LR", "Step size (default: 1 for lbfgs; 10 grey levels, as neural-style, for adam)", false, false, {true, 0, kInf, true}},
       [](R& r, S n, S t) { r.learning_rate = to_number(n, t); },
       [](const R& r) { return r.learning_rate ? number_text(*r.learning_rate) : std::string(); },
       [](const R& r) -> std::vector<double> { return r.learning_rate ? std::vector<double>{*r.learning_rate} : std::vector<double>{}; }},
      {{"lbfgs_history", "N", "L-BFGS history size (memory: 2 images per entry)", false, false, {true, 1, 1000, false}},
       [](R& r, S n, S t) { r.lbfgs_history = to_int(n, t); }, [](const R& r) { return std::to_string(r.lbfgs_history); },
       [](const R& r) -> std::vector<double> { return {double(r.lbfgs_history)}; }},
      {{"line_search", "backtracking|none|strong-wolfe",
        "L-BFGS line search: backtracking (a step that raises the loss is retried shorter; one evaluation per iteration), "
        "none (every step taken: neural-style's), strong-wolfe (torch's; several evaluations per iteration, pixels unbounded)",
        false, false, {}},
       [](R& r, S n, S t) { r.line_search = to_enum(n, t, kLineSearches); },
       [](const R& r) { return std::string(to_string(r.line_search)); }, {}},
      {{"unbounded", "BOOL",
        "Let pixels leave 0..255 while optimising (neural-style's way; the written image, clamped, then scores worse)",
        false, true, {}},
       [](R& r, S n, S t) { r.unbounded = to_bool(n, t); }, [](const R& r) { return std::string(r.unbounded ? "true" : "false"); }, {}},
      {{"init", "content|random|style", "Starting image", false, false, {}},
       // "image" is taken (a front-end that supplies the start image sets it) but not offered: a
       // word that comes without its image is refused by check_images, so the list names the three.
       [](R& r, S n, S t) { r.init = t == "image" ? InitFrom::image : to_enum(n, t, kInitWords); }, [](const R& r) { return std::string(to_string(r.init)); }, {}},
      {{"seed", "N", "Random seed (random init); same seed + same threads = same bytes on CPU", false, false, {}},
       [](R& r, S n, S t) {
         char* end = nullptr;
         errno = 0;
         const unsigned long long v = t.empty() || t[0] == '-' ? 0 : std::strtoull(t.c_str(), &end, 10);
         if (t.empty() || t[0] == '-' || end != t.c_str() + t.size() || errno == ERANGE) {
           bad_syntax(n, "a whole number from 0 to 18446744073709551615", t);  // beyond: strtoull saturates
         }
         r.seed = v;
       },
       [](const R& r) { return std::to_string(r.seed); }, {}},
      {{"tile", "PX",
        "Tile scales larger than this, tile by tile; a scale with no side over 1.5x this runs whole (0 = only when a "
        "whole run would not fit in memory)",
        false, false, {true, 0, 16384, false}},
       [](R& r, S n, S t) { r.tile = to_int(n, t); }, [](const R& r) { return std::to_string(r.tile); },
       [](const R& r) -> std::vector<double> { return {double(r.tile)}; }},
      {{"tile_overlap", "PX", "Context around each tile, px (raised to the deepest layer's receptive radius): the network "
                              "sees it, and its inner part (the overlap less twice that radius) moves too, fading to 0", false, false,
        {true, 0, 4096, false}},
       [](R& r, S n, S t) { r.tile_overlap = to_int(n, t); }, [](const R& r) { return std::to_string(r.tile_overlap); },
       [](const R& r) -> std::vector<double> { return {double(r.tile_overlap)}; }},
      {{"tile_iterations", "N",
        "Most iterations per tile visit; a tiled scale of N iterations sweeps the image ceil(N / this) times, and at "
        "least 4 times while each visit keeps 10 (at least 2: a visit's first L-BFGS step is a probe that moves "
        "nothing)", false, false,
        {true, 2, 1e6, false}},
       [](R& r, S n, S t) { r.tile_iterations = to_int(n, t); },
       [](const R& r) { return std::to_string(r.tile_iterations); },
       [](const R& r) -> std::vector<double> { return {double(r.tile_iterations)}; }},
      {{"original_colors", "BOOL", "Keep the content's colours (transfer luminance only)", false, true, {}},
       [](R& r, S n, S t) { r.original_colors = to_bool(n, t); },
       [](const R& r) { return std::string(r.original_colors ? "true" : "false"); }, {}},
  };
  return table;
}

const FieldEntry& entry(const std::string& name) {
  for (const auto& e : entries()) {
    if (e.info.name == name) return e;
  }
  throw FieldError(name, FieldError::unknown, "unknown setting " + field(name));
}

void check_layers(const std::string& name, const std::vector<std::string>& layers) {
  for (auto it = layers.begin(); it != layers.end(); ++it) {
    try {
      vgg19_layer_index(*it);
    } catch (const UsageError& e) {  // not a layer's name: not of the field's type
      throw FieldError(name, FieldError::syntax, field(name) + ": " + e.what());
    }
    // Named twice, a layer would silently count twice: its weight is what says how much it counts.
    if (std::find(layers.begin(), it, *it) != it) {
      throw FieldError(name, FieldError::range, field(name) + " names " + *it + " twice; name each layer once" +
                                                    (name == "style_layers" ? " (weigh it with " + field("style_layer_weights") + ")" : ""));
    }
  }
}

void check_counts(const StylizeRequest& r) {
  if (r.iterations.size() != 1 && static_cast<int>(r.iterations.size()) != r.scales) {
    throw FieldError("iterations", FieldError::range,
                     field("iterations") + " has " + std::to_string(r.iterations.size()) + " values for " +
                         std::to_string(r.scales) + " scales; give one value or one per scale");
  }
  if (!r.styles.empty()) check_style_blend_count(r, r.styles.size());
  if (!r.style_blend.empty() && std::accumulate(r.style_blend.begin(), r.style_blend.end(), 0.0) <= 0) {
    out_of_range("style_blend", "weights with a sum above 0", numbers_text(r.style_blend));
  }
  if (!r.loss.style_layer_weights.empty() && r.loss.style_layer_weights.size() != r.loss.style_layers.size()) {
    throw FieldError("style_layer_weights", FieldError::range,
                     field("style_layer_weights") + " has " + std::to_string(r.loss.style_layer_weights.size()) +
                         " weights for " + std::to_string(r.loss.style_layers.size()) + " style layers");
  }
}

}  // namespace

std::string to_string(const FieldRange& range) {
  if (!range.numeric) return "";
  if (range.max == kInf) return (range.open_min ? "> " : ">= ") + number_text(range.min);
  return number_text(range.min) + ".." + number_text(range.max);
}

const char* to_string(OptimizerKind k) { return k == OptimizerKind::adam ? "adam" : "lbfgs"; }
const char* to_string(LineSearch s) {
  for (const auto& [word, value] : kLineSearches) {
    if (value == s) return word;
  }
  return "backtracking";
}
const char* to_string(InitFrom i) {
  for (const auto& [word, value] : kInits) {
    if (value == i) return word;
  }
  return "content";
}

StylizeRequest request_defaults(Preprocessing p) {
  StylizeRequest r;
  // caffe: neural-style's weights; torchvision inputs are ~1/58 the size, hence the other scale.
  if (p == Preprocessing::caffe) {
    r.loss.content_weight = 5.0, r.loss.style_weight = 100.0, r.loss.tv_weight = 1e-3;
  } else {
    r.loss.content_weight = 1.0, r.loss.style_weight = 1e6, r.loss.tv_weight = 0.5;
  }
  return r;
}

const std::vector<RequestField>& request_fields() {
  static const std::vector<RequestField> fields = [] {
    std::vector<RequestField> out;
    for (const auto& e : entries()) out.push_back(e.info);
    return out;
  }();
  return fields;
}

void set_field(StylizeRequest& r, const std::string& name, const std::string& text) { entry(name).set(r, name, text); }

std::string field_text(const StylizeRequest& r, const std::string& name) { return entry(name).get(r); }

void validate(const StylizeRequest& r) {
  for (const auto& e : entries()) {
    if (!e.values) continue;
    const FieldRange& range = e.info.range;
    for (double v : e.values(r)) {
      const bool ok = std::isfinite(v) && (range.open_min ? v > range.min : v >= range.min) && v <= range.max;
      if (!ok) out_of_range(e.info.name, (std::isfinite(range.max) ? "in " : "") + to_string(range), number_text(v));
    }
  }
  if (r.iterations.empty()) out_of_range("iterations", "one value or one per scale", "none");
  check_layers("content_layers", r.loss.content_layers);
  check_layers("style_layers", r.loss.style_layers);
  check_counts(r);
  deepest_layer(r.loss);  // at least one layer
  if (r.tile > 0 && r.tile_overlap >= r.tile) {
    throw FieldError("tile_overlap", FieldError::range,
                     field("tile_overlap") + " must be smaller than " + field("tile") + " (" + std::to_string(r.tile) +
                         "), got " + std::to_string(r.tile_overlap) + "; give a smaller " + field("tile_overlap") +
                         " (default " + std::to_string(StylizeRequest{}.tile_overlap) + ") or a larger " + field("tile"));
  }
  const int first = scale_size(r, 0);
  if (r.scales > 1 && first < 32) {
    // The smallest size whose first scale rounds to 32 px: 63 for 2 scales, 126 for 3.
    const int need = static_cast<int>(std::ceil(31.5 * std::pow(2.0, r.scales - 1)));
    throw FieldError("scales", FieldError::range,
                     field("scales") + " " + std::to_string(r.scales) + " makes the first scale " + std::to_string(first) +
                         " px (at least 32 needed); use fewer scales or a " + field("size") + " of at least " +
                         std::to_string(need));
  }
}

void check_given_fields_apply(const StylizeRequest& r, const std::vector<std::string>& given) {
  if (r.optimizer != OptimizerKind::adam) return;  // adam has no history and takes every step
  for (const char* name : {"line_search", "lbfgs_history"}) {
    if (std::find(given.begin(), given.end(), name) != given.end()) {
      throw FieldError(name, FieldError::range,
                       field(name) + " applies to " + field("optimizer") + " lbfgs only, not adam; drop " + field(name) +
                           " or use " + field("optimizer") + " lbfgs");
    }
  }
}

int scale_size(const StylizeRequest& r, int k) {
  return static_cast<int>(std::lround(r.size / std::pow(2.0, r.scales - 1 - k)));
}

std::vector<double> blend_shares(const std::vector<double>& style_blend, size_t n_styles) {
  if (style_blend.empty()) return std::vector<double>(n_styles, 1.0 / static_cast<double>(std::max<size_t>(n_styles, 1)));
  const double sum = std::accumulate(style_blend.begin(), style_blend.end(), 0.0);
  std::vector<double> shares;
  for (double b : style_blend) shares.push_back(b / sum);
  return shares;
}

void check_style_blend_count(const StylizeRequest& r, size_t n_styles) {
  if (!r.style_blend.empty() && r.style_blend.size() != n_styles) {
    throw FieldError("style_blend", FieldError::range,
                     field("style_blend") + " has " + std::to_string(r.style_blend.size()) + " weights for " +
                         std::to_string(n_styles) + " style images");
  }
}

OptimizerOptions optimizer_options(const StylizeRequest& r, Preprocessing p, int iterations) {
  OptimizerOptions o;
  o.kind = r.optimizer;
  o.iterations = iterations;
  o.lbfgs_history = r.lbfgs_history;
  o.line_search = r.line_search;
  o.keep_in_range = !r.unbounded;
  o.learning_rate = r.learning_rate.value_or(r.optimizer == OptimizerKind::adam ? 10.0 * input_units_per_level(p) : 1.0);
  return o;
}

}  // namespace stylize
