// A fast-filter file (load_filter: format, version, architecture, every tensor by name and shape,
// dtypes, NaN/inf, truncation) on arbitrary bytes; a file that loads is applied to a 16 px image.
#include <ATen/ATen.h>

#include "fuzz_common.hpp"
#include "stylize/error.hpp"
#include "stylize/filter.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stylize::fuzz::MemFile file(data, size);
  try {
    stylize::LoadedFilter f = stylize::load_filter(file.path());
    (void)stylize::apply_filter(f.net, at::full({1, 3, 16, 16}, 128.0f)).sum().item<float>();
  } catch (const stylize::Error&) {
  }
  return 0;
}
