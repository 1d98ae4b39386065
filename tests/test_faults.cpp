// Faults injected from outside, against the binary: the disk fills (a file-size limit, `ulimit -f`)
// while an output, a snapshot, a batch report, a converted weights file or a serve result is
// written. Each gives one clear error line and its exit code (5), and leaves no partial file.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "stylize/image/image.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::RunResult;
using stylize::test::TempDir;

namespace {

// argv run with its file-size limit at `bytes` (the shell's ulimit counts 512-byte blocks).
std::vector<std::string> limited(size_t bytes, std::vector<std::string> argv) {
  std::vector<std::string> out = {"/bin/sh", "-c", "ulimit -f " + std::to_string(bytes / 512) + " && exec \"$@\"", "sh"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

RunResult run_limited(size_t bytes, std::vector<std::string> argv) {
  return stylize::test::run_command(limited(bytes, std::move(argv)),
                                    {"STYLIZE_WEIGHTS=" + stylize::test::synthetic_weights_file()});
}

// One "error:" line naming `what`, exit 5.
void expect_output_error(const RunResult& r, const std::string& what) {
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(stylize::test::count_of(r.err, "error:"), 1u) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("free space"), std::string::npos) << "says what to do: " << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
}

// Nothing in `dir` but `allowed` (no output, no temporary file).
void expect_only(const TempDir& dir, const std::vector<std::string>& allowed) {
  for (const auto& name : dir.list()) {
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), name), allowed.end()) << "left behind: " << name;
  }
}

// Files in `dir` with the temporary-name marker of write_file_atomic().
size_t temporaries(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    n += e.path().filename().string().find(".tmp-") != std::string::npos;
  }
  return n;
}

}  // namespace

TEST(Faults, ADiskFullOutputOrSnapshotLeavesNothingHalfWritten) {
  TempDir dir;
  save_image(dir / "c.png", synthetic_image(96, 128, 1), 95);
  save_image(dir / "s.png", synthetic_image(64, 64, 2), 95);
  // The output: 128 px of optimised noise is some 30 KB as PNG; 8 KB are allowed.
  auto r = run_limited(8192, {STYLIZE_BIN, dir / "c.png", dir / "s.png", "-o", dir / "out.png", "-s", "128", "-n", "2"});
  expect_output_error(r, "out.png");
  expect_only(dir, {"c.png", "s.png"});
  // A snapshot along the way fails the same way, before the run goes on for nothing.
  r = run_limited(8192, {STYLIZE_BIN, dir / "c.png", dir / "s.png", "-o", dir / "out.png", "-s", "128", "-n", "4",
                         "--save-every", "2"});
  expect_output_error(r, "out");
  expect_only(dir, {"c.png", "s.png"});
  // The report (~5 KB) does not fit where a 16 px image (~1 KB) does: the run fails, and its image
  // is not left behind either (both are staged, then put in place together).
  r = run_limited(2048, {STYLIZE_BIN, dir / "c.png", dir / "s.png", "-o", dir / "out.png", "-s", "16", "-n", "1",
                         "--style-layers", "relu1_1", "--content-layers", "relu1_2", "--report", dir / "r.json"});
  expect_output_error(r, "r.json");
  expect_only(dir, {"c.png", "s.png"});
  // With room, the same run writes its image (the limit, not the command, failed above).
  r = run_limited(1 << 24, {STYLIZE_BIN, dir / "c.png", dir / "s.png", "-o", dir / "out.png", "-s", "128", "-n", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Faults, ADiskFullBatchReportOrWeightsFileLeavesNothingHalfWritten) {
  TempDir dir;
  std::filesystem::create_directories(dir / "in");
  std::filesystem::create_directories(dir / "out");
  for (int i = 0; i < 8; ++i) save_image(dir / ("in/p" + std::to_string(i) + ".png"), synthetic_image(20, 20, i + 1), 95);
  save_image(dir / "s.png", synthetic_image(20, 20, 30), 95);
  // Eight 16 px JPEGs fit in 2 KB each; the report (eight entries and the settings) does not.
  auto r = run_limited(2048, {STYLIZE_BIN, "batch", "--style", dir / "s.png", "--out-dir", dir / "out", dir / "in", "-s",
                              "16", "-n", "1", "--ext", "jpg", "--report", dir / "report.json"});
  expect_output_error(r, "report.json");
  EXPECT_FALSE(stylize::test::exists(dir / "report.json"));
  EXPECT_EQ(temporaries(dir.path()), 0u);
  for (const auto& name : std::filesystem::directory_iterator(dir / "out")) {
    EXPECT_EQ(name.path().extension(), ".jpg") << "only whole outputs: " << name.path();
  }
  // A synthetic VGG19 is ~80 MB; 1 MB are allowed.
  r = run_limited(1 << 20, {STYLIZE_BIN, "weights", "synth", "-o", dir / "w.safetensors"});
  expect_output_error(r, "w.safetensors");
  EXPECT_FALSE(stylize::test::exists(dir / "w.safetensors"));
  EXPECT_EQ(temporaries(dir.path()), 0u);
}

// serve --data-dir under a file-size limit: a result too large to store fails its job with the
// reason, leaves no partial file in results/, and the server goes on (a small job then succeeds).
TEST(Faults, AServeResultThatCannotBeStoredFailsItsJobAndTheServerGoesOn) {
  TempDir dir;
  const int pid = stylize::test::spawn_background(
      limited(192 * 1024, {STYLIZE_BIN, "serve", "--port", "0", "--data-dir", dir / "data", "--weights",
                           stylize::test::synthetic_weights_file()}),
      dir / "log");
  // A failed expectation or a throw must not leave the server running: it holds ctest's output pipe,
  // and ctest then waits for it until its own timeout (seen under ASan on a slow AVX2 EPYC).
  struct KillOnExit {
    int pid;
    ~KillOnExit() {
      if (pid > 0) kill(pid, SIGKILL), stylize::test::wait_exit_code(pid);
    }
  } server{pid};
  const int port = stylize::test::wait_for_listening(dir / "log");
  ASSERT_GT(port, 0) << stylize::test::read_text(dir / "log");
  httplib::Client c("127.0.0.1", port);
  auto png = [](int h, int w, uint32_t s) {
    auto b = encode_image(synthetic_image(h, w, s), "png", 95);
    return std::string(b.begin(), b.end());
  };
  auto submit = [&](const std::string& size) {
    auto r = c.Post("/v1/jobs", httplib::MultipartFormDataItems{{"content", png(48, 64, 1), "c.png", "image/png"},
                                                                {"style", png(32, 32, 2), "s.png", "image/png"},
                                                                {"size", size, "", ""},
                                                                {"iterations", "2", "", ""}});
    EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    return nlohmann::json::parse(r->body)["id"].get<std::string>();
  };
  auto final_status = [&](const std::string& id) {
    // Up to 5 minutes: a 512 px job under ASan on a 2-core AVX2 EPYC took over the 30 s this had.
    for (int i = 0; i < 6000; ++i) {
      auto r = c.Get(("/v1/jobs/" + id).c_str());
      auto j = nlohmann::json::parse(r->body);
      if (j["status"] == "done" || j["status"] == "failed") return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return nlohmann::json{{"status", "still running after 5 minutes"}};
  };
  const auto big = final_status(submit("512"));  // some 600 KB of PNG over a 192 KB limit
  EXPECT_EQ(big["status"], "failed") << big.dump();
  EXPECT_NE(big.value("error", "").find("could not be stored"), std::string::npos) << big.dump();
  EXPECT_TRUE(std::filesystem::is_empty(dir / "data/results")) << "no partial result";
  const auto small = final_status(submit("32"));
  EXPECT_EQ(small["status"], "done") << small.dump();
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  kill(pid, SIGTERM);
  server.pid = -1;
  EXPECT_EQ(stylize::test::wait_exit_code(pid), 0);
}
