// The serve job queue on its own, with runners the tests control (no network, no HTTP): cancel of
// a queued and of a running job, a drain with one running, the queue limit, TTL eviction, the
// counters /metrics reports; and its durable store (records, uploads, results, orphans, the lock,
// the size cap) across reopening.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <filesystem>

#include "../src/server/job_queue.hpp"
#include "stylize/error.hpp"
#include "support.hpp"

using namespace stylize;
using namespace stylize::serve;

namespace {

// A runner that holds each job until released (or cancelled), reporting `steps` progress points.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> started{0};
  int steps = 4;

  JobQueue::Outcome run(JobQueue& q, Job& job) {
    ++started;
    for (int i = 1; i <= steps; ++i) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return open; });
      }
      if (job.cancel) return {true, {}};
      Progress p;
      p.iteration = i;
      p.total = steps;
      p.loss = 100.0 / i;
      q.progress(job, p);
    }
    if (job.id == "boom") throw std::runtime_error("the runner failed");
    return {false, {1, 2, 3}};
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

std::shared_ptr<Job> job(const std::string& id) {
  auto j = std::make_shared<Job>();
  j->id = id;
  return j;
}

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 500; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

struct Fixture {
  Gate gate;
  std::unique_ptr<JobQueue> q;
  explicit Fixture(JobQueueOptions o) {
    q = std::make_unique<JobQueue>([this](Job& j) { return gate.run(*q, j); }, o);
  }
};

}  // namespace

TEST(JobQueue, RunsJobsAndCountsThem) {
  Fixture f({1, 8, 3600});
  f.gate.release();
  auto a = job("a"), b = job("boom");
  f.q->submit(a);
  f.q->submit(b);
  EXPECT_EQ(f.q->wait(a), JobState::done);
  EXPECT_EQ(f.q->wait(b), JobState::failed);
  std::vector<uint8_t> bytes;
  JobStatus st;
  ASSERT_TRUE(f.q->result(*a, bytes, st));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(st.iteration, 4);
  EXPECT_EQ(st.loss, 25.0);
  EXPECT_FALSE(f.q->result(*b, bytes, st));
  EXPECT_EQ(st.error, "internal error: the runner failed");
  const QueueMetrics m = f.q->metrics();
  EXPECT_EQ(m.done, 1u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.cancelled, 0u);
  EXPECT_EQ(m.iterations_total, 8u) << "4 progress steps per job";
  EXPECT_EQ(m.queued + m.running, 0);
}

TEST(JobQueue, CancelAQueuedJobAtOnceAndARunningOneAtItsNextStep) {
  Fixture f({1, 8, 3600});
  f.gate.steps = 1000;  // the first job runs until cancelled
  auto running = job("running"), queued = job("queued");
  f.q->submit(running);
  ASSERT_TRUE(eventually([&] { return f.q->status(*running).state == JobState::running; }));
  f.q->submit(queued);
  EXPECT_EQ(f.q->metrics().queued, 1);
  f.q->cancel(queued);
  EXPECT_EQ(f.q->status(*queued).state, JobState::cancelled) << "a queued job is cancelled at once";
  EXPECT_EQ(f.q->metrics().queued, 0);
  EXPECT_EQ(f.q->status(*running).state, JobState::running);
  f.q->cancel(running);
  EXPECT_EQ(f.q->wait(running), JobState::cancelled);
  EXPECT_EQ(f.gate.started, 1) << "the cancelled queued job never ran";
  EXPECT_EQ(f.q->metrics().cancelled, 2u);
}

TEST(JobQueue, AFullQueueAndADrainingOneRefuseJobs) {
  Fixture f({1, 2, 3600});
  f.gate.steps = 1000;
  auto first = job("first");
  f.q->submit(first);
  ASSERT_TRUE(eventually([&] { return f.q->status(*first).state == JobState::running; }));
  f.q->submit(job("q1"));
  f.q->submit(job("q2"));
  try {
    f.q->submit(job("q3"));
    ADD_FAILURE() << "a third queued job must be refused";
  } catch (const QueueRefused& r) {
    EXPECT_EQ(r.reason, QueueRefused::full);
    EXPECT_EQ(r.queued, 2u);
  }
  f.q->cancel(first);
  f.q->drain(0.0);
  try {
    f.q->submit(job("late"));
    ADD_FAILURE() << "a draining queue must refuse";
  } catch (const QueueRefused& r) {
    EXPECT_EQ(r.reason, QueueRefused::shutting_down);
  }
}

// A drain gives the running and queued jobs its time to finish, then cancels what is left.
TEST(JobQueue, DrainWaitsForJobsThenCancelsTheRest) {
  {
    Fixture f({1, 8, 3600});
    auto running = job("running"), waiting = job("waiting");
    f.q->submit(running);
    ASSERT_TRUE(eventually([&] { return f.q->status(*running).state == JobState::running; }));
    f.q->submit(waiting);
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      f.gate.release();
    });
    const auto t0 = std::chrono::steady_clock::now();
    f.q->drain(30.0);
    releaser.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "returns when both are done";
    EXPECT_FALSE(f.q->accepting());
    EXPECT_EQ(f.q->status(*running).state, JobState::done);
    EXPECT_EQ(f.q->status(*waiting).state, JobState::done);
  }
  Fixture f({1, 8, 3600});
  f.gate.steps = 1000;  // never finishes by itself
  auto running = job("running"), waiting = job("waiting");
  f.q->submit(running);
  ASSERT_TRUE(eventually([&] { return f.q->status(*running).state == JobState::running; }));
  f.q->submit(waiting);
  f.q->drain(0.05);
  EXPECT_EQ(f.q->status(*running).state, JobState::cancelled) << "stopped at its next step";
  EXPECT_EQ(f.q->status(*waiting).state, JobState::cancelled);
  EXPECT_EQ(f.q->metrics().running, 0) << "drain returns only when nothing runs";
  EXPECT_EQ(f.gate.started, 1);
}

TEST(JobQueue, FinishedJobsAreForgottenAfterTheTtl) {
  Fixture f({1, 8, 0.05});
  f.gate.release();
  auto a = job("a");
  f.q->submit(a);
  EXPECT_EQ(f.q->wait(a), JobState::done);
  EXPECT_EQ(f.q->find("a"), a) << "kept within the TTL";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(f.q->find("a"), nullptr) << "gone after it";
  auto b = job("b");
  f.q->submit(b);
  EXPECT_EQ(f.q->wait(b), JobState::done);
  f.q->forget("b");
  EXPECT_EQ(f.q->find("b"), nullptr) << "forget drops a finished job at once";
}

namespace {

Form sample_form(const std::string& tag) {
  return {{"size", {"", "48"}}, {"style_weight", {"", "1e5"}},
          {"content", {"photo " + tag + ".jpg", std::string("\x89PNG\0bytes of ", 14) + tag}},
          {"style", {"starry.jpg", "style bytes"}}};
}

StoredJob record(const std::string& id) {
  StoredJob r;
  r.id = id;
  r.ext = "png";
  r.total = 300;
  return r;
}

const JobStore::Recovered* find_in(const std::vector<JobStore::Recovered>& all, const std::string& id) {
  for (const auto& r : all) {
    if (r.job.id == id) return &r;
  }
  return nullptr;
}

}  // namespace

TEST(JobStore, KeepsRecordsUploadsAndResultsAcrossReopening) {
  test::TempDir dir;
  {
    JobStore s(dir.path());
    for (const char* id : {"a", "b", "c"}) {
      s.write_uploads(id, sample_form(id));
      s.add(record(id), sample_form(id));
    }
    s.set_running("b", 1);
    s.finish("c", "done", "", {7, 8, 9}, "png", 300, 1.5e5);
  }
  JobStore s(dir.path());
  const auto all = s.load();
  ASSERT_EQ(all.size(), 3u);
  const auto* a = find_in(all, "a");
  const auto* b = find_in(all, "b");
  const auto* c = find_in(all, "c");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->job.state, "queued");
  EXPECT_EQ(b->job.state, "running");
  EXPECT_EQ(c->job.state, "done");
  EXPECT_EQ(c->job.result_bytes, 3);
  EXPECT_EQ(c->job.iteration, 300);
  EXPECT_EQ(c->job.loss, 1.5e5);
  EXPECT_GT(c->job.finished, c->job.created - 1);
  EXPECT_EQ(b->form.at("content").content, std::string("\x89PNG\0bytes of b", 15)) << "binary bytes kept";
  EXPECT_EQ(b->form.at("content").filename, "photo b.jpg");
  EXPECT_EQ(b->form.at("size").content, "48");
  EXPECT_TRUE(b->form.at("size").filename.empty());
  EXPECT_TRUE(c->form.empty()) << "a finished job's form is not read back";
  EXPECT_FALSE(std::filesystem::exists(dir / "uploads/c")) << "a finished job's uploads go";
  std::vector<uint8_t> bytes;
  std::string why;
  ASSERT_TRUE(s.read_result("c", "png", bytes, why)) << why;
  EXPECT_EQ(bytes, (std::vector<uint8_t>{7, 8, 9}));
  EXPECT_EQ(s.stored_bytes(), 3);
  s.remove("c");
  EXPECT_FALSE(s.read_result("c", "png", bytes, why));
  EXPECT_EQ(s.load().size(), 2u);
}

// A job's warnings survive reopening; a data dir written before stylize kept them (2026-12-05) opens,
// its jobs with none.
TEST(JobStore, KeepsWarningsAndOpensADataDirFromBeforeThem) {
  test::TempDir dir;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "jobs.db").c_str(), &db), SQLITE_OK);
    const char* old_schema =
        "CREATE TABLE jobs(id TEXT PRIMARY KEY, state TEXT NOT NULL, attempt INTEGER NOT NULL, ext TEXT NOT NULL,"
        " total INTEGER NOT NULL, error TEXT NOT NULL DEFAULT '', created REAL NOT NULL, finished REAL NOT NULL"
        " DEFAULT 0, result_bytes INTEGER NOT NULL DEFAULT 0, iteration INTEGER NOT NULL DEFAULT 0, loss REAL NOT"
        " NULL DEFAULT 0, fields TEXT NOT NULL, files TEXT NOT NULL);"
        "INSERT INTO jobs(id, state, attempt, ext, total, error, created, finished, fields, files)"
        " VALUES('old', 'failed', 1, 'png', 300, 'out of memory', 1, 2, '{}', '{}');";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(db);
  }
  const std::vector<std::string> warnings = {"the first style image ('init' style) is 32x32 and the content 48x40: "
                                             "it is stretched to the content's shape",
                                             "'tile' 16 with 85 px of context per side runs the network over 19.0x"};
  {
    JobStore s(dir.path());
    StoredJob r = record("new");
    r.warnings = warnings;
    s.write_uploads("new", sample_form("new"));
    s.add(r, sample_form("new"));
    s.finish("new", "done", "", {1, 2}, "png", 300, 2.0);
  }
  JobStore s(dir.path());
  const auto all = s.load();
  ASSERT_EQ(all.size(), 2u);
  const auto* old = find_in(all, "old");
  const auto* fresh = find_in(all, "new");
  ASSERT_TRUE(old && fresh);
  EXPECT_EQ(old->job.state, "failed");
  EXPECT_EQ(old->job.error, "out of memory");
  EXPECT_TRUE(old->job.warnings.empty());
  EXPECT_EQ(fresh->job.state, "done");
  EXPECT_EQ(fresh->job.warnings, warnings);
  EXPECT_EQ(warnings_from_json("not json"), std::vector<std::string>{});
  EXPECT_EQ(warnings_from_json(R"(["a", 3, "b"])"), (std::vector<std::string>{"a", "b"})) << "what is not text is skipped";
}

TEST(JobStore, RemovesWhatNoRecordOwnsAndRefusesASecondServer) {
  test::TempDir dir;
  {
    JobStore s(dir.path());
    s.write_uploads("never-acknowledged", sample_form("x"));  // a submit that died before its record
    s.write_uploads("kept", sample_form("k"));
    s.add(record("kept"), sample_form("k"));
    test::write_bytes(dir / "results/stray.png", {1});
    EXPECT_NE(test::error_of<OutputError>([&] { JobStore second(dir.path()); }).find("in use by another stylize serve"),
              std::string::npos);
  }
  JobStore s(dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir / "uploads/never-acknowledged"));
  EXPECT_FALSE(std::filesystem::exists(dir / "results/stray.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "uploads/kept/content"));
  std::filesystem::remove(dir / "uploads/kept/style");
  const auto all = s.load();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].missing, "style") << "an upload gone from disk is reported, not read as empty";
}

TEST(JobStore, TheCapDropsTheOldestResultsFirstAndKeepsTheNewest) {
  test::TempDir dir;
  JobStore s(dir.path());
  for (const char* id : {"old", "mid", "new"}) {
    s.add(record(id), {});
    s.finish(id, "done", "", std::vector<uint8_t>(100, 1), "png");
  }
  EXPECT_EQ(s.enforce_cap(250), (std::vector<std::string>{"old"}));
  EXPECT_EQ(s.stored_bytes(), 200);
  EXPECT_EQ(s.enforce_cap(50), (std::vector<std::string>{"mid"})) << "the newest stays whatever its size";
  EXPECT_FALSE(std::filesystem::exists(dir / "results/old.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "results/new.png"));
}

TEST(JobQueue, DurableResultsComeFromDiskAndADrainLeavesUnfinishedJobsThere) {
  test::TempDir dir;
  {
    JobQueueOptions o{1, 8, 3600};
    o.store = std::make_shared<JobStore>(dir.path());
    Fixture f(o);
    auto a = job("a");
    a->durable = true;
    a->form = sample_form("a");
    f.q->submit(a);
    EXPECT_EQ(f.q->wait(a), JobState::done);
    EXPECT_TRUE(a->result.empty()) << "not kept in memory";
    std::vector<uint8_t> bytes;
    JobStatus st;
    ASSERT_TRUE(f.q->result(*a, bytes, st));
    EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3}));
    f.gate.steps = 100000;  // the next job runs until the drain stops it
    auto b = job("b"), c = job("c"), x = job("x");
    for (auto& j : {b, c, x}) {
      j->durable = true;
      j->form = sample_form(j->id);
      f.q->submit(j);
    }
    f.q->cancel(x);  // its client's cancel is kept
    ASSERT_TRUE(eventually([&] { return f.q->status(*b).state == JobState::running; }));
    f.q->drain(0);
    EXPECT_EQ(f.q->status(*c).state, JobState::cancelled);
  }
  JobStore s(dir.path());
  const auto all = s.load();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(find_in(all, "a")->job.state, "done");
  EXPECT_EQ(find_in(all, "b")->job.state, "queued") << "stopped by the drain: runs again at the next start";
  EXPECT_EQ(find_in(all, "b")->job.attempt, 1) << "as the same attempt: a drain is no crash";
  EXPECT_EQ(find_in(all, "c")->job.state, "queued");
  EXPECT_EQ(find_in(all, "x")->job.state, "cancelled");
  EXPECT_EQ(find_in(all, "c")->form.at("content").content, sample_form("c").at("content").content);
}

// A client's cancel of a running job is on disk before the job reaches its next step: a crash in
// between must not run it again at the next start.
TEST(JobQueue, ACancelOfARunningDurableJobIsOnDiskBeforeTheJobStops) {
  test::TempDir dir;
  JobQueueOptions o{1, 8, 3600};
  o.store = std::make_shared<JobStore>(dir.path());
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  JobQueue q(
      [&](Job& j) {  // a long step: it sees the cancel only when released
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return released; });
        return JobQueue::Outcome{j.cancel.load(), {}};
      },
      o);
  auto r = job("r");
  r->durable = true;
  r->form = sample_form("r");
  q.submit(r);
  ASSERT_TRUE(eventually([&] { return q.status(*r).state == JobState::running; }));
  q.cancel(r);
  EXPECT_EQ(q.status(*r).state, JobState::running) << "it stops at its next step";
  EXPECT_EQ(find_in(o.store->load(), "r")->job.state, "cancelled") << "but the cancel is stored already";
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  EXPECT_EQ(q.wait(r), JobState::cancelled);
  EXPECT_EQ(find_in(o.store->load(), "r")->job.state, "cancelled");
  // A worker's or a drain's write that comes after a client's cancel does not undo it.
  o.store->set_running("r", 2);
  o.store->set_queued("r", 2);
  EXPECT_EQ(find_in(o.store->load(), "r")->job.state, "cancelled");
}

TEST(JobQueue, StoredResultsOverTheCapAreDroppedOldestFirst) {
  test::TempDir dir;
  JobQueueOptions o{1, 8, 3600};
  o.store = std::make_shared<JobStore>(dir.path());
  o.max_stored_bytes = 4;  // each result is 3 bytes: one fits
  Fixture f(o);
  f.gate.release();
  auto a = job("a"), b = job("b");
  for (auto& j : {a, b}) {
    j->durable = true;
    f.q->submit(j);
    EXPECT_EQ(f.q->wait(j), JobState::done);
  }
  EXPECT_EQ(f.q->find("a"), nullptr) << "the older result went";
  ASSERT_NE(f.q->find("b"), nullptr);
  EXPECT_EQ(o.store->stored_bytes(), 3);
  EXPECT_FALSE(std::filesystem::exists(dir / "results/a.png"));
}
