// One stylisation as the engine takes it: the images at their source resolution and every setting
// of the recipe (sizes, scales, losses, optimiser, start). `stylize`, `stylize batch` and
// `stylize serve` each fill one and hand it to run() (recipe.hpp); none of them checks a value itself.
//
// Settings are *fields* with one name everywhere in the engine ("style_weight"). request_fields()
// lists them; set_field() reads a field from its text form (what a flag, a job-file value or an HTTP
// form field holds); validate() checks the ranges. Errors name the field with field() (error.hpp), and
// each front-end renders the name in its own words (--style-weight, 'style_weight').
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stylize/error.hpp"
#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/transfer.hpp"

namespace stylize {

// Where the optimisation starts: the content, noise, the first style image, or `init_image`.
enum class InitFrom { content, random, style, image };

// Resizes an RGB 0-255 [1, 3, H, W] CPU image to width × height. The engine has no image library:
// front-ends pass image.hpp's resize_image (area averaging down, bicubic up). Must return its input
// unchanged when the size already matches (shrink_to_output relies on it).
using ResizeFn = std::function<at::Tensor(const at::Tensor& rgb, int width, int height)>;

struct StylizeRequest {
  // Images: RGB 0-255 float32 [1, 3, H, W] on the CPU, any size (the recipe resizes them per scale).
  at::Tensor content;
  std::vector<at::Tensor> styles;  // one or more
  at::Tensor init_image;           // init = image only
  ResizeFn resize;                 // required when an image needs resizing
  // Names the style images for a StyleTargetCache (recipe.hpp): same key = same images. "" = none.
  std::string style_key;

  // Fields (request_fields() describes each; request_defaults() gives their values).
  int size = 512;                   // longest side of the output, px
  double style_scale = 1.0;         // style images' longest side = style_scale × the scale's size
  std::vector<double> style_blend;  // one weight per style image, normalised to sum 1; empty = equal
  int scales = 1;                   // coarse-to-fine: size/2^(scales-1), ..., size
  std::vector<int> iterations{1000};  // one value for every scale, or one per scale (coarsest first)
  LossWeights loss;                 // content_layers, style_layers, style_layer_weights, *_weight
  OptimizerKind optimizer = OptimizerKind::lbfgs;
  std::optional<double> learning_rate;  // unset: 1 for L-BFGS, 10 grey levels for Adam (neural-style)
  int lbfgs_history = 100;
  LineSearch line_search = LineSearch::backtracking;
  bool unbounded = false;           // let pixels leave 0..255 while optimising
  InitFrom init = InitFrom::content;
  uint64_t seed = 0;
  bool original_colors = false;
  // Print size (tiling.hpp): tile a scale whose image is larger than `tile` px (0: only when a whole
  // run would not fit in memory); `tile_overlap` px of context around each tile; each tile visit runs
  // up to `tile_iterations` iterations, and a tiled scale of n iterations makes ceil(n / tile_iterations)
  // sweeps, and at least 4 where each visit still gets 10 (recipe.cpp: one sweep leaves the last
  // tiles unpainted), about n / sweeps iterations each, so every pixel gets about n iterations
  // however the image is cut.
  int tile = 0;
  int tile_overlap = 64;
  int tile_iterations = 100;

  // Not a recipe setting: the front-end's memory limit for plan(), in bytes (0 = what the machine has free).
  uint64_t max_memory = 0;
};

// The defaults of every field, the only place they are set: the loss weights depend on the
// preprocessing convention (README "Losses"). --help, the OpenAPI description and the README table
// are checked against this by tests.
StylizeRequest request_defaults(Preprocessing p);

// The values a numeric field accepts (each value of a list field): min..max, min excluded if open_min.
struct FieldRange {
  bool numeric = false;
  double min = 0, max = 0;
  bool open_min = false;
};
// "16..16384", ">= 0", "> 0"; "" for fields that are not numbers.
std::string to_string(const FieldRange& range);

// A field, as front-ends describe it.
struct RequestField {
  std::string name;        // "style_weight"
  std::string value_name;  // the shape of its text form: "NUMBER", "N[,N...]", "lbfgs|adam"
  std::string help;        // one sentence, without the default
  bool per_preprocessing;  // its default differs between caffe and torchvision
  bool is_switch;          // true/false (a command-line switch)
  FieldRange range;        // what validate() accepts, for numbers
};
const std::vector<RequestField>& request_fields();

// A bad field value: `field` is the field's name; kind says whether the text could not be read as
// the field's type (syntax), the value is outside what the engine accepts (range), or there is no
// such field (unknown). The message names the field with field().
struct FieldError : UsageError {
  enum Kind { syntax, range, unknown };
  FieldError(std::string field_name, Kind kind, const std::string& message)
      : UsageError(message), field(std::move(field_name)), kind(kind) {}
  std::string field;
  Kind kind;
};

// Sets one field from its text form: numbers, comma-separated lists ("400,300,100", "relu1_1,relu2_1"),
// true/false (or 1/0), the enum words value_name lists. Throws FieldError (syntax, unknown); ranges are
// validate()'s business, so a value set here may still be refused there.
void set_field(StylizeRequest& r, const std::string& name, const std::string& text);

// A field's value in its text form (what set_field reads back to the same value).
std::string field_text(const StylizeRequest& r, const std::string& name);

// Checks every field's range and the fields against each other (iterations per scale, one blend
// weight per style image when the styles are there, one weight per style layer, init = image with an
// init_image). Throws FieldError (range). Needs no images: front-ends call it before reading any.
void validate(const StylizeRequest& r);

// Throws FieldError (range) when a setting named in `given` — the fields one layer of settings set
// (the command line's flags, a job-file line, a form) over the ones below it — would have no effect
// on `r`: line_search or lbfgs_history when `r` runs adam. An inherited one is a default and passes.
void check_given_fields_apply(const StylizeRequest& r, const std::vector<std::string>& given);

// Longest side of scale k (0 = coarsest) of a coarse-to-fine run: size / 2^(scales-1-k), rounded.
int scale_size(const StylizeRequest& r, int k);

// Throws FieldError (range) unless style_blend is empty or has one weight per style image, for
// `n_styles` images (validate() checks it against r.styles; a job file before its images are read).
void check_style_blend_count(const StylizeRequest& r, size_t n_styles);

// Each of `n_styles` styles' share of the blend, as the targets mix them (summing to 1): style_blend
// normalised (3,1 -> 0.75, 0.25), or equal shares when it is empty.
std::vector<double> blend_shares(const std::vector<double>& style_blend, size_t n_styles);

// The optimiser settings for `iterations` steps (learning_rate resolved for the preprocessing).
OptimizerOptions optimizer_options(const StylizeRequest& r, Preprocessing p, int iterations);

const char* to_string(OptimizerKind k);
const char* to_string(LineSearch s);
const char* to_string(InitFrom i);

}  // namespace stylize
