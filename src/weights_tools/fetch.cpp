#include "stylize/weights_tools/fetch.hpp"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "stylize/weights_tools/checksum.hpp"
#include "stylize/weights_tools/convert.hpp"
#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"

namespace stylize {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string default_cache_dir() {
  return env_or("XDG_CACHE_HOME", env_or("HOME", "/tmp") + "/.cache") + "/stylize";
}

bool valid_weights(const std::string& path) {
  try {
    load_vgg19_weights(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// What an existing file that is not the full VGG19 holds, in words, for the refusal to replace it:
// a shallow prefix (like the conv1-3 file) may be all a user has, and anything else is not ours.
std::string what_is_there(const std::string& path) {
  try {
    const Vgg19Weights prefix = load_vgg19_prefix(path);
    return "it holds only part of VGG19 (" + describe_vgg19_prefix(prefix.convolutions) + ")";
  } catch (const Error& e) {
    std::string why = e.what();
    const std::string named = in_quotes(path) + ": ";  // the reason alone: the path is named already
    if (const auto at = why.find(named); at != std::string::npos) why = why.substr(at + named.size());
    return "it is not a VGG19 weights file (" + why + ")";
  }
}

// Throws OutputError when `out` holds something a fetch must not replace unasked: a folder (never),
// or a file that is not the full VGG19 (without `force`). Returns whether valid weights are there.
bool check_fetch_target(const std::string& out, bool default_location, bool force) {
  std::error_code ec;
  const auto status = std::filesystem::status(out, ec);
  if (std::filesystem::is_directory(status)) {
    throw OutputError("cannot write " + in_quotes(out) + ": it is a folder; " +
                      (default_location ? "move it away (stylize looks for its weights file there)" : "give a file name"));
  }
  if (!std::filesystem::exists(status)) return false;
  if (force) return false;
  if (valid_weights(out)) return true;
  throw OutputError("will not replace " + in_quotes(out) +
                    (default_location ? " (the default location, where stylize looks for weights)" : "") + ": " +
                    what_is_there(out) + "; pass --force to replace it" +
                    (default_location ? "" : ", or give another --out"));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Ranged fetch of a torchvision safetensors file: header first, then only the features.* bytes.
// Returns false (nothing fetched) when the server does not honour Range requests.
bool fetch_features_by_range(const std::string& url, const DownloadOptions& dl, NamedTensors& tensors,
                             uint64_t& bytes) {
  auto len_bytes = fetch_range(url, 0, 8, dl);
  if (!len_bytes) return false;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>((*len_bytes)[i]);
  if (header_len < 2 || header_len > (100ull << 20)) {
    throw WeightsError("invalid weights file at " + in_quotes(url) + ": header length " + std::to_string(header_len) +
                       " is implausible (not a safetensors file)");
  }
  auto header = fetch_range(url, 8, 8 + header_len, dl);
  if (!header) return false;
  // The total size is unknown here; offsets are checked against what actually arrives below.
  SafetensorsFile file = parse_safetensors_header(*header, std::numeric_limits<uint64_t>::max() / 2, url);
  check_vgg19_header(file);
  uint64_t begin = std::numeric_limits<uint64_t>::max(), end = 0;
  for (const auto& name : vgg19_parameter_names()) {
    begin = std::min(begin, file.tensors.at(name).begin);
    end = std::max(end, file.tensors.at(name).end);
  }
  auto data = fetch_range(url, file.data_start + begin, file.data_start + end, dl);
  if (!data) return false;
  for (auto& [name, e] : file.tensors) {
    if (e.begin >= begin && e.end <= end) {
      e.begin -= begin;
      e.end -= begin;
    }
  }
  for (const auto& name : vgg19_parameter_names()) {
    tensors.emplace_back(name, safetensors_tensor_from_bytes(file, name, data->data()));
  }
  bytes = 8 + header_len + (end - begin);
  return true;
}

}  // namespace

WeightsSource weights_source(const std::string& name) {
  if (name == "caffe") {
    return {"caffe",
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "253f8cb515780f3b799900260a226db6", "", 80134624, "caffe"};
  }
  if (name == "torchvision") {
    return {"torchvision", "https://huggingface.co/timm/vgg19.tv_in1k/resolve/main/model.safetensors", "", "", 0,
            "torchvision"};
  }
  throw UsageError("unknown weights source " + in_quotes(name) + "; expected caffe or torchvision");
}

FetchResult fetch_weights(const FetchRequest& req) {
  const WeightsSource src = weights_source(req.source);
  FetchResult result;
  result.out = req.out.empty() ? default_weights_install_path() : req.out;
  result.url = req.url.empty() ? src.url : req.url;
  if (req.out.empty()) std::filesystem::create_directories(std::filesystem::path(result.out).parent_path());
  if (check_fetch_target(result.out, req.out.empty(), req.force)) {
    result.already_present = true;
    return result;
  }
  std::string want_md5 = lower(req.md5), want_sha = lower(req.sha256);
  if (want_md5.empty() && want_sha.empty()) {
    want_md5 = src.md5;
    want_sha = src.sha256;
  }
  if (req.on_start) req.on_start(result.url);
  std::map<std::string, std::string> meta = {{"source", result.url}, {"source_kind", src.name},
                                             {"preprocessing", src.preprocessing}};
  NamedTensors tensors;

  // torchvision's file is 575 MB of which VGG19's features are 80 MB: fetch only those when no
  // whole-file checksum must be verified and the server allows ranges.
  if (src.name == "torchvision" && want_md5.empty() && want_sha.empty() &&
      fetch_features_by_range(result.url, req.download, tensors, result.bytes)) {
    result.ranged = true;
    meta["source_checksum"] = "none pinned; ranged fetch of features.* checked by structure";
  } else {
    const std::string cache = req.cache_dir.empty() ? default_cache_dir() : req.cache_dir;
    std::filesystem::create_directories(cache + "/downloads");
    const std::string part = cache + "/downloads/" + src.name + ".part";
    struct stat st {};
    const uint64_t had = stat(part.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    const uint64_t size = download_to_file(result.url, part, req.download);
    result.bytes = size > had ? size - had : size;
    const FileDigests d = digest_file(part);
    result.md5 = d.md5;
    result.sha256 = d.sha256;
    auto mismatch = [&](const char* kind, const std::string& want, const std::string& got) {
      std::remove(part.c_str());
      throw NetworkError("checksum mismatch for " + in_quotes(result.url) + ": expected " + kind + " " + want +
                         ", got " + got + "; the download was deleted (wrong --url, or a corrupted transfer)");
    };
    if (!want_md5.empty() && want_md5 != d.md5) mismatch("MD5", want_md5, d.md5);
    if (!want_sha.empty() && want_sha != d.sha256) mismatch("SHA-256", want_sha, d.sha256);
    meta["source_md5"] = d.md5;
    meta["source_sha256"] = d.sha256;
    if (want_md5.empty() && want_sha.empty()) meta["source_checksum"] = "none pinned; recorded, not verified";
    std::string detected;
    try {
      tensors = read_vgg19_any(part, detected);
    } catch (...) {
      std::remove(part.c_str());
      throw;
    }
    std::remove(part.c_str());
  }
  write_stylize_weights(result.out, tensors, meta);
  return result;
}

}  // namespace stylize
