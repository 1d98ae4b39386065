// The jobs behind `stylize serve`, without HTTP: a bounded queue, a pool of workers, cancellation,
// a graceful drain, results kept for a TTL, and the counters /metrics shows. With a JobStore
// (job_store.hpp) durable jobs are on disk before submit() returns, their results are files, and
// a drain leaves unfinished ones on disk for the next start instead of cancelling them. What a job does is the
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

#include "job_store.hpp"
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
  Form form;                         // durable jobs: what is stored (and parsed again after a restart)
  bool durable = false;              // kept in the queue's store (asynchronous jobs; not POST /v1/stylize)
  int attempt = 1;                   // 2 and on: the server stopped while an earlier attempt ran
  std::string worker;                // Redis: the consumer that runs or ran it (host:pid:thread)
  // What the client is told with the job (run_warnings, in form-field words): set by the parse,
  // kept by every store, read without the lock (it never changes after submit()).
  std::vector<std::string> warnings;
  std::atomic<bool> cancel{false};   // the runner polls it; set by cancel() and drain()
  std::atomic<bool> user_cancel{false};  // cancel() (not a drain): a durable job ends as cancelled
  // state
  JobState state = JobState::queued;
  int iteration = 0, total = 0;
  double loss = 0;
  std::string error;
  std::vector<uint8_t> result;       // in memory, or (result_on_disk) in the store
  bool result_on_disk = false;
  std::chrono::steady_clock::time_point created, started, finished;
};

// A copy of a job's state, taken under the lock.
struct JobStatus {
  std::string id;
  JobState state = JobState::queued;
  int iteration = 0, total = 0;
  double loss = 0;
  std::string error;
  int attempt = 1;
  double eta_seconds = -1;  // running jobs with progress only
  std::string worker;       // Redis: who runs or ran it
  bool cancel_requested = false;  // running, and a client's cancel waits for its next iteration
  std::vector<std::string> warnings;  // Job::warnings
};

struct JobQueueOptions {
  JobQueueOptions(int workers = 1, int queue_limit = 16, double result_ttl_s = 3600)
      : workers(workers), queue_limit(queue_limit), result_ttl_s(result_ttl_s) {}
  int workers;
  int queue_limit;             // jobs waiting beyond this are refused
  double result_ttl_s;         // finished jobs are forgotten this long after they end
  std::shared_ptr<JobStore> store;  // where durable jobs live; none: every job in memory only
  int64_t max_stored_bytes = 0;     // the store's results beyond this go, oldest first (0: no cap)
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

// What the HTTP server needs from a queue of jobs, whoever keeps it: this process (JobQueue, in
// memory or with a --data-dir) or Redis, shared by many API processes and workers (redis_jobs.hpp).
class JobService {
 public:
  // What a runner gives back: the result's bytes, or that it stopped for job.cancel.
  struct Outcome {
    bool cancelled = false;
    std::vector<uint8_t> bytes;
  };
  // Runs one job on a worker thread and reports its progress through progress(). A throw fails the
  // job with error_report()'s line.
  using Runner = std::function<Outcome(Job& job)>;

  virtual ~JobService() = default;
  // Starts workers that begin with jobs already queued elsewhere (Redis); call once the runner can
  // reach this service. A JobQueue's workers start in its constructor.
  virtual void start() {}
  // Queues a job (its state must be queued). A durable job is stored when this returns. Throws
  // QueueRefused when draining or full, OutputError when the store cannot write it.
  virtual void submit(const std::shared_ptr<Job>& job) = 0;
  // The job with this id; nullptr when unknown or expired (finished jobs past the TTL go first).
  virtual std::shared_ptr<Job> find(const std::string& id) = 0;
  virtual JobStatus status(const Job& job) = 0;
  // The result bytes of a done job, or nothing (and its status) otherwise.
  // Throws OutputError when a stored result cannot be read.
  virtual bool result(const Job& job, std::vector<uint8_t>& bytes, JobStatus& status) = 0;
  // A queued job is cancelled at once; a running one at its next iteration.
  virtual void cancel(const std::shared_ptr<Job>& job) = 0;
  // Blocks until the job is done, failed or cancelled.
  virtual JobState wait(const std::shared_ptr<Job>& job) = 0;
  virtual void forget(const std::string& id) = 0;  // drops a finished job now (a delivered synchronous result)
  // From the runner: the progress of the job it runs (iterations count toward the metrics).
  virtual void progress(Job& job, const Progress& p) = 0;
  // Stops accepting; waits up to `seconds` for the queued and running jobs to finish; cancels the
  // rest (durable ones stay stored as they are, for the next start or another worker); returns
  // when no job of this process runs. Idempotent: a second call returns at once.
  virtual void drain(double seconds) = 0;
  virtual bool accepting() = 0;
  // Why no job can be taken or looked up now ("" when they can): a queue on Redis that does not
  // answer. /healthz says it, so that a load balancer stops sending such a process requests.
  virtual std::string unavailable() { return ""; }
  virtual QueueMetrics metrics() = 0;
  // Finished jobs past the TTL are dropped (find() and submit() call it too).
  virtual void expire() = 0;
};

// The jobs of one process: a deque and worker threads, with an optional JobStore.
class JobQueue : public JobService {
 public:
  JobQueue(Runner run, JobQueueOptions options);
  ~JobQueue() override;  // cancels every job and joins the workers
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  void submit(const std::shared_ptr<Job>& job) override;
  // A job recovered from the store at start: queued ones run (beyond the queue limit: they were
  // accepted before), finished ones are served until their TTL, counted from `finished`.
  void restore(const std::shared_ptr<Job>& job);
  std::shared_ptr<Job> find(const std::string& id) override;
  JobStatus status(const Job& job) override;
  bool result(const Job& job, std::vector<uint8_t>& bytes, JobStatus& status) override;
  void cancel(const std::shared_ptr<Job>& job) override;
  JobState wait(const std::shared_ptr<Job>& job) override;
  void forget(const std::string& id) override;
  void progress(Job& job, const Progress& p) override;
  void drain(double seconds) override;
  bool accepting() override;
  QueueMetrics metrics() override;
  void expire() override;

 private:
  void worker_loop();
  void finish(Job& job, JobState end, std::string error, std::vector<uint8_t> bytes);
  void store_end(Job& job, JobState& end, std::string& error, const std::vector<uint8_t>& bytes);
  void expire_locked();
  void drop_locked(const std::string& id);  // from memory and the store

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
