// Writes VGG19 weights in Keras's HDF5 layout (what keras.Model.save_weights produces), for tests.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace stylize::test {

struct KerasFileOptions {
  bool with_classifier = false;   // add fc1/fc2/predictions dense layers (the "with top" file)
  bool variable_length_strings = false;
  std::string skip_layer;         // leave this conv layer out (e.g. "block5_conv4")
  std::string wrong_shape_layer;  // give this layer a 5x5 kernel
};

// `params`: torchvision-named VGG19 tensors; kernels are stored as [kh, kw, in, out].
void write_keras_vgg19(const std::string& path, const std::map<std::string, at::Tensor>& params,
                       const KerasFileOptions& options = {});

}  // namespace stylize::test
