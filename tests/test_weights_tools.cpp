// weights convert / fetch / info: Keras HDF5 and torchvision safetensors conversion (exact), pickles
// refused, downloads from a local server (resume, ranges, checksum, 404, refused, stalled).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdlib>
#include <thread>
#include <filesystem>

#include "http_server.hpp"
#include "keras_h5_writer.hpp"
#include "stylize/weights_tools/checksum.hpp"
#include "stylize/weights_tools/convert.hpp"
#include "stylize/error.hpp"
#include "stylize/weights_tools/fetch.hpp"
#include "stylize/image/image.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::HttpServer;
using stylize::test::ServerBehaviour;
using stylize::test::error_of;
using stylize::test::TempDir;

namespace {

const std::map<std::string, at::Tensor>& params() {
  static const auto p = synthetic_vgg19(5);
  return p;
}

std::string file_text(const std::string& path) {
  auto b = stylize::test::read_bytes(path);
  return std::string(b.begin(), b.end());
}

// Every converted tensor equals the original element for element.
void expect_exact(const std::string& converted) {
  Vgg19Weights w = load_vgg19_weights(converted);
  ASSERT_EQ(w.params.size(), 32u);
  for (const auto& [name, t] : w.params) EXPECT_TRUE(at::equal(t, params().at(name))) << name;
}

// A torchvision-style safetensors file: features plus a large classifier that ranged fetches skip.
std::string torchvision_bytes(TempDir& dir) {
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (const auto& n : vgg19_parameter_names()) t.emplace_back(n, params().at(n));
  t.emplace_back("pre_logits.fc1.weight", at::ones({1024, 4096}));  // 16 MB that should not travel
  write_safetensors(dir / "tv.safetensors", t, {{"format", "pt"}});
  return file_text(dir / "tv.safetensors");
}

struct FetchEnv {
  TempDir dir;
  FetchEnv() {
    setenv("XDG_DATA_HOME", (dir / "data").c_str(), 1);
    setenv("XDG_CACHE_HOME", (dir / "cache").c_str(), 1);
  }
  std::string installed() const { return dir / "data/stylize/vgg19.safetensors"; }
  std::string part(const std::string& source = "caffe") const { return dir / ("cache/stylize/downloads/" + source + ".part"); }
};

void save_image_for_test(const std::string& content, const std::string& style) {
  save_image(content, synthetic_image(32, 32, 1), 95);
  save_image(style, synthetic_image(32, 32, 2), 95);
}

}  // namespace

// RFC 1321 and FIPS 180-2 test vectors, through libcrypto, fed whole and in uneven pieces.
TEST(Checksum, KnownVectors) {
  auto md5 = [](const std::string& s) {
    Md5 h;
    h.update(s.data(), s.size());
    return h.hex();
  };
  auto sha = [](const std::string& s) {
    Sha256 h;
    h.update(s.data(), s.size());
    return h.hex();
  };
  EXPECT_EQ(md5(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5("The quick brown fox jumps over the lazy dog"), "9e107d9d372bb6826bd81d3542a419d6");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
  Sha256 pieces;
  const std::string a(1000000, 'a');
  for (size_t at = 0, n = 1; at < a.size(); at += n, n = n * 3 % 65521 + 1) pieces.update(a.data() + at, std::min(n, a.size() - at));
  EXPECT_EQ(pieces.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Convert, KerasHdf5IsPermutedExactlyAndClassifierIgnored) {
  TempDir dir;
  for (bool vlen : {false, true}) {
    test::KerasFileOptions o;
    o.with_classifier = true;
    o.variable_length_strings = vlen;
    test::write_keras_vgg19(dir / "k.h5", params(), o);
    EXPECT_EQ(detect_weights_format(dir / "k.h5"), WeightsFormat::keras_h5);
    std::string pre;
    auto tensors = read_vgg19_any(dir / "k.h5", pre);
    EXPECT_EQ(pre, "caffe");
    write_stylize_weights(dir / "out.safetensors", tensors, {{"preprocessing", pre}});
    expect_exact(dir / "out.safetensors");
  }
}

TEST(Convert, NonVgg19KerasFilesAreRefusedNamingTheLayer) {
  TempDir dir;
  test::KerasFileOptions o;
  o.wrong_shape_layer = "block3_conv2";
  test::write_keras_vgg19(dir / "shape.h5", params(), o);
  auto msg = error_of<WeightsError>([&] { read_keras_vgg19(dir / "shape.h5"); });
  EXPECT_NE(msg.find("layer 'block3_conv2' kernel 'block3_conv2/kernel:0' has shape [5, 5, 256, 256], expected "
                     "[3, 3, 256, 256]"),
            std::string::npos)
      << msg;
  o = {};
  o.skip_layer = "block5_conv4";
  test::write_keras_vgg19(dir / "short.h5", params(), o);
  msg = error_of<WeightsError>([&] { read_keras_vgg19(dir / "short.h5"); });
  EXPECT_NE(msg.find("found 15 convolution layers, VGG19 has 16"), std::string::npos) << msg;
  auto bytes = stylize::test::read_bytes(dir / "short.h5");
  bytes.resize(bytes.size() / 3);
  stylize::test::write_bytes(dir / "cut.h5", bytes);
  msg = error_of<WeightsError>([&] { read_keras_vgg19(dir / "cut.h5"); });
  EXPECT_NE(msg.find("cut.h5"), std::string::npos) << msg;
}

TEST(Convert, TorchvisionSafetensorsKeepsFeaturesOnly) {
  TempDir dir;
  torchvision_bytes(dir);
  std::string pre;
  auto tensors = read_vgg19_any(dir / "tv.safetensors", pre);
  EXPECT_EQ(pre, "torchvision");
  EXPECT_EQ(tensors.size(), 32u);
  write_stylize_weights(dir / "out.safetensors", tensors, {{"preprocessing", pre}});
  expect_exact(dir / "out.safetensors");
  EXPECT_EQ(read_safetensors_header(dir / "out.safetensors").tensors.count("pre_logits.fc1.weight"), 0u);
}

TEST(Convert, PicklesAreNeverLoaded) {
  TempDir dir;
  stylize::test::write_bytes(dir / "vgg19.pth", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0});
  stylize::test::write_bytes(dir / "legacy.pth", {0x80, 0x02, 'c', 'c', 'o', 'l', 'l'});
  for (const auto& f : {dir / "vgg19.pth", dir / "legacy.pth"}) {
    EXPECT_EQ(detect_weights_format(f), WeightsFormat::pytorch_pickle);
    std::string pre;
    auto msg = error_of<WeightsError>([&] { read_vgg19_any(f, pre); });
    EXPECT_NE(msg.find("PyTorch pickle"), std::string::npos) << msg;
    EXPECT_NE(msg.find("safetensors.torch.save_file"), std::string::npos) << msg;
    EXPECT_NE(msg.find("torch.load('" + f + "', map_location='cpu')"), std::string::npos) << msg;
  }
  // The path in the Python line it suggests is a Python string however the file is named (quotes,
  // backslashes; backticks as they are once rendered).
  stylize::test::write_bytes(dir / "it's \\ `x`.pth", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0});
  std::string pre;
  const auto msg = render_fields(error_of<WeightsError>([&] { read_vgg19_any(dir / "it's \\ `x`.pth", pre); }),
                                 FieldWords::flag);
  EXPECT_NE(msg.find("torch.load('" + dir / "it\\'s \\\\ `x`.pth" + "', map_location"), std::string::npos) << msg;
}

TEST(Fetch, DownloadsVerifiesAndConvertsToTheDefaultLocation) {
  FetchEnv env;
  test::write_keras_vgg19(env.dir / "k.h5", params());
  const std::string keras = file_text(env.dir / "k.h5");
  HttpServer server({{"/vgg19.h5", keras}});
  FetchRequest req;
  req.url = server.url("/vgg19.h5");
  req.md5 = digest_file(env.dir / "k.h5").md5;
  FetchResult r = fetch_weights(req);
  EXPECT_EQ(r.out, env.installed());
  EXPECT_EQ(r.md5, req.md5);
  expect_exact(env.installed());
  auto meta = read_safetensors_header(env.installed()).metadata;
  EXPECT_EQ(meta["source"], req.url);
  EXPECT_EQ(meta["source_md5"], req.md5);
  EXPECT_EQ(meta["preprocessing"], "caffe");
  EXPECT_FALSE(stylize::test::exists(env.part())) << "download removed after conversion";
  EXPECT_EQ(locate_weights(""), env.installed()) << "the core command now finds it";
  // Second run: already there, nothing downloaded.
  const auto before = server.requests().size();
  EXPECT_TRUE(fetch_weights(req).already_present);
  EXPECT_EQ(server.requests().size(), before);
}

TEST(Fetch, ResumesAfterACutConnection) {
  FetchEnv env;
  test::write_keras_vgg19(env.dir / "k.h5", params());
  const std::string keras = file_text(env.dir / "k.h5");
  ServerBehaviour cut;
  cut.cut_after = keras.size() / 3;
  HttpServer server({{"/vgg19.h5", keras}}, cut);
  FetchRequest req;
  req.url = server.url("/vgg19.h5");
  req.md5 = digest_file(env.dir / "k.h5").md5;
  auto msg = error_of<NetworkError>([&] { fetch_weights(req); });
  EXPECT_NE(msg.find("cut before the end"), std::string::npos) << msg;
  EXPECT_FALSE(stylize::test::exists(env.installed()));
  ASSERT_TRUE(stylize::test::exists(env.part()));
  EXPECT_EQ(std::filesystem::file_size(env.part()), cut.cut_after);
  FetchResult r = fetch_weights(req);
  EXPECT_EQ(r.bytes, keras.size() - cut.cut_after) << "only the rest was transferred";
  auto reqs = server.requests();
  EXPECT_EQ(reqs.back(), "GET /vgg19.h5 range=bytes=" + std::to_string(cut.cut_after) + "-");
  expect_exact(env.installed());
}

TEST(Fetch, ChecksumMismatchLeavesNoFile) {
  FetchEnv env;
  HttpServer server({{"/vgg19.h5", std::string(5000, 'x')}});
  FetchRequest req;
  req.url = server.url("/vgg19.h5");
  req.md5 = "00000000000000000000000000000000";
  auto msg = error_of<NetworkError>([&] { fetch_weights(req); });
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("deleted"), std::string::npos) << msg;
  EXPECT_FALSE(stylize::test::exists(env.installed()));
  EXPECT_FALSE(stylize::test::exists(env.part()));
}

TEST(Fetch, NotFoundRefusedAndStalledEndCleanly) {
  FetchEnv env;
  HttpServer server({});
  FetchRequest req;
  req.download.stall_timeout_s = 2;
  req.download.connect_timeout_s = 2;
  req.url = server.url("/missing.h5");
  auto msg = error_of<NetworkError>([&] { fetch_weights(req); });
  EXPECT_NE(msg.find("HTTP 404"), std::string::npos) << msg;
  EXPECT_FALSE(stylize::test::exists(env.part()));

  req.url = "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/vgg19.h5";
  msg = error_of<NetworkError>([&] { fetch_weights(req); });
  EXPECT_NE(msg.find("connection refused"), std::string::npos) << msg;
  EXPECT_FALSE(stylize::test::exists(env.part()));

  ServerBehaviour stall;
  stall.stall = true;
  HttpServer slow({{"/vgg19.h5", std::string(100000, 'x')}}, stall);
  req.url = slow.url("/vgg19.h5");
  const auto t0 = std::chrono::steady_clock::now();
  msg = error_of<NetworkError>([&] { fetch_weights(req); });
  EXPECT_NE(msg.find("stopped sending data"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  EXPECT_FALSE(stylize::test::exists(env.installed()));
}

TEST(Fetch, TorchvisionFetchesOnlyFeaturesWhenRangesWork) {
  FetchEnv env;
  const std::string tv = torchvision_bytes(env.dir);
  HttpServer server({{"/model.safetensors", tv}});
  FetchRequest req;
  req.source = "torchvision";
  req.url = server.url("/model.safetensors");
  FetchResult r = fetch_weights(req);
  EXPECT_TRUE(r.ranged);
  EXPECT_LT(server.body_bytes_sent(), tv.size() - 16000000) << "the classifier did not travel";
  expect_exact(env.installed());
  EXPECT_EQ(read_safetensors_header(env.installed()).metadata.at("preprocessing"), "torchvision");
}

TEST(Fetch, TorchvisionFallsBackToTheWholeFileWithoutRanges) {
  FetchEnv env;
  const std::string tv = torchvision_bytes(env.dir);
  ServerBehaviour no_ranges;
  no_ranges.ranges = false;
  HttpServer server({{"/model.safetensors", tv}}, no_ranges);
  FetchRequest req;
  req.source = "torchvision";
  req.url = server.url("/model.safetensors");
  FetchResult r = fetch_weights(req);
  EXPECT_FALSE(r.ranged);
  EXPECT_EQ(r.sha256, digest_file(env.dir / "tv.safetensors").sha256);
  expect_exact(env.installed());
}

// The whole story as a user meets it: fetch from a (local) server with a checksum, check it with
// `weights info`, then stylise without --weights from another folder.
TEST(WeightsCli, FetchInfoThenStylizeFindsTheWeights) {
  FetchEnv env;
  test::write_keras_vgg19(env.dir / "k.h5", params());
  HttpServer server({{"/vgg19.h5", file_text(env.dir / "k.h5")}});
  const std::vector<std::string> vars = {"XDG_DATA_HOME=" + env.dir / "data", "XDG_CACHE_HOME=" + env.dir / "cache",
                                         "STYLIZE_WEIGHTS="};
  auto r = test::run_command({STYLIZE_BIN, "weights", "fetch", "--url", server.url("/vgg19.h5"), "--md5",
                              digest_file(env.dir / "k.h5").md5},
                             vars);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("wrote " + env.installed()), std::string::npos) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights", "info"}, vars);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("source:        " + server.url("/vgg19.h5")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("preprocessing: caffe"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source md5:    " + digest_file(env.dir / "k.h5").md5), std::string::npos) << r.out;

  save_image_for_test(env.dir / "c.png", env.dir / "s.png");
  r = test::run_command({STYLIZE_BIN, env.dir / "c.png", env.dir / "s.png", "-o", env.dir / "out.png", "-s", "32",
                         "-n", "2"},
                        vars);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("weights " + env.installed()), std::string::npos) << r.err;

  // A broken file at the default location: info says why and exits with the weights code.
  stylize::test::write_bytes(env.installed(), {1, 2, 3});
  r = test::run_command({STYLIZE_BIN, "weights", "info"}, vars);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("too short"), std::string::npos) << r.err;
  // Convert refuses a pickle with the instructions, and a checksum mismatch exits 10.
  stylize::test::write_bytes(env.dir / "m.pth", {'P', 'K', 3, 4});
  r = test::run_command({STYLIZE_BIN, "weights", "convert", env.dir / "m.pth", env.dir / "m.safetensors"}, vars);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("safetensors.torch.save_file"), std::string::npos) << r.err;
  EXPECT_FALSE(stylize::test::exists(env.dir / "m.safetensors"));
  r = test::run_command({STYLIZE_BIN, "weights", "fetch", "--force", "--url", server.url("/vgg19.h5"), "--md5",
                         "0123456789abcdef0123456789abcdef"},
                        vars);
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  // A checksum that cannot be one is refused before anything is downloaded.
  r = test::run_command({STYLIZE_BIN, "weights", "fetch", "--force", "--url", server.url("/vgg19.h5"), "--md5", "zz"}, vars);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--md5 must be 32 hexadecimal digits, got 'zz'"), std::string::npos) << r.err;
}

// Weights files written here replace nothing unasked; synthetic weights stay marked through convert;
// a word that is no subcommand is named.
TEST(WeightsCli, WritersReplaceNothingUnaskedAndSyntheticStaysMarked) {
  FetchEnv env;
  const std::string w = env.dir / "w.safetensors";
  auto r = test::run_command({STYLIZE_BIN, "weights", "synth", "-o", w, "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto first = stylize::test::read_bytes(w);
  r = test::run_command({STYLIZE_BIN, "weights", "synth", "-o", w, "--seed", "4"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("it exists; pass --force to replace it"), std::string::npos) << r.err;
  EXPECT_EQ(stylize::test::read_bytes(w), first);
  r = test::run_command({STYLIZE_BIN, "weights", "synth", "-o", env.dir / "w.jpg"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("a weights file ends in .safetensors"), std::string::npos) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights", "convert", w, w, "--force"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("OUT '" + w + "' is the input IN"), std::string::npos) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights", "convert", w, env.dir / "c.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights", "info", env.dir / "c.safetensors"});
  EXPECT_NE(r.out.find("source:        synthetic (seed 3), for tests only (via " + w + ")"), std::string::npos) << r.out;
  r = test::run_command({STYLIZE_BIN, "weights", "inspect", w});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown subcommand 'inspect'; use fetch, convert, info or synth"), std::string::npos) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights", "-q", "inspect"});
  EXPECT_NE(r.err.find("unknown subcommand 'inspect'"), std::string::npos) << r.err;
  r = test::run_command({STYLIZE_BIN, "weights"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no subcommand; use fetch, convert, info or synth"), std::string::npos) << r.err;
  EXPECT_EQ(test::run_command({STYLIZE_BIN, "weights", "--help"}).exit_code, 0);
}

// SIGKILL in the middle of a download (the process gets no chance to clean up): the next run
// resumes from where the partial file ends, with a Range request, and the result is exact.
TEST(WeightsCli, AKilledFetchResumesWhereItsPartialFileEnds) {
  FetchEnv env;
  test::write_keras_vgg19(env.dir / "k.h5", params());
  const std::string keras = file_text(env.dir / "k.h5");
  const std::string md5 = digest_file(env.dir / "k.h5").md5;
  ServerBehaviour stall;
  stall.stall = true;
  stall.stall_after = keras.size() / 2;
  HttpServer slow({{"/vgg19.h5", keras}}, stall);
  const int pid = test::spawn_background({STYLIZE_BIN, "weights", "fetch", "--url", slow.url("/vgg19.h5"), "--md5", md5},
                                         env.dir / "fetch.log");
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 400; ++i) {
    std::error_code ec;
    if (std::filesystem::file_size(env.part(), ec) >= keras.size() / 4 && !ec) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_exit_code(pid), 128 + SIGKILL);
  ASSERT_TRUE(stylize::test::exists(env.part())) << test::read_text(env.dir / "fetch.log");
  const auto had = std::filesystem::file_size(env.part());
  ASSERT_GT(had, 0u);
  ASSERT_LT(had, keras.size());
  EXPECT_FALSE(stylize::test::exists(env.installed()));

  HttpServer server({{"/vgg19.h5", keras}});
  auto r = test::run_command({STYLIZE_BIN, "weights", "fetch", "--url", server.url("/vgg19.h5"), "--md5", md5});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(server.requests().empty());
  EXPECT_EQ(server.requests().back(), "GET /vgg19.h5 range=bytes=" + std::to_string(had) + "-");
  expect_exact(env.installed());
}

// A file at --out that is not the full VGG19 is not replaced unasked: a shallow prefix may be all a
// user has, and a stranger's file is not ours. Nothing is downloaded; --force replaces either. At
// the default location the message says so; a folder there is refused even with --force.
TEST(WeightsCli, FetchReplacesAPrefixOrAStrangersFileOnlyWithForce) {
  FetchEnv env;
  test::write_keras_vgg19(env.dir / "k.h5", params());
  HttpServer server({{"/vgg19.h5", file_text(env.dir / "k.h5")}});
  const std::string md5 = digest_file(env.dir / "k.h5").md5;
  const std::vector<std::string> vars = {"XDG_DATA_HOME=" + env.dir / "data", "XDG_CACHE_HOME=" + env.dir / "cache"};
  auto fetch = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {STYLIZE_BIN, "weights", "fetch", "--url", server.url("/vgg19.h5"), "--md5", md5};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return test::run_command(argv, vars);
  };
  std::vector<std::pair<std::string, at::Tensor>> shallow;
  for (const auto& n : vgg19_parameter_names()) {
    if (shallow.size() == 16) break;  // conv1_1 … conv3_4: 8 convolutions, weight and bias
    shallow.emplace_back(n, params().at(n));
  }
  const std::string prefix = env.dir / "prefix.safetensors", stranger = env.dir / "notes.safetensors";
  write_safetensors(prefix, shallow, {});
  stylize::test::write_bytes(stranger, {'h', 'i', '\n'});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {prefix, "it holds only part of VGG19 (conv1_1 … conv3_4: 8 of 16 convolutions)"},
      {stranger, "it is not a VGG19 weights file (file is 3 bytes, too short for a safetensors header"}};
  for (const auto& [out, what] : cases) {
    const auto before = stylize::test::read_bytes(out);
    auto r = fetch({"--out", out});
    EXPECT_EQ(r.exit_code, 5) << r.err;
    EXPECT_NE(r.err.find("will not replace '" + out + "': " + what), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("; pass --force to replace it, or give another --out"), std::string::npos) << r.err;
    EXPECT_EQ(stylize::test::read_bytes(out), before);
    EXPECT_EQ(r.err.find("fetching"), std::string::npos) << "nothing is fetched: " << r.err;
  }
  std::filesystem::create_directories(std::filesystem::path(env.installed()).parent_path());
  std::filesystem::copy_file(prefix, env.installed());
  auto r = fetch({});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("will not replace '" + env.installed() + "' (the default location, where stylize looks for "
                       "weights): it holds only part of VGG19"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("--out"), std::string::npos) << "no --out was given: " << r.err;
  EXPECT_EQ(r.err.find("fetching"), std::string::npos) << "nothing is fetched: " << r.err;
  EXPECT_TRUE(server.requests().empty()) << "refused before anything was downloaded";
  for (const std::string& out : {prefix, stranger}) {
    r = fetch({"--force", "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("fetching caffe VGG19 weights from " + server.url("/vgg19.h5")), std::string::npos) << r.err;
    expect_exact(out);
  }
  ASSERT_EQ(fetch({"--force"}).exit_code, 0);
  expect_exact(env.installed());
  auto requests = server.requests().size();
  r = fetch({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("valid weights already at " + env.installed() + " (use --force to fetch again)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("fetching"), std::string::npos) << "nothing is fetched: " << r.err;
  EXPECT_EQ(server.requests().size(), requests);
  std::filesystem::remove(env.installed());
  std::filesystem::create_directories(env.installed());
  r = fetch({"--force"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("cannot write '" + env.installed() + "': it is a folder; move it away"), std::string::npos)
      << r.err;
  EXPECT_EQ(server.requests().size(), requests) << "refused before anything was downloaded";
}
