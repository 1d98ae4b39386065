// `stylize serve`: an HTTP API around the engine, built on jobs (a Gatys run takes seconds on a GPU
// and minutes on a CPU). One loaded network is shared by a bounded pool of workers; uploads are
// capped before they are read, images before they are decoded; results live in memory for a TTL.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

enum class JobState { queued, running, done, failed, cancelled };
const char* to_string(JobState s);

struct Job {
  std::string id;
  JobState state = JobState::queued;
  at::Tensor content;                // RGB 0-255 at the working size
  at::Tensor style;                  // uploaded style at its working size, or undefined
  std::string style_id;              // a --styles-dir style instead
  StylizeParams params;
  std::string ext = "png";
  int iteration = 0, total = 0;
  double loss = 0;
  std::string error;
  std::vector<uint8_t> result;
  std::chrono::steady_clock::time_point created, started, finished;
  std::atomic<bool> cancel{false};
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
  void worker_loop();
  void run_job(const std::shared_ptr<Job>& job);
  void expire_results();
  std::shared_ptr<Job> find(const std::string& id);
  const StyleTargets& named_style_targets(const std::string& style_id, int size);

  const Stylizer& stylizer_;
  StylizeParams defaults_;
  ServeOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::map<std::string, std::string> styles_;  // style id -> file in styles_dir (scanned once)

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  int running_ = 0;
  bool accepting_ = true, stopping_ = false;
  std::map<std::string, uint64_t> finished_counts_;  // terminal state -> count, for /metrics
  uint64_t iterations_total_ = 0;
  std::vector<std::thread> workers_;

  std::mutex targets_mu_;
  std::map<std::string, std::unique_ptr<StyleTargets>> target_cache_;
};

// Constant-time comparison (the API key check must not leak how many characters matched).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace stylize::serve
