// Where `stylize serve --data-dir DIR` keeps its jobs so that a crash, a kill -9 or a deploy loses
// none it acknowledged. SQLite (WAL, synchronous=FULL) holds one row per job; uploads and results are
// files beside it, each written to a temporary name, fsynced and renamed:
//   DIR/jobs.db             the records (id, state, attempt, form fields, warnings, times, result size)
//   DIR/uploads/ID/PART     a job's uploaded images, until it ends
//   DIR/results/ID.EXT      a done job's image, until its TTL or the --max-stored-mb cap
//   DIR/lock                held (flock) while a server uses DIR: two servers on one DIR would each
//                           rerun the other's jobs
// Why SQLite and not a journal: bench/job_store_choice.py (BENCHMARKS.md "Job store").
// Thread-safe (one mutex); every method throws OutputError (what, which file, why) on I/O failure.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;

namespace stylize::serve {

// A request form as the server read it, without HTTP: field name -> value. Text fields hold their
// text in `content`; uploads also have a file name.
struct FormPart {
  std::string filename;
  std::string content;
};
using Form = std::map<std::string, FormPart>;

// A job's record as stored. `state` is one of queued, running, done, failed, cancelled.
struct StoredJob {
  std::string id;
  std::string state;
  int attempt = 1;         // 1 on the first run; a job found running at start runs again as attempt + 1
  std::string ext;         // the result's format
  int total = 0;           // iterations over all scales
  std::string error;
  double created = 0, finished = 0;  // Unix seconds (finished: 0 until the job ends)
  int64_t result_bytes = 0;
  int iteration = 0;       // progress at the end, and the loss there (finished jobs)
  double loss = 0;
  std::vector<std::string> warnings;  // what the client was told with the job (Job::warnings)
};

class JobStore {
 public:
  // Opens (creating it if needed) and locks DIR; removes uploads and results that no record owns
  // (a submit that never got its 202, a crash between a result's file and its record). Throws
  // OutputError when DIR cannot be made or written, or when another server holds it.
  explicit JobStore(const std::string& dir);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  const std::string& dir() const { return dir_; }

  // Step 1 of a submit, outside any queue lock: the form's uploads (parts with a file name) to
  // DIR/uploads/ID, fsynced. Until add() they are orphans, removed by discard() or the next start.
  void write_uploads(const std::string& id, const Form& form);
  // Step 2: the record (state queued, attempt 1) with the form's text fields, committed to disk
  // before it returns: after this the job survives a crash.
  void add(const StoredJob& job, const Form& form);
  void discard(const std::string& id);  // a refused submit: its uploads go

  // Every record, oldest first, for recovery; `form` filled for queued and running jobs (text
  // fields from the row, uploads from their files). A job whose upload is gone comes back with
  // `missing` set to the part's name.
  struct Recovered {
    StoredJob job;
    Form form;
    std::string missing;
  };
  std::vector<Recovered> load();

  // Neither overwrites a job that ended (a client's cancel stored while a worker took the job).
  void set_running(const std::string& id, int attempt);  // from queued only
  void set_queued(const std::string& id, int attempt);   // recovery, or a drain: the job waits again
  // A client's cancel, on disk at once: a job still queued or running ends cancelled (its uploads go),
  // so that a crash before it stops cannot run it again; a job that ended meanwhile keeps its end.
  void cancel(const std::string& id);
  // The job ends: its uploads go; a done job's bytes become DIR/results/ID.EXT first. `iteration`
  // and `loss`: its progress at the end, shown again after a restart.
  void finish(const std::string& id, const std::string& state, const std::string& error,
              const std::vector<uint8_t>& result, const std::string& ext, int iteration = 0, double loss = 0);
  // A done job's result; false (and `why`) when its file is gone.
  bool read_result(const std::string& id, const std::string& ext, std::vector<uint8_t>& bytes, std::string& why);
  void remove(const std::string& id);  // record, uploads and result
  // Oldest results first until the results' total is at most `max_bytes`; the newest result is
  // kept whatever its size. Returns the ids whose records were removed.
  std::vector<std::string> enforce_cap(int64_t max_bytes);
  int64_t stored_bytes();

 private:
  void exec(const std::string& sql);
  void add_missing_columns();
  void remove_files(const std::string& id, const std::string& ext);
  void clean_orphans();

  std::string dir_;
  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

// The default --data-dir: ${XDG_STATE_HOME:-~/.local/state}/stylize/serve.
std::string default_data_dir();

// Seconds since the Unix epoch: the times a store keeps (they outlive the process, so not steady).
double unix_seconds();

// A job's warnings as the stores keep them: a JSON array of strings. Reading skips what is not
// one (a record written by hand, or before warnings were kept: "").
std::string warnings_to_json(const std::vector<std::string>& warnings);
std::vector<std::string> warnings_from_json(const std::string& text);

// The log line for a result the --max-stored-mb cap dropped (the data dir's and Redis's alike).
void log_result_dropped(const std::string& id, double max_stored_mb);

}  // namespace stylize::serve
