// What `stylize serve` and `stylize worker` are configured with: the limits a request is held to,
// where jobs live, and how they run. Field names are the flags' without dashes.
#pragma once

#include <cstdint>
#include <string>

namespace stylize::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int workers = 1;
  int queue_limit = 16;
  double max_upload_mb = 20;
  int max_size = 1024;            // largest output side a job may ask for
  double max_output_mp = 0;       // most output pixels a job may ask for, in millions (0: --max-size alone)
  int max_iterations = 5000;
  int sync_max_size = 256;        // POST /v1/stylize limits: small jobs only
  int sync_max_iterations = 200;
  int64_t max_pixels = 64'000'000;
  std::string api_key;            // empty: no auth
  std::string styles_dir;         // optional: named styles
  std::string filters_dir;        // optional: fast filters (*.safetensors), filter id = file stem
  bool filters_only = false;      // no VGG19 network: the filter endpoints only; the job endpoints answer 404
  std::string filter_precision = "auto";  // filters' arithmetic where the server has no network (CPU)
  double result_ttl_s = 3600;
  double drain_seconds = 30;
  int quality = 95;               // JPEG/WebP results
  bool allow_tiled = false;       // jobs the plan tiles (a `tile` field, or too large to fit whole): 422 unless set
  std::string data_dir;           // durable jobs (job_store.hpp); empty: jobs in memory only
  double max_stored_mb = 0;       // stored results beyond this are dropped, oldest first (0: no cap)
  int max_attempts = 3;           // a job interrupted this many times (a crash each time) fails
  // Redis (redis_jobs.hpp): jobs on a stream shared by every API process and worker.
  std::string queue_url;          // redis://HOST:PORT[/DB]; empty: this process's own queue
  double visibility_timeout_s = 30;  // a claimed job no live worker heartbeats is claimed again
};

}  // namespace stylize::serve
