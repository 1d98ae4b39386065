// The jobs behind `stylize serve`, without HTTP: a bounded queue, a pool of workers, cancellation,
// a graceful drain, results kept for a TTL, and the counters /metrics shows. What a job does is the
// runner's business (the server stylises and encodes; tests pass their own), so the queue is tested
// directly, without sockets. Thread-safe: every member may be called from any thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stylize/request.hpp"

namespace stylize::serve {

enum class JobState { queued, running, done, failed, cancelled };
const char* to_string(JobState s);
bool is_terminal(JobState s);

// One request's work. The inputs are set before submit() and read by the runner; the fields under
// "state" change under the queue's lock: read them through JobQueue::status().
struct Job {
  std::string id;
  StylizeRequest request;            // what to run (images at their working sizes)
  std::string style_id;              // a --styles-dir style, for logs
  std::string ext = "png";
  std::atomic<bool> cancel{false};   // the runner polls it; set by cancel() and drain()
  // state
  JobState state = JobState::queued;
  int iteration = 0, total = 0;
  double loss = 0;
  std::string error;
  std::vector<uint8_t> result;
  std::chrono::steady_clock::time_point created, started, finished;
};

// A copy of a job's state, taken under the lock.
struct JobStatus {
  std::string id;
  JobState state = JobState::queued;
  int iteration = 0, total = 0;
  double loss = 0;
  std::string error;
  double eta_seconds = -1;  // running jobs with progress only
};

struct JobQueueOptions {
  int workers = 1;
  int queue_limit = 16;       // jobs waiting beyond this are refused
  double result_ttl_s = 3600; // finished jobs are forgotten this long after they end
};

// Why submit() refused a job.
struct QueueRefused {
  enum Reason { shutting_down, full } reason;
  size_t queued;
};

struct QueueMetrics {
  int queued = 0, running = 0;
  uint64_t done = 0, failed = 0, cancelled = 0;  // since start
  uint64_t iterations_total = 0;
  double iterations_per_second = 0;              // summed over the running jobs
};

class JobQueue {
 public:
  // What a runner gives back: the result's bytes, or that it stopped for job.cancel.
  struct Outcome {
    bool cancelled = false;
    std::vector<uint8_t> bytes;
  };
  // Runs one job on a worker thread and reports its progress through progress(). A throw fails the
  // job with error_report()'s line.
  using Runner = std::function<Outcome(Job& job)>;

  JobQueue(Runner run, JobQueueOptions options);
  ~JobQueue();  // cancels every job and joins the workers
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Queues a job (its state must be queued). Throws QueueRefused when draining or full.
  void submit(const std::shared_ptr<Job>& job);
  // The job with this id; nullptr when unknown or expired (finished jobs past the TTL go first).
  std::shared_ptr<Job> find(const std::string& id);
  JobStatus status(const Job& job);
  // The result bytes of a done job, or nothing (and its status) otherwise.
  bool result(const Job& job, std::vector<uint8_t>& bytes, JobStatus& status);
  // A queued job is cancelled at once; a running one at its next iteration.
  void cancel(const std::shared_ptr<Job>& job);
  // Blocks until the job is done, failed or cancelled.
  JobState wait(const std::shared_ptr<Job>& job);
  void forget(const std::string& id);  // drops a finished job now (a delivered synchronous result)
  // From the runner: the progress of the job it runs (iterations count toward the metrics).
  void progress(Job& job, const Progress& p);
  // Stops accepting; waits up to `seconds` for the queued and running jobs to finish; cancels the
  // rest; returns when no job runs. Idempotent: a second call returns at once.
  void drain(double seconds);
  bool accepting();
  QueueMetrics metrics();
  // Finished jobs past the TTL are dropped (find() and submit() call it too).
  void expire();

 private:
  void worker_loop();
  void finish(Job& job, JobState end, std::string error, std::vector<uint8_t> bytes);
  void expire_locked();

  Runner run_;
  JobQueueOptions opt_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  int running_ = 0;
  bool accepting_ = true, stopping_ = false;
  QueueMetrics counts_;  // done / failed / cancelled / iterations_total
  std::vector<std::thread> workers_;
};

}  // namespace stylize::serve
