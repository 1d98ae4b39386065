// The three front-ends over one engine path (request -> validate -> plan -> run): every bad field
// value is refused by `stylize` (exit 2, the flag named), a `stylize batch` job-file line (that job
// fails naming the key, the others run) and `stylize serve` (400, the form field named); and one
// request gives the same image bytes through all three, coarse-to-fine included.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "stylize/image/image.hpp"
#include "stylize/request.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::run_command;
using stylize::test::RunResult;
using stylize::test::TempDir;

namespace {

// A bad value for a field: as text (a flag's word, a form field) and as a job-file JSON value.
struct BadValue {
  std::string field, text, json;
};

// Every numeric and enum field, outside its range or not of its type.
const std::vector<BadValue> kBadValues = {
    {"size", "15", "15"},
    {"size", "big", "\"big\""},
    {"style_scale", "0.01", "0.01"},
    {"style_blend", "-1", "[-1]"},
    {"scales", "7", "7"},
    {"iterations", "-1", "-1"},
    {"iterations", "2.5", "2.5"},
    {"content_layers", "relu9_1", "\"relu9_1\""},
    {"style_layers", "relu1_1,nope", "[\"relu1_1\", \"nope\"]"},
    {"style_layer_weights", "-1,1,1,1,1", "[-1, 1, 1, 1, 1]"},
    {"content_weight", "-1", "-1"},
    {"style_weight", "-1", "-1"},
    {"tv_weight", "-0.5", "-0.5"},
    {"optimizer", "sgd", "\"sgd\""},
    {"learning_rate", "0", "0"},
    {"lbfgs_history", "0", "0"},
    {"line_search", "wolfe", "\"wolfe\""},
    {"seed", "-4", "-4"},
    {"init", "sideways", "\"sideways\""},
    {"init", "image", "\"image\""},  // a start image a job line or a form cannot attach
    {"unbounded", "maybe", "\"maybe\""},
    {"original_colors", "2", "2"},
    {"tile", "-1", "-1"},
    {"tile_overlap", "5000", "5000"},
    {"tile_iterations", "0", "0"},
};

std::string flag_of(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return "--" + name;
}

class FrontEnds : public ::testing::Test {
 protected:
  void SetUp() override {
    save_image(dir / "content.png", synthetic_image(36, 48, 1), 95);
    save_image(dir / "style.png", synthetic_image(40, 40, 2), 95);
    std::filesystem::create_directories(dir / "photos");
    std::filesystem::create_directories(dir / "out");
    std::filesystem::copy_file(dir / "content.png", dir / "photos/content.png");
  }
  void TearDown() override {
    if (server_pid > 0) {
      kill(server_pid, SIGTERM);
      stylize::test::wait_exit_code(server_pid);
    }
  }
  RunResult stylize(std::vector<std::string> args) {
    args.insert(args.begin(), STYLIZE_BIN);
    return run_command(args, {"STYLIZE_WEIGHTS=" + stylize::test::synthetic_weights_file()});
  }
  // `stylize serve` on a free port with these flags; returns the port.
  int start_server(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {STYLIZE_BIN, "serve", "--port", "0", "--in-memory", "--weights",
                                     stylize::test::synthetic_weights_file()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    server_pid = stylize::test::spawn_background(argv, dir / "serve.log");
    return stylize::test::wait_for_listening(dir / "serve.log");
  }
  httplib::MultipartFormDataItems form(const std::vector<std::pair<std::string, std::string>>& fields) {
    auto file = [&](const std::string& name) {
      auto b = stylize::test::read_bytes(dir / name);
      return std::string(b.begin(), b.end());
    };
    httplib::MultipartFormDataItems items = {{"content", file("content.png"), "content.png", "image/png"},
                                             {"style", file("style.png"), "style.png", "image/png"}};
    for (const auto& [k, v] : fields) items.push_back({k, v, "", ""});
    return items;
  }
  TempDir dir;
  int server_pid = -1;
};

TEST_F(FrontEnds, EveryBadFieldValueIsRefusedByAllThreeNamingTheFieldInTheirWords) {
  const int port = start_server({"-s", "32", "-n", "2", "--threads", "1"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(60, 0);

  std::ofstream jobs(dir / "jobs.jsonl");
  for (size_t i = 0; i < kBadValues.size(); ++i) {
    const BadValue& b = kBadValues[i];
    jobs << R"({"content": ")" << dir / "content.png" << R"(", "output": "bad)" << i << R"(.png", ")" << b.field
         << "\": " << b.json << "}\n";
  }
  jobs << R"({"content": ")" << dir / "content.png" << R"(", "output": "good.png"})" << "\n";
  jobs.close();

  for (const BadValue& b : kBadValues) {
    SCOPED_TRACE(b.field + " = " + b.text);
    // The command line. --init takes a FILE there too, so a bad word is a missing image (exit 3);
    // true/false fields are switches there, which take no value.
    const RequestField& f = *std::find_if(request_fields().begin(), request_fields().end(),
                                          [&](const RequestField& x) { return x.name == b.field; });
    if (!f.is_switch) {
      auto r = stylize({dir / "content.png", dir / "style.png", "-o", dir / "out.png", "-s", "32", "-n", "2",
                        flag_of(b.field), b.text});
      EXPECT_EQ(r.exit_code, b.field == "init" ? 3 : 2) << r.err;
      EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find(b.field == "init" ? "init image '" + b.text + "'" : flag_of(b.field)), std::string::npos)
          << r.err;
      EXPECT_FALSE(stylize::test::exists(dir / "out.png"));
    }
    // The HTTP API.
    auto res = http.Post("/v1/jobs", form({{b.field, b.text}}));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << res->body;
    const auto err = nlohmann::json::parse(res->body);
    EXPECT_TRUE(err["error"] == "bad_field" || err["error"] == "out_of_range") << res->body;
    EXPECT_NE(err["detail"].get<std::string>().find("'" + b.field + "'"), std::string::npos) << res->body;
  }

  // The job file: each bad line fails naming its key; the good one still runs.
  auto r = stylize({"batch", "--job-file", dir / "jobs.jsonl", "--style", dir / "style.png", "--out-dir", dir / "out",
                    "-s", "32", "-n", "2",
                    "--report", dir / "report.json", "-q"});
  EXPECT_EQ(r.exit_code, 8) << r.err;
  std::ifstream in(dir / "report.json");
  const auto report = nlohmann::json::parse(in);
  ASSERT_EQ(report["jobs"].size(), kBadValues.size() + 1);
  for (size_t i = 0; i < kBadValues.size(); ++i) {
    const auto& job = report["jobs"][i];
    EXPECT_EQ(job["status"], "failed") << job;
    EXPECT_NE(job.value("error", "").find("'" + kBadValues[i].field + "'"), std::string::npos) << job;
  }
  EXPECT_EQ(report["jobs"].back()["status"], "done");
  EXPECT_EQ(dir.list().size(), 7u) << "no output for a refused request: " << ::testing::PrintToString(dir.list());
}

// Coarse-to-fine runs in the engine: the same request, seed and threads give the same PNG bytes
// through `stylize`, `stylize batch` and `stylize serve`.
TEST_F(FrontEnds, ScalesGiveTheSameBytesThroughStylizeBatchAndServe) {
  // -n last: before a positional it must take one word only.
  const std::vector<std::string> recipe = {"-s", "64", "--scales", "2", "--style-weight", "300", "--threads", "2",
                                           "-n", "3,2"};
  std::vector<std::string> args = {dir / "content.png", dir / "style.png", "-o", dir / "cli.png", "--report",
                                   dir / "cli.json"};
  args.insert(args.end(), recipe.begin(), recipe.end());
  auto r = stylize(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(dir / "cli.json");
  const auto report = nlohmann::json::parse(in);
  ASSERT_EQ(report["scales"].size(), 2u);
  EXPECT_EQ(report["scales"][0]["size"], 32);
  EXPECT_EQ(report["iterations_done"], 5);
  const auto cli = stylize::test::read_bytes(dir / "cli.png");

  // Batch, with -n before the folder (one word per flag): the flags and a job-file line alike.
  args = {"batch", "--style", dir / "style.png", "--out-dir", dir / "out"};
  args.insert(args.end(), recipe.begin(), recipe.end());
  args.push_back(dir / "photos");
  r = stylize(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(stylize::test::read_bytes(dir / "out/content_style.png"), cli);
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    jobs << R"({"content": ")" << dir / "content.png" << R"(", "style": ")" << dir / "style.png"
         << R"(", "output": "job.png", "scales": 2, "iterations": [3, 2], "style_weight": 300})" << "\n";
  }
  r = stylize({"batch", "--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out", "-s", "64", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(stylize::test::read_bytes(dir / "out/job.png"), cli);

  // Serve: the form fields of the same names.
  const int port = start_server({"--threads", "2"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(120, 0);
  auto res = http.Post("/v1/stylize", form({{"size", "64"}, {"scales", "2"}, {"iterations", "3,2"}, {"style_weight", "300"}}));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(std::vector<uint8_t>(res->body.begin(), res->body.end()), cli);
}

// README's Usage table states each request field's default as the engine has it.
TEST(Readme, UsageTableDefaultsAreTheEnginesDefaults) {
  std::ifstream in(std::string(STYLIZE_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in);
  std::vector<std::string> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `-", 0) == 0) rows.push_back(line);
  }
  const StylizeRequest caffe = request_defaults(Preprocessing::caffe);
  const StylizeRequest torchvision = request_defaults(Preprocessing::torchvision);
  for (const RequestField& f : request_fields()) {
    SCOPED_TRACE(f.name);
    const std::string flag = flag_of(f.name);
    auto row = std::find_if(rows.begin(), rows.end(), [&](const std::string& r) {
      const std::string first = r.substr(0, r.find(" | "));
      return first.find(flag + " ") != std::string::npos || first.find(flag + "`") != std::string::npos;
    });
    ASSERT_NE(row, rows.end()) << "no row for " << flag;
    const size_t a = row->find(" | ") + 3;
    const std::string cell = row->substr(a, row->find(" | ", a) - a);
    const std::string want = field_text(caffe, f.name);
    if (f.is_switch || want.empty()) continue;  // off / a sentence (learning_rate, style_blend)
    if (f.per_preprocessing) {
      EXPECT_NE(cell.find(want + " (caffe)"), std::string::npos) << cell;
      EXPECT_NE(cell.find(field_text(torchvision, f.name) + " (torchvision)"), std::string::npos) << cell;
    } else {
      EXPECT_TRUE(cell == want || cell == "`" + want + "`") << cell << " vs " << want;
    }
  }
}

}  // namespace
