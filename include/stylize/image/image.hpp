// Image files <-> tensors. The only module that includes OpenCV (in its .cpp).
// Images in memory are RGB, float32, 0-255, shaped [1, 3, H, W] on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stylize/preprocess.hpp"  // fit_longest

namespace stylize {

// Decoding a 64 MP image takes ~200 MB as 8-bit and ~800 MB as float; larger inputs are refused
// before decoding so that a hostile or mistaken file cannot exhaust memory.
constexpr int64_t kDefaultMaxPixels = 64'000'000;

struct LoadedImage {
  at::Tensor rgb;            // [1, 3, H, W] float32 0-255, EXIF orientation applied
  int width = 0, height = 0; // as decoded (after orientation)
  std::string format;        // "jpeg", "png", "webp", "bmp", "tiff"
  std::string conversion;    // how it was made RGB: "", "grey expanded", "alpha composited over white", ...
};

// Reads and decodes; throws InputError for missing, empty, unreadable, truncated/corrupt,
// unsupported or oversized (> max_pixels) files, naming the file. `role` ("content image",
// "style image") starts the message.
LoadedImage load_image(const std::string& path, const std::string& role, int64_t max_pixels = kDefaultMaxPixels);

// Same checks and decoding from bytes in memory (uploads); `name` is used in messages, and
// `over_limit_fix` ends the message of an image above max_pixels (a server says "send a smaller
// image", not which of its flags to raise).
LoadedImage decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name, const std::string& role,
                         int64_t max_pixels = kDefaultMaxPixels,
                         const std::string& over_limit_fix = "shrink it first or raise --max-megapixels");

// High-quality resize (area averaging when shrinking, bicubic when enlarging).
at::Tensor resize_image(const at::Tensor& rgb, int width, int height);

// Output extensions this build can write: png, jpg, jpeg, webp, tif, tiff, bmp.
bool is_writable_image_extension(const std::string& ext);

// Throws OutputError unless `path` has a known image extension and its folder is writable.
void check_output_image_path(const std::string& path);

// Encodes by the extension of `path` (quality applies to JPEG and WebP, 1-100).
std::vector<std::uint8_t> encode_image(const at::Tensor& rgb, const std::string& ext, int quality);

// Encodes and writes atomically; the file appears only when complete.
void save_image(const std::string& path, const at::Tensor& rgb, int quality);

// The MIME type for an extension ("image/png"), for HTTP responses.
std::string image_mime_type(const std::string& ext);

// A line chart of loss curves, for training runs: one series per term, x = step (first_step, +1
// each value), y on a log scale (values <= 0 are left out), a legend and a title. Returns an RGB
// 0-255 [1, 3, 480, 800] tensor for save_image.
struct PlotSeries {
  std::string name;
  std::vector<double> values;
};
at::Tensor render_loss_plot(const std::vector<PlotSeries>& series, int first_step, const std::string& title);

}  // namespace stylize
