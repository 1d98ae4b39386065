// `stylize serve`: an HTTP API around the engine, built on jobs (a Gatys run takes seconds on a GPU
// and minutes on a CPU). The jobs live in a JobQueue (job_queue.hpp: workers, cancel, drain, TTL,
// counters); this layer turns requests into jobs and jobs into responses. One loaded network is
// shared by the workers; uploads are capped before they are read, images before they are decoded.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "job_queue.hpp"
#include "job_runner.hpp"
#include "serve_options.hpp"
#include "stylize/filter.hpp"
#include "stylize/recipe.hpp"
#include "stylize/stylizer.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace stylize::serve {


class Server {
 public:
  // `defaults`: the fields a request leaves out (size and iterations capped by the limits below);
  // its images are ignored. `stylizer` null: a pure API over a Redis queue (--workers 0), which
  // checks requests and runs none. Throws InputError (styles or filters folder), WeightsError (a
  // filter file), OutputError (the data dir), NetworkError (Redis), UsageError (its URL).
  Server(const Stylizer* stylizer, StylizeRequest defaults, ServeOptions options);
  ~Server();

  // Binds (port 0 = any free port) and returns the port; then run() serves until stop().
  int bind();
  void run();
  // Graceful shutdown: refuse new jobs, let queued and running ones finish for up to
  // drain_seconds, cancel what is left, then stop the HTTP server.
  void shutdown();

 private:
  void routes();
  // Auth, routes, methods and the upload cap, before a handler runs; true when it answered already.
  bool before_routing(const httplib::Request& req, httplib::Response& res, size_t max_upload);
  bool refuse_before_reading(const httplib::Request& req, httplib::Response& res, size_t max_upload);
  // The handlers: each reads a request and answers, or throws an HttpError (routes() sends it).
  void require_network() const;  // HttpError 404 on a --filters-only server
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

  // A form into a job, or HttpError (the runner's FormError).
  std::shared_ptr<Job> parse(const Form& form, bool sync);
  // The jobs --data-dir holds, back in the queue: queued and interrupted ones run, finished ones
  // are served until their TTL.
  void recover(JobQueue& queue);
  std::shared_ptr<Job> recovered_job(const JobStore::Recovered& r);
  void submit(const std::shared_ptr<Job>& job);       // throws HttpError 429 / 503
  std::shared_ptr<Job> find(const std::string& id);  // throws HttpError 404
  void load_filters();  // every --filters-dir file, checked and on the device; throws WeightsError

  const Stylizer* stylizer_;
  ServeOptions opt_;
  JobRunner runner_;
  std::unique_ptr<httplib::Server> http_;
  struct Methods {
    std::string pattern;
    std::regex regex;
    std::string allow;  // "GET, HEAD, DELETE"
  };
  std::vector<Methods> methods_;  // per route path, the methods it answers (written by routes() only)

  std::map<std::string, LoadedFilter> filters_;  // filter id -> network (read-only after start)
  // One filter pass at a time: each uses every core, and two at once only slow both down. Decoding,
  // resizing and encoding happen outside it; the counters have their own lock, so /metrics never
  // waits for a pass.
  std::mutex filter_mu_, filter_stats_mu_;
  uint64_t filter_requests_ = 0, filter_failures_ = 0;  // under filter_stats_mu_
  double filter_seconds_ = 0;
  std::shared_ptr<JobStore> store_;  // --data-dir; null in memory-only mode or with Redis
  std::unique_ptr<JobService> jobs_;  // last: its workers stop before the members they use go
};

// The parts of a multipart request, each of `names`. Throws HttpError 400 for a part of another name,
// a name given twice, more than 16 'style' images, or 'style' images with a 'style_id'. Several
// 'style' images become style, style_2, style_3, ... in the order sent. An image part without a file
// name is given its field name, so that it is stored (and reported) as a file; file names are cut to 64.
Form read_form(const httplib::Request& req, const std::vector<std::string>& names);

// Constant-time comparison (the API key check must not leak how many characters matched).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace stylize::serve
