// `serve --queue redis://` with `stylize worker`s, as real processes on loopback: a redis-server on a
// free port, one API that runs no jobs, two workers; one worker killed (-9) during a job, a running
// job cancelled on the other, the API killed and restarted mid-way. Every loop is bounded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "stylize/image/image.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::TempDir;

namespace {

const char* const kRedis = "/usr/bin/redis-server";

std::string png(int h, int w, uint32_t stream) {
  auto bytes = encode_image(synthetic_image(h, w, stream), "png", 95);
  return std::string(bytes.begin(), bytes.end());
}


// The processes of one test, killed (-9) at its end whatever happened.
struct Cluster {
  TempDir dir;
  std::string url;
  int redis = -1;
  std::vector<int> pids;
  ~Cluster() {
    for (int pid : pids) kill(pid, SIGKILL);
    for (int pid : pids) stylize::test::wait_exit_code(pid);
    if (redis > 0) {
      kill(redis, SIGKILL);
      stylize::test::wait_exit_code(redis);
    }
  }
  bool start_redis() {
    const int port = stylize::test::free_loopback_port();
    url = "redis://127.0.0.1:" + std::to_string(port);
    redis = stylize::test::spawn_background({kRedis, "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
                                             "--appendonly", "no", "--logfile", dir / "redis.log"},
                                            dir / "redis.err");
    return !stylize::test::wait_for_log(dir / "redis.log", "Ready to accept connections", 20).empty();
  }
  int start(std::vector<std::string> args, const std::string& log) {
    args.insert(args.begin(), STYLIZE_BIN);
    args.insert(args.end(), {"--weights", stylize::test::synthetic_weights_file(), "--queue", url});
    const int pid = stylize::test::spawn_background(args, dir / log);
    pids.push_back(pid);
    return pid;
  }
  int api(const std::string& log, int& pid) {
    pid = start({"serve", "--port", "0", "--workers", "0"}, log);
    return stylize::test::wait_for_listening(dir / log);
  }
  int worker(const std::string& log) {
    const int pid = start({"worker", "--visibility-timeout", "2", "--allow-tiled"}, log);
    EXPECT_FALSE(stylize::test::wait_for_log(dir / log, "worker ready", 20).empty()) << stylize::test::read_text(dir / log);
    return pid;
  }
};

nlohmann::json get_json(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  return r && r->status == 200 ? nlohmann::json::parse(r->body) : nlohmann::json();
}

// Polls until `done(status)` or `seconds` pass; the last status.
nlohmann::json poll(httplib::Client& c, const std::string& id, const std::function<bool(const nlohmann::json&)>& done,
                    double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  nlohmann::json j;
  while (std::chrono::steady_clock::now() < until) {
    j = get_json(c, "/v1/jobs/" + id);
    if (!j.is_null() && done(j)) return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return j;
}

}  // namespace

TEST(QueueCluster, KilledWorkerCancelAndApiRestartLoseNothing) {
  if (access(kRedis, X_OK) != 0) {
    GTEST_SKIP() << "redis-server is not installed (scripts/install-deps.sh installs it): the Redis queue is untested here";
  }
  Cluster k;
  ASSERT_TRUE(k.start_redis()) << stylize::test::read_text(k.dir / "redis.log");
  int api_pid = 0;
  int port = k.api("api1.log", api_pid);
  ASSERT_GT(port, 0) << stylize::test::read_text(k.dir / "api1.log");
  const int w1 = k.worker("w1.log");
  const int w2 = k.worker("w2.log");
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);

  // 12 jobs, each its own size and content (so each result shows whose it is), and one long job to
  // cancel once it runs.
  std::map<std::string, int> sizes;
  auto submit = [&](int size, int iterations, uint32_t stream) {
    httplib::MultipartFormDataItems items = {{"content", png(40, 48, stream), "c.png", "image/png"},
                                             {"style", png(32, 32, 99), "s.png", "image/png"},
                                             {"size", std::to_string(size), "", ""},
                                             {"iterations", std::to_string(iterations), "", ""}};
    auto r = c->Post("/v1/jobs", items);
    EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    return nlohmann::json::parse(r->body)["id"].get<std::string>();
  };
  for (int i = 0; i < 6; ++i) sizes[submit(32 + 2 * i, 40, i + 1)] = 32 + 2 * i;
  // Two style images blended: their uploads travel through Redis as style and style_2.
  httplib::MultipartFormDataItems blend = {{"content", png(40, 48, 60), "c.png", "image/png"},
                                           {"style", png(32, 32, 61), "s1.png", "image/png"},
                                           {"style", png(32, 32, 62), "s2.png", "image/png"},
                                           {"style_blend", "3,1", "", ""},
                                           {"init", "style", "", ""},  // stretched: a warning to keep
                                           {"size", "40", "", ""},
                                           {"tile", "16", "", ""},  // mostly context: the worker says so
                                           {"tile_overlap", "8", "", ""},
                                           {"iterations", "3", "", ""},
                                           {"tile_iterations", "2", "", ""}};
  auto blended = c->Post("/v1/jobs", blend);
  ASSERT_TRUE(blended && blended->status == 202) << (blended ? blended->body : "no answer");
  const std::string blended_id = nlohmann::json::parse(blended->body)["id"];
  const std::string stretched = "the first style image ('init' style) is 32x32 and the content 48x40: it is stretched to "
                                "the content's shape";
  // This API loads no network, so it plans no tiles: the 202 tells the stretch alone.
  EXPECT_EQ(nlohmann::json::parse(blended->body)["warnings"], nlohmann::json({stretched})) << blended->body;

  // Kill worker 1 while it runs one of them.
  std::string killed;
  for (int tries = 0; tries < 400 && killed.empty(); ++tries) {
    for (const auto& [id, size] : sizes) {
      const auto st = get_json(*c, "/v1/jobs/" + id);
      if (st.value("status", "") == "running" && st.value("worker", "").find(":" + std::to_string(w1) + ":") != std::string::npos &&
          st["progress"].value("iteration", 0) >= 1) {
        killed = id;
        break;
      }
    }
    if (killed.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_FALSE(killed.empty()) << "worker 1 never ran a job\n" << stylize::test::read_text(k.dir / "w1.log");
  kill(w1, SIGKILL);

  // The API dies and another takes its place: the jobs are in Redis, not in it.
  kill(api_pid, SIGKILL);
  port = k.api("api2.log", api_pid);
  ASSERT_GT(port, 0) << stylize::test::read_text(k.dir / "api2.log");
  c = std::make_unique<httplib::Client>("127.0.0.1", port);
  for (int i = 6; i < 12; ++i) sizes[submit(32 + 2 * i, 40, i + 1)] = 32 + 2 * i;

  // A cancel reaches the job worker 2 runs. It is queued behind the others and the killed worker's
  // job: 108 s into this test alone on a 2-core Zen 1, and under ctest -j2 it was still queued after
  // 120 s (2026-12-04), hence 240.
  const std::string long_job = submit(48, 5000, 50);
  const auto running = poll(*c, long_job, [](const nlohmann::json& j) { return j["status"] == "running"; }, 240);
  ASSERT_EQ(running["status"], "running") << running.dump();
  EXPECT_NE(running.value("worker", "").find(":" + std::to_string(w2) + ":"), std::string::npos) << running.dump();
  ASSERT_TRUE(c->Delete(("/v1/jobs/" + long_job).c_str()));
  const auto cancelled = poll(*c, long_job, [](const nlohmann::json& j) { return j["status"] != "running"; }, 30);
  EXPECT_EQ(cancelled["status"], "cancelled") << cancelled.dump();

  for (const auto& [id, size] : sizes) {
    const auto st = poll(*c, id, [](const nlohmann::json& j) { return j["status"] == "done" || j["status"] == "failed"; }, 120);
    ASSERT_EQ(st["status"], "done") << id << " " << st.dump() << "\n" << stylize::test::read_text(k.dir / "w2.log");
    if (id == killed) {
      EXPECT_GE(st["attempt"], 2) << "claimed again after its worker died";
    }
    auto res = c->Get(("/v1/jobs/" + id + "/result").c_str());
    ASSERT_TRUE(res && res->status == 200) << id;
    const LoadedImage img = decode_image(std::vector<uint8_t>(res->body.begin(), res->body.end()), "r", "result");
    EXPECT_EQ(std::max(img.width, img.height), size) << "the result of " << id << " is its own job's";
  }
  const auto b = poll(*c, blended_id, [](const nlohmann::json& j) { return j["status"] == "done" || j["status"] == "failed"; }, 120);
  EXPECT_EQ(b["status"], "done") << b.dump();
  // Its warnings are kept in Redis, so the second API tells them: the first API's stretch line, and
  // the tile caveat that only the worker that ran it could plan.
  ASSERT_EQ(b["warnings"].size(), 2u) << b.dump();
  EXPECT_EQ(b["warnings"][0], stretched);
  const std::string caveat = b["warnings"][1];
  EXPECT_EQ(caveat.rfind("'tile' 16 with 85 px of context per side runs the network over ", 0), 0u) << caveat;
  EXPECT_NE(caveat.find("x the image's pixels (untiled: 1x); a 'tile' of "), std::string::npos) << caveat;
  // An ended job keeps no upload in its hash (every up:* field goes, style_2 too).
  const std::string port_text = k.url.substr(k.url.rfind(':') + 1);
  const auto keys = stylize::test::run_command({"/usr/bin/redis-cli", "-p", port_text, "HKEYS", "stylize:job:" + blended_id}, {});
  EXPECT_EQ(keys.out.find("up:"), std::string::npos) << keys.out;
  EXPECT_NE(keys.out.find("state"), std::string::npos) << keys.out << keys.err;

  // None ran to its end twice: each job's "done on" line appears once over both workers' logs.
  const std::string logs = stylize::test::read_text(k.dir / "w1.log") + stylize::test::read_text(k.dir / "w2.log");
  for (const auto& [id, size] : sizes) EXPECT_EQ(stylize::test::count_of(logs, "job " + id + " done on"), 1u) << id;
  EXPECT_EQ(stylize::test::count_of(logs, "job " + killed + " claimed again"), 1u) << logs;
  const auto metrics = c->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("stylize_jobs{status=\"done\"} 13"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("stylize_jobs{status=\"cancelled\"} 1"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("stylize_queue_depth 0"), std::string::npos) << metrics->body;

  // A synchronous job from this API runs on a worker too: the image comes with the worker's caveat.
  httplib::MultipartFormDataItems tiled = {{"content", png(40, 48, 70), "c.png", "image/png"},
                                           {"style", png(32, 32, 71), "s.png", "image/png"},
                                           {"size", "40", "", ""},
                                           {"tile", "16", "", ""},
                                           {"tile_overlap", "8", "", ""},
                                           {"iterations", "2", "", ""},
                                           {"tile_iterations", "2", "", ""}};
  c->set_read_timeout(120, 0);  // it waits for its run: seconds alone, far more beside other tests (ctest -j2)
  auto image = c->Post("/v1/stylize", tiled);
  ASSERT_TRUE(image && image->status == 200) << (image ? image->body : "no answer");
  ASSERT_EQ(image->get_header_value_count("X-Stylize-Warning"), 1u);
  EXPECT_EQ(image->get_header_value("X-Stylize-Warning").rfind("'tile' 16 with 85 px of context per side", 0), 0u);

  kill(w2, SIGTERM);
  EXPECT_EQ(stylize::test::wait_exit_code(w2), 0);
  kill(api_pid, SIGTERM);
  EXPECT_EQ(stylize::test::wait_exit_code(api_pid), 0);
  k.pids.clear();  // reaped
  (void)w1;
}

TEST(QueueCluster, BadQueueUrlsAndAnUnreachableRedisAreOneLineEach) {
  auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), STYLIZE_BIN);
    args.insert(args.end(), {"--weights", stylize::test::synthetic_weights_file()});
    return stylize::test::run_command(args);
  };
  auto r = run({"worker", "--queue", "http://localhost:6379"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not a redis:// URL"), std::string::npos) << r.err;
  r = run({"serve", "--port", "0", "--workers", "0", "--queue", "redis://127.0.0.1:99999"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bad port"), std::string::npos) << r.err;
  r = run({"serve", "--port", "0", "--workers", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--workers 0 runs no jobs here"), std::string::npos) << r.err;
  r = run({"serve", "--port", "0", "--workers", "0", "--queue", "redis://admin:s3cret@127.0.0.1:6379"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--queue holds a user or password"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << "the password is not echoed: " << r.err;
  if (access(kRedis, X_OK) == 0) {  // a database Redis does not have: a configuration error, not a bug
    Cluster k;
    ASSERT_TRUE(k.start_redis());
    r = run({"serve", "--port", "0", "--workers", "0", "--queue", k.url + "/99"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--queue names database 99, which Redis at"), std::string::npos) << r.err;
  }
  r = run({"worker", "--queue", "redis://127.0.0.1:" + std::to_string(stylize::test::free_loopback_port())});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("cannot reach Redis at 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_EQ(stylize::test::count_of(r.err, "error:"), 1u) << r.err;
}

// What a queue on Redis owes its clients beyond the jobs themselves (found by a new user's pass):
// a cancelled queued job leaves the queue at once (it held its slot until a worker read it), the
// DELETE answers with the cancel done, a Redis restarted empty (its consumer group gone) is made
// whole again by the workers instead of leaving accepted jobs unrun, and /healthz says when Redis
// does not answer.
TEST(QueueCluster, CancelsFreeTheQueueAndARedisRestartedEmptyIsMadeWhole) {
  if (access(kRedis, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
  Cluster k;
  ASSERT_TRUE(k.start_redis()) << stylize::test::read_text(k.dir / "redis.log");
  const int api_pid = k.start({"serve", "--port", "0", "--workers", "0", "--queue-limit", "2"}, "api.log");
  const int port = stylize::test::wait_for_listening(k.dir / "api.log");
  ASSERT_GT(port, 0) << stylize::test::read_text(k.dir / "api.log");
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  auto submit = [&]() {
    httplib::MultipartFormDataItems items = {{"content", png(40, 48, 1), "c.png", "image/png"},
                                             {"style", png(32, 32, 2), "s.png", "image/png"},
                                             {"size", "32", "", ""},
                                             {"iterations", "2", "", ""}};
    return c.Post("/v1/jobs", items);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto r = submit();
    ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    ids.push_back(nlohmann::json::parse(r->body)["id"]);
  }
  auto full = submit();
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 429) << full->body;
  for (const auto& id : ids) {
    auto d = c.Delete(("/v1/jobs/" + id).c_str());
    ASSERT_TRUE(d && d->status == 200);
    EXPECT_EQ(nlohmann::json::parse(d->body)["status"], "cancelled") << "the answer is the job after the cancel: " << d->body;
  }
  auto again = submit();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 202) << "cancelled jobs hold no place in the queue: " << again->body;
  const std::string waiting = nlohmann::json::parse(again->body)["id"];
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  EXPECT_NE(metrics->body.find("stylize_jobs{status=\"queued\"} 1"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("stylize_jobs{status=\"cancelled\"} 2"), std::string::npos) << metrics->body;
  EXPECT_EQ(c.Get("/healthz")->status, 200);

  k.worker("w.log");
  auto st = poll(c, waiting, [](const nlohmann::json& j) { return j["status"] == "done"; }, 120);
  ASSERT_EQ(st["status"], "done") << st.dump() << stylize::test::read_text(k.dir / "w.log");

  // Redis restarted with nothing (no persistence): the stream and its group are gone.
  const std::string redis_port = k.url.substr(k.url.rfind(':') + 1);
  ASSERT_EQ(stylize::test::run_command({"/usr/bin/redis-cli", "-p", redis_port, "FLUSHALL"}, {}).exit_code, 0);
  auto after = submit();
  ASSERT_TRUE(after && after->status == 202) << (after ? after->body : "no answer");
  const std::string late = nlohmann::json::parse(after->body)["id"];
  st = poll(c, late, [](const nlohmann::json& j) { return j["status"] == "done"; }, 120);
  EXPECT_EQ(st["status"], "done") << st.dump() << stylize::test::read_text(k.dir / "w.log");
  EXPECT_NE(stylize::test::read_text(k.dir / "w.log").find("lost the job stream's consumer group"), std::string::npos)
      << stylize::test::read_text(k.dir / "w.log");
  ASSERT_EQ(stylize::test::run_command({"/usr/bin/redis-cli", "-p", redis_port, "FLUSHALL"}, {}).exit_code, 0);
  metrics = c.Get("/metrics");  // the API meets the missing group too (it answered 500)
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200) << metrics->body;

  kill(k.redis, SIGKILL);
  stylize::test::wait_exit_code(k.redis);
  k.redis = -1;
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503) << health->body;
  EXPECT_EQ(nlohmann::json::parse(health->body)["status"], "queue_unavailable") << health->body;
  (void)api_pid;
}
