// Turning published VGG19 weight files into stylize's own safetensors file (torchvision names,
// OIHW, F32, with provenance in __metadata__). No pickle is ever loaded.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stylize {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

enum class WeightsFormat { keras_h5, safetensors, pytorch_pickle, unknown };

// By content (magic bytes), not by extension.
WeightsFormat detect_weights_format(const std::string& path);

// Keras HDF5 layout: root (or "model_weights") attribute `layer_names`; each layer group's
// attribute `weight_names` lists its kernel [kh, kw, in, out] and bias [out]. The 16 conv layers
// become features.N.weight [out, in, kh, kw] (a permutation, no other change) and features.N.bias;
// dense (classifier) layers are ignored. Throws WeightsError naming the layer when it is not VGG19.
NamedTensors read_keras_vgg19(const std::string& path);

// features.* from a torchvision-named safetensors file (validated as VGG19; the rest dropped).
NamedTensors read_torchvision_vgg19(const std::string& path);

// Reads any supported input (refusing pickles with instructions) and returns the VGG19 tensors
// and the preprocessing they expect (keras: caffe; torchvision safetensors: from metadata, else torchvision).
NamedTensors read_vgg19_any(const std::string& path, std::string& preprocessing);

// Writes the converted file atomically with `metadata` plus preprocessing and format tags.
void write_stylize_weights(const std::string& path, const NamedTensors& tensors, std::map<std::string, std::string> metadata);

// The message shown for a .pth pickle: what to run instead.
std::string pickle_refusal(const std::string& path);

}  // namespace stylize
