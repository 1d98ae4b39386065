// The HTTP API over real loopback HTTP: jobs, the synchronous endpoint, cancel, every error status
// with its JSON body, auth, queue limit, upload cap, concurrent clients, TTL, named styles, and
// SIGTERM draining (against the binary).
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <regex>
#include <thread>
#include <tuple>

#include "../src/server/server.hpp"
#include "stylize/error.hpp"
#include "stylize/filter.hpp"
#include "stylize/runtime.hpp"
#include "stylize/image/image.hpp"
#include "stylize/recipe.hpp"
#include "stylize/request.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/weights.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::TempDir;

namespace {

const Stylizer& shared_stylizer() { return stylize::test::synthetic_stylizer(29); }

std::string png(int h, int w, uint32_t stream) {
  auto bytes = encode_image(synthetic_image(h, w, stream), "png", 95);
  return std::string(bytes.begin(), bytes.end());
}

// A server on an ephemeral loopback port, running in a thread for the test's lifetime.
struct Running {
  std::unique_ptr<serve::Server> server;
  std::thread thread;
  int port = 0;
  explicit Running(serve::ServeOptions o, const Stylizer* stylizer = &shared_stylizer()) {
    o.port = 0;
    if (o.drain_seconds == serve::ServeOptions{}.drain_seconds) o.drain_seconds = 0.2;  // tests cancel leftovers fast
    StylizeRequest defaults = request_defaults(Preprocessing::caffe);
    defaults.size = 32;
    defaults.iterations = {3};
    server = std::make_unique<serve::Server>(stylizer, defaults, o);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  ~Running() {
    server->shutdown();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

httplib::MultipartFormDataItems form(std::vector<std::pair<std::string, std::string>> fields) {
  httplib::MultipartFormDataItems items = {{"content", png(40, 48, 1), "content.png", "image/png"},
                                           {"style", png(32, 32, 2), "style.png", "image/png"}};
  for (auto& [k, v] : fields) {
    auto it = std::find_if(items.begin(), items.end(), [&](const auto& i) { return i.name == k; });
    if (it != items.end()) items.erase(it);
    if (v != "<drop>") items.push_back({k, v, "", ""});
  }
  return items;
}

// The warning of a form() job with init=style: its 32x32 style is stretched to the 48x40 content.
const char* const kStretchedByForm =
    "the first style image ('init' style) is 32x32 and the content 48x40: it is stretched to the content's shape";

nlohmann::json body(const httplib::Result& r) { return nlohmann::json::parse(r->body); }

void expect_error(const httplib::Result& r, int status, const std::string& error) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  auto j = body(r);
  EXPECT_EQ(j["error"], error) << r->body;
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
}

nlohmann::json wait_for(httplib::Client& c, const std::string& id, const std::string& status) {
  for (int i = 0; i < 600; ++i) {
    auto r = c.Get(("/v1/jobs/" + id).c_str());
    auto j = body(r);
    if (j["status"] == status) return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return {};
}

}  // namespace

// The progress a done job shows is its result's: the loss run() measures on the image after the last
// step (the CLI logs the same), not the lowest one the loop evaluated before it (3 iterations showed
// the start's loss, 10x the result's).
TEST(Serve, ADoneJobShowsTheLossOfItsResult) {
  Running s({});
  auto c = s.client();
  auto r = c.Post("/v1/jobs", form({{"size", "48"}, {"iterations", "3"}}));
  ASSERT_EQ(r->status, 202) << r->body;
  auto done = wait_for(c, body(r)["id"], "done");
  ASSERT_EQ(done["status"], "done");
  EXPECT_EQ(done["progress"]["iteration"], 3);
  StylizeRequest q = request_defaults(Preprocessing::caffe);  // the same job, run here
  q.size = 48;
  q.iterations = {3};
  q.resize = resize_image;
  auto decoded = [](const std::string& bytes, const std::string& role) {
    return decode_image(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), "upload.png", role).rgb;
  };
  q.content = decoded(png(40, 48, 1), "content image");
  q.styles = {decoded(png(32, 32, 2), "style image")};
  const StylizeResult out = run(shared_stylizer(), q);
  ASSERT_LT(out.final.total, 0.9 * out.initial.total) << "the check needs a run that moves";
  EXPECT_NEAR(done["progress"]["loss"].get<double>(), out.final.total, 1e-3 * out.final.total);
}

TEST(Serve, ASecondServerOnTheSamePortIsRefused) {
  Running first({});
  serve::ServeOptions o;
  o.port = first.port;
  serve::Server second(&shared_stylizer(), request_defaults(Preprocessing::caffe), o);
  try {
    second.bind();
    FAIL() << "two servers listen on port " << first.port;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
}

TEST(Serve, SubmitPollAndFetchTheResult) {
  Running s({});
  auto c = s.client();
  auto r = c.Post("/v1/jobs", form({{"size", "48"}, {"iterations", "4"}, {"format", "jpg"}}));
  ASSERT_EQ(r->status, 202) << r->body;
  auto j = body(r);
  const std::string id = j["id"];
  EXPECT_EQ(j["status_url"], "/v1/jobs/" + id);
  auto done = wait_for(c, id, "done");
  ASSERT_EQ(done["status"], "done");
  EXPECT_EQ(done["progress"]["iteration"], 4);
  EXPECT_EQ(done["progress"]["total"], 4);
  auto img = c.Get(j["result_url"].get<std::string>().c_str());
  ASSERT_EQ(img->status, 200);
  EXPECT_EQ(img->get_header_value("Content-Type"), "image/jpeg");
  LoadedImage out = decode_image(std::vector<uint8_t>(img->body.begin(), img->body.end()), "result", "result");
  EXPECT_EQ(out.width, 48);
  EXPECT_EQ(out.height, 40);
  auto health = c.Get("/healthz");
  EXPECT_EQ(body(health)["status"], "ok");
  EXPECT_EQ(body(health)["device"], "cpu");
  EXPECT_TRUE(body(health)["precision"] == "fp32" || body(health)["precision"] == "bf16" ||
              body(health)["precision"] == "mixed") << health->body;
  auto metrics = c.Get("/metrics");
  EXPECT_NE(metrics->body.find("stylize_jobs{status=\"done\"} 1"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("stylize_iterations_total 4"), std::string::npos);
  auto api = c.Get("/openapi.json");
  EXPECT_EQ(body(api)["paths"].count("/v1/jobs"), 1u);
  // The limits it publishes are this server's (what it answers 422 beyond), not the engine's 16384.
  const auto size = body(api)["components"]["schemas"]["JobRequest"]["properties"]["size"];
  EXPECT_EQ(size["maximum"], serve::ServeOptions{}.max_size) << size.dump();
}

TEST(Serve, SynchronousEndpointAndItsLimits) {
  serve::ServeOptions o;
  o.sync_max_size = 64;
  o.sync_max_iterations = 5;
  Running s(o);
  auto c = s.client();
  auto r = c.Post("/v1/stylize", form({{"size", "32"}, {"iterations", "2"}}));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(decode_image(std::vector<uint8_t>(r->body.begin(), r->body.end()), "r", "result").width, 32);
  expect_error(c.Post("/v1/stylize", form({{"size", "128"}})), 422, "out_of_range");
  expect_error(c.Post("/v1/stylize", form({{"iterations", "50"}})), 422, "out_of_range");
}

TEST(Serve, TiledJobsRunWhereTheServerAllowsThem) {
  serve::ServeOptions o;
  o.allow_tiled = true;
  o.max_output_mp = 0.001;  // 1000 px: the 32x26 default output fits (832 px), 40x32 does not
  Running s(o);
  auto c = s.client();
  auto r = c.Post("/v1/stylize", form({{"tile", "16"}, {"tile_overlap", "8"}, {"iterations", "2"}, {"tile_iterations", "2"}}));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(decode_image(std::vector<uint8_t>(r->body.begin(), r->body.end()), "r", "result").width, 32);
  const auto big = c.Post("/v1/jobs", form({{"size", "40"}}));
  expect_error(big, 422, "too_large");
  EXPECT_NE(big->body.find("the output would be 40x33 px"), std::string::npos) << big->body;
  // A tiled job's progress only grows, within its total (each tile visit counted its iterations
  // from 1, and the status read 25, 20, 1, 12 ... of 100).
  auto job = c.Post("/v1/jobs", form({{"tile", "16"}, {"tile_overlap", "8"}, {"iterations", "16"}, {"tile_iterations", "4"}}));
  ASSERT_EQ(job->status, 202) << job->body;
  const std::string id = body(job)["id"];
  std::vector<int> seen;
  for (int i = 0; i < 4000; ++i) {
    const auto st = body(c.Get(("/v1/jobs/" + id).c_str()));
    seen.push_back(st["progress"]["iteration"].get<int>());
    EXPECT_LE(seen.back(), st["progress"]["total"].get<int>()) << st.dump();
    if (st["status"] == "done" || st["status"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << ::testing::PrintToString(seen);
  EXPECT_EQ(seen.back(), 16);
  EXPECT_GT(std::set<int>(seen.begin(), seen.end()).size(), 3u) << "seen while it ran: " << ::testing::PrintToString(seen);
}

// What the client should know of a job that runs (its start image stretched, a tile mostly context)
// comes back with it: in the 202, in every status, in the synchronous image's headers. A job without
// any carries none.
TEST(Serve, JobsCarryTheirWarningsToTheClient) {
  serve::ServeOptions o;
  o.allow_tiled = true;
  Running s(o);
  auto c = s.client();
  const nlohmann::json stretched = {kStretchedByForm};
  auto r = c.Post("/v1/jobs", form({{"init", "style"}, {"iterations", "2"}}));
  ASSERT_EQ(r->status, 202) << r->body;
  EXPECT_EQ(body(r)["warnings"], stretched) << r->body;
  EXPECT_EQ(wait_for(c, body(r)["id"], "done")["warnings"], stretched);
  auto plain = c.Post("/v1/jobs", form({{"iterations", "1"}}));
  ASSERT_EQ(plain->status, 202) << plain->body;
  EXPECT_EQ(body(plain).count("warnings"), 0u) << plain->body;
  EXPECT_EQ(wait_for(c, body(plain)["id"], "done").count("warnings"), 0u);

  auto tiled = c.Post("/v1/stylize", form({{"size", "48"}, {"tile", "16"}, {"tile_overlap", "8"}, {"iterations", "2"},
                                           {"tile_iterations", "2"}}));
  ASSERT_EQ(tiled->status, 200) << tiled->body;
  ASSERT_EQ(tiled->get_header_value_count("X-Stylize-Warning"), 1u);
  const std::string caveat = tiled->get_header_value("X-Stylize-Warning");
  EXPECT_EQ(caveat.rfind("'tile' 16 with 85 px of context per side runs the network over ", 0), 0u) << caveat;
  EXPECT_NE(caveat.find("x the image's pixels (untiled: 1x); a 'tile' of "), std::string::npos) << caveat;
  auto from_style = c.Post("/v1/stylize", form({{"init", "style"}, {"iterations", "1"}}));
  ASSERT_EQ(from_style->status, 200) << from_style->body;
  EXPECT_EQ(from_style->get_header_value("X-Stylize-Warning"), stretched[0].get<std::string>());
  auto untiled = c.Post("/v1/stylize", form({{"iterations", "1"}}));
  ASSERT_EQ(untiled->status, 200) << untiled->body;
  EXPECT_FALSE(untiled->has_header("X-Stylize-Warning"));
}

TEST(Serve, BadRequestsGetJsonErrors) {
  Running s({});
  auto c = s.client();
  expect_error(c.Post("/v1/jobs", "not multipart", "text/plain"), 400, "bad_request");
  expect_error(c.Post("/v1/jobs", form({{"content", "<drop>"}})), 400, "missing_field");
  expect_error(c.Post("/v1/jobs", form({{"style", "<drop>"}})), 400, "missing_field");
  expect_error(c.Post("/v1/jobs", form({{"content", "GIF89a not really"}})), 400, "invalid_image");
  expect_error(c.Post("/v1/jobs", form({{"size", "big"}})), 400, "bad_field");
  expect_error(c.Post("/v1/jobs", form({{"iterations", "1e9"}})), 422, "out_of_range");
  expect_error(c.Post("/v1/jobs", form({{"style_weight", "-3"}})), 400, "out_of_range");
  expect_error(c.Post("/v1/jobs", form({{"format", "gif"}})), 400, "bad_field");
  const auto ignored = c.Post("/v1/jobs", form({{"optimizer", "adam"}, {"line_search", "none"}}));
  expect_error(ignored, 400, "out_of_range");  // adam would ignore it
  EXPECT_NE(ignored->body.find("'line_search' applies to 'optimizer' lbfgs only"), std::string::npos) << ignored->body;
  expect_error(c.Post("/v1/jobs", form({{"tile", "24"}, {"tile_overlap", "8"}})), 422, "too_large");  // tiled jobs are off by default
  expect_error(c.Post("/v1/jobs", form({{"style", "<drop>"}, {"style_id", "../../etc/passwd"}})), 400, "unknown_style");
  expect_error(c.Get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found");
  expect_error(c.Get("/v1/nothing"), 404, "not_found");
}

TEST(Serve, CancelAQueuedAndARunningJob) {
  serve::ServeOptions o;
  o.workers = 1;
  Running s(o);
  auto c = s.client();
  const std::string a = body(c.Post("/v1/jobs", form({{"iterations", "5000"}})))["id"];
  const std::string b = body(c.Post("/v1/jobs", form({{"iterations", "5000"}})))["id"];
  ASSERT_EQ(wait_for(c, a, "running")["status"], "running");
  expect_error(c.Get(("/v1/jobs/" + a + "/result").c_str()), 409, "not_ready");
  auto rb = c.Delete(("/v1/jobs/" + b).c_str());
  EXPECT_EQ(body(rb)["status"], "cancelled") << "a queued job is cancelled at once";
  const auto ra = body(c.Delete(("/v1/jobs/" + a).c_str()));
  // Running: it stops at its next iteration, and the answer says a cancel waits (unless it already stopped).
  EXPECT_TRUE(ra["status"] == "cancelled" || (ra["status"] == "running" && ra.value("cancel_requested", false))) << ra;
  EXPECT_EQ(wait_for(c, a, "cancelled")["status"], "cancelled");
  expect_error(c.Get(("/v1/jobs/" + a + "/result").c_str()), 409, "no_result");  // never, not "not yet"
}

TEST(Serve, ApiKeyIsRequiredWhenConfigured) {
  serve::ServeOptions o;
  o.api_key = "s3cret-key-0123456789";
  Running s(o);
  auto c = s.client();
  expect_error(c.Get("/healthz"), 401, "unauthorized");
  httplib::Headers wrong = {{"Authorization", "Bearer s3cret-key-0123456788"}};
  expect_error(c.Get("/healthz", wrong), 401, "unauthorized");
  httplib::Headers right = {{"Authorization", "Bearer s3cret-key-0123456789"}};
  EXPECT_EQ(c.Get("/healthz", right)->status, 200);
  httplib::Headers lower = {{"Authorization", "bearer s3cret-key-0123456789"}};  // the scheme is case-insensitive
  EXPECT_EQ(c.Get("/healthz", lower)->status, 200);
  EXPECT_EQ(c.Post("/v1/jobs", right, form({}))->status, 202);
  // A setting sent as a file part: refused by name, its bytes not echoed back.
  httplib::MultipartFormDataItems as_file = form({});
  as_file.push_back({"init", "SECRET-BYTES", "init.txt", "text/plain"});
  const auto r = c.Post("/v1/jobs", right, as_file);
  expect_error(r, 400, "bad_field");
  EXPECT_NE(r->body.find("field 'init' is a setting: send it as text, not as a file"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("SECRET-BYTES"), std::string::npos) << r->body;
  EXPECT_TRUE(serve::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(serve::constant_time_equal("abc", "abd"));
  EXPECT_FALSE(serve::constant_time_equal("abc", "abcd"));
}

TEST(Serve, FullQueueAnswers429WithRetryAfter) {
  serve::ServeOptions o;
  o.workers = 1;
  o.queue_limit = 1;
  Running s(o);
  auto c = s.client();
  const std::string a = body(c.Post("/v1/jobs", form({{"iterations", "5000"}})))["id"];
  wait_for(c, a, "running");
  EXPECT_EQ(c.Post("/v1/jobs", form({{"iterations", "5000"}}))->status, 202);
  auto r = c.Post("/v1/jobs", form({}));
  expect_error(r, 429, "queue_full");
  EXPECT_EQ(r->get_header_value("Retry-After"), "10");
}

TEST(Serve, OversizedUploadIsRefusedBeforeItIsRead) {
  serve::ServeOptions o;
  o.max_upload_mb = 0.05;  // 52 KB
  Running s(o);
  // Announce 4 MB but send only 1 KB of it: the answer must come without the rest ever being sent.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string head =
      "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
      "Content-Length: 4194304\r\n\r\n" + std::string(1024, 'x');
  ASSERT_EQ(send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find("\r\n\r\n") != std::string::npos && answer.back() == '}') break;  // the JSON body is complete
  }
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"error\":\"too_large\""), std::string::npos) << answer;
  EXPECT_NE(answer.find("4194304 bytes"), std::string::npos) << answer;
  EXPECT_EQ(s.client().Get("/healthz")->status, 200) << "still serving";
}

TEST(Serve, TwentyJobsFromEightThreadsAllFinish) {
  serve::ServeOptions o;
  o.workers = 2;
  o.queue_limit = 64;
  Running s(o);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::string> failures;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = s.client();
      for (int k = t; k < 20; k += 8) {
        const int size = 24 + 8 * (k % 3);
        auto r = c.Post("/v1/jobs", form({{"size", std::to_string(size)}, {"iterations", "2"}}));
        if (!r || r->status != 202) continue;
        const std::string id = body(r)["id"];
        auto j = wait_for(c, id, "done");
        auto img = c.Get(("/v1/jobs/" + id + "/result").c_str());
        if (img && img->status == 200 &&
            decode_image(std::vector<uint8_t>(img->body.begin(), img->body.end()), "r", "r").width == size) {
          ++ok;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(id + " " + j.dump());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 20) << (failures.empty() ? "" : failures[0]);
}

TEST(Serve, ResultsExpireAfterTheTtl) {
  serve::ServeOptions o;
  o.result_ttl_s = 1;
  Running s(o);
  auto c = s.client();
  const std::string id = body(c.Post("/v1/jobs", form({{"iterations", "1"}})))["id"];
  ASSERT_EQ(wait_for(c, id, "done")["status"], "done");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  expect_error(c.Get(("/v1/jobs/" + id + "/result").c_str()), 404, "not_found");
}

TEST(Serve, NamedStylesFromAFolder) {
  TempDir dir;
  save_image(dir / "starry.png", synthetic_image(32, 32, 5), 95);
  stylize::test::write_bytes(dir / "notes.txt", {'h', 'i'});
  serve::ServeOptions o;
  o.styles_dir = dir.path();
  Running s(o);
  auto c = s.client();
  auto list = body(c.Get("/v1/styles"));
  ASSERT_EQ(list["styles"].size(), 1u);
  EXPECT_EQ(list["styles"][0]["id"], "starry");
  const std::string id = body(c.Post("/v1/jobs", form({{"style", "<drop>"}, {"style_id", "starry"}})))["id"];
  EXPECT_EQ(wait_for(c, id, "done")["status"], "done");
  // An image that cannot be read stops the start, named: listed, it would fail its jobs with a
  // message naming a path on the server.
  stylize::test::write_bytes(dir / "broken.jpg", {'h', 'i'});
  try {
    serve::Server bad(&shared_stylizer(), request_defaults(Preprocessing::caffe), o);
    FAIL() << "a styles folder with an unreadable image started";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read --styles-dir image '" + dir / "broken.jpg" + "'"), std::string::npos)
        << e.what();
  }
}

// Fast filters: listed, applied over HTTP with the engine's exact pixels, size limits, metrics.
TEST(Serve, FiltersFromAFolderAnswerAtOnce) {
  TempDir dir;
  const FilterNet net({4, 1}, 3);
  save_filter(dir / "mosaic.safetensors", net, {net.arch(), {{"style", "mosaic.jpg"}, {"steps", "10"}, {"images_seen", "x"}}});
  save_filter(dir / "mosaic.ckpt.safetensors", net, {net.arch(), {}});  // training state: not a filter to list
  serve::ServeOptions o;
  o.filters_dir = dir.path();
  o.max_size = 64;
  Running s(o);
  auto c = s.client();
  auto list = c.Get("/v1/filters");
  ASSERT_TRUE(list);
  const auto filters = body(list)["filters"];
  ASSERT_EQ(filters.size(), 1u) << list->body;
  EXPECT_EQ(filters[0]["id"], "mosaic");
  EXPECT_EQ(filters[0]["style"], "mosaic.jpg");
  EXPECT_EQ(filters[0]["steps"], 10);           // a count, as a number (the file's metadata is text)
  EXPECT_EQ(filters[0]["images_seen"], "x");     // not a whole number: as written

  const httplib::MultipartFormDataItems ok = {{"content", png(40, 48, 1), "c.png", "image/png"}, {"filter", "mosaic", "", ""}};
  auto r = c.Post("/v1/filter", ok);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  const LoadedImage out = decode_image(std::vector<uint8_t>(r->body.begin(), r->body.end()), "r", "result");
  EXPECT_EQ(out.width, 48);
  EXPECT_EQ(out.height, 40);
  EXPECT_TRUE(at::equal(out.rgb, apply_filter(net, synthetic_image(40, 48, 1).round()).round()));

  // Larger than --max-size: scaled down to it; a `size` over it: 422.
  auto big = c.Post("/v1/filter", httplib::MultipartFormDataItems{{"content", png(50, 100, 2), "c.png", "image/png"},
                                                                  {"filter", "mosaic", "", ""}});
  ASSERT_TRUE(big);
  EXPECT_EQ(decode_image(std::vector<uint8_t>(big->body.begin(), big->body.end()), "r", "result").width, 64);
  auto with = [&](std::vector<httplib::MultipartFormData> extra) {
    httplib::MultipartFormDataItems items = {{"content", png(40, 48, 1), "c.png", "image/png"}};
    for (auto& e : extra) items.push_back(e);
    return c.Post("/v1/filter", items);
  };
  expect_error(with({{"filter", "mosaic", "", ""}, {"size", "65", "", ""}}), 422, "out_of_range");
  expect_error(with({{"filter", "mosaic", "", ""}, {"size", "-5", "", ""}}), 400, "out_of_range");  // as /v1/jobs
  expect_error(with({{"filter", "mosaic", "", ""}, {"size", "big", "", ""}}), 400, "bad_field");
  expect_error(with({{"filter", "nope", "", ""}}), 400, "unknown_filter");
  expect_error(with({}), 400, "missing_field");
  expect_error(c.Post("/v1/filter", httplib::MultipartFormDataItems{{"content", "not an image", "c.png", "image/png"},
                                                                   {"filter", "mosaic", "", ""}}),
               400, "invalid_image");
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("stylize_filter_requests_total 2"), std::string::npos) << m->body;
  EXPECT_NE(body(c.Get("/openapi.json"))["paths"].count("/v1/filter"), 0u);
}

TEST(Serve, ABadFilterFileStopsTheStart) {
  TempDir dir;
  test::write_bytes(dir / "broken.safetensors", {1, 2, 3});
  serve::ServeOptions o;
  o.filters_dir = dir.path();
  StylizeRequest defaults = request_defaults(Preprocessing::caffe);
  EXPECT_NE(test::error_of<WeightsError>([&] { serve::Server(&shared_stylizer(), defaults, o); }), test::kNoError);
}

// `stylize serve` with these flags as a process, logging to `log`; the port it listens on (0: it
// never said).
int start_serve(std::vector<std::string> flags, const std::string& log, int& pid) {
  std::vector<std::string> argv = {STYLIZE_BIN, "serve", "--port", "0", "--weights", stylize::test::synthetic_weights_file()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  pid = stylize::test::spawn_background(argv, log);
  return pid > 0 ? stylize::test::wait_for_listening(log) : 0;
}


TEST(Serve, SigtermDrainsRunningJobsThenExits) {
  TempDir dir;
  int pid = 0;
  const int port = start_serve({"--drain-seconds", "60", "--data-dir", dir / "data"}, dir / "log", pid);
  ASSERT_GT(port, 0) << stylize::test::read_text(dir / "log");
  httplib::Client c("127.0.0.1", port);
  auto r = c.Post("/v1/jobs", form({{"size", "64"}, {"iterations", "30"}}));
  ASSERT_EQ(r->status, 202);
  const std::string id = body(r)["id"];
  wait_for(c, id, "running");
  kill(pid, SIGTERM);
  EXPECT_EQ(stylize::test::wait_exit_code(pid), 0);
  const std::string log = stylize::test::read_text(dir / "log");
  EXPECT_NE(log.find("job " + id + " done"), std::string::npos) << "the running job finished first:\n" << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

// A filters-only server: no VGG19 weights anywhere (--weights names a file that does not exist), the
// filters answer with the engine's pixels in the precision the CLI resolves, the job endpoints 404.
TEST(Serve, AFiltersOnlyServerNeedsNoNetwork) {
  TempDir dir;
  std::filesystem::create_directories(dir / "filters");
  FilterNet net({4, 1}, 3);
  save_filter(dir / "filters/mosaic.safetensors", net, {net.arch(), {{"style", "mosaic.jpg"}}});
  const std::vector<std::string> argv = {STYLIZE_BIN, "serve", "--port", "0", "--weights", dir / "none.safetensors",
                                         "--filters-only", "--filters-dir", dir / "filters"};
  const int pid = stylize::test::spawn_background(argv, dir / "log");
  const int port = pid > 0 ? stylize::test::wait_for_listening(dir / "log") : 0;
  ASSERT_GT(port, 0) << stylize::test::read_text(dir / "log");
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  EXPECT_EQ(body(c.Get("/v1/filters"))["filters"].size(), 1u);
  auto r = c.Post("/v1/filter", httplib::MultipartFormDataItems{{"content", png(40, 48, 1), "c.png", "image/png"},
                                                                {"filter", "mosaic", "", ""}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  net.set_precision(resolve_precision("auto", at::Device(at::kCPU), cpu_vector_features()));
  EXPECT_TRUE(at::equal(decode_image(std::vector<uint8_t>(r->body.begin(), r->body.end()), "r", "result").rgb,
                        apply_filter(net, synthetic_image(40, 48, 1).round()).round()));
  expect_error(c.Post("/v1/jobs", form({})), 404, "filters_only");
  expect_error(c.Post("/v1/stylize", form({})), 404, "filters_only");
  const auto health = body(c.Get("/healthz"));
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["mode"], "filters_only");
  kill(pid, SIGTERM);
  EXPECT_EQ(stylize::test::wait_exit_code(pid), 0);
  // Without a folder there is nothing to serve: one line, exit 2.
  const auto bad = stylize::test::run_command({STYLIZE_BIN, "serve", "--filters-only", "--port", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--filters-only needs --filters-dir"), std::string::npos) << bad.err;
}

// The crash test: jobs done, one running, some queued, one cancelled; kill -9; a restart on
// the same --data-dir finishes every acknowledged job once, serves the old result unchanged, and
// runs the interrupted one again as attempt 2.
TEST(Serve, AKillDuringAJobLosesNoAcknowledgedJob) {
  TempDir dir;
  int pid = 0;
  const std::vector<std::string> flags = {"--data-dir", dir / "data", "--workers", "1"};
  int port = start_serve(flags, dir / "log1", pid);
  ASSERT_GT(port, 0) << stylize::test::read_text(dir / "log1");
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  auto submit = [&](const std::string& size, const std::string& iterations, const std::string& init = "content") {
    auto r = c->Post("/v1/jobs", form({{"size", size}, {"iterations", iterations}, {"init", init}}));
    EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    return body(r)["id"].get<std::string>();
  };
  const std::string done = submit("32", "3", "style");  // with a warning (the start stretched)
  ASSERT_FALSE(wait_for(*c, done, "done").empty());
  auto before = c->Get(("/v1/jobs/" + done + "/result").c_str());
  ASSERT_TRUE(before && before->status == 200);
  const std::string running = submit("48", "60");
  const std::string queued1 = submit("40", "3", "style"), queued2 = submit("56", "3"), cancelled = submit("24", "3");
  ASSERT_EQ(c->Delete(("/v1/jobs/" + cancelled).c_str())->status, 200);
  ASSERT_FALSE(wait_for(*c, running, "running").empty());
  for (int i = 0; i < 200 && body(c->Get(("/v1/jobs/" + running).c_str()))["progress"]["iteration"] < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  stylize::test::wait_exit_code(pid);

  port = start_serve(flags, dir / "log2", pid);
  ASSERT_GT(port, 0) << stylize::test::read_text(dir / "log2");
  c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_read_timeout(60, 0);
  const std::map<std::string, int> sizes = {{running, 48}, {queued1, 40}, {queued2, 56}};
  for (const auto& [id, size] : sizes) {
    const auto st = wait_for(*c, id, "done");
    ASSERT_FALSE(st.empty()) << id << "\n" << stylize::test::read_text(dir / "log2");
    EXPECT_EQ(st["attempt"], id == running ? 2 : 1) << id;
    auto res = c->Get(("/v1/jobs/" + id + "/result").c_str());
    ASSERT_TRUE(res && res->status == 200);
    const LoadedImage img = decode_image(std::vector<uint8_t>(res->body.begin(), res->body.end()), "r", "result");
    EXPECT_EQ(std::max(img.width, img.height), size) << "the result of " << id << " is its own job's";
  }
  auto after = c->Get(("/v1/jobs/" + done + "/result").c_str());
  ASSERT_TRUE(after && after->status == 200);
  EXPECT_EQ(after->body, before->body) << "a finished result survives unchanged";
  EXPECT_EQ(body(c->Get(("/v1/jobs/" + done).c_str()))["progress"]["iteration"], 3) << "and its progress";
  const nlohmann::json stretched = {kStretchedByForm};
  EXPECT_EQ(body(c->Get(("/v1/jobs/" + done).c_str()))["warnings"], stretched) << "and its warnings";
  EXPECT_EQ(body(c->Get(("/v1/jobs/" + queued1).c_str()))["warnings"], stretched) << "a job run after the restart too";
  EXPECT_EQ(body(c->Get(("/v1/jobs/" + queued2).c_str())).count("warnings"), 0u);
  EXPECT_EQ(body(c->Get(("/v1/jobs/" + cancelled).c_str()))["status"], "cancelled");
  const std::string log = stylize::test::read_text(dir / "log2");
  EXPECT_EQ(stylize::test::count_of(log, "job " + done + " running"), 0u) << "a done job is not run again";
  for (const auto& [id, size] : sizes) EXPECT_EQ(stylize::test::count_of(log, "job " + id + " running"), 1u) << id << "\n" << log;
  EXPECT_EQ(stylize::test::count_of(log, "job " + cancelled + " running"), 0u);
  EXPECT_NE(log.find("3 job(s) to run (1 of them again after an interruption)"), std::string::npos) << log;
  kill(pid, SIGTERM);
  EXPECT_EQ(stylize::test::wait_exit_code(pid), 0);
}

// What a restart cannot run fails with its reason: an upload gone from the folder, a job the server
// stopped during as often as --max-attempts allows; a job a restart interrupted runs again.
TEST(Serve, RecoveryRunsInterruptedJobsAndFailsThoseItCannotRun) {
  TempDir dir;
  const std::string again(32, 'a'), gone(32, 'b'), tired(32, 'c');
  {
    serve::JobStore store(dir / "data");
    serve::Form f = {{"content", {"c.png", png(40, 48, 1)}}, {"style", {"s.png", png(32, 32, 2)}}, {"size", {"", "32"}}};
    for (const auto& id : {again, gone, tired}) {
      serve::StoredJob rec;
      rec.id = id;
      rec.ext = "png";
      rec.total = 3;
      store.write_uploads(id, f);
      store.add(rec, f);
      store.set_running(id, id == tired ? 3 : 1);
    }
    std::filesystem::remove(dir / ("data/uploads/" + gone + "/style"));
  }
  serve::ServeOptions o;
  o.data_dir = dir / "data";
  Running s(o);
  auto c = s.client();
  const auto st = wait_for(c, again, "done");
  ASSERT_FALSE(st.empty());
  EXPECT_EQ(st["attempt"], 2);
  auto g = body(c.Get(("/v1/jobs/" + gone).c_str()));
  EXPECT_EQ(g["status"], "failed");
  EXPECT_NE(g["error"].get<std::string>().find("uploaded 'style' is gone"), std::string::npos) << g;
  auto t = body(c.Get(("/v1/jobs/" + tired).c_str()));
  EXPECT_EQ(t["status"], "failed");
  EXPECT_NE(t["error"].get<std::string>().find("each of its 3 attempts"), std::string::npos) << t;
  // A done job whose stored result is gone: 410, and the client is not told the server's folder.
  ASSERT_EQ(c.Get(("/v1/jobs/" + again + "/result").c_str())->status, 200);
  for (const auto& e : std::filesystem::directory_iterator(dir / "data/results")) {
    if (e.path().filename().string().rfind(again, 0) == 0) std::filesystem::remove(e.path());
  }
  const auto lost = c.Get(("/v1/jobs/" + again + "/result").c_str());
  expect_error(lost, 410, "result_lost");
  EXPECT_EQ(lost->body.find(dir.path()), std::string::npos) << lost->body;
}

namespace {

// A raw TCP client: sends `bytes` (in `pieces`, `gap_ms` apart) and returns what the server sent
// back before closing or going quiet for 5 s.
std::string raw_exchange_parts(int port, const std::vector<std::string>& parts, int gap_ms = 0, bool half_close = false);

std::string raw_exchange(int port, const std::string& bytes, size_t pieces = 1, int gap_ms = 0, bool half_close = false) {
  std::vector<std::string> parts;
  const size_t step = (bytes.size() + pieces - 1) / pieces;
  for (size_t at = 0; at < bytes.size(); at += step) parts.push_back(bytes.substr(at, step));
  return raw_exchange_parts(port, parts, gap_ms, half_close);
}

// The same with the pieces given: each sent whole, `gap_ms` apart.
std::string raw_exchange_parts(int port, const std::vector<std::string>& parts, int gap_ms, bool half_close) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (const std::string& part : parts) {
    if (send(fd, part.data(), part.size(), MSG_NOSIGNAL) < 0) break;
    if (gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
  }
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string multipart_body(const std::vector<std::tuple<std::string, std::string, std::string>>& parts) {
  std::string body;
  for (const auto& [name, filename, value] : parts) {
    body += "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"" +
            (filename.empty() ? "" : "; filename=\"" + filename + "\"") + "\r\n\r\n" + value + "\r\n";
  }
  return body + "--XyZ--\r\n";
}

std::string post(const std::string& path, const std::string& body, size_t declared = 0) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
         "Content-Length: " + std::to_string(declared ? declared : body.size()) + "\r\n\r\n" + body;
}

}  // namespace

// Malformed HTTP from a hostile or broken client: each gets a 4xx or a closed connection, and the
// server meanwhile answers /healthz and finishes the job it runs.
TEST(Serve, MalformedHttpGetsA4xxOrAClosedConnectionAndTheServerGoesOn) {
  Running s({});
  auto c = s.client();
  auto r = c.Post("/v1/jobs", form({{"size", "48"}, {"iterations", "40"}}));
  ASSERT_EQ(r->status, 202);
  const std::string running = body(r)["id"];
  auto status_line = [](const std::string& answer) { return answer.substr(0, answer.find("\r\n")); };
  auto is_4xx_or_closed = [&](const std::string& answer) {
    return answer.empty() || status_line(answer).find(" 4") != std::string::npos;
  };

  // Headers of 1 MB.
  const std::string huge = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
  EXPECT_TRUE(is_4xx_or_closed(raw_exchange(s.port, huge))) << status_line(raw_exchange(s.port, huge));
  // A multipart body cut short: 1 MB announced, 2 KB sent, then the client closes its side.
  const std::string cut = post("/v1/jobs", multipart_body({{"content", "c.png", png(40, 48, 1)}}), 1 << 20).substr(0, 2048);
  EXPECT_TRUE(is_4xx_or_closed(raw_exchange(s.port, cut, 1, 0, true)));
  // A field repeated 10,000 times: over the parser's part limit, refused (400) without reading on;
  // 1,000 times: read, and refused as a repeated field (400).
  auto repeated = [&](int times) {
    std::vector<std::tuple<std::string, std::string, std::string>> parts = {{"content", "c.png", png(40, 48, 1)},
                                                                            {"style", "s.png", png(32, 32, 2)}};
    for (int i = 0; i < times; ++i) parts.emplace_back("size", "", i == 0 ? "40000" : "32");
    return raw_exchange(s.port, post("/v1/stylize", multipart_body(parts)));
  };
  EXPECT_TRUE(is_4xx_or_closed(repeated(10000)));
  const std::string thousand = repeated(1000);
  EXPECT_NE(status_line(thousand).find(" 400"), std::string::npos) << status_line(thousand);
  EXPECT_NE(thousand.find("field 'size' is given more than once"), std::string::npos);
  // A slow client, within the server's timeouts (a request dripped over ~2 s): answered, and
  // meanwhile the others are.
  std::string slow_answer;
  std::thread slow([&] { slow_answer = raw_exchange(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 40, 50); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(c.Get("/healthz")->status, 200) << "answers while a slow client drips";
  slow.join();
  EXPECT_NE(status_line(slow_answer).find(" 200"), std::string::npos) << status_line(slow_answer);

  EXPECT_FALSE(wait_for(c, running, "done").empty()) << "the running job finished";
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(body(c.Get(("/v1/jobs/" + running).c_str()))["status"], "done");
}

// What the request line and headers alone decide, before any body is read: an unknown path (404), a
// method the path does not take (405 with Allow), a malformed job id (404 saying what an id is), and
// a body without a Content-Length (411): cpp-httplib would read a chunked body whole, past the cap.
TEST(Serve, RequestsAreRefusedFromTheirHeadersAlone) {
  serve::ServeOptions o;
  o.max_upload_mb = 0.05;  // 52 KB
  Running s(o);
  auto c = s.client();
  const std::string id(32, 'a');
  auto put = c.Put(("/v1/jobs/" + id).c_str(), "{}", "application/json");
  expect_error(put, 405, "method_not_allowed");
  EXPECT_EQ(put->get_header_value("Allow"), "GET, HEAD, DELETE");
  expect_error(c.Delete("/v1/jobs"), 405, "method_not_allowed");
  const auto malformed = c.Get("/v1/jobs/deadbeef");
  expect_error(malformed, 404, "not_found");
  EXPECT_NE(malformed->body.find("a job id is the 32 lower-case hex digits"), std::string::npos) << malformed->body;
  expect_error(c.Get("/v1/jobs/deadbeef/result"), 404, "not_found");
  expect_error(c.Post("/v2/jobs", "x", "text/plain"), 404, "not_found");
  // A query string would look like settings and be ignored: refused on what changes things.
  const auto query = c.Post("/v1/stylize?size=64", "x", "text/plain");
  expect_error(query, 400, "unknown_field");
  EXPECT_NE(query->body.find("query parameter 'size' is not read by /v1/stylize"), std::string::npos) << query->body;
  expect_error(c.Delete(("/v1/jobs/" + id + "?force=1").c_str()), 400, "unknown_field");
  EXPECT_EQ(c.Get("/healthz?t=123")->status, 200) << "a GET's cache-buster changes nothing and passes";
  // Bytes that are not UTF-8, echoed back: still the 404, its JSON valid (not a 500 from the encoder).
  expect_error(c.Get("/v1/jobs/%FF%FE"), 404, "not_found");
  expect_error(c.Get("/%C3"), 404, "not_found");

  // 200 KB in chunks, over the 52 KB cap: refused from the headers, the chunks never read.
  std::string chunked = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 50; ++i) chunked += "1000\r\n" + std::string(4096, 'x') + "\r\n";
  const std::string answer = raw_exchange(s.port, chunked);
  EXPECT_EQ(answer.rfind("HTTP/1.1 411", 0), 0u) << answer.substr(0, 200);
  EXPECT_NE(answer.find("\"error\":\"length_required\""), std::string::npos) << answer;
  const std::string chunked_delete = "DELETE /v1/jobs/" + id + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                     "1000\r\n" + std::string(4096, 'x') + "\r\n";
  EXPECT_EQ(raw_exchange(s.port, chunked_delete).rfind("HTTP/1.1 411", 0), 0u) << "a DELETE's chunked body is not read either";
  const std::string unframed = "POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\r\n";
  EXPECT_EQ(raw_exchange(s.port, unframed).rfind("HTTP/1.1 411", 0), 0u);
  // A refused request's unread body is never read as a request of its own (smuggled past a proxy
  // that forwards the body): the connection closes after the refusal, and one answer comes back.
  const std::string smuggled = "GET /v1/styles HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string& head : {std::string("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n"),
                                 std::string("POST /v1/jobs/abc HTTP/1.1\r\nHost: x\r\nContent-Length: ") +
                                     std::to_string(smuggled.size()) + "\r\n\r\n"}) {
    const std::string answer = raw_exchange_parts(s.port, {head, smuggled}, 300);  // the body after the refusal
    EXPECT_TRUE(answer.rfind("HTTP/1.1 413", 0) == 0 || answer.rfind("HTTP/1.1 405", 0) == 0) << answer.substr(0, 200);
    size_t responses = 0;
    for (size_t at = answer.find("HTTP/1.1 "); at != std::string::npos; at = answer.find("HTTP/1.1 ", at + 1)) ++responses;
    EXPECT_EQ(responses, 1u) << answer;
    EXPECT_EQ(answer.find("\"styles\""), std::string::npos) << "the body was answered as a request: " << answer;
  }
  EXPECT_EQ(c.Get("/healthz")->status, 200) << "still serving";
}

// A form is read strictly: a field no endpoint takes, a field given twice, 'style' images with a
// 'style_id', an init image, and a layer deeper than the server's network are 400s at submit, not
// silently dropped or failed later; several 'style' images blend as style_blend weighs them.
TEST(Serve, FormsAreReadStrictlyAndSeveralStylesBlend) {
  Running s({});
  auto c = s.client();
  const auto typo = c.Post("/v1/jobs", form({{"sizee", "48"}}));
  expect_error(typo, 400, "unknown_field");
  EXPECT_NE(typo->body.find("form field 'sizee'"), std::string::npos) << typo->body;
  auto twice = form({});
  twice.push_back({"size", "32", "", ""});
  twice.push_back({"size", "abc", "", ""});
  expect_error(c.Post("/v1/jobs", twice), 400, "bad_field");
  expect_error(c.Post("/v1/jobs", form({{"style_id", "starry"}})), 400, "bad_field");
  expect_error(c.Post("/v1/jobs", form({{"init", "image"}})), 400, "bad_field");
  expect_error(c.Post("/v1/filter", form({{"iterations", "3"}})), 400, "unknown_field");
  // A layer past the weights is a value out of range; a name that is no layer is not of the type.
  const auto deep = c.Post("/v1/stylize", form({{"content_layers", "relu5_4"}}));
  expect_error(deep, 400, "out_of_range");
  EXPECT_NE(deep->body.find("'content_layers': layer relu5_4 is deeper than the loaded network"), std::string::npos)
      << deep->body;
  expect_error(c.Post("/v1/stylize", form({{"style_layers", "relu9_9"}})), 400, "bad_field");

  auto two = form({{"style_blend", "1,3"}, {"iterations", "2"}});
  two.push_back({"style", png(32, 32, 3), "second.png", "image/png"});
  auto r = c.Post("/v1/stylize", two);
  ASSERT_EQ(r->status, 200) << r->body;
  two.push_back({"style", png(32, 32, 4), "third.png", "image/png"});
  const auto counted = c.Post("/v1/stylize", two);
  expect_error(counted, 400, "out_of_range");
  EXPECT_NE(counted->body.find("'style_blend' has 2 weights for 3 style images"), std::string::npos) << counted->body;
}
