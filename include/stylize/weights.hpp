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
  int convolutions = 16;                          // how many of VGG19's 16 convolutions the file holds
};

// The places searched, in order: `explicit_path` (--weights), $STYLIZE_WEIGHTS,
// ./models/vgg19.safetensors, ${XDG_DATA_HOME:-~/.local/share}/stylize/vgg19.safetensors.
std::vector<std::string> weights_search_path(const std::string& explicit_path);

// The default location `weights fetch` writes to (the last entry above).
std::string default_weights_install_path();

// First existing file of weights_search_path(); an explicit path or $STYLIZE_WEIGHTS that does not
// exist is an error on its own (the user asked for that file). Throws WeightsError saying where it
// looked and how to get weights when nothing is found. An explicit path is said to be "given by
// `weights`", or by `given_by` (" given by ..."; "" for a path named where no flag is involved:
// weights info PATH).
std::string locate_weights(const std::string& explicit_path);
std::string locate_weights(const std::string& explicit_path, const std::string& given_by);

struct SafetensorsFile;
// A file may hold a prefix of VGG19: conv1_1 … convN, each complete (weight and bias), none skipped.
// Returns N's count (1..16). Throws WeightsError for a tensor with the wrong shape or a non-float
// dtype, a layer with only one of its two tensors, a gap (features.5 absent while features.7 is
// present), or no VGG19 convolution at all.
int check_vgg19_prefix(const SafetensorsFile& file);

// Throws WeightsError unless every VGG19 conv tensor is present with its exact shape and a float dtype.
void check_vgg19_header(const SafetensorsFile& file);

// "conv1_1 … conv3_4: 8 of 16 convolutions" for a prefix of `convolutions` layers (1..16).
std::string describe_vgg19_prefix(int convolutions);

// The deepest layer a prefix of `convolutions` convolutions can serve (its last ReLU; relu3_4 for 8).
std::string deepest_usable_layer(int convolutions);
// The index of the deepest layer such a prefix runs: the last before the next convolution (18, pool3,
// for 8; 36, pool5, for all 16).
int deepest_usable_index(int convolutions);

// Loads and validates the VGG19 conv tensors up to layer `last_index`. The file may stop after any
// convolution at or beyond the last one that index needs; the rest of the file is checked as a
// prefix (shapes, dtypes, no gaps). Throws WeightsError when `last_index` lies beyond the file: for
// the whole network (36, the default) naming the first missing tensor, otherwise naming the layer,
// the convolutions it needs and what to do. Tensors the network does not use (a classifier) are ignored.
Vgg19Weights load_vgg19_weights(const std::string& path, int last_index = 36);

// The same for whatever prefix the file holds (`weights info`): every convolution it has is loaded.
Vgg19Weights load_vgg19_prefix(const std::string& path);

// As load_vgg19_weights(path, last_index), with its checks and errors, but keeping every convolution
// the file holds: for a process whose jobs may each name any layer the file serves (serve, worker,
// batch), not only the layers of its defaults.
Vgg19Weights load_vgg19_weights_whole(const std::string& path, int last_index);

}  // namespace stylize
