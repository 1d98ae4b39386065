#include "stylize/weights_tools/download.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cstdio>
#include <mutex>

#include "stylize/error.hpp"

namespace stylize {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  // File sink (download_to_file) or memory sink (fetch_range).
  std::string part_path;
  FILE* file = nullptr;
  bool append = false;
  std::string* memory = nullptr;
  uint64_t memory_limit = 0;
  bool range_ignored = false;
  CURL* curl = nullptr;
  uint64_t resumed_from = 0;
  const DownloadOptions* opts = nullptr;
  bool cancelled = false;
  std::string write_error;
};

bool is_range_response(CURL* curl) {
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  // file:// and ftp report 0 and honour the resume offset themselves.
  return code == 206 || code == 0;
}

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (t->memory) {
    if (!is_range_response(t->curl)) {
      t->range_ignored = true;
      return 0;  // stop: the server is sending the whole file
    }
    if (t->memory->size() + bytes > t->memory_limit) {
      t->range_ignored = true;
      return 0;
    }
    t->memory->append(data, bytes);
    return bytes;
  }
  if (!t->file) {
    // First data: a resumed transfer appends only if the server really sent a partial response.
    const bool resume = t->resumed_from > 0 && is_range_response(t->curl);
    if (t->resumed_from > 0 && !resume) t->resumed_from = 0;  // 200: the whole file again
    t->file = std::fopen(t->part_path.c_str(), resume ? "ab" : "wb");
    if (!t->file) {
      t->write_error = "cannot write " + in_quotes(t->part_path);
      return 0;
    }
  }
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->write_error = "cannot write " + in_quotes(t->part_path) + " (disk full?)";
    return 0;
  }
  return bytes;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->opts->on_progress &&
      !t->opts->on_progress(t->resumed_from + static_cast<uint64_t>(now),
                            total > 0 ? t->resumed_from + static_cast<uint64_t>(total) : 0)) {
    t->cancelled = true;
    return 1;
  }
  return 0;
}

// Runs the transfer; returns the HTTP status. Throws NetworkError for transport failures.
long perform(Transfer& t, const std::string& url, const std::string& range) {
  global_init();
  CURL* curl = curl_easy_init();
  if (!curl) throw NetworkError("cannot start a download (libcurl failed to initialise)");
  t.curl = curl;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, t.opts->connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, t.opts->stall_timeout_s);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "stylize/" STYLIZE_VERSION);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (!range.empty()) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  if (t.resumed_from > 0) curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(t.resumed_from));
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  t.curl = nullptr;
  if (t.file) {
    std::fclose(t.file);
    t.file = nullptr;
  }
  const std::string where = "cannot download " + in_quotes(url) + ": ";
  switch (rc) {
    case CURLE_OK:
      return status;
    case CURLE_WRITE_ERROR:
      if (t.range_ignored) return status;
      throw NetworkError(where + (t.write_error.empty() ? "write failed" : t.write_error));
    case CURLE_ABORTED_BY_CALLBACK:
      throw NetworkError(where + "cancelled; run the command again to resume");
    case CURLE_HTTP_RETURNED_ERROR:
      if (status == 416 && t.resumed_from > 0) return 416;
      throw NetworkError(where + "the server answered HTTP " + std::to_string(status) +
                         (status == 404 ? " (not found); check --url" : ""));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      throw NetworkError(where + "cannot resolve the host (offline? behind a proxy? set https_proxy)");
    case CURLE_COULDNT_CONNECT:
      throw NetworkError(where + "connection refused or unreachable (offline, or wrong host/port?)");
    case CURLE_OPERATION_TIMEDOUT:
      throw NetworkError(where + "the server stopped sending data for " + std::to_string(t.opts->stall_timeout_s) +
                         " s (or did not answer); run the command again to resume");
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      throw NetworkError(where + "the connection was cut before the end (" + as_literal(errbuf) +
                         "); run the command again to resume");
    case CURLE_RANGE_ERROR:
    case CURLE_BAD_DOWNLOAD_RESUME:
      if (t.resumed_from > 0) return 416;
      throw NetworkError(where + "the server refused to resume (" + as_literal(errbuf) + ")");
    default:
      throw NetworkError(where + as_literal(errbuf[0] ? errbuf : curl_easy_strerror(rc)));
  }
}

}  // namespace

uint64_t download_to_file(const std::string& url, const std::string& part_path, const DownloadOptions& opts) {
  Transfer t;
  t.part_path = part_path;
  t.opts = &opts;
  struct stat st {};
  if (stat(part_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) t.resumed_from = static_cast<uint64_t>(st.st_size);
  if (perform(t, url, "") == 416) {
    // The partial file is not a prefix the server can continue (stale or already complete):
    // start over once, from zero.
    std::remove(part_path.c_str());
    Transfer again;
    again.part_path = part_path;
    again.opts = &opts;
    perform(again, url, "");
  }
  if (stat(part_path.c_str(), &st) != 0) {
    throw NetworkError("cannot download " + in_quotes(url) + ": the server sent no data");
  }
  return static_cast<uint64_t>(st.st_size);
}

std::optional<std::string> fetch_range(const std::string& url, uint64_t begin, uint64_t end,
                                       const DownloadOptions& opts) {
  std::string out;
  Transfer t;
  t.memory = &out;
  t.memory_limit = end - begin;
  t.opts = &opts;
  perform(t, url, std::to_string(begin) + "-" + std::to_string(end - 1));
  if (t.range_ignored) return std::nullopt;
  if (out.size() != end - begin) {
    throw NetworkError("cannot download " + in_quotes(url) + ": asked for " + std::to_string(end - begin) +
                       " bytes from offset " + std::to_string(begin) + ", got " + std::to_string(out.size()));
  }
  return out;
}

}  // namespace stylize
