#include "job_queue.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "stylize/error.hpp"

namespace stylize::serve {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

const char* to_string(JobState s) {
  switch (s) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "?";
}

bool is_terminal(JobState s) { return s == JobState::done || s == JobState::failed || s == JobState::cancelled; }

JobQueue::JobQueue(Runner run, JobQueueOptions options) : run_(std::move(run)), opt_(options) {
  for (int i = 0; i < std::max(1, opt_.workers); ++i) workers_.emplace_back([this] { worker_loop(); });
}

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) job->cancel = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void JobQueue::submit(const std::shared_ptr<Job>& job) {
  job->durable = job->durable && opt_.store != nullptr;
  // The uploads are the big writes: outside the lock, so that status calls and the workers'
  // progress reports never wait for them. Refused, they go again.
  if (job->durable) opt_.store->write_uploads(job->id, job->form);
  try {
    std::lock_guard<std::mutex> lock(mu_);
    expire_locked();
    if (!accepting_) throw QueueRefused{QueueRefused::shutting_down, queue_.size()};
    if (static_cast<int>(queue_.size()) >= opt_.queue_limit) throw QueueRefused{QueueRefused::full, queue_.size()};
    if (job->durable) {
      StoredJob record;
      record.id = job->id;
      record.ext = job->ext;
      record.total = job->total;
      record.attempt = job->attempt;
      record.warnings = job->warnings;
      opt_.store->add(record, job->form);  // committed: from here the job survives a crash
    }
    job->form.clear();  // the request holds the decoded images
    job->state = JobState::queued;
    job->created = Clock::now();
    jobs_[job->id] = job;
    queue_.push_back(job);
  } catch (...) {
    if (job->durable) opt_.store->discard(job->id);
    throw;
  }
  work_cv_.notify_one();
}

void JobQueue::restore(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->form.clear();
    jobs_[job->id] = job;
    if (job->state == JobState::queued) queue_.push_back(job);
  }
  work_cv_.notify_one();
}

std::shared_ptr<Job> JobQueue::find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  expire_locked();
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

JobStatus JobQueue::status(const Job& j) {
  std::lock_guard<std::mutex> lock(mu_);
  JobStatus s{j.id,      j.state, j.iteration, j.total, j.loss, j.error, j.attempt, -1, "",
              j.state == JobState::running && j.user_cancel, j.warnings};
  if (j.state == JobState::running && j.iteration > 0) {
    const double rate = j.iteration / std::max(1e-9, seconds_between(j.started, Clock::now()));
    s.eta_seconds = (j.total - j.iteration) / rate;
  }
  return s;
}

bool JobQueue::result(const Job& job, std::vector<uint8_t>& bytes, JobStatus& s) {
  s = status(job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job.state != JobState::done) return false;
    if (!job.result_on_disk) {
      bytes = job.result;
      return true;
    }
  }
  std::string why;
  if (!opt_.store->read_result(job.id, job.ext, bytes, why)) {
    throw OutputError("the result of job " + job.id + " cannot be read from data dir " + in_quotes(opt_.store->dir()) +
                      " (" + why + ")");
  }
  return true;
}

void JobQueue::cancel(const std::shared_ptr<Job>& job) {
  bool store_it = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (is_terminal(job->state)) return;
    job->user_cancel = true;
    job->cancel = true;
    store_it = job->durable;  // a running job stops at its next iteration: on disk now, in case of a crash first
    if (job->state == JobState::queued) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
      job->state = JobState::cancelled;
      job->finished = Clock::now();
      job->request = StylizeRequest();
      ++counts_.cancelled;
      done_cv_.notify_all();
    }
  }
  if (store_it) {
    try {
      opt_.store->cancel(job->id);
    } catch (const std::exception& e) {
      spdlog::error("job {}: {}", job->id, key_words(e));  // cancelled here; at a restart it would run again
    }
  }
}

JobState JobQueue::wait(const std::shared_ptr<Job>& job) {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return is_terminal(job->state); });
  return job->state;
}

void JobQueue::forget(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it != jobs_.end() && is_terminal(it->second->state)) drop_locked(id);
}

void JobQueue::drop_locked(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  if (it->second->durable) {
    try {
      opt_.store->remove(id);
    } catch (const std::exception& e) {
      spdlog::error("job {}: {}", id, key_words(e));  // the next start removes it by its TTL
    }
  }
  jobs_.erase(it);
}

void JobQueue::progress(Job& job, const Progress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  counts_.iterations_total += static_cast<uint64_t>(std::max(0, p.iteration - job.iteration));
  job.iteration = p.iteration;
  job.total = p.total;
  job.loss = p.loss;
}

void JobQueue::drain(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!accepting_) return;
  accepting_ = false;
  done_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return queue_.empty() && running_ == 0; });
  int kept = 0;
  for (auto& job : queue_) {
    job->cancel = true;
    job->state = JobState::cancelled;
    job->finished = Clock::now();
    ++counts_.cancelled;
    kept += job->durable;  // its record still says queued: the next start runs it
  }
  if (kept > 0) spdlog::info("{} queued job(s) stay on disk; the next start on {} runs them", kept, opt_.store->dir());
  queue_.clear();
  for (auto& [id, job] : jobs_) {
    if (job->state == JobState::running) job->cancel = true;  // stops at its next iteration
  }
  done_cv_.wait(lock, [&] { return running_ == 0; });
  done_cv_.notify_all();  // wake whoever waits on a job cancelled here
}

bool JobQueue::accepting() {
  std::lock_guard<std::mutex> lock(mu_);
  return accepting_;
}

QueueMetrics JobQueue::metrics() {
  std::lock_guard<std::mutex> lock(mu_);
  QueueMetrics m = counts_;
  m.queued = static_cast<int>(queue_.size());
  m.running = running_;
  for (const auto& [id, j] : jobs_) {
    if (j->state == JobState::running && j->iteration > 0) {
      m.iterations_per_second += j->iteration / std::max(1e-9, seconds_between(j->started, Clock::now()));
    }
  }
  return m;
}

void JobQueue::expire() {
  std::lock_guard<std::mutex> lock(mu_);
  expire_locked();
}

void JobQueue::expire_locked() {
  const auto now = Clock::now();
  std::vector<std::string> expired;
  for (const auto& [id, job] : jobs_) {
    if (is_terminal(job->state) && seconds_between(job->finished, now) > opt_.result_ttl_s) expired.push_back(id);
  }
  for (const auto& id : expired) drop_locked(id);
}

void JobQueue::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      job->state = JobState::running;
      job->started = Clock::now();
      ++running_;
    }
    if (job->durable) {
      try {
        opt_.store->set_running(job->id, job->attempt);
      } catch (const std::exception& e) {
        spdlog::warn("job {}: {}", job->id, key_words(e));  // it runs; a restart would count the attempt again
      }
    }
    Outcome out;
    std::string error;
    JobState end = JobState::failed;
    try {
      out = run_(*job);
      end = out.cancelled ? JobState::cancelled : JobState::done;
    } catch (...) {
      error = error_report(std::current_exception()).message;
    }
    finish(*job, end, std::move(error), std::move(out.bytes));
  }
}

// A durable job's end on disk. A done job whose result cannot be written (the disk is full) fails
// with that reason instead.
void JobQueue::store_end(Job& job, JobState& end, std::string& error, const std::vector<uint8_t>& bytes) {
  try {
    int iteration = 0;
    double loss = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      iteration = job.iteration;
      loss = job.loss;
    }
    opt_.store->finish(job.id, to_string(end), error, bytes, job.ext, iteration, loss);
    return;
  } catch (const std::exception& e) {
    if (end != JobState::done) {
      spdlog::error("job {}: {}", job.id, key_words(e));
      return;
    }
    end = JobState::failed;
    error = "its result could not be stored: " + key_words(e);
  }
  try {
    opt_.store->finish(job.id, "failed", error, {}, job.ext);
  } catch (const std::exception& e) {
    spdlog::error("job {}: {}", job.id, key_words(e));
  }
}

void JobQueue::finish(Job& job, JobState end, std::string error, std::vector<uint8_t> bytes) {
  // Stopped by a drain or the destructor, not by its client: its record goes back to queued, so the
  // next start runs it again as the same attempt.
  const bool stays_on_disk = job.durable && end == JobState::cancelled && !job.user_cancel;
  if (job.durable && !stays_on_disk) store_end(job, end, error, bytes);
  if (stays_on_disk) {
    try {  // an orderly stop is no failed attempt: --max-attempts counts crashes and kills only
      opt_.store->set_queued(job.id, job.attempt);
    } catch (const std::exception& e) {
      spdlog::error("job {}: {}", job.id, key_words(e));  // the next start counts it as an interrupted attempt
    }
  }
  std::vector<std::string> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job.state = end;
    job.error = std::move(error);
    job.result_on_disk = job.durable && end == JobState::done;
    job.result = job.result_on_disk ? std::vector<uint8_t>() : std::move(bytes);
    job.finished = Clock::now();
    job.request = StylizeRequest();  // its images are not needed past here
    --running_;
    if (end == JobState::done) ++counts_.done;
    if (end == JobState::failed) ++counts_.failed;
    if (end == JobState::cancelled) ++counts_.cancelled;
    if (job.result_on_disk && opt_.max_stored_bytes > 0) {
      try {
        dropped = opt_.store->enforce_cap(opt_.max_stored_bytes);
      } catch (const std::exception& e) {
        spdlog::error("data dir cap: {}", key_words(e));
      }
      for (const auto& id : dropped) jobs_.erase(id);
    }
  }
  done_cv_.notify_all();
  for (const auto& id : dropped) log_result_dropped(id, static_cast<double>(opt_.max_stored_bytes) / (1024.0 * 1024.0));
  if (stays_on_disk) {
    spdlog::info("job {} stopped by the shutdown; it stays on disk and runs again at the next start", job.id);
  } else if (end == JobState::failed) {
    spdlog::warn("job {} failed: {}", job.id, job.error);
  } else {
    spdlog::info("job {} {} in {:.1f} s", job.id, to_string(end), seconds_between(job.started, job.finished));
  }
}

}  // namespace stylize::serve
