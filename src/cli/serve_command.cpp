// `stylize serve`: loads the network once and serves the HTTP API until SIGTERM/SIGINT, then
// drains: no new jobs, running ones finish (or, after --drain-seconds, stop and stay in --data-dir
// for the next start).
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "../server/redis_jobs.hpp"
#include "../server/server.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"

namespace stylize::cli {
namespace {

struct ServeCommandOptions {
  serve::ServeOptions server;
  bool in_memory = false;
  std::string api_key_file;
  EngineFlags engine;
};

// What a job may ask for: the same limits on the API that checks a request and the worker that
// runs it.
void add_limit_flags(CLI::App& app, serve::ServeOptions& s) {
  app.add_option("--max-size", s.max_size, "Largest output side a job may ask for (px)")->transform(number_in(16, 16384))->capture_default_str();
  app.add_option("--max-iterations", s.max_iterations, "Most iterations a job may ask for")->transform(number_in(0, 1000000))->capture_default_str();
  app.add_option("--max-output-mp", s.max_output_mp,
                 "Most output pixels a job may ask for, in millions (a print-size job costs by its area; 0: --max-size alone)")
      ->transform(number_in(0.0, 1e6))->capture_default_str();
  app.add_flag("--allow-tiled", s.allow_tiled,
               "Run jobs that the plan tiles (a 'tile' field, or too large to fit whole); otherwise they are refused (HTTP 422)");
  app.add_option("--styles-dir", s.styles_dir, "Folder of named style images (style_id = file stem)");
}

// Where jobs wait and how often one is tried: Redis flags, shared by serve and worker.
CLI::Option* add_queue_flags(CLI::App& app, serve::ServeOptions& s) {
  auto* queue = app.add_option("--queue", s.queue_url,
                               "Jobs on Redis, shared by every API process and worker: redis://HOST[:PORT][/DB]")
                    ->type_name("URL");
  app.add_option("--visibility-timeout", s.visibility_timeout_s,
                 "With --queue: a claimed job whose worker stopped heartbeating this long is claimed again "
                 "(its next attempt)")
      ->transform(number_in(0.5, 86400.0))
      ->capture_default_str();
  app.add_option("--max-attempts", s.max_attempts,
                 "A job whose worker or server stopped during it (a crash, a kill) runs again, up to this many "
                 "attempts in all")
      ->transform(number_in(1, 100))
      ->capture_default_str();
  app.add_option("--result-ttl", s.result_ttl_s, "Seconds a finished job and its result are kept")->transform(number_in(1.0, 1e7))->capture_default_str();
  app.add_option("--max-stored-mb", s.max_stored_mb,
                 "Cap on the stored results (serve's --data-dir, or Redis): beyond it the oldest go first (0 = no cap)")
      ->transform(number_in(0.0, 1e9))
      ->capture_default_str();
  return queue;
}

void setup(CLI::App& app, ServeCommandOptions& o) {
  app.description(
      "Serves the HTTP API: POST /v1/jobs, GET /v1/jobs/{id}[/result], DELETE /v1/jobs/{id}, POST /v1/stylize,\n"
      "GET /v1/styles, /healthz, /metrics, /openapi.json. Binds to 127.0.0.1 unless --host says otherwise.\n"
      "Request flags (--size, --iterations, --style-weight, ...) set the defaults for form fields of the same names\n"
      "that a request leaves out; a form field accepts exactly what its flag accepts. Accepted jobs are kept in\n"
      "--data-dir: a restart (after a crash too) runs the unfinished ones and serves the finished. With --queue\n"
      "they are on Redis instead, run by 'stylize worker' processes anywhere (and by this one's --workers).");
  auto& s = o.server;
  app.add_option("--host", s.host, "Address to bind")->capture_default_str();
  app.add_option("--port", s.port, "Port (0 = any free port; the log says which)")->transform(number_in(0, 65535))->capture_default_str();
  app.add_option("--workers", s.workers,
                 "Jobs this process runs at once (they share the CPU threads or the GPU); 0 with --queue: a pure "
                 "API that loads no network and leaves every job to workers")
      ->transform(number_in(0, 64))
      ->capture_default_str();
  app.add_option("--queue-limit", s.queue_limit, "Jobs waiting beyond this get 429")->transform(number_in(1, 100000))->capture_default_str();
  app.add_option("--max-upload-mb", s.max_upload_mb, "Largest request body")->transform(number_in(0.01, 4096.0))->capture_default_str();
  add_limit_flags(app, s);
  app.add_option("--sync-max-size", s.sync_max_size, "POST /v1/stylize: largest size")->transform(number_in(16, 16384))->capture_default_str();
  app.add_option("--sync-max-iterations", s.sync_max_iterations, "POST /v1/stylize: most iterations")->transform(number_in(0, 1000000))->capture_default_str();
  app.add_option("--api-key-file", o.api_key_file, "File holding the API key; then every request needs 'Authorization: Bearer KEY'");
  app.add_option("--filters-dir", s.filters_dir,
                 "Folder of fast filters from 'stylize train' (*.safetensors; filter id = file stem) for POST /v1/filter");
  app.add_flag("--filters-only", s.filters_only,
               "Serve the filters of --filters-dir and nothing else: no VGG19 weights needed, filters on the CPU in "
               "--precision; the job endpoints answer 404");
  auto* data_dir = app.add_option("--data-dir", s.data_dir,
                                  "Folder for job records, uploads and results: accepted jobs survive a crash or "
                                  "restart, interrupted ones run again (default: ${XDG_STATE_HOME:-~/.local/state}/"
                                  "stylize/serve; one server per folder)")
                       ->type_name("DIR");
  auto* in_memory = app.add_flag("--in-memory", o.in_memory, "Keep jobs and results in memory only: a restart loses them")
                        ->excludes(data_dir);
  auto* queue = add_queue_flags(app, s);
  queue->excludes(data_dir)->excludes(in_memory);
  app.add_option("--drain-seconds", s.drain_seconds,
                 "On SIGTERM, how long running jobs may finish before they stop (and stay queued for the next start "
                 "or another worker)")
      ->transform(number_in(0.0, 86400.0))
      ->capture_default_str();
  add_engine_flags(app, o.engine);
}

// SIGTERM/Ctrl-C calls `shutdown` once, from a thread of its own.
template <typename F>
std::thread on_interrupt(F shutdown) {
  install_interrupt_handler();
  return std::thread([shutdown] {
    while (!interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    shutdown();
  });
}

int run(ServeCommandOptions& o) {
  request_from_flags(o.engine, Preprocessing::caffe);  // validates the flags before anything is loaded
  if (!o.api_key_file.empty()) {
    // read_file says why (no such file, a folder, no permission) where an ifstream only fails.
    std::vector<std::uint8_t> bytes;
    std::string why;
    if (!read_file(o.api_key_file, bytes, why)) {
      throw UsageError("cannot read --api-key-file " + in_quotes(o.api_key_file) + ": " + why +
                       "; give a file holding the key on its first line");
    }
    const std::string text(bytes.begin(), bytes.end());
    o.server.api_key = text.substr(0, text.find('\n'));
    while (!o.server.api_key.empty() && isspace(static_cast<unsigned char>(o.server.api_key.back()))) o.server.api_key.pop_back();
    if (o.server.api_key.size() < 16) {
      throw UsageError("the API key in " + in_quotes(o.api_key_file) + " is shorter than 16 characters; put a longer one "
                       "on its first line (e.g. from: head -c 24 /dev/urandom | base64)");
    }
  }
  if (o.server.filters_only) {
    if (o.server.filters_dir.empty()) throw UsageError("--filters-only needs --filters-dir: the filters are all it serves");
    if (!o.server.queue_url.empty()) throw UsageError("--filters-only excludes --queue: filters answer at once, never queued");
    o.server.workers = 0;  // no Gatys jobs, so no network and nothing stored
    o.in_memory = true;
    o.server.filter_precision = o.engine.precision;
    resolve_precision_flag(o.engine.precision, at::Device(at::kCPU));  // the server resolves it again; this warns
  } else if (o.server.workers == 0 && o.server.queue_url.empty()) {
    throw UsageError("--workers 0 runs no jobs here: give --queue redis://... so that 'stylize worker' processes run them");
  }
  if (!o.server.queue_url.empty()) serve::parse_redis_url(o.server.queue_url);  // a bad URL before the weights load
  if (o.in_memory || !o.server.queue_url.empty()) {
    o.server.data_dir.clear();
  } else if (o.server.data_dir.empty()) {
    o.server.data_dir = serve::default_data_dir();
  }
  o.server.quality = o.engine.quality;
  o.server.max_pixels = static_cast<int64_t>(o.engine.max_megapixels * 1e6);
  // A pure API loads no network: the workers check a job's plan against their own device.
  std::optional<Engine> engine;
  // Every layer the file serves: a job may name deeper layers than the defaults.
  if (o.server.workers > 0) {
    engine = load_engine(o.engine, deepest_layer(request_from_flags(o.engine, Preprocessing::caffe).loss), true);
  }
  if (o.server.filters_only) spdlog::info("filters only: no VGG19 network loaded; the job endpoints answer 404");
  const Preprocessing pre = engine ? engine->preprocessing : Preprocessing::caffe;
  serve::Server server(engine ? engine->stylizer.get() : nullptr, request_from_flags(o.engine, pre), o.server);
  const int port = server.bind();
  const std::string jobs = !o.server.queue_url.empty() ? "on " + o.server.queue_url
                           : o.server.data_dir.empty() ? "in memory only"
                                                       : "kept in " + o.server.data_dir;
  spdlog::info("listening on http://{}:{} ({} worker(s), queue limit {}{}; jobs {})", o.server.host, port,
               o.server.workers, o.server.queue_limit, o.server.api_key.empty() ? "" : ", API key required", jobs);
  std::thread watcher = on_interrupt([&server] { server.shutdown(); });
  server.run();
  request_interrupt();  // the HTTP loop ended on its own (e.g. a listen error): let the watcher finish
  watcher.join();
  spdlog::info("stopped");
  return 0;
}

struct WorkerCommandOptions {
  serve::ServeOptions server;
  EngineFlags engine;
};

void setup_worker(CLI::App& app, WorkerCommandOptions& o) {
  app.description(
      "Runs jobs from a Redis queue that 'stylize serve --queue' processes fill: claims one at a time per\n"
      "--workers, reports progress, stores the result in Redis, and acknowledges it. A job whose worker dies is\n"
      "claimed again by another after --visibility-timeout. Engine flags (weights, device, --size, ...) set what\n"
      "this worker runs with and the defaults for fields a job leaves out; give every worker the same\n"
      "--styles-dir as the API. SIGTERM: running jobs get --drain-seconds, then go back to the queue.");
  auto& s = o.server;
  s.workers = 1;
  app.add_option("--workers", s.workers, "Jobs this process runs at once (they share the CPU threads or the GPU)")
      ->transform(number_in(1, 64))
      ->capture_default_str();
  add_queue_flags(app, s)->required();
  add_limit_flags(app, s);
  app.add_option("--drain-seconds", s.drain_seconds, "On SIGTERM, how long running jobs may finish before they go back to the queue")
      ->transform(number_in(0.0, 86400.0))
      ->capture_default_str();
  add_engine_flags(app, o.engine);
}

int run_worker(WorkerCommandOptions& o) {
  request_from_flags(o.engine, Preprocessing::caffe);  // validates the flags before anything is loaded
  serve::parse_redis_url(o.server.queue_url);
  o.server.quality = o.engine.quality;
  o.server.max_pixels = static_cast<int64_t>(o.engine.max_megapixels * 1e6);
  Engine engine = load_engine(o.engine, deepest_layer(request_from_flags(o.engine, Preprocessing::caffe).loss), true);
  serve::JobRunner runner(engine.stylizer.get(), request_from_flags(o.engine, engine.preprocessing), o.server);
  std::unique_ptr<serve::JobService> jobs;
  jobs = serve::make_redis_jobs(
      o.server, [&runner](const serve::Form& form) { return runner.parse(form, false); },
      [&runner, &jobs](serve::Job& job) { return runner.run(job, *jobs); });
  jobs->start();
  spdlog::info("worker ready ({} at once, jobs from {})", o.server.workers, o.server.queue_url);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watcher = on_interrupt([&] {
    spdlog::info("stopping: running jobs get up to {:.0f} s, then go back to the queue", o.server.drain_seconds);
    jobs->drain(o.server.drain_seconds);
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  watcher.join();
  jobs.reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int serve_main(int argc, char** argv) {
  return command_main<ServeCommandOptions>("stylize serve", argc, argv, setup, run);
}

int worker_main(int argc, char** argv) {
  return command_main<WorkerCommandOptions>("stylize worker", argc, argv, setup_worker, run_worker);
}

}  // namespace stylize::cli
