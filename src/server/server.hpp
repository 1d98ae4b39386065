// `stylize serve`: an HTTP API around the engine, built on jobs (a Gatys run takes seconds on a GPU
// and minutes on a CPU). The jobs live in a JobQueue (job_queue.hpp: workers, cancel, drain, TTL,
// counters); this layer turns requests into jobs and jobs into responses. One loaded network is
// shared by the workers; uploads are capped before they are read, images before they are decoded.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "job_queue.hpp"
#include "stylize/stylizer.hpp"

namespace httplib {
class Server;
}

namespace stylize::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int workers = 1;
  int queue_limit = 16;
  double max_upload_mb = 20;
  int max_size = 1024;            // largest output side a job may ask for
  int max_iterations = 5000;
  int sync_max_size = 256;        // POST /v1/stylize limits: small jobs only
  int sync_max_iterations = 200;
  int64_t max_pixels = 64'000'000;
  std::string api_key;            // empty: no auth
  std::string styles_dir;         // optional: named styles
  double result_ttl_s = 3600;
  double drain_seconds = 30;
  // Defaults for fields a request leaves out (from the engine flags).
  int default_size = 512;
  int default_iterations = 300;
  double style_scale = 1.0;
  int quality = 95;
};

class Server {
 public:
  Server(const Stylizer& stylizer, StylizeParams defaults, ServeOptions options);
  ~Server();

  // Binds (port 0 = any free port) and returns the port; then run() serves until stop().
  int bind();
  void run();
  // Graceful shutdown: refuse new jobs, let queued and running ones finish for up to
  // drain_seconds, cancel what is left, then stop the HTTP server.
  void shutdown();

 private:
  void routes();
  JobQueue::Outcome run_job(Job& job);
  std::shared_ptr<Job> find(const std::string& id);  // throws HttpError 404
  const StyleTargets& named_style_targets(const std::string& style_id, int size);

  const Stylizer& stylizer_;
  StylizeParams defaults_;
  ServeOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::map<std::string, std::string> styles_;  // style id -> file in styles_dir (scanned once)

  std::mutex targets_mu_;
  std::map<std::string, std::unique_ptr<StyleTargets>> target_cache_;
  std::unique_ptr<JobQueue> jobs_;  // last: its workers stop before the members they use go
};

// Constant-time comparison (the API key check must not leak how many characters matched).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace stylize::serve
