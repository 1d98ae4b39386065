// `stylize batch`: many content × style jobs in one process. The network is loaded once, each
// style's Gram targets are computed once per size and reused, failures are per job, outputs appear
// atomically, and a rerun skips what is done — so an interrupted overnight batch just continues.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <new>

#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "job_line.hpp"
#include "stylize/error.hpp"
#include "stylize/filter.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/report.hpp"
#include "stylize/runtime.hpp"

namespace fs = std::filesystem;

namespace stylize::cli {
namespace {

struct BatchOptions {
  std::vector<std::string> inputs;
  std::vector<std::string> styles;
  std::vector<std::string> filters;  // fast filters: each makes its own jobs, as --style does
  std::string out_dir;
  std::string job_file;
  bool from_stdin = false;
  bool recursive = false;
  std::string name = "{content}_{style}.{ext}";
  std::string ext = "png";
  bool overwrite = false;
  bool skip_existing = false;  // the default behaviour; the flag exists so scripts can say it
  bool fail_fast = false;
  bool dry_run = false;
  std::string report;
  std::string shard;  // "K/N": run only the K-th of N parts of the job list
  EngineFlags engine;
};

struct Job {
  int index = 0;
  std::string content;
  std::vector<std::string> styles;
  std::string filter;       // a fast filter's file instead of styles (no optimisation)
  std::string output;
  // Request fields from a job-file line (style_weight, iterations, ...), as text; over the flags.
  std::map<std::string, std::string> fields;
  int size = 0;             // the job's output size, for {size} in --name
  std::string setup_error;  // a malformed job-file line: the job fails with this (fields in backticks)
  // Results.
  std::string status = "pending";  // pending, done, skipped, failed, interrupted
  std::string error;
  std::string style_targets;       // computed | cached
  nlohmann::json losses;
  double seconds = 0;
  int iterations_done = 0;
  std::vector<std::string> warnings;  // run_warnings, in field names
};

std::string stem(const std::string& path) { return fs::path(path).stem().string(); }

// {content} {style} {ext} {index} {size}: documented in --help and README.
std::string apply_template(const std::string& tmpl, const Job& job, const std::string& ext, int size) {
  std::string style = job.filter.empty() ? "" : stem(job.filter);
  for (const auto& s : job.styles) style += (style.empty() ? "" : "+") + stem(s);
  const std::map<std::string, std::string> values = {
      {"content", stem(job.content)}, {"style", style}, {"ext", ext},
      {"index", std::to_string(job.index)}, {"size", std::to_string(size)}};
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '{') {
      const auto close = tmpl.find('}', i);
      if (close == std::string::npos) throw UsageError("--name " + in_quotes(tmpl) + " has an unclosed '{'");
      const std::string key = tmpl.substr(i + 1, close - i - 1);
      auto it = values.find(key);
      if (it == values.end()) {
        throw UsageError("--name " + in_quotes(tmpl) + " uses unknown placeholder {" + as_literal(key) +
                         "}; known: {content} {style} {ext} {index} {size}");
      }
      out += it->second;
      i = close;
    } else {
      out += tmpl[i];
    }
  }
  if (out.find('/') != std::string::npos) throw UsageError("output name " + in_quotes(out) + " must not contain '/'");
  return out;
}

// One line's job: its images, output name and fields; validated as the flags are (no images read).
void parse_job_line(const std::string& line, const BatchOptions& o, Job& job) {
  JobLine j = cli::parse_job_line(line, request_from_flags(o.engine, Preprocessing::caffe), o.styles,
                                  o.filters.empty() ? "" : o.filters.front());
  job.content = std::move(j.content);
  job.styles = std::move(j.styles);
  job.filter = std::move(j.filter);
  job.output = std::move(j.output);
  job.fields = std::move(j.fields);
  job.size = j.size;
}

std::vector<Job> read_job_file(const std::string& path, const BatchOptions& o) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read job file " + in_quotes(path) + ": no such file or not readable");
  std::vector<Job> jobs;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    const std::string where = "job file " + in_quotes(path) + " line " + std::to_string(number) + ": ";
    Job job;
    try {
      parse_job_line(line, o, job);
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (what.rfind("[json.exception", 0) == 0 && what.find("] ") != std::string::npos) {
        what = what.substr(what.find("] ") + 2);  // nlohmann's error id means nothing to a user
      }
      job.setup_error = where + (dynamic_cast<const Error*>(&e) ? what : as_literal(what));  // JSON errors quote the line
      job.output.clear();
      if (job.content.empty()) job.content = "(line " + std::to_string(number) + ")";
    }
    jobs.push_back(job);
  }
  return jobs;
}

// Nothing a batch writes may be something it reads: an output folder among the content folders
// would feed each run's outputs to the next as new content, and an output named as an input would
// replace it. Throws OutputError before any work.
void check_batch_outputs(const BatchOptions& o, const std::vector<Job>& jobs) {
  check_out_dir_outside_inputs(o.out_dir, o.inputs, o.recursive);
  NamedPaths inputs = {{"the --init image", o.engine.init_file}, {"the --job-file", o.job_file},
                       {"the weights file", weights_path_if_any(o.engine)}};
  NamedPaths outputs = {{"--report", o.report}};
  for (const auto& job : jobs) {
    const std::string n = std::to_string(job.index);
    inputs.push_back({"the content image of job " + n, job.content});
    for (const auto& path : job.styles) inputs.push_back({"a style image of job " + n, path});
    inputs.push_back({"the filter of job " + n, job.filter});
    outputs.push_back({"the output of job " + n, job.output});
  }
  check_outputs_spare_inputs(outputs, inputs);
}

std::vector<Job> make_jobs(const BatchOptions& o) {
  std::vector<Job> jobs;
  if (!o.job_file.empty()) {
    jobs = read_job_file(o.job_file, o);
  } else {
    std::vector<std::string> inputs = o.inputs;
    if (o.from_stdin) {
      std::string line;
      while (std::getline(std::cin, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) inputs.push_back(line);
      }
    }
    const int size = request_from_flags(o.engine, Preprocessing::caffe).size;
    for (const auto& content : expand_inputs(inputs, o.recursive)) {
      for (const auto& style : o.styles) {
        Job job;
        job.content = content;
        job.styles = {style};
        job.size = size;
        jobs.push_back(job);
      }
      for (const auto& filter : o.filters) {
        Job job;
        job.content = content;
        job.filter = filter;
        job.size = size;
        jobs.push_back(job);
      }
    }
  }
  std::vector<bool> named_by_line(jobs.size());  // its job-file line's "output", not --name
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& job = jobs[i];
    job.index = static_cast<int>(i + 1);
    named_by_line[i] = !job.output.empty();
    if (job.output.empty() && job.setup_error.empty()) {
      job.output = apply_template(o.name, job, o.ext, job.size);
      const std::string ext = file_extension(job.output);
      if (!is_writable_image_extension(ext)) {
        throw OutputError("--name " + in_quotes(o.name) + " makes " + in_quotes(job.output) + ", and " +
                          in_quotes(ext.empty() ? std::string("(no extension)") : "." + ext) +
                          " is no image format this build writes; end it in {ext} or .png, .jpg, .webp, .tif, .bmp");
      }
    }
    if (!job.output.empty()) job.output = (fs::path(o.out_dir) / job.output).string();
  }
  // Two jobs writing one file would silently lose work.
  std::map<std::string, int> seen;
  for (auto& job : jobs) {
    if (job.output.empty()) continue;
    auto [it, fresh] = seen.emplace(job.output, job.index);
    if (!fresh) {
      // The fix is where the names came from: the lines' "output" keys, --name, or one of each.
      const bool first = named_by_line[static_cast<size_t>(it->second - 1)], second = named_by_line[static_cast<size_t>(job.index - 1)];
      const std::string fix = first && second ? "give each line its own \"output\""
                              : first || second ? "change the line's \"output\" or --name"
                                                : "use {index} in --name";
      throw UsageError("jobs " + std::to_string(it->second) + " and " + std::to_string(job.index) +
                       " would both write " + in_quotes(job.output) + "; " + fix);
    }
  }
  return jobs;
}

// What a job is, whatever its place in the list: its images, filter, fields and an output name it
// was given (a name made from --name may hold {index}, which is a place).
std::string job_key(const Job& j) {
  std::string key = j.content + '\0' + j.filter + '\0';
  for (const auto& s : j.styles) key += s + '\x1f';
  for (const auto& [name, text] : j.fields) key += '\0' + name + '=' + text;
  return key + '\0' + j.setup_error;
}

struct Shard {
  int k = 1, n = 1;  // the K-th of N, K counted from 1
};

Shard parse_shard(const std::string& text) {
  Shard s;
  char slash = 0, rest = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &s.k, &slash, &s.n, &rest) != 3 || slash != '/' || s.n < 1) {
    throw UsageError("--shard " + in_quotes(text) + " is not K/N (for example 2/8: the second of eight parts)");
  }
  if (s.k < 1 || s.k > s.n) {
    throw UsageError("--shard " + in_quotes(text) + ": K counts from 1 to N (Kubernetes' JOB_COMPLETION_INDEX counts from 0: " +
                     "pass $((JOB_COMPLETION_INDEX + 1))/N)");
  }
  return s;
}

// The K-th of N parts: jobs sorted by what they are (not where they were listed) and dealt out in
// turn, so every process of an array agrees on the parts whatever order its shell or file system
// listed the files in, the parts are disjoint, together the whole list, and differ in size by at
// most one. Indices (and so {index} names) stay those of the whole list.
std::vector<Job> select_shard(std::vector<Job> jobs, const Shard& s) {
  std::vector<size_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::vector<std::string> keys;
  for (const auto& j : jobs) keys.push_back(job_key(j));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<bool> mine(jobs.size(), false);
  for (size_t rank = 0; rank < order.size(); ++rank) mine[order[rank]] = static_cast<int>(rank % s.n) == s.k - 1;
  std::vector<Job> out;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (mine[i]) out.push_back(std::move(jobs[i]));
  }
  return out;
}

nlohmann::json job_json(const Job& j) {
  nlohmann::json out = {{"index", j.index}, {"content", j.content}, {"styles", j.styles}, {"output", j.output},
                        {"status", j.status}, {"seconds", j.seconds}};
  if (!j.filter.empty()) out["filter"] = j.filter;
  if (!j.error.empty()) out["error"] = j.error;
  if (!j.style_targets.empty()) out["style_targets"] = j.style_targets;
  if (!j.losses.is_null()) out["losses"] = j.losses;
  if (!j.warnings.empty()) out["warnings"] = warnings_json(j.warnings);
  if (j.iterations_done > 0) out["iterations_done"] = j.iterations_done;
  return out;
}

// One job through the engine's recipe: its fields over the flags, its images, the shared cache.
void run_job(Job& job, const StylizeRequest& defaults, const at::Tensor& init_image, const Engine& engine,
             StyleTargetCache& cache, int print_every, const EngineFlags& f, const std::string& label) {
  StylizeRequest r = defaults;
  for (const auto& [name, text] : job.fields) set_field(r, name, text);
  r.content = read_image(job.content, "content image", f).rgb;
  for (const auto& s : job.styles) {
    r.styles.push_back(read_image(s, "style image", f).rgb);
    r.style_key += fs::absolute(s).lexically_normal().string() + "|";
  }
  r.init_image = init_image;
  const std::string first_style = job.styles.empty() ? "" : job.styles[0];
  warn_if_init_stretched(r, f, first_style, label);
  // For the report, before shrink_to_output does the stretching. As run() begins: the network's depth,
  // then the plan (sizes only), so that a job fails with the same reason as before.
  check_network_reaches(*engine.stylizer, r);
  job.warnings = run_warnings(r, plan(r, engine.stylizer->device(), engine.stylizer->precision()),
                              init_start_name(r, f, first_style));
  shrink_to_output(r);  // the originals are not needed past here
  std::unique_ptr<ProgressDisplay> progress;
  RunCallbacks cb;
  cb.on_scale_begin = [&](int k, const StylizePlan& plan) {
    const int n = static_cast<int>(plan.scales.size());
    const std::string scale_label =
        label + (n > 1 ? "scale " + std::to_string(k + 1) + "/" + std::to_string(n) + " " : "");
    log_tiling(r, plan, k, scale_label);
    progress = std::make_unique<ProgressDisplay>(print_every, f.quiet > 0, scale_label);
  };
  cb.on_scale_end = [&](int, const ScaleResult&) { progress->finish(); };
  cb.on_progress = [&](int, const Progress& p) { progress->update(p.iteration, p.total, p.loss, p.seconds); };
  cb.progress_at = [&](int iteration, int total) { return progress->due(iteration, total); };
  cb.should_stop = [] { return interrupt_requested(); };
  const StylizeResult result = run(*engine.stylizer, r, cb, &cache);
  job.iterations_done = result.iterations;
  job.style_targets = "cached";
  for (const auto& sr : result.scales) {
    if (!sr.style_targets_cached) job.style_targets = "computed";
  }
  if (result.interrupted) {
    // A half-optimised image is not a result: leave no file, so the rerun does this job again.
    job.status = "interrupted";
    return;
  }
  save_image(job.output, result.rgb, f.quality);
  job.status = "done";
  job.losses = losses_json(result.initial, result.final, result.written, r.loss);
}

// What a batch of filter jobs alone needs: a device and threads, no VGG19.
Engine filter_only_engine(const EngineFlags& f) {
  Engine e;
  e.device = resolve_device(f.device);
  e.threads = configure_threads(f.threads);
  return e;
}

// The filters a batch uses, each loaded (and checked) once, on the engine's device.
class FilterCache {
 public:
  explicit FilterCache(const EngineFlags& f) : flags_(f) {}
  const FilterNet& get(const std::string& path) {
    auto it = filters_.find(path);
    if (it != filters_.end()) return it->second.net;
    LoadedFilter loaded = load_filter(path);
    const at::Device device = resolve_device(flags_.device);
    loaded.net.to(device);
    loaded.net.set_precision(resolve_precision_flag(flags_.precision, device));
    return filters_.emplace(path, std::move(loaded)).first->second.net;
  }

 private:
  const EngineFlags& flags_;
  std::map<std::string, LoadedFilter> filters_;
};

// A filter job: one forward pass at the input's size, or at `size` when the flags or the job set one.
void run_filter_job(Job& job, FilterCache& filters, const EngineFlags& f) {
  const FilterNet& net = filters.get(job.filter);
  const LoadedImage img = read_image(job.content, "content image", f);
  const bool sized = f.fields.count("size") > 0 || job.fields.count("size") > 0;
  const auto [w, h] = filter_size(img.width, img.height, sized ? job.size : 0, "content image " + in_quotes(job.content));
  const at::Tensor rgb = (w == img.width && h == img.height) ? img.rgb : resize_image(img.rgb, w, h);
  save_image(job.output, apply_filter(net, rgb), f.quality);
  job.status = "done";
}

// --dry-run: index, content, styles, output and what would happen, tab-separated on stdout.
void print_dry_run(const std::vector<Job>& jobs, size_t todo) {
  for (const auto& job : jobs) {
    std::string styles = job.filter.empty() ? "" : "filter:" + job.filter;
    for (const auto& s : job.styles) styles += (styles.empty() ? "" : "+") + s;
    std::printf("%d\t%s\t%s\t%s\t%s\n", job.index, job.content.c_str(), styles.c_str(), job.output.c_str(),
                !job.setup_error.empty() ? ("invalid: " + render_fields(job.setup_error, FieldWords::key)).c_str()
                : job.status == "skipped" ? "exists, skip"
                                          : "run");
  }
  spdlog::info("{} jobs, {} to run, {} already done (dry run: nothing loaded)", jobs.size(), todo, jobs.size() - todo);
}

struct Counts {
  int done = 0, skipped = 0, failed = 0, pending = 0;
};

Counts count_jobs(const std::vector<Job>& jobs) {
  Counts c;
  for (const auto& job : jobs) {
    c.done += job.status == "done";
    c.skipped += job.status == "skipped";
    c.failed += job.status == "failed";
    c.pending += job.status == "pending" || job.status == "interrupted";
  }
  return c;
}

void write_report(const std::string& path, const std::vector<Job>& jobs, const Counts& c, const nlohmann::json& settings,
                  bool interrupted, int target_computations, double seconds_load, double seconds_total,
                  double job_seconds_total) {
  nlohmann::json report;
  report["program"] = {{"name", "stylize batch"}, {"version", STYLIZE_VERSION}};
  report["settings"] = settings;
  report["jobs"] = nlohmann::json::array();
  for (const auto& job : jobs) report["jobs"].push_back(job_json(job));
  report["totals"] = {{"jobs", jobs.size()}, {"done", c.done}, {"skipped", c.skipped}, {"failed", c.failed},
                      {"not_run", c.pending}, {"interrupted", interrupted}, {"model_loads", 1},
                      {"style_target_computations", target_computations},
                      {"seconds_load_model", seconds_load}, {"seconds_total", seconds_total},
                      {"seconds_per_done_job", c.done > 0 ? job_seconds_total / c.done : 0.0},
                      {"peak_memory_mib", peak_rss_mib()}};
  write_file_atomic(path, report.dump(2) + "\n");
}

void setup(CLI::App& app, BatchOptions& o) {
  app.description(
      "Stylises many images in one process: every content x style pair is a job. The network loads once and\n"
      "each style's targets are computed once per size. Outputs appear only when complete; a rerun skips\n"
      "finished jobs. Exit codes: 0 all done, 8 some jobs failed, 9 none could run, 130 interrupted\n"
      "(plus 1 internal, 2 usage, 3 job file, 4 weights, 5 outputs, 6 device, 7 memory, as for 'stylize').");
  app.add_option("inputs", o.inputs, "Content images and folders of them")->type_name("PATH");
  app.add_option("--style", o.styles, "Style image (repeat for several: each makes its own jobs)")->type_name("FILE");
  app.add_option("--filter", o.filters,
                 "A fast filter from 'stylize train' instead of (or beside) --style: one pass per photo, at the "
                 "photo's size unless --size is given; {style} in --name is its stem (repeatable: each makes its "
                 "own jobs; a job-file line without \"style\" or \"filter\" takes the first)")
      ->type_name("FILE");
  app.add_option("--out-dir", o.out_dir, "Folder for outputs (must exist)")->required();
  app.add_option("--job-file", o.job_file,
                 "JSON lines, one job each: {\"content\": F, \"style\": F | \"styles\": [F..], \"output\": NAME, "
                 "and any setting by its field name, over the flags: \"size\": N, \"iterations\": N | [N..], "
                 "\"style_weight\": B, \"style_blend\": [w..], \"scales\": N, ... (README \"Usage\")}");
  app.add_flag("--from-stdin", o.from_stdin, "Also read content paths from standard input, one per line");
  app.add_flag("-r,--recursive", o.recursive, "Look for images in subfolders too");
  app.add_option("--name", o.name, "Output name template: {content} {style} (stems) {ext} {index} {size}")
      ->capture_default_str();
  app.add_option("--ext", o.ext, "Output format for {ext}: png, jpg, webp, tif, bmp")
      ->transform(extension_word())
      ->capture_default_str();
  auto* skip = app.add_flag("--skip-existing", o.skip_existing, "Skip jobs whose output already exists (the default)");
  app.add_flag("--overwrite", o.overwrite, "Replace existing outputs instead of skipping those jobs")->excludes(skip);
  app.add_flag("--fail-fast", o.fail_fast, "Stop at the first failed job");
  app.add_flag("--dry-run", o.dry_run, "List the jobs and output names without loading the model");
  app.add_option("--report", o.report, "Write a JSON report: one entry per job and totals (- for standard output)");
  app.add_option("--shard", o.shard,
                 "Run only the K-th of N disjoint parts of the job list (K from 1 to N), for a job array: "
                 "every process given the same inputs agrees on the parts whatever order the files are "
                 "listed in (README \"Batches on a cluster\")")
      ->type_name("K/N");
  add_engine_flags(app, o.engine);
}

// What the jobs run on: loaded once for the whole batch.
struct Workers {
  const Engine& engine;
  const StylizeRequest& defaults;
  const at::Tensor& init_image;
  StyleTargetCache& targets;
  FilterCache& filters;
};

struct Loop {
  bool interrupted = false;
  double job_seconds = 0;  // of the jobs done
};

// Every job not skipped, in order: each failure stays with its job; Ctrl-C stops after the current one.
Loop run_jobs(const BatchOptions& o, std::vector<Job>& jobs, size_t todo, Workers w) {
  const EngineFlags& f = o.engine;
  double job_seconds_total = 0;
  int jobs_timed = 0;
  size_t position = 0;
  bool interrupted = false, stopped = false;
  const bool tty = isatty(STDERR_FILENO) != 0;

  for (auto& job : jobs) {
    if (job.status == "skipped") continue;
    if (interrupted || stopped) break;
    ++position;
    const auto t_job = std::chrono::steady_clock::now();
    const double eta = jobs_timed > 0 ? job_seconds_total / jobs_timed * static_cast<double>(todo - position + 1) : -1;
    std::string label = "[" + std::to_string(position) + "/" + std::to_string(todo) + "] ";
    if (!f.quiet) {
      const std::string with = job.filter.empty() ? fmt::format("{}", fmt::join(job.styles, "+")) : "filter " + job.filter;
      // [k/n] counts the jobs this run does; "job N" is the job's own number (--dry-run's, the report's,
      // {index}'s), which differs once outputs that exist are skipped.
      spdlog::info("{}job {}: {} x {} -> {} (batch ETA {})", label, job.index, job.content, with, job.output,
                   format_duration(eta));
    }
    try {
      if (!job.setup_error.empty()) throw UsageError(job.setup_error);
      if (!job.filter.empty()) {
        run_filter_job(job, w.filters, f);
      } else {
        run_job(job, w.defaults, w.init_image, w.engine, w.targets, tty ? f.print_every : 0, f, label);
      }
      if (job.status == "interrupted") interrupted = true;
    } catch (...) {
      job.status = "failed";
      // In the words the job's settings came in: a job-file line's keys (one that set fields, or
      // could not be read), else the flags.
      const bool line_words = !job.fields.empty() || !job.setup_error.empty();
      job.error = error_report(std::current_exception(), line_words ? FieldWords::key : FieldWords::flag).message;
    }
    job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_job).count();
    if (job.status == "done") {
      job_seconds_total += job.seconds;
      ++jobs_timed;
    }
    if (job.status == "failed") {
      spdlog::error("{}job {} failed: {}", label, job.index, job.error);
      if (o.fail_fast) stopped = true;
    }
  }
  return {interrupted, job_seconds_total};
}

int run(BatchOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const EngineFlags& f = o.engine;
  if (o.styles.empty() && o.filters.empty() && o.job_file.empty()) {
    throw UsageError("give at least one --style or --filter (or a --job-file)");
  }
  if (o.inputs.empty() && !o.from_stdin && o.job_file.empty()) {
    throw UsageError("give content images or folders, --from-stdin, or --job-file");
  }
  check_out_dir_exists(o.out_dir);
  check_output_folder((fs::path(o.out_dir) / "x").string());
  if (!o.report.empty()) check_output_folder(o.report);
  check_ext_writable(o.ext);
  request_from_flags(f, Preprocessing::caffe);  // validates the flags before any job is made
  const Shard shard = o.shard.empty() ? Shard{} : parse_shard(o.shard);
  std::vector<Job> jobs = make_jobs(o);
  if (jobs.empty()) throw UsageError("no jobs: no content images found in the inputs");
  check_batch_outputs(o, jobs);
  if (shard.n > 1) {
    const size_t all = jobs.size();
    jobs = select_shard(std::move(jobs), shard);
    spdlog::info("shard {}/{}: {} of {} jobs", shard.k, shard.n, jobs.size(), all);
    // A part may be empty (more parts than jobs): that is a success with nothing to do.
  }

  size_t todo = 0;
  for (auto& job : jobs) {
    if (job.setup_error.empty() && !o.overwrite && fs::exists(job.output)) {
      job.status = "skipped";
    } else {
      ++todo;
    }
  }
  if (o.dry_run) {
    print_dry_run(jobs, todo);
    return 0;
  }

  // The VGG19 is loaded only for jobs that optimise: a batch of filter jobs never reads it.
  const bool optimises = std::any_of(jobs.begin(), jobs.end(), [](const Job& j) { return j.filter.empty(); });
  // Every layer the file serves: a job-file line may name deeper layers than the flags.
  Engine engine = optimises ? load_engine(f, deepest_layer(request_from_flags(f, Preprocessing::caffe).loss), true)
                            : filter_only_engine(f);
  FilterCache filters(f);
  for (const auto& path : o.filters) filters.get(path);  // a bad --filter file: exit 4 before any job
  const StylizeRequest defaults = request_from_flags(f, engine.preprocessing);
  at::Tensor init_image;
  if (!f.init_file.empty()) init_image = read_image(f.init_file, "init image", f).rgb;
  install_interrupt_handler();
  // Gram targets per (styles, blend, working size): a style shared by many jobs is computed once.
  StyleTargetCache target_cache;
  const Loop done = run_jobs(o, jobs, todo, {engine, defaults, init_image, target_cache, filters});
  const bool interrupted = done.interrupted;
  const double job_seconds_total = done.job_seconds;
  const Counts c = count_jobs(jobs);
  if (!o.report.empty()) {
    nlohmann::json settings = engine.stylizer
                                  ? settings_json(defaults, f, engine)
                                  : nlohmann::json{{"threads", engine.threads}, {"device", engine.device.str()}};
    if (shard.n > 1) settings["shard"] = {{"k", shard.k}, {"n", shard.n}};  // the report covers this part only
    write_report(o.report, jobs, c, settings, interrupted, target_cache.computations(),
                 engine.seconds_load, std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(),
                 job_seconds_total);
  }
  spdlog::info("batch: {} done, {} skipped (already there), {} failed, {} not run; style targets computed {} time(s)",
               c.done, c.skipped, c.failed, c.pending, target_cache.computations());
  if (interrupted) {
    spdlog::warn("interrupted: finished outputs are kept, nothing half-written; run the same command to continue");
    return static_cast<int>(ExitCode::interrupted);
  }
  if (c.failed > 0) return static_cast<int>(c.done + c.skipped > 0 ? ExitCode::partial : ExitCode::nothing_done);
  return 0;
}

}  // namespace

int batch_main(int argc, char** argv) {
  return command_main<BatchOptions>("stylize batch", argc, argv, setup, run);
}

}  // namespace stylize::cli
