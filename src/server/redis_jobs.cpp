#include "redis_jobs.hpp"

#include <spdlog/spdlog.h>

#include "stylize/error.hpp"

#ifndef STYLIZE_HAVE_HIREDIS

namespace stylize::serve {

RedisUrl parse_redis_url(const std::string&) {
  throw UsageError("`queue`: this build of stylize has no Redis support (Debian's libhiredis-dev was missing "
                   "when it was built); install it and rebuild, or run without --queue");
}
bool redis_supported() { return false; }
std::unique_ptr<JobService> make_redis_jobs(const ServeOptions& o, JobPreparer, JobService::Runner) {
  parse_redis_url(o.queue_url);
  return nullptr;
}

}  // namespace stylize::serve

#else

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "job_runner.hpp"

namespace stylize::serve {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kStream = "stylize:jobs", kGroup = "workers", kCounts = "stylize:counts",
                  kResults = "stylize:results";
std::string job_key(const std::string& id) { return "stylize:job:" + id; }
std::string result_key(const std::string& id) { return "stylize:result:" + id; }

// A reply, copied out of hiredis's tree.
struct Value {
  enum Kind { nil, text, integer, array, status } kind = nil;
  std::string str;
  long long n = 0;
  std::vector<Value> items;
  bool is_nil() const { return kind == nil; }
};

Value convert(const redisReply* r) {
  Value v;
  switch (r->type) {
    case REDIS_REPLY_STRING: v.kind = Value::text; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: v.kind = Value::status; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: v.kind = Value::integer; v.n = r->integer; break;
    case REDIS_REPLY_ARRAY:
      v.kind = Value::array;
      for (size_t i = 0; i < r->elements; ++i) v.items.push_back(convert(r->element[i]));
      break;
    default: break;  // NIL
  }
  return v;
}

// A command Redis refused (a script error, a wrong type): a bug or a foreign key, not the network.
struct RedisCommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One connection. A network failure throws NetworkError and marks it broken (the pool drops it).
class Connection {
 public:
  Connection(const RedisUrl& url, double read_timeout_s) : where_(url.host + ":" + std::to_string(url.port)) {
    const timeval connect_timeout{2, 0};
    c_ = redisConnectWithTimeout(url.host.c_str(), url.port, connect_timeout);
    if (!c_ || c_->err) {
      const std::string why = c_ ? c_->errstr : "out of memory";
      if (c_) redisFree(c_);
      c_ = nullptr;
      throw NetworkError("cannot reach Redis at " + where_ + " (`queue`): " + why +
                         "; is redis-server running there?");
    }
    const long usec = static_cast<long>(read_timeout_s * 1e6);
    const timeval t{usec / 1000000, usec % 1000000};
    redisSetTimeout(c_, t);
    if (url.db != 0) {
      try {
        run({"SELECT", std::to_string(url.db)});
      } catch (const RedisCommandError& e) {  // a configuration error (exit 2), not a bug
        throw UsageError("`queue` names database " + std::to_string(url.db) + ", which Redis at " + where_ +
                         " does not have (" + e.what() + "); use one it has (0 to 15 unless its 'databases' setting says more)");
      }
    }
  }
  ~Connection() {
    if (c_) redisFree(c_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  bool broken() const { return broken_; }

  Value run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!r) {
      broken_ = true;
      throw NetworkError("Redis at " + where_ + " stopped answering (`queue`): " + std::string(c_->errstr));
    }
    if (r->type == REDIS_REPLY_ERROR) {
      const std::string why(r->str, r->len);
      freeReplyObject(r);
      throw RedisCommandError("Redis at " + where_ + " refused " + args[0] + ": " + why);
    }
    Value v = convert(r);
    freeReplyObject(r);
    return v;
  }

 private:
  redisContext* c_ = nullptr;
  std::string where_;
  bool broken_ = false;
};

// Connections for the HTTP handlers' threads: one per call at a time, reused.
class Pool {
 public:
  explicit Pool(RedisUrl url) : url_(std::move(url)) {}
  Value run(const std::vector<std::string>& args) {
    std::unique_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        c = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!c) c = std::make_unique<Connection>(url_, 10.0);
    try {
      Value v = c->run(args);
      give_back(std::move(c));
      return v;
    } catch (const RedisCommandError&) {
      give_back(std::move(c));
      throw;
    }
  }
  const RedisUrl& url() const { return url_; }

 private:
  void give_back(std::unique_ptr<Connection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!c->broken() && free_.size() < 16) free_.push_back(std::move(c));
  }
  RedisUrl url_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> free_;
};

// Submit: the record and the stream entry in one step, refused when the waiting jobs reach the
// limit. ARGV: id, ext, total, created, fields, files, limit, group, warnings (a JSON array), then
// name/bytes pairs of the uploads.
const char* const kSubmit = R"(
local waiting = redis.call('XLEN', KEYS[2])
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[8])
if ok then waiting = waiting - pending[1] end
if waiting >= tonumber(ARGV[7]) then return -1 - waiting end
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', 0, 'ext', ARGV[2], 'total', ARGV[3], 'created', ARGV[4],
           'fields', ARGV[5], 'files', ARGV[6], 'iteration', 0, 'loss', 0, 'cancel', 0, 'warnings', ARGV[9])
for i = 10, #ARGV, 2 do redis.call('HSET', KEYS[1], 'up:' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'entry', redis.call('XADD', KEYS[2], '*', 'id', ARGV[1]))
return 0
)";

// A job that ends drops its form: the fields, the file names and every upload (up:content,
// up:style, up:style_2, ...). Spliced into the scripts below as Lua text.
#define STYLIZE_DROP_FORM                                                \
  "redis.call('HDEL', KEYS[1], 'fields', 'files')\n"                    \
  "for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do\n"                \
  "  if k:sub(1, 3) == 'up:' then redis.call('HDEL', KEYS[1], k) end\n" \
  "end\n"

// Claim: a queued job (or a running one whose worker died) becomes this worker's next attempt; a
// cancelled or vanished one is not run, and one cancelled while its worker was dead ends here.
// KEYS: job, counts. ARGV: worker, now, ttl. Returns the attempt, or -1.
const char* const kClaim = R"(
local s = redis.call('HGET', KEYS[1], 'state')
if s ~= 'queued' and s ~= 'running' then return -1 end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[2])
)" STYLIZE_DROP_FORM R"(  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
  return -1
end
local a = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started', ARGV[2], 'iteration', 0)
return a
)";

// Cancel: a queued job ends at once, and its stream entry goes (it no longer counts as waiting
// against the queue limit, nor in the metrics); a running one is flagged for its worker.
// KEYS: job, counts, stream. ARGV: now, ttl.
const char* const kCancel = R"(
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return false end
if s == 'queued' then
  local entry = redis.call('HGET', KEYS[1], 'entry')
  if entry then redis.call('XDEL', KEYS[3], entry) end
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[1])
)" STYLIZE_DROP_FORM R"(  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
  return 'cancelled'
end
if s == 'running' then redis.call('HSET', KEYS[1], 'cancel', 1) end
return s
)";

// Only the attempt that holds the claim may write: the job still running, under this worker
// (ARGV[1]) and attempt (ARGV[2]). Spliced into the scripts below as Lua text.
#define STYLIZE_HOLDS_CLAIM                                                                                  \
  "if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] or\n" \
  "   redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then\n"                                               \
  "  return 0\n"                                                                                              \
  "end\n"

// End: only the attempt that holds the claim writes (a worker presumed dead that was only slow
// finds another attempt there, or the job cancelled by the claim that found it so, and drops its
// result). KEYS: job, result, results, stream, counts.
// ARGV: worker, attempt, state, error, iteration, loss, now, ttl, bytes, entry, group, id.
const char* const kFinish = "\n" STYLIZE_HOLDS_CLAIM R"(redis.call('HSET', KEYS[1], 'state', ARGV[3], 'error', ARGV[4], 'iteration', ARGV[5], 'loss', ARGV[6], 'finished', ARGV[7])
)" STYLIZE_DROP_FORM R"(redis.call('EXPIRE', KEYS[1], ARGV[8])
if ARGV[3] == 'done' then
  redis.call('SET', KEYS[2], ARGV[9], 'EX', ARGV[8])
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[12])
end
redis.call('XACK', KEYS[4], ARGV[11], ARGV[10])
redis.call('XDEL', KEYS[4], ARGV[10])
redis.call('HINCRBY', KEYS[5], ARGV[3], 1)
return 1
)";
#undef STYLIZE_DROP_FORM

// The worker's warnings over the API's: a `--workers 0` API plans no tiles, so only the worker
// that runs the job can tell its tile caveat. Written only while this attempt holds the claim.
// KEYS: job. ARGV: worker, attempt, warnings (a JSON array).
const char* const kWarnings = "\n" STYLIZE_HOLDS_CLAIM R"(redis.call('HSET', KEYS[1], 'warnings', ARGV[3])
return 1
)";

// Back to the queue (this worker is shutting down): a new entry, the old one acknowledged.
// KEYS: job, stream. ARGV: worker, attempt, entry, group, id.
const char* const kRequeue = "\n" STYLIZE_HOLDS_CLAIM R"(redis.call('HSET', KEYS[1], 'state', 'queued', 'iteration', 0)
redis.call('XADD', KEYS[2], '*', 'id', ARGV[5])
redis.call('XACK', KEYS[2], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
)";
#undef STYLIZE_HOLDS_CLAIM

// The --max-stored-mb cap: newest first, the newest kept whatever its size, the rest dropped once
// the total passes the cap. ARGV: max bytes. Returns the dropped ids.
const char* const kCap = R"(
local ids = redis.call('ZREVRANGE', KEYS[1], 0, -1)
local total, dropped = 0, {}
for i, id in ipairs(ids) do
  local n = redis.call('STRLEN', 'stylize:result:' .. id)
  if n == 0 then
    redis.call('ZREM', KEYS[1], id)
  elseif i == 1 or total + n <= tonumber(ARGV[1]) then
    total = total + n
  else
    redis.call('DEL', 'stylize:result:' .. id, 'stylize:job:' .. id)
    redis.call('ZREM', KEYS[1], id)
    table.insert(dropped, id)
    total = tonumber(ARGV[1]) + 1
  end
end
return dropped
)";

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

JobState state_of(const std::string& s) {
  if (s == "running") return JobState::running;
  if (s == "done") return JobState::done;
  if (s == "failed") return JobState::failed;
  if (s == "cancelled") return JobState::cancelled;
  return JobState::queued;
}

double to_double(const Value& v) { return v.is_nil() || v.str.empty() ? 0 : std::atof(v.str.c_str()); }

// One claimed stream entry.
struct Entry {
  std::string entry, id;
};

}  // namespace

RedisUrl parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  auto bad = [&](const std::string& why) {
    return UsageError("`queue` " + in_quotes(url) + ": " + why + " (redis://HOST[:PORT][/DB])");
  };
  if (url.rfind(scheme, 0) != 0) throw bad("not a redis:// URL");
  std::string rest = url.substr(scheme.size());
  if (rest.substr(0, rest.find('/')).find('@') != std::string::npos) {  // not echoed: it may hold a password
    throw UsageError("`queue` holds a user or password (user:pw@host): stylize speaks to Redis without AUTH; keep "
                     "Redis on loopback or a private network and give redis://HOST[:PORT][/DB]");
  }
  RedisUrl u;
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      if (db.find_first_not_of("0123456789") != std::string::npos || db.size() > 4) throw bad("the database is not a number");
      u.db = std::stoi(db);
    }
  }
  const auto colon = rest.rfind(':');
  u.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad("bad port");
    u.port = std::stoi(port);
    if (u.port < 1 || u.port > 65535) throw bad("bad port");
  }
  if (u.host.empty()) throw bad("no host");
  return u;
}

bool redis_supported() { return true; }

namespace {

class RedisJobs : public JobService {
 public:
  RedisJobs(const ServeOptions& o, JobPreparer prepare, Runner run)
      : opt_(o), pool_(parse_redis_url(o.queue_url)), prepare_(std::move(prepare)), run_(std::move(run)) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    consumer_prefix_ = std::string(host) + ":" + std::to_string(getpid());
    create_group();
    spdlog::info("jobs on Redis at {}:{} db {} ({} local worker(s), visibility timeout {:.0f} s)", pool_.url().host,
                 pool_.url().port, pool_.url().db, o.workers, o.visibility_timeout_s);
  }

  ~RedisJobs() override { stop(); }

  void start() override {
    for (int i = 0; i < opt_.workers; ++i) {
      workers_.emplace_back([this, i] { worker_loop(consumer_prefix_ + ":" + std::to_string(i)); });
    }
    if (opt_.workers > 0) heartbeat_ = std::thread([this] { heartbeat_loop(); });
  }

  void submit(const std::shared_ptr<Job>& job) override {
    if (!accepting_) throw QueueRefused{QueueRefused::shutting_down, 0};
    nlohmann::json fields = nlohmann::json::object(), files = nlohmann::json::object();
    std::vector<std::string> args = {"EVAL", kSubmit, "2", job_key(job->id), kStream, job->id, job->ext,
                                     std::to_string(job->total), num(unix_seconds())};
    std::vector<std::string> uploads;
    for (const auto& [name, part] : job->form) {
      if (part.filename.empty()) {
        fields[name] = part.content;
      } else {
        files[name] = part.filename;
        uploads.push_back(name);
        uploads.push_back(part.content);
      }
    }
    const auto replace = nlohmann::json::error_handler_t::replace;
    args.push_back(fields.dump(-1, ' ', false, replace));
    args.push_back(files.dump(-1, ' ', false, replace));
    args.push_back(std::to_string(opt_.queue_limit));
    args.push_back(kGroup);
    args.push_back(warnings_to_json(job->warnings));
    args.insert(args.end(), uploads.begin(), uploads.end());
    const Value v = pool_.run(args);
    if (v.n < 0) throw QueueRefused{QueueRefused::full, static_cast<size_t>(-1 - v.n)};
    job->form.clear();
  }

  std::shared_ptr<Job> find(const std::string& id) override {
    const Value v = pool_.run({"HMGET", job_key(id), "state", "attempt", "ext", "total", "iteration", "loss", "error",
                               "started", "finished", "worker", "cancel", "warnings"});
    if (v.items.empty() || v.items[0].is_nil()) return nullptr;
    auto job = std::make_shared<Job>();
    job->id = id;
    job->state = state_of(v.items[0].str);
    job->attempt = std::max(1, static_cast<int>(to_double(v.items[1])));
    job->ext = v.items[2].str;
    job->total = static_cast<int>(to_double(v.items[3]));
    job->iteration = static_cast<int>(to_double(v.items[4]));
    job->loss = to_double(v.items[5]);
    job->error = v.items[6].str;
    job->worker = v.items[9].str;
    job->user_cancel = v.items.size() > 10 && v.items[10].str == "1";
    if (v.items.size() > 11) job->warnings = warnings_from_json(v.items[11].str);
    const double started = to_double(v.items[7]);  // Unix seconds, as this machine's clock for the ETA
    job->started = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(std::max(0.0, unix_seconds() - started)));
    return job;
  }

  JobStatus status(const Job& j) override {
    JobStatus s{j.id,     j.state, j.iteration, j.total, j.loss, j.error, j.attempt, -1, j.worker,
                j.state == JobState::running && j.user_cancel, j.warnings};
    if (j.state == JobState::running && j.iteration > 0) {
      const double rate = j.iteration / std::max(1e-9, std::chrono::duration<double>(Clock::now() - j.started).count());
      s.eta_seconds = (j.total - j.iteration) / rate;
    }
    return s;
  }

  bool result(const Job& job, std::vector<uint8_t>& bytes, JobStatus& s) override {
    s = status(job);
    if (job.state != JobState::done) return false;
    const Value v = pool_.run({"GET", result_key(job.id)});
    if (v.is_nil()) throw OutputError("the result of job " + job.id + " is no longer in Redis (expired or over the cap)");
    bytes.assign(v.str.begin(), v.str.end());
    return true;
  }

  void cancel(const std::shared_ptr<Job>& job) override {
    pool_.run({"EVAL", kCancel, "3", job_key(job->id), kCounts, kStream, num(unix_seconds()), std::to_string(ttl())});
  }

  JobState wait(const std::shared_ptr<Job>& job) override {
    for (;;) {
      auto now = find(job->id);
      if (!now) return JobState::failed;
      if (is_terminal(now->state)) {
        job->state = now->state;
        job->error = now->error;
        job->warnings = now->warnings;  // a worker may have added its own (a --workers 0 API plans no tiles)
        return now->state;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void forget(const std::string& id) override {
    pool_.run({"DEL", job_key(id), result_key(id)});
    pool_.run({"ZREM", kResults, id});
  }

  void progress(Job& job, const Progress& p) override {
    int delta = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delta = std::max(0, p.iteration - job.iteration);
      job.iteration = p.iteration;
      job.total = p.total;
      job.loss = p.loss;
    }
    pool_.run({"HSET", job_key(job.id), "iteration", std::to_string(p.iteration), "loss", num(p.loss)});
    if (delta > 0) pool_.run({"HINCRBY", kCounts, "iterations", std::to_string(delta)});
  }

  void drain(double seconds) override {
    if (!accepting_.exchange(false)) return;
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return running_.empty(); });
    lock.unlock();
    stop();
  }

  bool accepting() override { return accepting_; }

  std::string unavailable() override {
    try {
      pool_.run({"PING"});
      return "";
    } catch (const std::exception&) {
      return "the job queue (Redis) does not answer";  // its address stays in the server's log
    }
  }

  QueueMetrics metrics() override {
    QueueMetrics m;
    const long long length = pool_.run({"XLEN", kStream}).n;
    Value pending;
    try {
      pending = pool_.run({"XPENDING", kStream, kGroup});
    } catch (const RedisCommandError& e) {
      if (!lost_group(e)) throw;
      create_group();  // restarted empty: nothing is claimed yet
      pending = pool_.run({"XPENDING", kStream, kGroup});
    }
    const long long claimed = pending.items.empty() ? 0 : pending.items[0].n;
    m.running = static_cast<int>(claimed);
    m.queued = static_cast<int>(std::max(0LL, length - claimed));
    const Value counts = pool_.run({"HGETALL", kCounts});
    for (size_t i = 0; i + 1 < counts.items.size(); i += 2) {
      const std::string& k = counts.items[i].str;
      const auto n = static_cast<uint64_t>(std::atoll(counts.items[i + 1].str.c_str()));
      if (k == "done") m.done = n;
      if (k == "failed") m.failed = n;
      if (k == "cancelled") m.cancelled = n;
      if (k == "iterations") m.iterations_total = n;
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [entry, r] : running_) {
      if (r.job->iteration > 0) {
        m.iterations_per_second += r.job->iteration / std::max(1e-9, std::chrono::duration<double>(Clock::now() - r.since).count());
      }
    }
    return m;
  }

  void expire() override {}  // Redis expires finished jobs itself (EXPIRE at their end)

 private:
  struct Running {
    std::shared_ptr<Job> job;
    std::string consumer;  // XCLAIM keeps the entry with the consumer it names: the one that claimed it
    Clock::time_point since;
  };

  long ttl() const { return std::max(1L, static_cast<long>(opt_.result_ttl_s)); }

  // The stream and its consumer group, made where they are missing: at the start, and again when
  // Redis answers NOGROUP (restarted empty: no persistence, a FLUSHALL, a failover to an empty
  // replica). Without it the workers retried forever and accepted jobs never ran.
  void create_group() {
    try {
      pool_.run({"XGROUP", "CREATE", kStream, kGroup, "0", "MKSTREAM"});
    } catch (const RedisCommandError& e) {
      if (std::string(e.what()).find("BUSYGROUP") == std::string::npos) throw;  // it exists: fine
    }
  }
  static bool lost_group(const std::exception& e) { return std::string(e.what()).find("NOGROUP") != std::string::npos; }

  // Stops the workers, cancelling the jobs they run (drain() has waited for them already); those
  // go back to the queue for another worker.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && workers_.empty()) return;
      stopping_ = true;
      for (auto& [entry, r] : running_) r.job->cancel = true;
    }
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
    workers_.clear();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  bool next_entry(Connection& c, const std::string& consumer, Entry& e) {
    // A dead worker's job first: idle past the visibility timeout, no heartbeat reset it.
    const std::string idle_ms = std::to_string(static_cast<long long>(opt_.visibility_timeout_s * 1000));
    Value v = c.run({"XAUTOCLAIM", kStream, kGroup, consumer, idle_ms, "0-0", "COUNT", "1"});
    if (v.items.size() >= 2 && !v.items[1].items.empty()) {
      const Value& item = v.items[1].items[0];
      if (item.items.size() >= 2 && item.items[1].items.size() >= 2) {
        e = {item.items[0].str, item.items[1].items[1].str};
        spdlog::info("job {} claimed again by {} (its worker stopped heartbeating)", e.id, consumer);
        return true;
      }
    }
    v = c.run({"XREADGROUP", "GROUP", kGroup, consumer, "COUNT", "1", "BLOCK", "1000", "STREAMS", kStream, ">"});
    if (v.is_nil() || v.items.empty() || v.items[0].items.size() < 2 || v.items[0].items[1].items.empty()) return false;
    const Value& item = v.items[0].items[1].items[0];
    if (item.items.size() < 2 || item.items[1].items.size() < 2) return false;
    e = {item.items[0].str, item.items[1].items[1].str};
    return true;
  }

  void worker_loop(const std::string& consumer) {
    std::unique_ptr<Connection> c;
    while (!stopping_ && accepting_) {  // a drain stops the claiming; the job in hand finishes
      try {
        if (!c || c->broken()) c = std::make_unique<Connection>(pool_.url(), 10.0);
        Entry e;
        if (next_entry(*c, consumer, e)) run_entry(*c, consumer, e);
      } catch (const std::exception& ex) {
        if (lost_group(ex)) {
          spdlog::warn("worker {}: Redis has lost the job stream's consumer group (restarted empty?); making it again",
                       consumer);
          try {
            create_group();
            continue;
          } catch (const std::exception&) {  // Redis gone again: the line below says so
          }
        }
        spdlog::error("worker {}: {}; retrying in 1 s", consumer, key_words(ex));
        c.reset();
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
  }

  // The job's form as submitted; `ext` and `warnings` what the record says (the API's choice and
  // what its client was told).
  Form read_form(Connection& c, const std::string& id, std::string& ext, std::vector<std::string>& warnings) {
    const Value v = c.run({"HMGET", job_key(id), "ext", "fields", "files", "warnings"});
    ext = v.items[0].str;
    warnings = warnings_from_json(v.items[3].str);
    Form form;
    const auto fields = nlohmann::json::parse(v.items[1].str, nullptr, false);
    const auto files = nlohmann::json::parse(v.items[2].str, nullptr, false);
    if (fields.is_object()) {
      for (const auto& [name, text] : fields.items()) form[name] = {"", text.get<std::string>()};
    }
    if (files.is_object()) {
      for (const auto& [name, filename] : files.items()) {
        const Value bytes = c.run({"HGET", job_key(id), "up:" + name});
        if (bytes.is_nil()) throw InputError("its uploaded " + in_quotes(name) + " is gone from Redis");
        form[name] = {filename.get<std::string>(), bytes.str};
      }
    }
    return form;
  }

  void finish(Connection& c, const std::string& consumer, const Entry& e, int attempt, const std::string& state,
              const std::string& error, const Job* job, const std::vector<uint8_t>& bytes) {
    const std::string payload(bytes.begin(), bytes.end());
    const Value v = c.run({"EVAL", kFinish, "5", job_key(e.id), result_key(e.id), kResults, kStream, kCounts, consumer,
                           std::to_string(attempt), state, error, std::to_string(job ? job->iteration : 0),
                           num(job ? job->loss : 0), num(unix_seconds()), std::to_string(ttl()), payload, e.entry, kGroup,
                           e.id});
    if (v.n == 0) {
      spdlog::warn("job {}: attempt {} lost its claim to another worker; its end is dropped", e.id, attempt);
      return;
    }
    if (state == "failed") spdlog::warn("job {} failed: {}", e.id, error);
    if (state == "done" && opt_.max_stored_mb > 0) {
      const auto cap = static_cast<long long>(opt_.max_stored_mb * 1024 * 1024);
      for (const auto& id : c.run({"EVAL", kCap, "1", kResults, std::to_string(cap)}).items) {
        log_result_dropped(id.str, opt_.max_stored_mb);
      }
    }
  }

  void run_entry(Connection& c, const std::string& consumer, const Entry& e) {
    const Value claimed = c.run({"EVAL", kClaim, "2", job_key(e.id), kCounts, consumer, num(unix_seconds()), std::to_string(ttl())});
    if (claimed.n < 0) {  // cancelled while queued, or expired: nothing to run
      c.run({"XACK", kStream, kGroup, e.entry});
      c.run({"XDEL", kStream, e.entry});
      return;
    }
    const int attempt = static_cast<int>(claimed.n);
    if (attempt > opt_.max_attempts) {
      finish(c, consumer, e, attempt, "failed",
             "claimed " + std::to_string(attempt - 1) + " times without finishing (its workers died or were killed); not run again",
             nullptr, {});
      return;
    }
    std::shared_ptr<Job> job;
    std::string ext;
    std::vector<std::string> told;
    try {
      Form form = read_form(c, e.id, ext, told);
      job = prepare_(form);
    } catch (const FormError& fe) {
      finish(c, consumer, e, attempt, "failed", "this worker refuses its form: " + fe.detail, nullptr, {});
      return;
    } catch (const std::exception& ex) {
      finish(c, consumer, e, attempt, "failed", key_words(ex), nullptr, {});
      return;
    }
    job->id = e.id;
    job->attempt = attempt;
    job->ext = ext.empty() ? job->ext : ext;
    job->state = JobState::running;
    if (job->warnings != told) {  // this worker's plan says more (or other) than the API could
      try {
        c.run({"EVAL", kWarnings, "1", job_key(e.id), consumer, std::to_string(attempt), warnings_to_json(job->warnings)});
      } catch (const std::exception& ex) {  // advisory: the job runs without them
        spdlog::warn("job {}: its warnings could not be written: {}", e.id, key_words(ex));
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_[e.entry] = {job, consumer, Clock::now()};
    }
    Outcome out;
    std::string error;
    std::string state = "failed";
    try {
      out = run_(*job);
      state = out.cancelled ? "cancelled" : "done";
    } catch (...) {
      error = error_report(std::current_exception()).message;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(e.entry);
    }
    idle_cv_.notify_all();
    if (state == "cancelled" && !job->user_cancel) {
      // This worker is stopping, not the job's client: another worker takes it from the start.
      const Value v = c.run({"EVAL", kRequeue, "2", job_key(e.id), kStream, consumer, std::to_string(attempt), e.entry,
                             kGroup, e.id});
      if (v.n == 1) spdlog::info("job {} back in the queue: this worker is stopping", e.id);
      return;
    }
    finish(c, consumer, e, attempt, state, error, job.get(), out.bytes);
    if (state == "done") spdlog::info("job {} done on {} (attempt {})", e.id, consumer, attempt);
  }

  // Every claimed entry's idle time reset (XCLAIM ... JUSTID) well inside the visibility timeout,
  // and every running job's cancel flag read, whatever the length of one iteration.
  void heartbeat_loop() {
    std::unique_ptr<Connection> c;
    const auto period = std::chrono::duration<double>(std::clamp(opt_.visibility_timeout_s / 4, 0.05, 1.0));
    while (!(stopping_ && workers_done())) {
      std::this_thread::sleep_for(period);
      std::vector<std::pair<std::string, Running>> now;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [entry, r] : running_) now.emplace_back(entry, r);
      }
      try {
        if (!c || c->broken()) c = std::make_unique<Connection>(pool_.url(), 10.0);
        for (const auto& [entry, r] : now) {
          c->run({"XCLAIM", kStream, kGroup, r.consumer, "0", entry, "JUSTID"});
          if (c->run({"HGET", job_key(r.job->id), "cancel"}).str == "1") {
            r.job->user_cancel = true;
            r.job->cancel = true;
          }
        }
      } catch (const std::exception& ex) {
        spdlog::warn("heartbeat: {}", key_words(ex));
        c.reset();
      }
    }
  }

  bool workers_done() {
    std::lock_guard<std::mutex> lock(mu_);
    return running_.empty();
  }

  ServeOptions opt_;
  Pool pool_;
  JobPreparer prepare_;
  Runner run_;
  std::string consumer_prefix_;
  std::atomic<bool> accepting_{true}, stopping_{false};
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::map<std::string, Running> running_;  // stream entry -> the job this process runs for it
  std::vector<std::thread> workers_;
  std::thread heartbeat_;
};

}  // namespace

std::unique_ptr<JobService> make_redis_jobs(const ServeOptions& options, JobPreparer prepare, JobService::Runner run) {
  return std::make_unique<RedisJobs>(options, std::move(prepare), std::move(run));
}

}  // namespace stylize::serve

#endif
