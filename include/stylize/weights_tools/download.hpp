// HTTP(S)/file downloads with libcurl: redirects, proxy variables ($http_proxy, $https_proxy,
// $no_proxy — libcurl reads them), resume, connect and stall timeouts, cancellation.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace stylize {

struct DownloadOptions {
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // abort when no byte arrives for this long
  // Called often with bytes so far and the expected total (0 if unknown); return false to cancel.
  std::function<bool(uint64_t done, uint64_t total)> on_progress;
};

// Downloads `url` into `part_path`, appending to what is already there when the server honours
// a Range request (resume), restarting from zero when it does not. The file is created only once
// data arrives, so a 404 or a refused connection leaves nothing. Throws NetworkError with a
// message naming the URL and the reason. Returns the final size.
uint64_t download_to_file(const std::string& url, const std::string& part_path, const DownloadOptions& opts);

// Fetches bytes [begin, end) of `url` into memory. Returns nullopt when the server ignored the
// Range header (it would have sent the whole file; the transfer is stopped early).
std::optional<std::string> fetch_range(const std::string& url, uint64_t begin, uint64_t end,
                                       const DownloadOptions& opts);

}  // namespace stylize
