#include "server.hpp"

#include <httplib.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "openapi.hpp"
#include "redis_jobs.hpp"
#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/runtime.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace stylize::serve {
namespace {

// An answer other than success: status, a short machine-readable code and a sentence for people
// (the same shape as the runner's FormError, which parse() passes on as it is).
using HttpError = FormError;

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Replace, not throw: an answer may echo a client's bytes (a decoded path, a field name) that are
  // not UTF-8, and a throw here would turn a 4xx into a 500.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const HttpError& e) {
  send_json(res, e.status, {{"error", e.error}, {"detail", e.detail}});
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

thread_local Clock::time_point t_request_start;

// What a client sent, echoed in an answer: at most 64 bytes, cut before a UTF-8 continuation byte.
std::string clipped(const std::string& text) {
  if (text.size() <= 64) return text;
  size_t end = 64;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "...";
}

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

Server::Server(const Stylizer* stylizer, StylizeRequest defaults, ServeOptions options)
    : stylizer_(stylizer), opt_(std::move(options)), runner_(stylizer, std::move(defaults), opt_),
      http_(std::make_unique<httplib::Server>()) {
  // httplib's default socket options set SO_REUSEPORT, and with it a second server started on the
  // same port binds too and the kernel hands it half the connections (a client then sees its jobs
  // come and go). SO_REUSEADDR alone still lets a restart bind past the old connections' TIME_WAIT.
  http_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  load_filters();
  routes();
  auto run = [this](Job& job) { return runner_.run(job, *jobs_); };
  if (!opt_.queue_url.empty()) {
    // Each worker reads a stored form as a new request, with this process's limits and styles.
    jobs_ = make_redis_jobs(opt_, [this](const Form& form) { return runner_.parse(form, false); }, run);
    jobs_->start();
    return;
  }
  JobQueueOptions q{opt_.workers, opt_.queue_limit, opt_.result_ttl_s};
  if (!opt_.data_dir.empty()) {
    store_ = std::make_shared<JobStore>(opt_.data_dir);
    q.store = store_;
    q.max_stored_bytes = static_cast<int64_t>(opt_.max_stored_mb * 1024 * 1024);
  }
  auto queue = std::make_unique<JobQueue>(run, q);
  JobQueue& local = *queue;
  jobs_ = std::move(queue);
  recover(local);
}

std::shared_ptr<Job> Server::parse(const Form& form, bool sync) { return runner_.parse(form, sync); }

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
  const bool well_formed = id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
                             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                           });
  if (!well_formed) {
    throw HttpError{404, "not_found", "no job '" + clipped(id) + "': a job id is the 32 lower-case hex digits POST /v1/jobs answered"};
  }
  auto job = jobs_->find(id);
  if (!job) throw HttpError{404, "not_found", "no job " + id + " (unknown, or its result expired)"};
  return job;
}

std::shared_ptr<Job> Server::recovered_job(const JobStore::Recovered& r) {
  const StoredJob& rec = r.job;
  auto job = std::make_shared<Job>();
  job->id = rec.id;
  job->ext = rec.ext;
  job->total = rec.total;
  job->attempt = rec.attempt + (rec.state == "running" ? 1 : 0);  // it was running when the server stopped
  job->durable = true;
  job->warnings = rec.warnings;  // what its client was told: the record's, also over a parse below
  std::string why;
  if (job->attempt > opt_.max_attempts) {
    job->attempt = rec.attempt;  // the attempts made, as the record keeps them
    why = "the server stopped during each of its " + std::to_string(rec.attempt) + " attempts (a crash or a kill); not run again";
  } else if (!r.missing.empty()) {
    why = "its uploaded " + in_quotes(r.missing) + " is gone from the data dir";
  } else {
    try {
      auto parsed = parse(r.form, false);  // this server's limits and styles, as for a new job
      parsed->id = job->id;
      parsed->attempt = job->attempt;
      parsed->durable = true;
      parsed->warnings = job->warnings;
      job = parsed;
    } catch (const HttpError& e) {
      why = "its form no longer passes: " + e.detail;
    } catch (const std::exception& e) {
      why = "its form could not be read again: " + key_words(e);
    }
  }
  if (why.empty()) {
    job->state = JobState::queued;
    store_->set_queued(job->id, job->attempt);
  } else {
    job->state = JobState::failed;
    job->error = why;
    job->finished = Clock::now();
    store_->finish(job->id, "failed", why, {}, job->ext);
  }
  return job;
}

void Server::recover(JobQueue& queue) {
  if (!store_) return;
  const double now_unix = unix_seconds();
  const auto now = Clock::now();
  int queued = 0, again = 0, finished = 0, failed = 0, expired = 0;
  for (const auto& r : store_->load()) {
    const StoredJob& rec = r.job;
    std::shared_ptr<Job> job;
    if (rec.state == "queued" || rec.state == "running") {
      job = recovered_job(r);
      if (job->state == JobState::failed) {
        spdlog::warn("job {} (recovered) failed: {}", job->id, job->error);
        ++failed;
      } else {
        ++queued;
        again += job->attempt > 1;
      }
    } else {
      const double age = std::max(0.0, now_unix - rec.finished);
      if (age > opt_.result_ttl_s) {
        store_->remove(rec.id);
        ++expired;
        continue;
      }
      job = std::make_shared<Job>();
      job->id = rec.id;
      job->ext = rec.ext;
      job->total = rec.total;
      job->attempt = rec.attempt;
      job->durable = true;
      job->state = rec.state == "done" ? JobState::done : rec.state == "failed" ? JobState::failed : JobState::cancelled;
      job->error = rec.error;
      job->warnings = rec.warnings;
      job->result_on_disk = job->state == JobState::done;
      job->iteration = rec.iteration;
      job->loss = rec.loss;
      job->finished = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(age));
      ++finished;
    }
    queue.restore(job);
  }
  if (queued + finished + failed + expired > 0) {
    spdlog::info("data dir {}: {} job(s) to run ({} of them again after an interruption), {} finished kept, {} failed "
                 "at recovery, {} expired",
                 store_->dir(), queued, again, finished, failed, expired);
  }
  if (opt_.max_stored_mb > 0) {
    for (const auto& id : store_->enforce_cap(static_cast<int64_t>(opt_.max_stored_mb * 1024 * 1024))) {
      jobs_->forget(id);
      log_result_dropped(id, opt_.max_stored_mb);
    }
  }
}

namespace {

constexpr int kMaxStyles = 16;  // style images per job: each costs its own targets

// The fields a job endpoint takes (POST /v1/jobs, /v1/stylize) and the filter endpoint's.
const std::vector<std::string>& job_form_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"content", "style", "style_id", "format"};
    for (const RequestField& f : request_fields()) n.push_back(f.name);
    return n;
  }();
  return names;
}

const std::vector<std::string> kFilterFormNames = {"content", "filter", "format", "size"};

}  // namespace

Form read_form(const httplib::Request& req, const std::vector<std::string>& names) {
  Form form;
  int styles = 0;
  for (const auto& [name, part] : req.files) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      throw HttpError{400, "unknown_field", "form field '" + clipped(name) +
                                                "' is not one this endpoint takes; GET /openapi.json lists its fields"};
    }
    const bool image = name == "content" || name == "style";
    std::string key = name;
    if (name == "style" && ++styles > 1) {
      if (styles > kMaxStyles) {
        throw HttpError{400, "bad_field", "at most " + std::to_string(kMaxStyles) + " 'style' images per job"};
      }
      key = "style_" + std::to_string(styles);  // the 2nd, 3rd, ... in the order sent (for style_blend)
    } else if (form.count(name)) {
      throw HttpError{400, "bad_field", "field '" + name + "' is given more than once; send it once"};
    }
    form[key] = {image && part.filename.empty() ? name : clipped(part.filename), part.content};
  }
  if (styles > 0 && form.count("style_id")) {
    throw HttpError{400, "bad_field", "give 'style' images or a 'style_id', not both"};
  }
  return form;
}

void Server::submit(const std::shared_ptr<Job>& job) {
  try {
    jobs_->submit(job);
  } catch (const OutputError& e) {
    throw HttpError{503, "storage_failed", "the job could not be stored: " + key_words(e)};
  } catch (const QueueRefused& r) {
    if (r.reason == QueueRefused::shutting_down) {
      throw HttpError{503, "shutting_down", "the server is shutting down; try another instance"};
    }
    throw HttpError{429, "queue_full", "the queue holds " + std::to_string(r.queued) + " jobs; retry later"};
  }
}

namespace {

nlohmann::json status_json(const JobStatus& j) {
  nlohmann::json progress = {{"iteration", j.iteration}, {"total", j.total}, {"loss", j.loss}};
  if (j.eta_seconds >= 0) progress["eta_seconds"] = j.eta_seconds;
  nlohmann::json out = {{"id", j.id}, {"status", to_string(j.state)}, {"attempt", j.attempt}, {"progress", progress}};
  if (!j.error.empty()) out["error"] = j.error;
  if (!j.worker.empty()) out["worker"] = j.worker;
  if (j.cancel_requested) out["cancel_requested"] = true;
  if (j.state == JobState::done) out["result_url"] = "/v1/jobs/" + j.id + "/result";
  if (!j.warnings.empty()) out["warnings"] = j.warnings;
  return out;
}

void send_image(httplib::Response& res, const std::vector<uint8_t>& bytes, const std::string& ext) {
  res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(), image_mime_type(ext).c_str());
}

void require_multipart(const httplib::Request& req, const char* what) {
  if (!req.is_multipart_form_data()) throw HttpError{400, "bad_request", std::string("send multipart/form-data with ") + what};
}

const char* const kJobForm = "a 'content' image and a 'style' or 'style_id'";

}  // namespace

void Server::require_network() const {
  if (opt_.filters_only) {
    throw HttpError{404, "filters_only",
                    "this server runs fast filters only (started with --filters-only): GET /v1/filters, POST /v1/filter"};
  }
}

void Server::post_job(const httplib::Request& req, httplib::Response& res) {
  require_network();
  require_multipart(req, kJobForm);
  Form form = read_form(req, job_form_names());
  auto job = parse(form, false);
  job->form = std::move(form);
  job->durable = true;  // with a --data-dir: on disk before the 202
  submit(job);
  spdlog::info("job {} queued", job->id);
  nlohmann::json accepted = {{"id", job->id}, {"status", "queued"}, {"status_url", "/v1/jobs/" + job->id},
                             {"result_url", "/v1/jobs/" + job->id + "/result"}};
  if (!job->warnings.empty()) accepted["warnings"] = job->warnings;
  send_json(res, 202, accepted);
}

void Server::get_job(const httplib::Request& req, httplib::Response& res) {
  send_json(res, 200, status_json(jobs_->status(*find(req.matches[1].str()))));
}

void Server::get_result(const httplib::Request& req, httplib::Response& res) {
  auto job = find(req.matches[1].str());
  std::vector<uint8_t> bytes;
  JobStatus st;
  bool ready = false;
  try {
    ready = jobs_->result(*job, bytes, st);
  } catch (const OutputError& e) {
    // Why (a path on this server) is for its log; the client learns that the result is gone.
    spdlog::error("job {}: its result cannot be read: {}", job->id, render_fields(e.what(), FieldWords::flag));
    throw HttpError{410, "result_lost", "the job's result is no longer stored on this server; submit the job again"};
  }
  if (!ready) {
    // Queued or running: not yet. Failed or cancelled: never, and the code says so.
    const bool ended = st.state == JobState::failed || st.state == JobState::cancelled;
    throw HttpError{409, ended ? "no_result" : "not_ready",
                    std::string("job is ") + to_string(st.state) + (st.error.empty() ? "" : ": " + st.error) +
                        (ended ? "; it has no result" : "; poll its status until done")};
  }
  send_image(res, bytes, job->ext);
}

void Server::delete_job(const httplib::Request& req, httplib::Response& res) {
  auto job = find(req.matches[1].str());
  jobs_->cancel(job);
  spdlog::info("job {} cancel requested", job->id);
  // The job as it stands after the cancel: a Redis queue's record changed there, not in `job`.
  const auto now = jobs_->find(job->id);
  send_json(res, 200, status_json(jobs_->status(now ? *now : *job)));
}

void Server::post_stylize(const httplib::Request& req, httplib::Response& res) {
  require_network();
  require_multipart(req, kJobForm);
  Form form = read_form(req, job_form_names());
  auto job = parse(form, true);  // not on disk: its client waits on this connection
  job->form = std::move(form);   // what a Redis worker reads; a local queue drops it at submit
  submit(job);
  jobs_->wait(job);
  std::vector<uint8_t> bytes;
  JobStatus st;
  if (!jobs_->result(*job, bytes, st)) {
    const std::string why = st.error.empty() ? to_string(st.state) : st.error;
    throw HttpError{st.state == JobState::cancelled ? 503 : 500, "job_failed", why};
  }
  // The body is the image: warnings go in headers, one each (their text is ASCII, one line).
  for (const std::string& w : job->warnings) res.set_header("X-Stylize-Warning", w);
  send_image(res, bytes, job->ext);
  jobs_->forget(job->id);  // delivered: nothing to keep
}

void Server::get_styles(const httplib::Request&, httplib::Response& res) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, path] : runner_.styles()) list.push_back({{"id", id}});
  send_json(res, 200, {{"styles", list}});
}

void Server::load_filters() {
  if (opt_.filters_dir.empty()) return;
  std::error_code ec;
  if (!fs::is_directory(opt_.filters_dir, ec)) {
    throw InputError("filters folder " + in_quotes(opt_.filters_dir) + " does not exist");
  }
  for (const auto& e : fs::directory_iterator(opt_.filters_dir)) {
    if (!e.is_regular_file() || file_extension(e.path().string()) != "safetensors") continue;
    const std::string name = e.path().filename().string();
    if (name.size() > 17 && name.compare(name.size() - 17, 17, ".ckpt.safetensors") == 0) continue;  // training state
    LoadedFilter f = load_filter(e.path().string());  // a bad file stops the start: better than a missing filter
    if (stylizer_) {
      f.net.to(stylizer_->device());
      f.net.set_precision(stylizer_->precision());
    } else {  // a pure API or a filters-only server runs filters on the CPU
      f.net.set_precision(resolve_precision(opt_.filter_precision, at::Device(at::kCPU), engine_vector_features()));
    }
    filters_.emplace(e.path().stem().string(), std::move(f));
  }
  spdlog::info("{} filter(s) from {}", filters_.size(), opt_.filters_dir);
  if (filters_.empty()) {
    spdlog::warn("no filter (*.safetensors) in {}: POST /v1/filter has nothing to apply; 'stylize train' makes one",
                 opt_.filters_dir);
  }
}

// A filter file's metadata is text (safetensors' header maps strings to strings); the counts are
// answered as the numbers they are, where they read as whole numbers.
static nlohmann::json metadata_value(const std::string& key, const std::string& text) {
  if (key != "steps" && key != "images_seen") return text;
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) return text;
  return std::stoll(text);
}

void Server::get_filters(const httplib::Request&, httplib::Response& res) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, f] : filters_) {
    nlohmann::json item = {{"id", id}, {"width", f.info.arch.width}};
    for (const char* key : {"style", "steps", "images_seen", "created_by"}) {
      auto it = f.info.training.find(key);
      if (it != f.info.training.end()) item[key] = metadata_value(key, it->second);
    }
    list.push_back(item);
  }
  send_json(res, 200, {{"filters", list}});
}

// A content image through a named filter, answered at once: at the image's size, capped by
// --max-size (the longer side), or at the form's `size`.
void Server::post_filter(const httplib::Request& req, httplib::Response& res) {
  require_multipart(req, "a 'content' image and a 'filter' id");
  const Form form = read_form(req, kFilterFormNames);
  std::string id, ext = "png", text;
  if (!form_field(form, "filter", id)) throw HttpError{400, "missing_field", "the 'filter' id is missing; see GET /v1/filters"};
  auto it = filters_.find(id);
  if (it == filters_.end()) throw HttpError{400, "unknown_filter", "no filter '" + id.substr(0, 64) + "'; see GET /v1/filters"};
  if (form_field(form, "format", text)) {
    if (text != "png" && text != "jpg" && text != "jpeg" && text != "webp") {
      throw HttpError{400, "bad_field", "field 'format' must be png, jpg or webp"};
    }
    ext = text;
  }
  int size = 0;
  if (form_field(form, "size", text)) {
    size_t used = 0;
    try {
      size = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size()) throw HttpError{400, "bad_field", "field 'size' must be a whole number of px"};
    if (size < kFilterMinSide || size > opt_.max_size) {  // as /v1/jobs: 400 below what any server takes, 422 over this one's
      throw HttpError{size < kFilterMinSide ? 400 : 422, "out_of_range", "field 'size' is " + text + "; this server accepts " +
                                                                           std::to_string(kFilterMinSide) + " to " + std::to_string(opt_.max_size)};
    }
  }
  if (!form.count("content")) throw HttpError{400, "missing_field", "the 'content' image is missing"};
  LoadedImage img;
  try {
    img = decode_upload(form.at("content"), "content image", opt_.max_pixels);
  } catch (const InputError& e) {
    throw HttpError{400, "invalid_image", key_words(e)};
  }
  const int longest = size > 0 ? size : std::min(std::max(img.width, img.height), opt_.max_size);
  int w = 0, h = 0;
  try {
    std::tie(w, h) = filter_size(img.width, img.height, longest, "the content image");
  } catch (const InputError& e) {
    throw HttpError{400, "invalid_image", key_words(e)};
  }
  const at::Tensor rgb = (w == img.width && h == img.height) ? img.rgb : resize_image(img.rgb, w, h);
  const auto t = Clock::now();
  std::vector<uint8_t> bytes;
  try {
    at::Tensor out;
    {
      std::lock_guard<std::mutex> lock(filter_mu_);
      out = apply_filter(it->second.net, rgb);
    }
    bytes = encode_image(out, ext, opt_.quality);
  } catch (...) {
    std::lock_guard<std::mutex> lock(filter_stats_mu_);
    ++filter_failures_;
    throw;
  }
  {
    std::lock_guard<std::mutex> lock(filter_stats_mu_);
    ++filter_requests_;
    filter_seconds_ += seconds_between(t, Clock::now());
  }
  send_image(res, bytes, ext);
}

void Server::get_health(const httplib::Request&, httplib::Response& res) {
  const bool accepting = jobs_->accepting();
  const std::string down = accepting ? jobs_->unavailable() : "";
  nlohmann::json health = {{"status", !accepting ? "draining" : down.empty() ? "ok" : "queue_unavailable"},
                           {"queue", opt_.queue_url.empty() ? "local" : "redis"}};
  if (!down.empty()) health["detail"] = down;
  if (stylizer_) {
    health["device"] = stylizer_->device().str();
    health["precision"] = to_string(stylizer_->precision());
  }
  if (opt_.filters_only) health["mode"] = "filters_only";
  send_json(res, accepting && down.empty() ? 200 : 503, health);
}

void Server::get_metrics(const httplib::Request&, httplib::Response& res) {
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
  {
    std::lock_guard<std::mutex> lock(filter_stats_mu_);
    m += "# HELP stylize_filter_requests_total Images answered by POST /v1/filter.\n"
         "# TYPE stylize_filter_requests_total counter\n";
    m += "stylize_filter_requests_total " + std::to_string(filter_requests_) + "\n";
    m += "# HELP stylize_filter_failures_total POST /v1/filter requests that failed in the network or encoder.\n"
         "# TYPE stylize_filter_failures_total counter\n";
    m += "stylize_filter_failures_total " + std::to_string(filter_failures_) + "\n";
    m += "# HELP stylize_filter_seconds_total Time spent applying filters and encoding their images.\n# TYPE stylize_filter_seconds_total counter\n";
    m += "stylize_filter_seconds_total " + std::to_string(filter_seconds_) + "\n";
  }
  res.set_content(m, "text/plain; version=0.0.4");
}

void Server::get_openapi(const httplib::Request&, httplib::Response& res) {
  res.set_content(openapi_document(runner_.defaults(), opt_).dump(), "application/json");
}

void Server::routes() {
  auto& http = *http_;
  const size_t max_upload = static_cast<size_t>(opt_.max_upload_mb * 1024 * 1024);
  http.set_payload_max_length(max_upload);  // bodies with a Content-Length; refuse_before_reading() refuses the rest
  // One request per connection. A request refused before its body is read (404, 405, 411, 413, 401)
  // leaves that body on the connection, and cpp-httplib 0.11 reads it as the client's next request
  // and answers it (a body that is itself a request, smuggled past a proxy), whatever Connection
  // header the refusal sends: only the request's own header or the keep-alive count closes. A job
  // costs seconds; a new connection per status poll costs microseconds on the loopback or behind a
  // proxy that keeps its own.
  http.set_keep_alive_max_count(1);
  http.set_pre_routing_handler([this, max_upload](const httplib::Request& req, httplib::Response& res) {
    return before_routing(req, res, max_upload) ? httplib::Server::HandlerResponse::Handled
                                                : httplib::Server::HandlerResponse::Unhandled;
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
    spdlog::info("{} {} {} {:.1f} ms", clipped(req.method), clipped(req.path), res.status,
                 seconds_between(t_request_start, Clock::now()) * 1000);
  });
  // Every handler's HttpError becomes its status and JSON error; anything else a 500.
  using Handler = void (Server::*)(const httplib::Request&, httplib::Response&);
  auto guarded = [this](Handler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*h)(req, res);
      } catch (const HttpError& e) {
        if (e.status == 429) res.set_header("Retry-After", "10");
        send_error(res, e);
      } catch (const NetworkError& e) {  // Redis down or unreachable: another instance may answer
        // Its address and the server's flag names are for the operator's log, not the client.
        spdlog::warn("{} {}: {}", clipped(req.method), clipped(req.path), render_fields(e.what(), FieldWords::flag));
        res.set_header("Retry-After", "5");
        send_error(res, {503, "queue_unavailable", "the job queue does not answer now; retry later"});
      } catch (...) {
        // Paths and internals stay in the log; the client learns that it is the server's fault.
        const ErrorReport r = error_report(std::current_exception(), FieldWords::flag);
        spdlog::error("{} {}: {}", clipped(req.method), clipped(req.path), r.message);
        send_error(res, {500, "internal", "the server failed on this request (its log says why); retry, or tell its operator"});
      }
    };
  };
  // One table for the handlers and for the 404s and 405s before_routing() answers.
  const std::string id = "([^/]+)";  // find() answers a malformed id as an unknown one
  const std::vector<std::tuple<std::string, std::string, Handler>> table = {
      {"POST", "/v1/jobs", &Server::post_job},
      {"GET", "/v1/jobs/" + id, &Server::get_job},
      {"DELETE", "/v1/jobs/" + id, &Server::delete_job},
      {"GET", "/v1/jobs/" + id + "/result", &Server::get_result},
      {"POST", "/v1/stylize", &Server::post_stylize},
      {"GET", "/v1/styles", &Server::get_styles},
      {"GET", "/v1/filters", &Server::get_filters},
      {"POST", "/v1/filter", &Server::post_filter},
      {"GET", "/healthz", &Server::get_health},
      {"GET", "/metrics", &Server::get_metrics},
      {"GET", "/openapi.json", &Server::get_openapi},
  };
  for (const auto& [method, pattern, handler] : table) {
    if (method == "GET") http.Get(pattern, guarded(handler));
    if (method == "POST") http.Post(pattern, guarded(handler));
    if (method == "DELETE") http.Delete(pattern, guarded(handler));
    auto it = std::find_if(methods_.begin(), methods_.end(), [&](const auto& m) { return m.pattern == pattern; });
    if (it == methods_.end()) it = methods_.insert(methods_.end(), {pattern, std::regex(pattern), ""});
    it->allow += (it->allow.empty() ? "" : ", ") + method + (method == "GET" ? ", HEAD" : "");
  }
}

bool Server::before_routing(const httplib::Request& req, httplib::Response& res, size_t max_upload) {
  t_request_start = Clock::now();
  jobs_->expire();
  if (!opt_.api_key.empty()) {
    const std::string auth = req.get_header_value("Authorization");
    // The scheme's name is case-insensitive (RFC 9110): "bearer KEY" is as good as "Bearer KEY".
    std::string scheme = auth.substr(0, 7);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (scheme != "bearer " || !constant_time_equal(auth.substr(7), opt_.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, {401, "unauthorized", "send 'Authorization: Bearer <key>' with the server's API key"});
      return true;
    }
  }
  return refuse_before_reading(req, res, max_upload);
}

// What can be refused from the request line and headers alone, before its body is read: a path no
// route has (404), a method the path does not take (405, with Allow), a query string where no
// endpoint reads one (400), a body whose size is not
// announced (411: cpp-httplib would read a chunked or unframed body whole, whatever --max-upload-mb
// says) or is over the cap (413). True when it answered.
bool Server::refuse_before_reading(const httplib::Request& req, httplib::Response& res, size_t max_upload) {
  auto route = std::find_if(methods_.begin(), methods_.end(), [&](const auto& m) { return std::regex_match(req.path, m.regex); });
  // Each refusal leaves the body unread; the connection then closes (one request each: routes()).
  if (route == methods_.end()) {
    send_error(res, {404, "not_found", "no endpoint " + clipped(req.path) + "; GET /openapi.json lists them"});
    return true;
  }
  const std::string& allow = route->allow;
  const bool allowed = (", " + allow + ",").find(", " + req.method + ",") != std::string::npos;
  if (!allowed) {
    res.set_header("Allow", allow);
    send_error(res, {405, "method_not_allowed", clipped(req.method) + " is not a method of " + clipped(req.path) + "; it takes " + allow});
    return true;
  }
  // No endpoint reads a query string: on a POST or DELETE a `?size=64` would look like a setting and
  // be ignored. (A GET's, a cache-buster, changes nothing and is let through.)
  if (!req.params.empty() && req.method != "GET" && req.method != "HEAD") {
    send_error(res, {400, "unknown_field", "query parameter '" + clipped(req.params.begin()->first) + "' is not read by " +
                                               clipped(req.path) + (req.method == "POST" ? "; send settings as multipart "
                                               "form fields (GET /openapi.json lists them)" : "; send it without one")});
    return true;
  }
  // Any method: cpp-httplib reads a DELETE's chunked body too, and leaves a GET's unread on the connection.
  if (req.has_header("Transfer-Encoding") || (req.method == "POST" && !req.has_header("Content-Length"))) {
    send_error(res, {411, "length_required", "send the body with a Content-Length header (not chunked): this server checks an "
                                             "upload's size against its limit of " + std::to_string(max_upload) +
                                             " bytes (--max-upload-mb) before reading it"});
    return true;
  }
  const auto len = req.get_header_value<uint64_t>("Content-Length");
  if (len > max_upload) {
    send_error(res, {413, "too_large", "upload of " + std::to_string(len) + " bytes is over this server's limit of " +
                                           std::to_string(max_upload) + " bytes (--max-upload-mb)"});
    return true;
  }
  return false;
}

void Server::shutdown() {
  if (!jobs_->accepting()) return;
  spdlog::info("shutting down: no new jobs; draining for up to {:.0f} s", opt_.drain_seconds);
  jobs_->drain(opt_.drain_seconds);
  http_->stop();
}

}  // namespace stylize::serve
