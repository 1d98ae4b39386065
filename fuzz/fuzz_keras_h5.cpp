// The Keras HDF5 conversion (our side of it: the group and dataset walk, names, shapes, dtypes,
// the permutation) on arbitrary bytes as a file. HDF5 itself is C and not ours; every refusal must
// be WeightsError.
#include <ATen/ATen.h>

#include "fuzz_common.hpp"
#include "stylize/error.hpp"
#include "stylize/weights_tools/convert.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stylize::fuzz::MemFile file(data, size);
  try {
    const auto tensors = stylize::read_keras_vgg19(file.path());
    for (const auto& [name, t] : tensors) (void)t.sum().item<float>();
  } catch (const stylize::Error&) {
  }
  return 0;
}
