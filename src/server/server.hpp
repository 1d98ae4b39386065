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
#include "stylize/filter.hpp"
#include "stylize/recipe.hpp"
#include "stylize/stylizer.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
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
  std::string filters_dir;        // optional: fast filters (*.safetensors), filter id = file stem
  double result_ttl_s = 3600;
  double drain_seconds = 30;
  int quality = 95;               // JPEG/WebP results
  bool allow_tiled = false;       // jobs the plan tiles (a `tile` field, or too large to fit whole): 422 unless set
  std::string data_dir;           // durable jobs (job_store.hpp); empty: jobs in memory only
  double max_stored_mb = 0;       // stored results beyond this are dropped, oldest first (0: no cap)
  int max_attempts = 3;           // a job interrupted this many times (a crash each time) fails
};

class Server {
 public:
  // `defaults`: the fields a request leaves out (size and iterations capped by the limits below);
  // its images are ignored.
  Server(const Stylizer& stylizer, StylizeRequest defaults, ServeOptions options);
  ~Server();

  // Binds (port 0 = any free port) and returns the port; then run() serves until stop().
  int bind();
  void run();
  // Graceful shutdown: refuse new jobs, let queued and running ones finish for up to
  // drain_seconds, cancel what is left, then stop the HTTP server.
  void shutdown();

 private:
  void routes();
  // Auth and the upload cap, before a handler runs; true when it answered already.
  bool before_routing(const httplib::Request& req, httplib::Response& res, size_t max_upload);
  // The handlers: each reads a request and answers, or throws an HttpError (routes() sends it).
  void post_job(const httplib::Request& req, httplib::Response& res);
  void get_job(const httplib::Request& req, httplib::Response& res);
  void get_result(const httplib::Request& req, httplib::Response& res);
  void delete_job(const httplib::Request& req, httplib::Response& res);
  void post_stylize(const httplib::Request& req, httplib::Response& res);
  void get_styles(const httplib::Request& req, httplib::Response& res);
  void get_filters(const httplib::Request& req, httplib::Response& res);
  void post_filter(const httplib::Request& req, httplib::Response& res);
  void get_health(const httplib::Request& req, httplib::Response& res);
  void get_metrics(const httplib::Request& req, httplib::Response& res);
  void get_openapi(const httplib::Request& req, httplib::Response& res);

  // A form into a job (fields, images, plan()); `sync` applies the synchronous limits.
  std::shared_ptr<Job> parse(const Form& form, bool sync);
  // The jobs --data-dir holds, back in the queue: queued and interrupted ones run, finished ones
  // are served until their TTL.
  void recover();
  std::shared_ptr<Job> recovered_job(const JobStore::Recovered& r);
  void submit(const std::shared_ptr<Job>& job);       // throws HttpError 429 / 503
  JobQueue::Outcome run_job(Job& job);                // on a queue worker: the engine's run()
  std::shared_ptr<Job> find(const std::string& id);  // throws HttpError 404
  at::Tensor named_style(const std::string& style_id);  // a --styles-dir image, read once
  void load_filters();  // every --filters-dir file, checked and on the device; throws WeightsError

  const Stylizer& stylizer_;
  StylizeRequest defaults_;
  ServeOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::map<std::string, std::string> styles_;  // style id -> file in styles_dir (scanned once)

  std::mutex styles_mu_;
  std::map<std::string, at::Tensor> named_images_;  // style id -> its image, at source resolution
  StyleTargetCache style_cache_;                    // named styles' targets, per size

  std::map<std::string, LoadedFilter> filters_;  // filter id -> network (read-only after start)
  // One filter pass at a time: each uses every core, and two at once only slow both down. Decoding,
  // resizing and encoding happen outside it; the counters have their own lock, so /metrics never
  // waits for a pass.
  std::mutex filter_mu_, filter_stats_mu_;
  uint64_t filter_requests_ = 0, filter_failures_ = 0;  // under filter_stats_mu_
  double filter_seconds_ = 0;
  std::shared_ptr<JobStore> store_;  // --data-dir; null in memory-only mode
  std::unique_ptr<JobQueue> jobs_;  // last: its workers stop before the members they use go
};

// The parts of a multipart request that the server reads (request fields by name, the images,
// style_id, format, filter), the first of each name; others are ignored. An image part without a
// file name is given its field name, so that it is stored (and reported) as a file.
Form read_form(const httplib::Request& req);

// Constant-time comparison (the API key check must not leak how many characters matched).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace stylize::serve
