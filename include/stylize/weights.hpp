// Locating and loading VGG19 weights stored as safetensors with torchvision's names.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stylize/preprocess.hpp"

namespace stylize {

struct Vgg19Weights {
  std::string path;
  std::map<std::string, at::Tensor> params;       // "features.N.weight|bias" -> float32, CPU
  std::map<std::string, std::string> metadata;    // the file's __metadata__
  std::optional<Preprocessing> preprocessing;     // from metadata "preprocessing", if present
};

// The places searched, in order: `explicit_path` (--weights), $STYLIZE_WEIGHTS,
// ./models/vgg19.safetensors, ${XDG_DATA_HOME:-~/.local/share}/stylize/vgg19.safetensors.
std::vector<std::string> weights_search_path(const std::string& explicit_path);

// The default location `weights fetch` writes to (the last entry above).
std::string default_weights_install_path();

// First existing file of weights_search_path(); an explicit path or $STYLIZE_WEIGHTS that does not
// exist is an error on its own (the user asked for that file). Throws WeightsError saying where it
// looked and how to get weights when nothing is found.
std::string locate_weights(const std::string& explicit_path);

struct SafetensorsFile;
// Throws WeightsError unless every VGG19 conv tensor is present with its exact shape and a float dtype.
void check_vgg19_header(const SafetensorsFile& file);

// Loads and validates every VGG19 conv tensor up to layer `last_index` (all 16 layers are checked
// for presence and shape). Tensors the network does not use (a classifier) are ignored.
Vgg19Weights load_vgg19_weights(const std::string& path, int last_index = 36);

}  // namespace stylize
