// Image I/O: decoding conventions (grey, alpha, 16-bit, EXIF orientation), every corrupt-input case,
// the pixel cap, and atomic output.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "stylize/error.hpp"
#include "stylize/image/image.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::TempDir;

namespace {

std::vector<uint8_t> encode_mat(const cv::Mat& m, const std::string& ext) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, m, out));
  return out;
}

std::string input_error(const std::vector<uint8_t>& bytes, int64_t max_pixels = kDefaultMaxPixels) {
  return stylize::test::error_of<InputError>([&] { decode_image(bytes, "x.img", "content image", max_pixels); });
}

// A JPEG with an EXIF APP1 segment carrying `orientation`, inserted right after SOI.
std::vector<uint8_t> jpeg_with_orientation(const cv::Mat& m, uint16_t orientation) {
  auto jpg = encode_mat(m, ".jpg");
  const uint8_t tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0,                       // header, IFD at 8
                          1, 0,                                              // one entry
                          0x12, 0x01, 3, 0, 1, 0, 0, 0,                      // tag 0x0112 SHORT x1
                          static_cast<uint8_t>(orientation), 0, 0, 0,        // value
                          0, 0, 0, 0};                                       // no next IFD
  std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), std::begin(tiff), std::end(tiff));
  const size_t len = app1.size() - 2;
  app1[2] = static_cast<uint8_t>(len >> 8);
  app1[3] = static_cast<uint8_t>(len & 0xff);
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
  return jpg;
}

}  // namespace

TEST(Image, PngRoundTripIsExactAndRgbOrdered) {
  TempDir dir;
  at::Tensor img = synthetic_image(20, 30, 3).round();
  save_image(dir / "a.png", img, 95);
  LoadedImage back = load_image(dir / "a.png", "content image");
  EXPECT_EQ(back.format, "png");
  EXPECT_EQ(back.width, 30);
  EXPECT_EQ(back.height, 20);
  EXPECT_TRUE(at::equal(back.rgb, img));
  // A pure red pixel stays red (no BGR swap anywhere).
  at::Tensor red = at::zeros({1, 3, 2, 2});
  red.select(1, 0).fill_(255);
  save_image(dir / "red.png", red, 95);
  at::Tensor r = load_image(dir / "red.png", "style image").rgb;
  EXPECT_EQ(r[0][0][0][0].item<float>(), 255);
  EXPECT_EQ(r[0][2][0][0].item<float>(), 0);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"a.png", "red.png"})) << "no temporary files left";
}

TEST(Image, EveryWritableFormatDecodesBack) {
  TempDir dir;
  // Smooth content, so lossy codecs stay close: the check is about format plumbing, not quality.
  at::Tensor img = resize_image(resize_image(synthetic_image(16, 24, 4), 6, 4), 24, 16);
  for (const std::string ext : {"png", "jpg", "jpeg", "webp", "tif", "bmp"}) {
    save_image(dir / ("o." + ext), img, 90);
    LoadedImage back = load_image(dir / ("o." + ext), "content image");
    EXPECT_EQ(back.width, 24) << ext;
    EXPECT_LT((back.rgb - img).abs().mean().item<float>(), 4.0f) << ext;
  }
}

TEST(Image, GreyAlphaAndSixteenBitAreMadeRgb) {
  cv::Mat grey(4, 4, CV_8UC1, cv::Scalar(100));
  LoadedImage g = decode_image(encode_mat(grey, ".png"), "g.png", "content image");
  EXPECT_EQ(g.rgb.size(1), 3);
  EXPECT_TRUE(at::equal(g.rgb, at::full({1, 3, 4, 4}, 100.0f)));
  EXPECT_EQ(g.conversion, "grey expanded to RGB");

  cv::Mat rgba(2, 2, CV_8UC4, cv::Scalar(0, 0, 200, 0));  // BGRA: red-ish, fully transparent
  rgba.at<cv::Vec4b>(0, 0) = cv::Vec4b(0, 0, 200, 255);    // one opaque pixel
  LoadedImage a = decode_image(encode_mat(rgba, ".png"), "a.png", "style image");
  EXPECT_EQ(a.conversion, "alpha composited over white");
  EXPECT_EQ(a.rgb[0][0][0][0].item<float>(), 200);  // opaque: its colour
  EXPECT_EQ(a.rgb[0][1][0][0].item<float>(), 0);
  EXPECT_EQ(a.rgb[0][1][1][1].item<float>(), 255);  // transparent: white

  cv::Mat deep(2, 2, CV_16UC3, cv::Scalar(65535, 32896, 0));
  LoadedImage d = decode_image(encode_mat(deep, ".png"), "d.png", "content image");
  EXPECT_NEAR(d.rgb[0][0][0][0].item<float>(), 0, 1e-3);      // R (from B=0 in BGR)
  EXPECT_NEAR(d.rgb[0][1][0][0].item<float>(), 128, 1e-3);
  EXPECT_NEAR(d.rgb[0][2][0][0].item<float>(), 255, 1e-3);
}

TEST(Image, ExifOrientationIsApplied) {
  cv::Mat m(10, 30, CV_8UC3, cv::Scalar(50, 100, 150));  // landscape in the file
  LoadedImage plain = decode_image(jpeg_with_orientation(m, 1), "p.jpg", "content image");
  EXPECT_EQ(plain.width, 30);
  LoadedImage rotated = decode_image(jpeg_with_orientation(m, 6), "r.jpg", "content image");
  EXPECT_EQ(rotated.width, 10) << "orientation 6 = rotate 90°: shown portrait";
  EXPECT_EQ(rotated.height, 30);
}

TEST(Image, BrokenInputsAreRefusedWithReasons) {
  cv::Mat m(64, 64, CV_8UC3, cv::Scalar(10, 200, 30));
  cv::randu(m, 0, 255);
  auto jpg = encode_mat(m, ".jpg");
  auto cut = std::vector<uint8_t>(jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() * 2 / 3));
  EXPECT_NE(input_error(cut).find("truncated"), std::string::npos) << input_error(cut);
  auto png = encode_mat(m, ".png");
  auto cut_png = std::vector<uint8_t>(png.begin(), png.begin() + static_cast<long>(png.size() / 2));
  EXPECT_NE(input_error(cut_png).find("truncated"), std::string::npos) << input_error(cut_png);
  EXPECT_NE(input_error({}).find("empty (0 bytes)"), std::string::npos);
  const std::string text = "hello, this is not an image\n";
  EXPECT_NE(input_error({text.begin(), text.end()}).find("not a supported image"), std::string::npos);
  // Scrambled entropy data with intact markers: structure fine, content corrupt; must not crash.
  auto garbled = png;
  for (size_t i = 40; i < garbled.size() - 20; ++i) garbled[i] ^= 0x5a;
  EXPECT_NE(input_error(garbled).find("x.img"), std::string::npos);
  EXPECT_NE(input_error(garbled).find("content image"), std::string::npos);
}

TEST(Image, PixelCapIsCheckedBeforeDecoding) {
  // A PNG header that claims 100000 x 100000 pixels: refused from the header alone.
  cv::Mat m(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  auto png = encode_mat(m, ".png");
  auto be32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  be32(16, 100000);
  be32(20, 100000);
  const std::string msg = input_error(png);
  EXPECT_NE(msg.find("100000x100000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("decoding limit of 64.0 MP"), std::string::npos) << msg;
  EXPECT_NE(input_error(encode_mat(m, ".jpg"), 50).find("8x8"), std::string::npos);
}

TEST(Image, FitLongestAndResize) {
  EXPECT_EQ(fit_longest(1024, 768, 512), std::make_pair(512, 384));
  EXPECT_EQ(fit_longest(600, 800, 512), std::make_pair(384, 512));
  EXPECT_EQ(fit_longest(5000, 1, 100), std::make_pair(100, 1));
  at::Tensor img = synthetic_image(40, 60, 2);
  at::Tensor small = resize_image(img, 30, 20);
  EXPECT_EQ(small.sizes(), (std::vector<int64_t>{1, 3, 20, 30}));
  EXPECT_NEAR(small.mean().item<float>(), img.mean().item<float>(), 2.0);
}

TEST(Image, OutputPathChecks) {
  TempDir dir;
  auto output_error = [](const std::string& path) {
    return stylize::test::error_of<OutputError>([&] { check_output_image_path(path); });
  };
  EXPECT_NE(output_error(dir / "a.gif").find("unknown image extension '.gif'"), std::string::npos);
  EXPECT_NE(output_error(dir / "noext").find("unknown image extension"), std::string::npos);
  EXPECT_NE(output_error(dir / "missing/a.png").find("does not exist"), std::string::npos);
  EXPECT_EQ(output_error(dir / "ok.PNG"), stylize::test::kNoError);
}
