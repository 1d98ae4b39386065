// Jobs on Redis (`--queue redis://HOST:PORT[/DB]`): every API process and every worker, on any
// machine, shares one queue. A job is a hash (state, attempt, progress, its form and uploads) and an
// entry on a stream read by one consumer group:
//   stylize:job:ID      hash: state queued|running|done|failed|cancelled, attempt, worker, iteration,
//                       loss, error, times; while it waits or runs, its form (fields, files, up:NAME)
//   stylize:jobs        stream; group "workers": XREADGROUP hands an entry to one worker, XACK ends it
//   stylize:result:ID   the result image (EX --result-ttl); stylize:results, a sorted set by finish
//                       time, for the --max-stored-mb cap (oldest dropped first)
//   stylize:counts      hash: done, failed, cancelled, iterations (for /metrics, cluster-wide)
// A worker heartbeats the entries it runs (XCLAIM ... JUSTID resets their idle time); an entry idle
// past --visibility-timeout belongs to a dead worker and is claimed again (XAUTOCLAIM) as the job's
// next attempt; past --max-attempts the job fails with the reason. Claims, cancels and ends are Lua
// scripts, so a cancel and a claim never both win, and an attempt that lost its claim (a worker
// presumed dead that was only slow) cannot overwrite the result of the one that has it.
// Results live in Redis (not a shared folder): one service to run, readable from every API process.
#pragma once

#include <memory>
#include <string>

#include "job_queue.hpp"
#include "serve_options.hpp"

namespace stylize::serve {

struct RedisUrl {
  std::string host;
  int port = 6379;
  int db = 0;
};
// redis://HOST[:PORT][/DB]. Throws UsageError naming the field `queue`.
RedisUrl parse_redis_url(const std::string& url);

// From a stored form to a job ready to run (the runner's parse); throws FormError for a form this
// worker refuses (the job fails with its detail).
using JobPreparer = std::function<std::shared_ptr<Job>(const Form& form)>;

// A JobService on Redis with `options.workers` local worker threads (0: a pure API). Connects at
// once (NetworkError when Redis does not answer, UsageError for a bad URL), creates the group when
// missing. Built without hiredis: throws UsageError saying so.
std::unique_ptr<JobService> make_redis_jobs(const ServeOptions& options, JobPreparer prepare,
                                            JobService::Runner run);

// Whether this build has Redis support (Debian's libhiredis-dev at build time).
bool redis_supported();

}  // namespace stylize::serve
