// What a job is and how one runs, without HTTP: a form into a StylizeRequest (fields by name over
// the defaults, the images decoded and capped, this server's limits, the plan's tiling check), and
// a job's run on the engine with progress and cancel. `stylize serve` and `stylize worker` both
// use it, so a job is read and run alike wherever it lands.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "job_queue.hpp"
#include "serve_options.hpp"
#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/stylizer.hpp"

namespace stylize::serve {

// A form that cannot become a job: the HTTP status, a short machine-readable code and a sentence
// for people (fields named as form keys).
struct FormError {
  int status;
  std::string error, detail;
};

// The value of a form field; false when the form lacks it. Throws FormError 400 when the field
// came as a file (a setting is text; its bytes are not echoed).
bool form_field(const Form& form, const std::string& name, std::string& value);
// An uploaded image, checked and decoded (throws InputError as decode_image does).
LoadedImage decode_upload(const FormPart& file, const std::string& role, int64_t max_pixels);
// 32 lower-case hex digits from a random 128 bits.
std::string new_job_id();

class JobRunner {
 public:
  // `stylizer` null: a pure API (parse() checks fields and images but not the plan; run() throws).
  // `defaults`: the fields a request leaves out; its images are ignored. Throws InputError when
  // options.styles_dir is not a folder or holds an image that cannot be read (each is read now).
  JobRunner(const Stylizer* stylizer, StylizeRequest defaults, const ServeOptions& options);

  // A form into a queued job with a new id (images at their working sizes); `sync` applies the
  // synchronous limits. Throws FormError.
  std::shared_ptr<Job> parse(const Form& form, bool sync);
  // One job on the engine, its progress reported through jobs.progress(), stopping at job.cancel.
  JobService::Outcome run(Job& job, JobService& jobs);

  const std::map<std::string, std::string>& styles() const { return styles_; }  // style id -> file
  const StylizeRequest& defaults() const { return defaults_; }

 private:
  at::Tensor named_style(const std::string& style_id) const;  // a --styles-dir image, read at the start
  void check_output_pixels(const StylizeRequest& r) const;  // --max-output-mp; throws FormError 422

  const Stylizer* stylizer_;
  StylizeRequest defaults_;
  ServeOptions opt_;
  std::map<std::string, std::string> styles_;       // scanned once
  std::map<std::string, at::Tensor> named_images_;  // style id -> its image, at source resolution (read-only after the start)
  StyleTargetCache style_cache_;                    // named styles' targets, per size
};

}  // namespace stylize::serve
