// serve's form handling as a function: a form (what read_form() makes of a multipart request) into
// a job by JobRunner::parse, with this server's limits, the images decoded. The input is split at
// NUL bytes into name, value, name, value...; "content" and "style" values are images.
#include <ATen/ATen.h>

#include "../src/server/job_runner.hpp"
#include "stylize/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stylize::serve;
  static JobRunner runner(nullptr, stylize::request_defaults(stylize::Preprocessing::caffe), [] {
    ServeOptions o;
    o.max_size = 64;       // small images: the fuzzer should spend its time in the parsing
    o.max_pixels = 1 << 16;
    return o;
  }());
  Form form;
  std::string name;
  bool want_name = true;
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i < size && data[i] != 0) continue;
    std::string piece(reinterpret_cast<const char*>(data) + start, i - start);
    start = i + 1;
    if (want_name) {
      name = std::move(piece);
    } else if (!form.count(name)) {  // read_form() refuses a repeated name: keep the first; style_2 ... come as named
      const bool image = name == "content" || name == "style";
      form[name] = {image ? name + ".png" : "", std::move(piece)};
    }
    want_name = !want_name;
  }
  try {
    runner.parse(form, size % 2 == 0);
  } catch (const FormError&) {
  }
  return 0;
}
