// Image loading through the entry point the CLI and serve use (decode_image: the structural checks,
// the pixel cap, then OpenCV's decode), on arbitrary bytes under each name a file could have.
#include <ATen/ATen.h>

#include "stylize/error.hpp"
#include "stylize/image/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const names[] = {"f.png", "f.jpg", "f.webp", "f.bmp", "f.tif"};
  if (size < 1) return 0;
  const std::vector<uint8_t> bytes(data + 1, data + size);  // the first byte picks the name
  try {
    const stylize::LoadedImage img = stylize::decode_image(bytes, names[data[0] % 5], "content image", 4'000'000);
    (void)img.rgb.sum().item<float>();
  } catch (const stylize::Error&) {
  }
  return 0;
}
