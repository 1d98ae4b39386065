// The serve job queue on its own, with runners the tests control (no network, no HTTP): cancel of
// a queued and of a running job, a drain with one running, the queue limit, TTL eviction, and the
// counters /metrics reports.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "../src/server/job_queue.hpp"

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
