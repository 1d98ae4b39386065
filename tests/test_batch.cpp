// `stylize batch` as a script meets it: partial failures, reruns, the report, targets computed once
// per style, name templates, dry runs, stdin, and Ctrl-C mid-batch followed by a resume.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "stylize/image/image.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::exists;
using stylize::test::RunResult;
using stylize::test::TempDir;

namespace {

class Batch : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir / "photos");
    std::filesystem::create_directories(dir / "out");
    for (int i = 1; i <= 3; ++i) save_image(dir / ("photos/p" + std::to_string(i) + ".png"), synthetic_image(30, 40, i), 95);
    auto jpg = encode_image(synthetic_image(30, 40, 7), "jpg", 90);
    jpg.resize(jpg.size() / 2);
    stylize::test::write_bytes(dir / "photos/p4_corrupt.jpg", jpg);
    save_image(dir / "starry.png", synthetic_image(32, 32, 20), 95);
    save_image(dir / "scream.png", synthetic_image(32, 32, 21), 95);
  }
  RunResult batch(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {STYLIZE_BIN, "batch"};
    argv.insert(argv.end(), args.begin(), args.end());
    env.push_back("STYLIZE_WEIGHTS=" + stylize::test::synthetic_weights_file());
    return stylize::test::run_command(argv, env);
  }
  nlohmann::json report(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
  }
  std::vector<std::string> outputs() {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir / "out")) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  TempDir dir;
};

}  // namespace

TEST_F(Batch, OneCorruptImageFailsAloneAndRerunSkipsTheRest) {
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos", "-s", "32", "-n", "3",
                  "--report", dir / "r.json"});
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"p1_starry.png", "p2_starry.png", "p3_starry.png"}));
  auto rep = report(dir / "r.json");
  EXPECT_EQ(rep["totals"]["done"], 3);
  EXPECT_EQ(rep["totals"]["failed"], 1);
  EXPECT_EQ(rep["totals"]["model_loads"], 1);
  EXPECT_EQ(rep["totals"]["style_target_computations"], 1) << "one style: its targets once for all jobs";
  const auto& bad = rep["jobs"][3];
  EXPECT_EQ(bad["status"], "failed");
  EXPECT_NE(bad["error"].get<std::string>().find("p4_corrupt.jpg"), std::string::npos);
  EXPECT_NE(bad["error"].get<std::string>().find("truncated"), std::string::npos);
  EXPECT_EQ(rep["jobs"][0]["style_targets"], "computed");
  EXPECT_EQ(rep["jobs"][1]["style_targets"], "cached");
  EXPECT_LT(rep["jobs"][0]["losses"]["final"]["total"].get<double>(),
            rep["jobs"][0]["losses"]["initial"]["total"].get<double>());
  LoadedImage out = load_image(dir / "out/p1_starry.png", "output");
  EXPECT_EQ(out.width, 32);

  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos", "-s", "32", "-n", "3",
             "--report", dir / "r2.json"});
  EXPECT_EQ(r.exit_code, 8);
  auto rep2 = report(dir / "r2.json");
  EXPECT_EQ(rep2["totals"]["skipped"], 3);
  EXPECT_EQ(rep2["totals"]["done"], 0);
  EXPECT_EQ(rep2["totals"]["style_target_computations"], 0) << "only the corrupt job tried, and it failed first";
  // The run's count ([1/1]: one job to do) and the job's own number (4, as in the report) side by side.
  EXPECT_NE(r.err.find("[1/1] job 4: " + dir / "photos/p4_corrupt.jpg" + " x "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: [1/1] job 4 failed: "), std::string::npos) << r.err;
}

// `-n 2 photos/`: the folder after a list flag is an input, not a second iteration count.
TEST_F(Batch, IterationsBeforeTheInputsTakeOneWord) {
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "-s", "32", "-n", "2", dir / "photos/p1.png",
                  dir / "photos/p2.png", "--report", dir / "r.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"p1_starry.png", "p2_starry.png"}));
  EXPECT_EQ(report(dir / "r.json")["jobs"][0]["iterations_done"], 2);
}

TEST_F(Batch, TwoStylesAreTwoJobsEachWithTargetsOncePerStyle) {
  auto r = batch({"--style", dir / "starry.png", "--style", dir / "scream.png", "--out-dir", dir / "out",
                  dir / "photos/p1.png", dir / "photos/p2.png", "-s", "32", "-n", "2", "--report", dir / "r.json",
                  "--name", "{index}-{content}-{style}.{ext}", "--ext", "jpg"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"1-p1-starry.jpg", "2-p1-scream.jpg", "3-p2-starry.jpg",
                                                 "4-p2-scream.jpg"}));
  EXPECT_EQ(report(dir / "r.json")["totals"]["style_target_computations"], 2);
}

TEST_F(Batch, DryRunListsJobsWithoutLoadingTheModel) {
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos", "--dry-run"},
                 {"STYLIZE_WEIGHTS=/nonexistent/weights.safetensors"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(dir / "out/p1_starry.png"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4);
  EXPECT_TRUE(outputs().empty());
  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos", "--name", "{nope}.png",
             "--dry-run"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown placeholder {nope}"), std::string::npos) << r.err;
}

TEST_F(Batch, AllFailingIsExit9AndFailFastStops) {
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos/p4_corrupt.jpg",
                  dir / "missing.png", "-s", "32", "-n", "2"});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos/p4_corrupt.jpg",
             dir / "photos/p1.png", "-s", "32", "-n", "2", "--fail-fast", "--report", dir / "r.json"});
  EXPECT_EQ(r.exit_code, 9);
  EXPECT_EQ(report(dir / "r.json")["jobs"][1]["status"], "pending");
  EXPECT_TRUE(outputs().empty());
  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "nowhere", dir / "photos"});
  EXPECT_EQ(r.exit_code, 5);
}

TEST_F(Batch, JobFileAndStdin) {
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    jobs << R"({"content": ")" << dir / "photos/p1.png" << R"(", "style": ")" << dir / "starry.png"
         << R"(", "size": 24, "output": "a.png"})" << "\n";
    jobs << "# comment lines and blank lines are skipped\n\n";
    jobs << R"({"content": ")" << dir / "photos/p2.png" << R"(", "styles": [")" << dir / "starry.png" << R"(", ")"
         << dir / "scream.png" << R"("], "blend": [3, 1], "output": "b.png"})" << "\n";
    jobs << R"({"content": 5})" << "\n";
    jobs << R"({"content": "x.png", "styles": ["s.png", 3]})" << "\n";
    jobs << R"({"style": "s.png"})" << "\n";
    jobs << R"({"content": "x.png", "size": 32, "size": 48})" << "\n";
    jobs << R"({"content": "x.png", "blend": [1], "style_blend": [1]})" << "\n";
    jobs << R"({"content": "x.png", "output": ""})" << "\n";
  }
  auto r = batch({"--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out", "-s", "32", "-n", "2", "--report",
                  dir / "r.json"});
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"a.png", "b.png"}));
  EXPECT_EQ(load_image(dir / "out/a.png", "output").width, 24);
  auto rep = report(dir / "r.json");
  // A value of the wrong type names its key.
  EXPECT_NE(rep["jobs"][2]["error"].get<std::string>().find("line 5: \"content\" must be a file name (a JSON string), got 5"),
            std::string::npos)
      << rep["jobs"][2];
  EXPECT_NE(rep["jobs"][3]["error"].get<std::string>().find("line 6: \"styles\" must be a file name (a JSON string), got 3"),
            std::string::npos)
      << rep["jobs"][3];
  EXPECT_NE(rep["jobs"][4]["error"].get<std::string>().find("line 7: a job line needs \"content\""), std::string::npos)
      << rep["jobs"][4];
  // A key twice (JSON would keep the last silently), or one setting under both its names.
  EXPECT_NE(rep["jobs"][5]["error"].get<std::string>().find("line 8: key 'size' is given more than once in the line"),
            std::string::npos)
      << rep["jobs"][5];
  EXPECT_NE(rep["jobs"][6]["error"].get<std::string>().find("line 9: \"blend\" and \"style_blend\" are one setting"),
            std::string::npos)
      << rep["jobs"][6];
  EXPECT_NE(rep["jobs"][7]["error"].get<std::string>().find("line 10: \"output\" is empty"), std::string::npos)
      << rep["jobs"][7];

  // Paths on standard input (as from find): run through a shell to pipe them in.
  const std::string cmd = "printf '%s\\n' " + dir / "photos/p3.png" + " | STYLIZE_WEIGHTS=" +
                          stylize::test::synthetic_weights_file() + " " + STYLIZE_BIN + " batch --from-stdin --style " +
                          dir / "starry.png" + " --out-dir " + dir / "out" + " -s 32 -n 2 -q";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(exists(dir / "out/p3_starry.png"));
}

// Two jobs that would write one file are refused before any work, with the fix where the names
// came from: the lines' "output" keys here.
TEST_F(Batch, TwoLinesWithOneOutputAreRefusedNamingTheKey) {
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    for (const char* photo : {"photos/p1.png", "photos/p2.png"}) {
      jobs << R"({"content": ")" << dir / photo << R"(", "style": ")" << dir / "starry.png" << R"(", "output": "j.png"})"
           << "\n";
    }
  }
  auto r = batch({"--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out", "-s", "32", "-n", "2"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("jobs 1 and 2 would both write '" + dir / "out/j.png" + "'; give each line its own \"output\""),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(!exists(dir / "out") || outputs().empty());
}

TEST_F(Batch, InterruptLeavesNoPartialFileAndARerunContinues) {
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    jobs << R"({"content": ")" << dir / "photos/p1.png" << R"(", "style": ")" << dir / "starry.png"
         << R"(", "iterations": 2})" << "\n";
    jobs << R"({"content": ")" << dir / "photos/p2.png" << R"(", "style": ")" << dir / "starry.png" << R"("})" << "\n";
  }
  std::vector<std::string> argv = {STYLIZE_BIN, "batch", "--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out",
                                   "-s", "32", "-n", "100000", "--print-every", "1", "--report", dir / "r.json",
                                   "--weights", stylize::test::synthetic_weights_file()};
  const int pid = stylize::test::spawn_background(argv, dir / "stderr.txt");
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 600 && !exists(dir / "out/p1_starry.png"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // job 2 is now optimising
  kill(pid, SIGINT);
  EXPECT_EQ(stylize::test::wait_exit_code(pid), 130);
  EXPECT_EQ(outputs(), (std::vector<std::string>{"p1_starry.png"})) << "no partial or temporary file";
  auto rep = report(dir / "r.json");
  EXPECT_EQ(rep["jobs"][1]["status"], "interrupted");
  EXPECT_TRUE(rep["totals"]["interrupted"].get<bool>());

  auto r = batch({"--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out", "-s", "32", "-n", "2", "--report",
                  dir / "r2.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"p1_starry.png", "p2_starry.png"}));
  EXPECT_EQ(report(dir / "r2.json")["totals"]["skipped"], 1);
}

TEST_F(Batch, OverwriteRedoesFinishedJobsAndExcludesSkipExisting) {
  const std::vector<std::string> base = {"--style", dir / "starry.png", "--out-dir", dir / "out", dir / "photos/p1.png",
                                         "-s", "24", "-n", "1", "--report", dir / "r.json"};
  ASSERT_EQ(batch(base).exit_code, 0);
  auto args = base;
  args.push_back("--skip-existing");
  ASSERT_EQ(batch(args).exit_code, 0);
  EXPECT_EQ(report(dir / "r.json")["totals"]["skipped"], 1);
  args.back() = "--overwrite";
  ASSERT_EQ(batch(args).exit_code, 0);
  EXPECT_EQ(report(dir / "r.json")["totals"]["done"], 1);
  args.push_back("--skip-existing");
  EXPECT_EQ(batch(args).exit_code, 2) << "contradictory flags are a usage error";
}

// --shard K/N for N = 1..5: each part's jobs (from --dry-run) are disjoint, together the whole list,
// within one job of each other in size, and the same parts come out when the files are listed in
// another order.
TEST_F(Batch, ShardsPartitionTheJobListWhateverTheListingOrder) {
  std::vector<std::string> contents;
  for (int i = 1; i <= 11; ++i) contents.push_back(dir / ("c" + std::to_string(i) + ".png"));  // dry run: never read
  auto list = [&](const std::vector<std::string>& files, const std::string& shard) {
    std::vector<std::string> args = {"--style", dir / "starry.png", "--style", dir / "scream.png", "--out-dir", dir / "out",
                                     "--dry-run"};
    if (!shard.empty()) args.insert(args.end(), {"--shard", shard});
    args.insert(args.end(), files.begin(), files.end());
    auto r = batch(args);
    EXPECT_EQ(r.exit_code, 0) << shard << ": " << r.err;
    std::set<std::string> jobs;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) jobs.insert(line);
    return jobs;
  };
  const std::set<std::string> all = list(contents, "");
  ASSERT_EQ(all.size(), 22u);
  std::vector<std::string> reversed(contents.rbegin(), contents.rend());
  for (int n = 1; n <= 5; ++n) {
    std::set<std::string> seen;
    size_t smallest = all.size(), largest = 0;
    for (int k = 1; k <= n; ++k) {
      const std::string shard = std::to_string(k) + "/" + std::to_string(n);
      const std::set<std::string> part = list(contents, shard);
      for (const auto& job : part) EXPECT_TRUE(seen.insert(job).second) << "job in two parts: " << job;
      smallest = std::min(smallest, part.size());
      largest = std::max(largest, part.size());
      if (n == 3 || n == 5) {
        // Listed in reverse, the index column differs: compare the outputs (each names its job).
        auto outputs_of = [](const std::set<std::string>& jobs) {
          std::set<std::string> out;
          for (const auto& line : jobs) out.insert(line.substr(line.find('\t')));
          return out;
        };
        EXPECT_EQ(outputs_of(list(reversed, shard)), outputs_of(part)) << shard;
      }
    }
    EXPECT_EQ(seen, all) << "N=" << n;
    EXPECT_LE(largest - smallest, 1u) << "N=" << n;
  }
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "--dry-run", "--shard", "0/4", contents[0]});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("K counts from 1 to N"), std::string::npos) << r.err;
  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "--dry-run", "--shard", "2of4", contents[0]});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is not K/N"), std::string::npos) << r.err;
}

// Nothing a batch writes may be something it reads: the content folder as --out-dir would feed this
// run's outputs to the next run as content, and a --name that names an input would replace it. A
// --name whose extension no encoder writes is refused before any work too.
TEST_F(Batch, NothingItWritesIsSomethingItReads) {
  const std::string photo = stylize::test::read_text(dir / "photos/p1.png");
  auto r = batch({dir / "photos", "--style", dir / "starry.png", "--out-dir", dir / "photos", "-s", "32", "-n", "1"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("the folder '" + dir / "photos" + "' the images are read from"), std::string::npos) << r.err;
  std::filesystem::create_directories(dir / "photos/styled");
  r = batch({dir / "photos", "-r", "--style", dir / "starry.png", "--out-dir", dir / "photos/styled", "-s", "32", "-n", "1"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("is inside the folder"), std::string::npos) << r.err;
  r = batch({dir / "photos/p1.png", "--style", dir / "starry.png", "--out-dir", dir / "photos", "--name", "{content}.png",
             "--overwrite", "-s", "32", "-n", "1"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("the output of job 1 '" + dir / "photos/p1.png" + "' is the content image of job 1"), std::string::npos) << r.err;
  EXPECT_EQ(stylize::test::read_text(dir / "photos/p1.png"), photo);
  r = batch({dir / "photos/p1.png", "--style", dir / "starry.png", "--out-dir", dir / "out", "--report", dir / "starry.png"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("--report '" + dir / "starry.png" + "' is a style image of job 1"), std::string::npos) << r.err;
  r = batch({dir / "photos/p1.png", "--style", dir / "starry.png", "--out-dir", dir / "out", "--name", "{content}.gif"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("'.gif' is no image format this build writes"), std::string::npos) << r.err;
  r = batch({dir / "photos/p1.png", "--style", dir / "starry.png", "--out-dir", dir / "out", "--ext", "gif"});
  EXPECT_EQ(r.exit_code, 5) << r.err;  // as apply's --ext and stylize's -o
  EXPECT_NE(r.err.find("--ext 'gif' is not a format this build writes"), std::string::npos) << r.err;
  EXPECT_TRUE(outputs().empty());
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// A job-file line may name any layer the weights file serves, deeper than the flags' layers: the
// network is loaded as deep as the file goes, not only as deep as the flags need.
TEST_F(Batch, AJobLineMayUseLayersDeeperThanTheFlags) {
  {
    std::ofstream jobs(dir / "jobs.jsonl");
    jobs << R"({"content": ")" << dir / "photos/p1.png" << R"(", "style": ")" << dir / "starry.png"
         << R"(", "style_layers": "relu1_1,relu3_4", "content_layers": "pool3", "output": "deep.png"})" << "\n";
  }
  const std::vector<std::string> args = {"--job-file", dir / "jobs.jsonl", "--out-dir", dir / "out", "-s", "32", "-n", "2",
                                         "--weights", stylize::test::synthetic_prefix_weights_file(),
                                         "--content-layers", "relu2_1", "--style-layers", "relu1_1", "-q"};
  auto r = batch(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(outputs(), (std::vector<std::string>{"deep.png"}));
}

// A start image of another aspect ratio is stretched to each job's content: the job that meets it
// says so (with the job's label), the jobs whose shape matches say nothing. --init style likewise.
TEST_F(Batch, AStretchedStartImageIsWarnedOfByTheJobsItStretches) {
  save_image(dir / "init.png", synthetic_image(30, 40, 8), 95);    // the photos' shape, 40x30
  save_image(dir / "square.png", synthetic_image(32, 32, 9), 95);
  const std::string warning = "it is stretched to the content's shape";
  auto count = [&](const std::string& text) {
    size_t n = 0;
    for (size_t at = text.find(warning); at != std::string::npos; at = text.find(warning, at + 1)) ++n;
    return n;
  };
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "-s", "32", "-n", "1", "--init",
                  dir / "init.png", "--report", dir / "r.json", dir / "photos/p1.png", dir / "square.png",
                  dir / "photos/p2.png"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.err), 1u) << r.err;
  const std::string line = "the --init image '" + dir / "init.png" + "' is 40x30 and the content 32x32: " + warning;
  EXPECT_NE(r.err.find("[2/3] " + line), std::string::npos) << r.err;
  const auto jobs = report(dir / "r.json")["jobs"];
  EXPECT_EQ(jobs[0].count("warnings"), 0u) << jobs;
  EXPECT_EQ(jobs[1]["warnings"], nlohmann::json::array({line})) << jobs;
  EXPECT_EQ(jobs[2].count("warnings"), 0u) << jobs;
  r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "-s", "32", "-n", "1", "--init", "style",
             "--overwrite", dir / "photos/p1.png", dir / "square.png"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("[1/2] the first style image '" + dir / "starry.png" + "' (--init style) is 32x32 and the content "
                       "40x30: " + warning),
            std::string::npos)
      << r.err;
}

// A job's tiling is logged as stylize logs it, under the job's label, with the caveat of a tile
// that is mostly context.
TEST_F(Batch, ATiledJobSaysHowAndWhatItsTileCosts) {
  auto r = batch({"--style", dir / "starry.png", "--out-dir", dir / "out", "-s", "40", "-n", "2", "--tile", "16",
                  "--tile-overlap", "8", "--report", dir / "r.json", dir / "photos/p1.png"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[1/1] tiled by 16 px, 85 px overlap"), std::string::npos) << r.err;
  const std::string caveat = "--tile 16 with 85 px of context per side runs the network over";
  EXPECT_NE(r.err.find("warning: [1/1] " + caveat), std::string::npos) << r.err;
  const auto warnings = report(dir / "r.json")["jobs"][0]["warnings"];
  ASSERT_EQ(warnings.size(), 1u) << warnings;
  EXPECT_EQ(warnings[0].get<std::string>().rfind(caveat, 0), 0u) << "the report's line is the log's: " << warnings;
  EXPECT_NE(r.err.find(warnings[0].get<std::string>()), std::string::npos) << r.err;
}
