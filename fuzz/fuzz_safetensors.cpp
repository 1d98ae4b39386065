// The safetensors reader on arbitrary bytes, as a file: the header length, the JSON header, every
// entry's dtype, shape and offsets, then every tensor's data read back. Each malformed file must
// end in WeightsError; a read outside the file is an ASan report.
#include <ATen/ATen.h>

#include "fuzz_common.hpp"
#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stylize::fuzz::MemFile file(data, size);
  try {
    const stylize::SafetensorsFile f = stylize::read_safetensors_header(file.path());
    for (const auto& [name, entry] : f.tensors) {
      const at::Tensor t = stylize::safetensors_tensor_from_bytes(f, name, reinterpret_cast<const char*>(data) + f.data_start);
      (void)t.sum().item<float>();  // every element read
    }
  } catch (const stylize::Error&) {
  }
  return 0;
}
