#include "stylize/image/image.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"

namespace stylize {
namespace {

struct Probe {
  std::string format;
  int64_t width = -1, height = -1;  // -1 when the header does not say (left to the decoder)
  std::string problem;               // non-empty: the file is structurally broken
};

uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return (uint32_t(p[1]) << 8) | p[0]; }
uint32_t le32(const uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

// Walks the JPEG marker structure to the EOI marker. libjpeg decodes a truncated file into an image
// with a grey bottom and only a warning; the missing EOI is how we tell.
void probe_jpeg(const std::vector<uint8_t>& d, Probe& p) {
  const size_t n = d.size();
  size_t pos = 2;
  while (pos + 1 < n) {
    if (d[pos] != 0xFF) {
      p.problem = "corrupt JPEG structure at byte " + std::to_string(pos);
      return;
    }
    const uint8_t marker = d[pos + 1];
    if (marker == 0xFF) {
      ++pos;
      continue;
    }
    if (marker == 0xD9) return;  // EOI: complete
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      pos += 2;
      continue;
    }
    if (pos + 4 > n) break;
    const size_t len = be16(&d[pos + 2]);
    if (len < 2 || pos + 2 + len > n) break;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && len >= 7) {
      p.height = be16(&d[pos + 5]);
      p.width = be16(&d[pos + 7]);
    }
    pos += 2 + len;
    if (marker == 0xDA) {  // start of scan: skip entropy-coded data up to the next real marker
      while (pos + 1 < n) {
        if (d[pos] == 0xFF && d[pos + 1] != 0x00 && !(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7) && d[pos + 1] != 0xFF) {
          break;
        }
        ++pos;
      }
    }
  }
  p.problem = "the JPEG data ends before its end marker (truncated file)";
}

// Walks PNG chunks to IEND; a file cut short has no IEND.
void probe_png(const std::vector<uint8_t>& d, Probe& p) {
  const size_t n = d.size();
  if (n >= 24) {
    p.width = be32(&d[16]);
    p.height = be32(&d[20]);
  }
  size_t pos = 8;
  while (pos + 12 <= n) {
    const size_t len = be32(&d[pos]);
    const std::string type(reinterpret_cast<const char*>(&d[pos + 4]), 4);
    if (len > n || pos + 12 + len > n) break;
    if (type == "IEND") return;
    pos += 12 + len;
  }
  p.problem = "the PNG data ends before its IEND chunk (truncated file)";
}

void probe_webp(const std::vector<uint8_t>& d, Probe& p) {
  const size_t n = d.size();
  const size_t riff_size = le32(&d[4]);
  if (riff_size + 8 > n) {
    p.problem = "the WebP data is shorter than its header says (truncated file)";
    return;
  }
  if (n >= 30 && std::string(reinterpret_cast<const char*>(&d[12]), 4) == "VP8X") {
    p.width = 1 + (d[24] | (d[25] << 8) | (d[26] << 16));
    p.height = 1 + (d[27] | (d[28] << 8) | (d[29] << 16));
  } else if (n >= 30 && std::string(reinterpret_cast<const char*>(&d[12]), 4) == "VP8 ") {
    p.width = le16(&d[26]) & 0x3fff;
    p.height = le16(&d[28]) & 0x3fff;
  } else if (n >= 25 && std::string(reinterpret_cast<const char*>(&d[12]), 4) == "VP8L") {
    const uint32_t bits = le32(&d[21]);
    p.width = 1 + (bits & 0x3fff);
    p.height = 1 + ((bits >> 14) & 0x3fff);
  }
}

Probe probe(const std::vector<uint8_t>& d) {
  Probe p;
  const size_t n = d.size();
  auto starts = [&](const char* magic, size_t len, size_t at = 0) {
    return n >= at + len && std::memcmp(d.data() + at, magic, len) == 0;
  };
  if (starts("\xFF\xD8\xFF", 3)) {
    p.format = "jpeg";
    probe_jpeg(d, p);
  } else if (starts("\x89PNG\r\n\x1a\n", 8)) {
    p.format = "png";
    probe_png(d, p);
  } else if (starts("RIFF", 4) && starts("WEBP", 4, 8)) {
    p.format = "webp";
    probe_webp(d, p);
  } else if (starts("BM", 2) && n >= 26) {
    p.format = "bmp";
    p.width = static_cast<int32_t>(le32(&d[18]));
    p.height = std::abs(static_cast<int32_t>(le32(&d[22])));
  } else if (starts("II*\0", 4) || starts("MM\0*", 4)) {
    p.format = "tiff";
  }
  return p;
}

std::string megapixels(int64_t pixels) {
  char buf[32];
  const double mp = static_cast<double>(pixels) / 1e6;
  std::snprintf(buf, sizeof buf, mp >= 1 ? "%.1f MP" : "%.3g MP", mp);
  return buf;
}

// cv::Mat (8U or 16U, 1-4 channels, BGR order) -> RGB float tensor; composites alpha over white.
at::Tensor mat_to_tensor(cv::Mat m, std::string& conversion) {
  if (m.depth() == CV_16U) {
    m.convertTo(m, CV_32F, 1.0 / 257.0);
    conversion = "16-bit scaled to 8-bit range";
  } else if (m.depth() == CV_32F) {
    // float TIFFs hold 0-1 by convention
    m = m * 255.0;
  } else {
    m.convertTo(m, CV_32F);
  }
  cv::Mat bgr;
  switch (m.channels()) {
    case 1:
      cv::cvtColor(m, bgr, cv::COLOR_GRAY2BGR);
      conversion = "grey expanded to RGB";
      break;
    case 2: {  // grey + alpha
      std::vector<cv::Mat> ch;
      cv::split(m, ch);
      cv::Mat a = ch[1] / 255.0;
      cv::Mat g = ch[0].mul(a) + (1.0 - a) * 255.0;
      cv::cvtColor(g, bgr, cv::COLOR_GRAY2BGR);
      conversion = "grey+alpha composited over white";
      break;
    }
    case 3:
      bgr = m;
      break;
    case 4: {
      std::vector<cv::Mat> ch;
      cv::split(m, ch);
      cv::Mat a = ch[3] / 255.0;
      for (int c = 0; c < 3; ++c) ch[c] = ch[c].mul(a) + (1.0 - a) * 255.0;
      ch.pop_back();
      cv::merge(ch, bgr);
      conversion = "alpha composited over white";
      break;
    }
    default:
      throw InputError("unsupported channel count " + std::to_string(m.channels()));
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  at::Tensor t = at::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, at::kFloat).clone();
  return t.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

cv::Mat tensor_to_mat_bgr8(const at::Tensor& rgb) {
  at::Tensor t = rgb.detach().to(at::kCPU).to(at::kFloat).squeeze(0).clamp(0, 255).round().to(at::kByte);
  t = t.flip({0}).permute({1, 2, 0}).contiguous();  // RGB -> BGR, HWC
  cv::Mat m(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr<uint8_t>());
  return m.clone();
}

}  // namespace

LoadedImage decode_image(const std::vector<uint8_t>& bytes, const std::string& name, const std::string& role,
                         int64_t max_pixels, const std::string& over_limit_fix) {
  const std::string what = "cannot read " + role + " " + in_quotes(name) + ": ";
  if (bytes.empty()) throw InputError(what + "the file is empty (0 bytes); copy or download it again");
  Probe p = probe(bytes);
  if (p.format.empty()) {
    throw InputError(what + "not a supported image file (expected JPEG, PNG, WebP, BMP or TIFF); convert it to one of those");
  }
  if (!p.problem.empty()) throw InputError(what + p.problem + "; copy or download it again");
  if (p.width >= 0 && p.height >= 0) {
    const int64_t pixels = p.width * p.height;
    if (pixels > max_pixels) {
      throw InputError(what + "it is " + std::to_string(p.width) + "x" + std::to_string(p.height) + " (" +
                       megapixels(pixels) + "), above the decoding limit of " + megapixels(max_pixels) +
                       "; " + over_limit_fix);
    }
    if (pixels == 0) throw InputError(what + "the image has zero width or height");
  }
  // JPEGs decode as colour so that OpenCV applies the EXIF orientation; other formats keep alpha and
  // 16-bit depth (IMREAD_UNCHANGED), which mat_to_tensor then flattens.
  const int flags = p.format == "jpeg" ? cv::IMREAD_COLOR : cv::IMREAD_UNCHANGED;
  cv::Mat m;
  try {
    cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    m = cv::imdecode(buf, flags);
  } catch (const cv::Exception&) {
    m = cv::Mat();
  }
  if (m.empty()) {
    throw InputError(what + "the " + p.format + " data is corrupt and cannot be decoded; open and re-save it in an image editor");
  }
  if (static_cast<int64_t>(m.rows) * m.cols > max_pixels) {
    throw InputError(what + "it is " + std::to_string(m.cols) + "x" + std::to_string(m.rows) +
                     ", above the decoding limit of " + megapixels(max_pixels) + "; " + over_limit_fix);
  }
  LoadedImage img;
  img.format = p.format;
  img.width = m.cols;
  img.height = m.rows;
  img.rgb = mat_to_tensor(m, img.conversion);
  return img;
}

LoadedImage load_image(const std::string& path, const std::string& role, int64_t max_pixels) {
  std::vector<uint8_t> bytes;
  std::string why;
  if (!read_file(path, bytes, why)) {
    // "-" is no file here: say so, rather than that no such file exists.
    if (path == "-") why = "reading an image from standard input is not supported; give the image's file";
    else if (why == "no such file") why += "; check the path";
    throw InputError("cannot read " + role + " " + in_quotes(path) + ": " + why);
  }
  return decode_image(bytes, path, role, max_pixels);
}

at::Tensor resize_image(const at::Tensor& rgb, int width, int height) {
  if (rgb.size(3) == width && rgb.size(2) == height) return rgb;
  at::Tensor hwc = rgb.detach().to(at::kCPU).squeeze(0).permute({1, 2, 0}).contiguous();
  cv::Mat src(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_32FC3, hwc.data_ptr<float>());
  cv::Mat dst;
  const bool shrinking = width < src.cols && height < src.rows;
  cv::resize(src, dst, cv::Size(width, height), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_CUBIC);
  at::Tensor t = at::from_blob(dst.data, {height, width, 3}, at::kFloat).clone();
  return t.permute({2, 0, 1}).unsqueeze(0).contiguous().clamp_(0, 255);
}

bool is_writable_image_extension(const std::string& ext) {
  static const char* known[] = {"png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"};
  for (const char* k : known) {
    if (ext == k) return cv::haveImageWriter("." + ext);
  }
  return false;
}

void check_output_image_path(const std::string& path) {
  check_output_folder(path);  // first: a folder given as the output is said to be one
  const std::string ext = file_extension(path);
  if (!is_writable_image_extension(ext)) {
    throw OutputError("cannot write " + in_quotes(path) + ": unknown image extension " +
                      in_quotes(ext.empty() ? std::string("(none)") : "." + ext) +
                      "; use .png, .jpg, .webp, .tif or .bmp");
  }
}

std::vector<uint8_t> encode_image(const at::Tensor& rgb, const std::string& ext, int quality) {
  std::vector<int> params;
  if (ext == "jpg" || ext == "jpeg") params = {cv::IMWRITE_JPEG_QUALITY, quality};
  if (ext == "webp") params = {cv::IMWRITE_WEBP_QUALITY, quality};
  std::vector<uint8_t> out;
  if (!cv::imencode("." + ext, tensor_to_mat_bgr8(rgb), out, params)) {
    throw OutputError("cannot encode image as ." + ext);
  }
  return out;
}

void save_image(const std::string& path, const at::Tensor& rgb, int quality) {
  check_output_image_path(path);
  const auto bytes = encode_image(rgb, file_extension(path), quality);
  write_file_atomic(path, bytes.data(), bytes.size());
}

std::string image_mime_type(const std::string& ext) {
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "tif" || ext == "tiff") return "image/tiff";
  return "image/" + ext;
}

at::Tensor render_loss_plot(const std::vector<PlotSeries>& series, int first_step, const std::string& title) {
  const int width = 800, height = 480, left = 80, right = 20, top = 40, bottom = 50;
  cv::Mat m(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  double lo = INFINITY, hi = -INFINITY;
  size_t n = 0;
  for (const auto& s : series) {
    n = std::max(n, s.values.size());
    for (double v : s.values) {
      if (v > 0 && std::isfinite(v)) lo = std::min(lo, std::log10(v)), hi = std::max(hi, std::log10(v));
    }
  }
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  cv::putText(m, title, {left, 25}, font, 0.55, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  const cv::Rect area(left, top, width - left - right, height - top - bottom);
  cv::rectangle(m, area, cv::Scalar(0, 0, 0));
  if (n >= 1 && lo <= hi) {
    lo = std::floor(lo), hi = std::max(std::ceil(hi), lo + 1);
    auto px = [&](size_t i) { return area.x + static_cast<int>(area.width * (n > 1 ? double(i) / double(n - 1) : 0.5)); };
    auto py = [&](double v) { return area.y + area.height - static_cast<int>(area.height * (std::log10(v) - lo) / (hi - lo)); };
    for (double d = lo; d <= hi; d += 1) {  // a line and a label per decade
      const int y = py(std::pow(10.0, d));
      cv::line(m, {area.x, y}, {area.x + area.width, y}, cv::Scalar(220, 220, 220));
      cv::putText(m, "1e" + std::to_string(static_cast<int>(d)), {8, y + 5}, font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    }
    cv::putText(m, "step " + std::to_string(first_step), {area.x, height - 20}, font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    const std::string last = "step " + std::to_string(first_step + static_cast<int>(n) - 1);
    cv::putText(m, last, {area.x + area.width - 90, height - 20}, font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    const cv::Scalar colours[] = {{200, 80, 0}, {0, 0, 210}, {0, 150, 0}, {0, 0, 0}, {150, 0, 150}};  // BGR
    for (size_t k = 0; k < series.size(); ++k) {
      const cv::Scalar colour = colours[k % 5];
      std::vector<cv::Point> points;
      // Many steps: one point per pixel column (the column's mean) keeps the curve readable.
      const size_t per = std::max<size_t>(1, series[k].values.size() / static_cast<size_t>(area.width));
      for (size_t i = 0; i + per <= series[k].values.size(); i += per) {
        double sum = 0;
        for (size_t j = i; j < i + per; ++j) sum += series[k].values[j];
        const double v = sum / static_cast<double>(per);
        if (v > 0 && std::isfinite(v)) points.push_back({px(i + per / 2), py(v)});
      }
      if (points.size() > 1) cv::polylines(m, points, false, colour, 1, cv::LINE_AA);
      const cv::Point at(area.x + area.width - 110, area.y + 20 + 18 * static_cast<int>(k));
      cv::line(m, at, at + cv::Point(20, 0), colour, 2);
      cv::putText(m, series[k].name, at + cv::Point(26, 5), font, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    }
  }
  cv::Mat rgb;
  cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
  at::Tensor t = at::from_blob(rgb.data, {height, width, 3}, at::kByte).to(at::kFloat);
  return t.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

}  // namespace stylize
