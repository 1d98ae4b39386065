// `stylize weights fetch`: download a published VGG19, verify it, convert it to stylize's file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "stylize/weights_tools/download.hpp"

namespace stylize {

struct WeightsSource {
  std::string name;           // "caffe" | "torchvision"
  std::string url;
  std::string md5, sha256;    // pinned checksums of the whole file ("" = none pinned)
  uint64_t size = 0;          // expected size, 0 = unknown
  std::string preprocessing;
};

// Throws UsageError for an unknown name.
WeightsSource weights_source(const std::string& name);

struct FetchRequest {
  std::string source = "caffe";
  std::string url;             // overrides the source's URL (mirror, local server, file://)
  std::string out;             // default: default_weights_install_path()
  std::string md5, sha256;     // override the pinned checksum
  bool force = false;
  std::string cache_dir;       // where partial downloads live; default ${XDG_CACHE_HOME:-~/.cache}/stylize
  DownloadOptions download;
  // Called once with the URL when a download starts: after `out` was checked, so never before a
  // refusal or for weights already there.
  std::function<void(const std::string& url)> on_start;
};

struct FetchResult {
  std::string out;
  bool already_present = false;
  bool ranged = false;         // only the features.* bytes were fetched (HTTP range requests)
  std::string url, md5, sha256;
  uint64_t bytes = 0;          // bytes transferred in this run
};

// Without `force`: full VGG19 weights already at `out` are kept (already_present), and any other
// file there is refused with OutputError (a shallow prefix or a stranger's file is not replaced
// unasked); a folder there is refused even with it. An unknown `source` throws UsageError, download
// and checksum failures NetworkError, a downloaded file that is not VGG19 WeightsError, a write that
// fails OutputError; `out` is written atomically, so it is either the old file or the new one.
FetchResult fetch_weights(const FetchRequest& request);

}  // namespace stylize
