#include "job_runner.hpp"

#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/recipe.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace stylize::serve {

bool form_field(const Form& form, const std::string& name, std::string& value) {
  auto it = form.find(name);
  if (it == form.end()) return false;
  // A setting sent as a file: refused by name, without echoing the file's bytes into the message.
  if (!it->second.filename.empty()) {
    throw FormError{400, "bad_field", "field '" + name + "' is a setting: send it as text, not as a file"};
  }
  value = it->second.content;
  return true;
}

LoadedImage decode_upload(const FormPart& file, const std::string& role, int64_t max_pixels) {
  return decode_image(std::vector<uint8_t>(file.content.begin(), file.content.end()), file.filename, role, max_pixels,
                      "send a smaller image");
}

namespace {

// The request fields of a form (every field of request_fields(), by its name), over the server's
// defaults. Throws FormError: 400 bad_field for text that is not of the field's type, 422 out_of_range
// for size or iterations beyond this server's limits, 400 out_of_range for what validate() refuses.
void read_fields(const Form& req, StylizeRequest& r, int max_size, int max_iterations) {
  auto bad = [](const UsageError& e, const char* code) {
    return FormError{400, code, key_words(e)};
  };
  std::vector<std::string> given;
  try {
    for (const RequestField& f : request_fields()) {
      std::string text;
      if (form_field(req, f.name, text)) set_field(r, f.name, text), given.push_back(f.name);
    }
  } catch (const UsageError& e) {
    throw bad(e, "bad_field");
  }
  // This server's limits first (422: a valid request, too big here), then what the engine refuses.
  if (r.size > max_size) {
    throw FormError{422, "out_of_range", "field 'size' is " + std::to_string(r.size) + "; this server accepts 16 to " +
                                             std::to_string(max_size)};
  }
  for (int n : r.iterations) {
    if (n > max_iterations) {
      throw FormError{422, "out_of_range", "field 'iterations' is " + std::to_string(n) +
                                               "; this server accepts 0 to " + std::to_string(max_iterations)};
    }
  }
  try {
    validate(r);
    check_given_fields_apply(r, given);  // the server's L-BFGS flags under a form's adam are defaults
  } catch (const FieldError& e) {
    throw bad(e, e.kind == FieldError::range ? "out_of_range" : "bad_field");
  } catch (const UsageError& e) {
    throw bad(e, "bad_field");
  }
}

}  // namespace

std::string new_job_id() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

JobRunner::JobRunner(const Stylizer* stylizer, StylizeRequest defaults, const ServeOptions& options)
    : stylizer_(stylizer), defaults_(std::move(defaults)), opt_(options) {
  if (!opt_.styles_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(opt_.styles_dir, ec)) {
      throw InputError("styles folder " + in_quotes(opt_.styles_dir) + " does not exist");
    }
    // Each is read now: one that cannot be (empty, corrupt, too large) stops the start with its
    // name, as a bad --filters-dir file does, rather than being listed and then failing its jobs
    // with a message that names a path on this server.
    for (const auto& e : fs::directory_iterator(opt_.styles_dir)) {
      const std::string ext = file_extension(e.path().string());
      if (e.is_regular_file() && is_writable_image_extension(ext == "jpeg" ? "jpg" : ext)) {
        const std::string id = e.path().stem().string();
        styles_[id] = e.path().string();
        named_images_[id] = load_image(e.path().string(), "--styles-dir image", opt_.max_pixels).rgb;
      }
    }
  }
  defaults_.resize = resize_image;
}

at::Tensor JobRunner::named_style(const std::string& style_id) const { return named_images_.at(style_id); }

JobService::Outcome JobRunner::run(Job& job, JobService& jobs) {
  if (!stylizer_) throw UsageError("this process has no network to run jobs (a --workers 0 API)");
  const StylizeRequest& r = job.request;
  spdlog::info("job {} running ({} px, {} iteration(s) over {} scale(s){})", job.id, r.size, job.total, r.scales,
               job.attempt > 1 ? ", attempt " + std::to_string(job.attempt) : "");
  // Progress every 200 ms (and at the ends): each report reads the loss back from the device. Scales
  // count on: the job's progress runs over all of them.
  auto last_report = std::chrono::steady_clock::now();
  int done_before = 0;
  RunCallbacks cb;
  cb.progress_at = [&](int evaluation, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (evaluation != 1 && evaluation != total && now - last_report < std::chrono::milliseconds(200)) return false;
    last_report = now;
    return true;
  };
  // A tiled scale runs tile by tile, each visit counting its iterations from 1: the job's progress
  // is then the share of the scale's visits done, in the scale's iterations, so that it only grows
  // and its ETA holds (it restarted at every visit: 25, 20, 1, 12 ... of 100).
  TileProgress visit;  // the visit under way at a tiled scale; tiles == 0 at an untiled one
  int scale_iterations = 0;
  cb.on_scale_begin = [&](int k, const StylizePlan& plan) {
    visit = {};
    scale_iterations = plan.scales[static_cast<size_t>(k)].iterations;
  };
  cb.on_tile = [&](int, const TileProgress& t) { visit = t; };
  cb.on_progress = [&](int, const Progress& p) {
    Progress all = p;
    if (visit.tiles > 0) {
      const double visits = static_cast<double>(visit.sweeps) * visit.tiles;
      const double done = (visit.sweep - 1) * visit.tiles + (visit.tile - 1) +
                          static_cast<double>(p.iteration) / std::max(1, p.total);
      all.iteration = static_cast<int>(done / visits * scale_iterations);
    }
    all.iteration += done_before;
    all.total = job.total;
    jobs.progress(job, all);
  };
  cb.on_scale_end = [&](int, const ScaleResult& sr) { done_before += sr.plan.iterations; };
  cb.should_stop = [&] { return job.cancel.load(); };
  const StylizeResult out = stylize::run(*stylizer_, r, cb, &style_cache_);
  if (!out.interrupted) {
    // The reports above carry the lowest loss the loop evaluated; the result is the image after the
    // last step, whose loss run() measures apart (`final`, what the CLI logs): a done job shows it.
    Progress last;
    last.iteration = done_before;
    last.total = job.total;
    last.loss = out.final.total;
    last.seconds = out.seconds_optimise;
    jobs.progress(job, last);
  }
  JobService::Outcome outcome;
  outcome.cancelled = out.interrupted;
  if (!outcome.cancelled) outcome.bytes = encode_image(out.rgb, job.ext, opt_.quality);
  return outcome;
}

// A print-size job costs by its area, which --max-size alone bounds only loosely (a 16384 px side
// allows 268 MP): --max-output-mp caps the output's pixels. 422, as the other limits.
void JobRunner::check_output_pixels(const StylizeRequest& r) const {
  if (opt_.max_output_mp <= 0) return;
  const auto [w, h] = fit_longest(static_cast<int>(r.content.size(3)), static_cast<int>(r.content.size(2)), r.size);
  const double mp = static_cast<double>(w) * static_cast<double>(h) / 1e6;
  if (mp > opt_.max_output_mp) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "the output would be %dx%d px (%.1f MP); this server makes at most %.1f MP: ask for a smaller 'size'",
                  w, h, mp, opt_.max_output_mp);
    throw FormError{422, "too_large", buf};
  }
}

std::shared_ptr<Job> JobRunner::parse(const Form& req, bool sync) {
  auto job = std::make_shared<Job>();
  job->id = new_job_id();
  StylizeRequest& r = job->request;
  r = defaults_;
  const int max_size = sync ? std::min(opt_.sync_max_size, opt_.max_size) : opt_.max_size;
  const int max_iter = sync ? std::min(opt_.sync_max_iterations, opt_.max_iterations) : opt_.max_iterations;
  r.size = std::min(r.size, max_size);  // the server's default, within its limit
  for (int& n : r.iterations) n = std::min(n, max_iter);
  if (r.init == InitFrom::image) r.init = InitFrom::content;  // an --init FILE is for the command line
  read_fields(req, r, max_size, max_iter);
  if (r.init == InitFrom::image) {
    throw FormError{400, "bad_field", "field 'init' must be content, random or style here (an image file as the start "
                                      "is for the command line's --init FILE)"};
  }
  std::string text;
  if (form_field(req, "format", text)) {
    if (text != "png" && text != "jpg" && text != "jpeg" && text != "webp") {
      throw FormError{400, "bad_field", "field 'format' must be png, jpg or webp"};
    }
    job->ext = text;
  }
  if (!req.count("content")) throw FormError{400, "missing_field", "the 'content' image is missing"};
  try {
    if (stylizer_) check_network_reaches(*stylizer_, r);  // a layer deeper than the weights: now, not in the queue
    r.content = decode_upload(req.at("content"), "content image", opt_.max_pixels).rgb;
    if (req.count("style")) {
      r.styles.clear();
      auto part_name = [](int k) { return k == 1 ? std::string("style") : "style_" + std::to_string(k); };  // read_form's
      for (int k = 1; req.count(part_name(k)); ++k) {
        r.styles.push_back(decode_upload(req.at(part_name(k)), "style image", opt_.max_pixels).rgb);
      }
      validate(r);  // style_blend's count against the styles
    } else if (form_field(req, "style_id", text)) {
      if (styles_.count(text) == 0) {
        throw FormError{400, "unknown_style", "no style '" + text.substr(0, 64) + "'; see GET /v1/styles"};
      }
      job->style_id = text;
      r.styles = {named_style(text)};
      r.style_key = "style_id:" + text;  // its targets are cached per size
    } else {
      throw FormError{400, "missing_field", "give a 'style' image or a 'style_id' from GET /v1/styles"};
    }
    check_output_pixels(r);
    // Too small, too large for memory: now, not in the queue. A tiled job holds a worker for long:
    // only where the server allows it.
    // A pure API (no network) leaves this to the worker, which fails the job with the same reason.
    const StylizePlan p = stylizer_ ? plan(r, stylizer_->device(), stylizer_->precision()) : StylizePlan{};
    const bool tiled = std::any_of(p.scales.begin(), p.scales.end(), [](const ScalePlan& sp) { return sp.tile > 0; });
    if (tiled && !opt_.allow_tiled) {
      throw FormError{422, "too_large", "this job would be tiled (" + render_fields(p.scales.back().tiling_reason, FieldWords::key) +
                                            "), and this server does not run tiled jobs (--allow-tiled)"};
    }
    for (const std::string& w : run_warnings(r, p)) job->warnings.push_back(render_fields(w, FieldWords::key));
  } catch (const InputError& e) {
    throw FormError{400, "invalid_image", key_words(e)};
  } catch (const FieldError& e) {
    throw FormError{400, e.kind == FieldError::range ? "out_of_range" : "bad_field", key_words(e)};
  } catch (const UsageError& e) {
    throw FormError{400, "bad_field", key_words(e)};
  } catch (const ResourceError& e) {
    throw FormError{422, "too_large", key_words(e)};
  }
  shrink_to_output(r);  // the queue holds working-size images only
  for (int k = 0; k < r.scales; ++k) job->total += r.iterations.size() == 1 ? r.iterations[0] : r.iterations[k];
  job->created = Clock::now();
  return job;
}


}  // namespace stylize::serve
