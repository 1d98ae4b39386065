#include "job_store.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"

namespace fs = std::filesystem;

namespace stylize::serve {
namespace {

// Part names become file names: the server only stores the parts it reads, but a name is checked
// here too, so that no form can name a path.
bool safe_part_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

// One prepared statement, finalised on scope exit; bind() by position from 1.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::string& where) : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  // SQLITE_ROW: true; SQLITE_DONE: false; otherwise throws.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("write");
    return false;
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st_, col))) : "";
  }
  double real(int col) const { return sqlite3_column_double(st_, col); }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }

 private:
  [[noreturn]] void fail(const char* what) {
    throw OutputError("job store " + in_quotes(where_) + ": " + what + " failed: " + sqlite3_errmsg(db_) +
                      (sqlite3_errcode(db_) == SQLITE_FULL ? " (the disk is full; free space or move --data-dir)" : ""));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  std::string where_;
};

void make_folder(const fs::path& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec || !fs::is_directory(p)) {
    throw OutputError("cannot use data dir folder " + in_quotes(p.string()) + ": " +
                      (ec ? ec.message() : "not a folder") + "; pick another --data-dir");
  }
}

}  // namespace

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string warnings_to_json(const std::vector<std::string>& warnings) {
  return nlohmann::json(warnings).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> warnings_from_json(const std::string& text) {
  std::vector<std::string> out;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& w : j) {
    if (w.is_string()) out.push_back(w.get<std::string>());
  }
  return out;
}

void log_result_dropped(const std::string& id, double max_stored_mb) {
  spdlog::info("result of job {} dropped (oldest first) to keep the stored results under {:.1f} MB (--max-stored-mb)",
               id, max_stored_mb);
}

std::string default_data_dir() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state && *state) return (fs::path(state) / "stylize/serve").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".local/state/stylize/serve").string();
}

JobStore::JobStore(const std::string& dir) : dir_(dir) {
  make_folder(fs::path(dir_) / "uploads");
  make_folder(fs::path(dir_) / "results");
  const std::string lock = (fs::path(dir_) / "lock").string();
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw OutputError("cannot open " + in_quotes(lock) + ": " + std::strerror(errno));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    const ssize_t n = pread(lock_fd_, pid, sizeof pid - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw OutputError("data dir " + in_quotes(dir_) + " is in use by another stylize serve" +
                      (n > 0 ? " (pid " + std::string(pid, static_cast<size_t>(n)) + ")" : "") +
                      "; give each server its own --data-dir");
  }
  const std::string pid = std::to_string(getpid());
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    spdlog::debug("could not write the pid into {}", lock);  // the lock holds without it
  }
  const std::string db = (fs::path(dir_) / "jobs.db").string();
  if (sqlite3_open_v2(db.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw OutputError("cannot open job store " + in_quotes(db) + ": " + why + "; pick another --data-dir");
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL: a commit is one append and one fsync; FULL: that fsync happens before a 202 is sent.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec("CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, state TEXT NOT NULL, attempt INTEGER NOT NULL,"
       " ext TEXT NOT NULL, total INTEGER NOT NULL, error TEXT NOT NULL DEFAULT '', created REAL NOT NULL,"
       " finished REAL NOT NULL DEFAULT 0, result_bytes INTEGER NOT NULL DEFAULT 0, iteration INTEGER NOT NULL"
       " DEFAULT 0, loss REAL NOT NULL DEFAULT 0, fields TEXT NOT NULL, files TEXT NOT NULL,"
       " warnings TEXT NOT NULL DEFAULT '[]')");
  add_missing_columns();
  clean_orphans();
}

JobStore::~JobStore() {
  if (db_) sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// A data dir from an older stylize lacks the columns added since; its jobs get their defaults.
void JobStore::add_missing_columns() {
  std::vector<std::string> have;
  {
    Statement st(db_, "PRAGMA table_info(jobs)", dir_ + "/jobs.db");
    while (st.step()) have.push_back(st.text(1));
  }
  if (std::find(have.begin(), have.end(), "warnings") == have.end()) {
    exec("ALTER TABLE jobs ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'");
  }
}

void JobStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw OutputError("job store " + in_quotes(dir_ + "/jobs.db") + ": " + why);
  }
}

void JobStore::write_uploads(const std::string& id, const Form& form) {
  const fs::path folder = fs::path(dir_) / "uploads" / id;
  make_folder(folder);
  for (const auto& [name, part] : form) {
    if (part.filename.empty()) continue;
    if (!safe_part_name(name)) throw InputError("form field name " + in_quotes(name.substr(0, 64)) + " is not storable");
    write_file_atomic((folder / name).string(), part.content.data(), part.content.size());
  }
}

void JobStore::add(const StoredJob& job, const Form& form) {
  nlohmann::json fields = nlohmann::json::object(), files = nlohmann::json::object();
  for (const auto& [name, part] : form) {
    if (part.filename.empty()) {
      fields[name] = part.content;
    } else {
      files[name] = part.filename;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "INSERT INTO jobs(id, state, attempt, ext, total, created, fields, files, warnings)"
               " VALUES(?,?,?,?,?,?,?,?,?)",
               dir_ + "/jobs.db");
  st.bind(1, job.id).bind(2, std::string("queued")).bind(3, int64_t{job.attempt}).bind(4, job.ext);
  st.bind(5, int64_t{job.total}).bind(6, job.created > 0 ? job.created : unix_seconds());
  st.bind(7, fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  st.bind(8, files.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  st.bind(9, warnings_to_json(job.warnings));
  st.step();
}

void JobStore::discard(const std::string& id) {
  std::error_code ec;
  fs::remove_all(fs::path(dir_) / "uploads" / id, ec);
}

std::vector<JobStore::Recovered> JobStore::load() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "SELECT id, state, attempt, ext, total, error, created, finished, result_bytes, fields, files,"
               " iteration, loss, warnings"
               " FROM jobs ORDER BY created, id",
               dir_ + "/jobs.db");
  std::vector<Recovered> out;
  while (st.step()) {
    Recovered r;
    StoredJob& j = r.job;
    j.id = st.text(0);
    j.state = st.text(1);
    j.attempt = static_cast<int>(st.integer(2));
    j.ext = st.text(3);
    j.total = static_cast<int>(st.integer(4));
    j.error = st.text(5);
    j.created = st.real(6);
    j.finished = st.real(7);
    j.result_bytes = st.integer(8);
    j.iteration = static_cast<int>(st.integer(11));
    j.loss = st.real(12);
    j.warnings = warnings_from_json(st.text(13));
    if (j.state == "queued" || j.state == "running") {
      const auto fields = nlohmann::json::parse(st.text(9), nullptr, false);
      const auto files = nlohmann::json::parse(st.text(10), nullptr, false);
      if (fields.is_object()) {
        for (const auto& [name, text] : fields.items()) r.form[name] = {"", text.get<std::string>()};
      }
      if (files.is_object()) {
        for (const auto& [name, filename] : files.items()) {
          std::vector<uint8_t> bytes;
          std::string why;
          if (!safe_part_name(name) || !read_file((fs::path(dir_) / "uploads" / j.id / name).string(), bytes, why)) {
            r.missing = name;
            break;
          }
          r.form[name] = {filename.get<std::string>(), std::string(bytes.begin(), bytes.end())};
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

void JobStore::set_running(const std::string& id, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  // Only from queued: a client's cancel stored meanwhile (cancel()) stays.
  Statement st(db_, "UPDATE jobs SET state='running', attempt=? WHERE id=? AND state='queued'", dir_ + "/jobs.db");
  st.bind(1, int64_t{attempt}).bind(2, id).step();
}

void JobStore::set_queued(const std::string& id, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_, "UPDATE jobs SET state='queued', attempt=? WHERE id=? AND state IN ('queued','running')",
               dir_ + "/jobs.db");
  st.bind(1, int64_t{attempt}).bind(2, id).step();
}

void JobStore::finish(const std::string& id, const std::string& state, const std::string& error,
                      const std::vector<uint8_t>& result, const std::string& ext, int iteration, double loss) {
  // The file before the record: a crash between the two leaves an orphan file (removed at the next
  // start) and a job that runs again, never a done record without its image.
  if (state == "done") {
    write_file_atomic((fs::path(dir_) / "results" / (id + "." + ext)).string(), result.data(), result.size());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_, "UPDATE jobs SET state=?, error=?, finished=?, result_bytes=?, iteration=?, loss=? WHERE id=?",
                 dir_ + "/jobs.db");
    st.bind(1, state).bind(2, error).bind(3, unix_seconds());
    st.bind(4, static_cast<int64_t>(state == "done" ? result.size() : 0)).bind(5, int64_t{iteration}).bind(6, loss);
    st.bind(7, id).step();
  }
  discard(id);
}

void JobStore::cancel(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_, "UPDATE jobs SET state='cancelled', finished=? WHERE id=? AND state IN ('queued','running')",
                 dir_ + "/jobs.db");
    st.bind(1, unix_seconds()).bind(2, id).step();
  }
  discard(id);
}

bool JobStore::read_result(const std::string& id, const std::string& ext, std::vector<uint8_t>& bytes, std::string& why) {
  return read_file((fs::path(dir_) / "results" / (id + "." + ext)).string(), bytes, why);
}

void JobStore::remove_files(const std::string& id, const std::string& ext) {
  std::error_code ec;
  fs::remove(fs::path(dir_) / "results" / (id + "." + ext), ec);
  discard(id);
}

void JobStore::remove(const std::string& id) {
  std::string ext;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement q(db_, "SELECT ext FROM jobs WHERE id=?", dir_ + "/jobs.db");
    q.bind(1, id);
    if (!q.step()) return;
    ext = q.text(0);
    Statement st(db_, "DELETE FROM jobs WHERE id=?", dir_ + "/jobs.db");
    st.bind(1, id).step();
  }
  remove_files(id, ext);
}

int64_t JobStore::stored_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_, "SELECT COALESCE(SUM(result_bytes), 0) FROM jobs WHERE state='done'", dir_ + "/jobs.db");
  st.step();
  return st.integer(0);
}

std::vector<std::string> JobStore::enforce_cap(int64_t max_bytes) {
  std::vector<std::pair<std::string, std::string>> drop;  // id, ext
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_, "SELECT id, ext, result_bytes FROM jobs WHERE state='done' ORDER BY finished DESC, id",
                 dir_ + "/jobs.db");
    int64_t kept = 0;
    bool newest = true;
    while (st.step()) {
      const int64_t size = st.integer(2);
      if (newest || kept + size <= max_bytes) {
        kept += size;
      } else {
        drop.emplace_back(st.text(0), st.text(1));
        kept = max_bytes + 1;  // once one is dropped every older one goes too: oldest first
      }
      newest = false;
    }
    for (const auto& [id, ext] : drop) {
      Statement del(db_, "DELETE FROM jobs WHERE id=?", dir_ + "/jobs.db");
      del.bind(1, id).step();
    }
  }
  std::vector<std::string> ids;
  for (const auto& [id, ext] : drop) {
    remove_files(id, ext);
    ids.push_back(id);
  }
  return ids;
}

void JobStore::clean_orphans() {
  std::set<std::string> live, done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_, "SELECT id, state, ext FROM jobs", dir_ + "/jobs.db");
    while (st.step()) {
      const std::string state = st.text(1);
      if (state == "queued" || state == "running") live.insert(st.text(0));
      if (state == "done") done.insert(st.text(0) + "." + st.text(2));
    }
  }
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "uploads", ec)) {
    if (live.count(e.path().filename().string()) == 0) removed += fs::remove_all(e.path(), ec) > 0;
  }
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "results", ec)) {
    if (done.count(e.path().filename().string()) == 0) removed += fs::remove(e.path(), ec);
  }
  if (removed > 0) spdlog::info("data dir {}: removed {} upload(s) or result(s) that no job owns", dir_, removed);
}

}  // namespace stylize::serve
