#include "server.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <new>
#include <nlohmann/json.hpp>
#include <random>

#include "openapi.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace stylize::serve {
namespace {

// An answer other than success: status, a short machine-readable code and a sentence for people.
struct HttpError {
  int status;
  std::string error, detail;
};

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, const HttpError& e) {
  send_json(res, e.status, {{"error", e.error}, {"detail", e.detail}});
}

std::string new_id() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

bool field(const httplib::Request& req, const std::string& name, std::string& value) {
  if (!req.has_file(name)) return false;
  value = req.get_file_value(name).content;
  return true;
}

double number_field(const httplib::Request& req, const std::string& name, double fallback, double lo, double hi,
                    int out_of_range_status = 400) {
  std::string text;
  if (!field(req, name, text)) return fallback;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v)) {
    throw HttpError{400, "bad_field", "field '" + name + "' must be a number, got '" + text.substr(0, 40) + "'"};
  }
  if (v < lo || v > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "field '%s' is %g; this server accepts %g to %g", name.c_str(), v, lo, hi);
    throw HttpError{out_of_range_status, "out_of_range", buf};
  }
  return v;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

thread_local Clock::time_point t_request_start;

}  // namespace

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Length is not secret enough to hide, but the content comparison touches every byte.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

Server::Server(const Stylizer& stylizer, StylizeParams defaults, ServeOptions options)
    : stylizer_(stylizer), defaults_(std::move(defaults)), opt_(std::move(options)),
      http_(std::make_unique<httplib::Server>()) {
  if (!opt_.styles_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(opt_.styles_dir, ec)) {
      throw InputError("styles folder " + in_quotes(opt_.styles_dir) + " does not exist");
    }
    for (const auto& e : fs::directory_iterator(opt_.styles_dir)) {
      const std::string ext = file_extension(e.path().string());
      if (e.is_regular_file() && is_writable_image_extension(ext == "jpeg" ? "jpg" : ext)) {
        styles_[e.path().stem().string()] = e.path().string();
      }
    }
  }
  routes();
  jobs_ = std::make_unique<JobQueue>([this](Job& job) { return run_job(job); },
                                     JobQueueOptions{opt_.workers, opt_.queue_limit, opt_.result_ttl_s});
}

Server::~Server() = default;  // the queue cancels its jobs and joins its workers

int Server::bind() {
  int port = opt_.port == 0 ? http_->bind_to_any_port(opt_.host) : (http_->bind_to_port(opt_.host, opt_.port) ? opt_.port : -1);
  if (port < 0) {
    throw Error(ExitCode::usage, "cannot listen on " + opt_.host + ":" + std::to_string(opt_.port) +
                                     " (in use, or not an address of this machine); pick another --port or --host");
  }
  return port;
}

void Server::run() { http_->listen_after_bind(); }

std::shared_ptr<Job> Server::find(const std::string& id) {
  auto job = jobs_->find(id);
  if (!job) throw HttpError{404, "not_found", "no job " + id + " (unknown, or its result expired)"};
  return job;
}

const StyleTargets& Server::named_style_targets(const std::string& style_id, int size) {
  std::lock_guard<std::mutex> lock(targets_mu_);
  const std::string key = style_id + "|" + std::to_string(size);
  auto it = target_cache_.find(key);
  if (it != target_cache_.end()) return *it->second;
  LoadedImage img = load_image(styles_.at(style_id), "style image", opt_.max_pixels);
  const int longest = style_longest_side(size, opt_.style_scale);
  auto [w, h] = fit_longest(img.width, img.height, longest);
  auto targets = std::make_unique<StyleTargets>(stylizer_.style_targets(defaults_.loss, {resize_image(img.rgb, w, h)}, {}));
  spdlog::info("style '{}' targets computed at {} px (cached)", style_id, size);
  return *target_cache_.emplace(key, std::move(targets)).first->second;
}

JobQueue::Outcome Server::run_job(Job& job) {
  spdlog::info("job {} running ({}x{}, {} iterations)", job.id, job.content.size(3), job.content.size(2),
               job.params.optimizer.iterations);
  const int size = static_cast<int>(std::max(job.content.size(2), job.content.size(3)));
  StyleTargets uploaded;
  const StyleTargets* targets = &uploaded;
  if (!job.style_id.empty()) {
    targets = &named_style_targets(job.style_id, size);
  } else {
    uploaded = stylizer_.style_targets(job.params.loss, {job.style}, {});
  }
  TransferCallbacks cb;
  // Progress every 200 ms (and at the ends): each report reads the loss back from the device.
  auto last_report = std::chrono::steady_clock::now();
  cb.progress_at = [&](int evaluation, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (evaluation != 1 && evaluation != total && now - last_report < std::chrono::milliseconds(200)) return false;
    last_report = now;
    return true;
  };
  cb.on_progress = [&](const Progress& p) { jobs_->progress(job, p); };
  cb.should_stop = [&] { return job.cancel.load(); };
  StylizeOutput out = stylizer_.stylize(job.content, *targets, job.params, cb);
  JobQueue::Outcome outcome;
  outcome.cancelled = out.transfer.interrupted;
  if (!outcome.cancelled) outcome.bytes = encode_image(out.rgb, job.ext, opt_.quality);
  return outcome;
}

void Server::routes() {
  auto& http = *http_;
  const size_t max_upload = static_cast<size_t>(opt_.max_upload_mb * 1024 * 1024);
  http.set_payload_max_length(max_upload);  // also catches chunked uploads without Content-Length

  http.set_pre_routing_handler([this, max_upload](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    jobs_->expire();
    if (!opt_.api_key.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      if (auth.rfind(prefix, 0) != 0 || !constant_time_equal(auth.substr(prefix.size()), opt_.api_key)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, {401, "unauthorized", "send 'Authorization: Bearer <key>' with the server's API key"});
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    // Refuse an oversized upload from its Content-Length, before reading the body.
    const auto len = req.get_header_value<uint64_t>("Content-Length");
    if (len > max_upload) {
      res.set_header("Connection", "close");
      send_error(res, {413, "too_large", "upload of " + std::to_string(len) + " bytes is over this server's limit of " +
                                             std::to_string(max_upload) + " bytes (--max-upload-mb)"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* code = res.status == 404 ? "not_found" : res.status == 413 ? "too_large" : "bad_request";
    const char* detail = res.status == 404   ? "no such endpoint; see GET /openapi.json"
                         : res.status == 413 ? "the upload is over this server's limit"
                                             : "the request could not be read (malformed HTTP or multipart)";
    send_json(res, res.status, {{"error", code}, {"detail", detail}});
  });

  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::info("{} {} {} {:.1f} ms", req.method, req.path, res.status,
                 seconds_between(t_request_start, Clock::now()) * 1000);
  });

  // Turns a request into a job; throws HttpError.
  auto parse = [this](const httplib::Request& req, bool sync) {
    if (!req.is_multipart_form_data()) {
      throw HttpError{400, "bad_request", "send multipart/form-data with a 'content' image and a 'style' or 'style_id'"};
    }
    auto job = std::make_shared<Job>();
    job->id = new_id();
    job->params = defaults_;
    const int max_size = sync ? std::min(opt_.sync_max_size, opt_.max_size) : opt_.max_size;
    const int max_iter = sync ? std::min(opt_.sync_max_iterations, opt_.max_iterations) : opt_.max_iterations;
    const int size = static_cast<int>(number_field(req, "size", std::min(opt_.default_size, max_size), 16, max_size, 422));
    job->params.optimizer.iterations = static_cast<int>(
        number_field(req, "iterations", std::min(opt_.default_iterations, max_iter), 0, max_iter, 422));
    job->params.loss.content_weight = number_field(req, "content_weight", defaults_.loss.content_weight, 0, 1e12);
    job->params.loss.style_weight = number_field(req, "style_weight", defaults_.loss.style_weight, 0, 1e12);
    job->params.loss.tv_weight = number_field(req, "tv_weight", defaults_.loss.tv_weight, 0, 1e12);
    job->params.seed = static_cast<uint64_t>(number_field(req, "seed", static_cast<double>(defaults_.seed), 0, 4294967295.0));
    std::string text;
    if (field(req, "original_colors", text)) {
      if (text != "true" && text != "false" && text != "1" && text != "0") {
        throw HttpError{400, "bad_field", "field 'original_colors' must be true or false"};
      }
      job->params.original_colors = text == "true" || text == "1";
    }
    if (field(req, "format", text)) {
      if (text != "png" && text != "jpg" && text != "jpeg" && text != "webp") {
        throw HttpError{400, "bad_field", "field 'format' must be png, jpg or webp"};
      }
      job->ext = text;
    }
    if (!req.has_file("content")) throw HttpError{400, "missing_field", "the 'content' image is missing"};
    const auto content = req.get_file_value("content");
    try {
      LoadedImage img = decode_image(std::vector<uint8_t>(content.content.begin(), content.content.end()),
                                     content.filename.empty() ? "content" : content.filename, "content image",
                                     opt_.max_pixels);
      auto [w, h] = fit_longest(img.width, img.height, size);
      job->content = resize_image(img.rgb, w, h);
      if (req.has_file("style")) {
        const auto style = req.get_file_value("style");
        LoadedImage s = decode_image(std::vector<uint8_t>(style.content.begin(), style.content.end()),
                                     style.filename.empty() ? "style" : style.filename, "style image", opt_.max_pixels);
        const int longest = style_longest_side(size, opt_.style_scale);
        auto [sw, sh] = fit_longest(s.width, s.height, longest);
        job->style = resize_image(s.rgb, sw, sh);
      } else if (field(req, "style_id", text)) {
        if (styles_.count(text) == 0) {
          throw HttpError{400, "unknown_style", "no style '" + text.substr(0, 64) + "'; see GET /v1/styles"};
        }
        job->style_id = text;
      } else {
        throw HttpError{400, "missing_field", "give a 'style' image or a 'style_id' from GET /v1/styles"};
      }
    } catch (const InputError& e) {
      throw HttpError{400, "invalid_image", render_fields(e.what(), FieldWords::key)};
    }
    job->total = job->params.optimizer.iterations;
    job->created = Clock::now();
    return job;
  };

  auto submit = [this](const std::shared_ptr<Job>& job) {
    try {
      jobs_->submit(job);
    } catch (const QueueRefused& r) {
      if (r.reason == QueueRefused::shutting_down) {
        throw HttpError{503, "shutting_down", "the server is shutting down; try another instance"};
      }
      throw HttpError{429, "queue_full", "the queue holds " + std::to_string(r.queued) + " jobs; retry later"};
    }
  };

  auto status_json = [this](const JobStatus& j) {
    nlohmann::json progress = {{"iteration", j.iteration}, {"total", j.total}, {"loss", j.loss}};
    if (j.eta_seconds >= 0) progress["eta_seconds"] = j.eta_seconds;
    nlohmann::json out = {{"id", j.id}, {"status", to_string(j.state)}, {"progress", progress}};
    if (!j.error.empty()) out["error"] = j.error;
    if (j.state == JobState::done) out["result_url"] = "/v1/jobs/" + j.id + "/result";
    return out;
  };

  auto guarded = [](auto&& body) {
    return [body](const httplib::Request& req, httplib::Response& res) {
      try {
        body(req, res);
      } catch (const HttpError& e) {
        if (e.status == 429) res.set_header("Retry-After", "10");
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, {500, "internal", render_fields(e.what(), FieldWords::key)});
      }
    };
  };

  http.Post("/v1/jobs", guarded([=](const httplib::Request& req, httplib::Response& res) {
              auto job = parse(req, false);
              submit(job);
              spdlog::info("job {} queued", job->id);
              send_json(res, 202, {{"id", job->id}, {"status", "queued"}, {"status_url", "/v1/jobs/" + job->id},
                                   {"result_url", "/v1/jobs/" + job->id + "/result"}});
            }));

  http.Get(R"(/v1/jobs/([0-9a-f]{32}))", guarded([=](const httplib::Request& req, httplib::Response& res) {
             send_json(res, 200, status_json(jobs_->status(*find(req.matches[1].str()))));
           }));

  http.Get(R"(/v1/jobs/([0-9a-f]{32})/result)", guarded([=](const httplib::Request& req, httplib::Response& res) {
             auto job = find(req.matches[1].str());
             std::vector<uint8_t> bytes;
             JobStatus st;
             if (!jobs_->result(*job, bytes, st)) {
               throw HttpError{409, "not_ready", std::string("job is ") + to_string(st.state) +
                                                     (st.error.empty() ? "" : ": " + st.error)};
             }
             res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(), image_mime_type(job->ext).c_str());
           }));

  http.Delete(R"(/v1/jobs/([0-9a-f]{32}))", guarded([=](const httplib::Request& req, httplib::Response& res) {
                auto job = find(req.matches[1].str());
                jobs_->cancel(job);
                spdlog::info("job {} cancel requested", job->id);
                send_json(res, 200, status_json(jobs_->status(*job)));
              }));

  http.Post("/v1/stylize", guarded([=](const httplib::Request& req, httplib::Response& res) {
              auto job = parse(req, true);
              submit(job);
              jobs_->wait(job);
              std::vector<uint8_t> bytes;
              JobStatus st;
              if (!jobs_->result(*job, bytes, st)) {
                const std::string why = st.error.empty() ? to_string(st.state) : st.error;
                throw HttpError{st.state == JobState::cancelled ? 503 : 500, "job_failed", why};
              }
              res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(), image_mime_type(job->ext).c_str());
              jobs_->forget(job->id);  // delivered: nothing to keep
            }));

  http.Get("/v1/styles", guarded([=](const httplib::Request&, httplib::Response& res) {
             nlohmann::json list = nlohmann::json::array();
             for (const auto& [id, path] : styles_) list.push_back({{"id", id}});
             send_json(res, 200, {{"styles", list}});
           }));

  http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const bool accepting = jobs_->accepting();
    send_json(res, accepting ? 200 : 503, {{"status", accepting ? "ok" : "draining"},
                                            {"device", stylizer_.device().str()},
                                            {"precision", to_string(stylizer_.precision())}});
  });

  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const QueueMetrics q = jobs_->metrics();
    std::string m;
    m += "# HELP stylize_jobs Jobs by status: queued and running now; done, failed, cancelled since start.\n";
    m += "# TYPE stylize_jobs gauge\n";
    const std::pair<const char*, uint64_t> counts[] = {{"queued", q.queued}, {"running", q.running}, {"done", q.done},
                                                        {"failed", q.failed}, {"cancelled", q.cancelled}};
    for (const auto& [status, n] : counts) {
      m += std::string("stylize_jobs{status=\"") + status + "\"} " + std::to_string(n) + "\n";
    }
    m += "# HELP stylize_queue_depth Jobs waiting for a worker.\n# TYPE stylize_queue_depth gauge\n";
    m += "stylize_queue_depth " + std::to_string(q.queued) + "\n";
    m += "# HELP stylize_iterations_total Optimiser iterations run.\n# TYPE stylize_iterations_total counter\n";
    m += "stylize_iterations_total " + std::to_string(q.iterations_total) + "\n";
    m += "# HELP stylize_iterations_per_second Iteration rate of the running jobs.\n"
         "# TYPE stylize_iterations_per_second gauge\n";
    m += "stylize_iterations_per_second " + std::to_string(q.iterations_per_second) + "\n";
    res.set_content(m, "text/plain; version=0.0.4");
  });

  http.Get("/openapi.json", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kOpenApi, "application/json");
  });
}

void Server::shutdown() {
  if (!jobs_->accepting()) return;
  spdlog::info("shutting down: no new jobs; draining for up to {:.0f} s", opt_.drain_seconds);
  jobs_->drain(opt_.drain_seconds);
  http_->stop();
}

}  // namespace stylize::serve
