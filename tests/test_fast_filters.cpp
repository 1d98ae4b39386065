// `stylize train` and `stylize apply` as a user meets them: a folder with bad photos in it, the files
// a run leaves, resume giving the bytes an uninterrupted run gives, and every refusal in one line.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <thread>

#include "stylize/filter.hpp"
#include "stylize/runtime.hpp"
#include "stylize/image/image.hpp"
#include "stylize/synthetic.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::exists;
using stylize::test::RunResult;
using stylize::test::TempDir;

namespace {

int line_count(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

class FastFilters : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir / "photos/sub");
    std::filesystem::create_directories(dir / "out");
    save_image(dir / "photos/a.png", synthetic_image(48, 56, 1), 95);
    save_image(dir / "photos/sub/b.jpg", synthetic_image(52, 44, 2), 95);
    save_image(dir / "photos/tiny.png", synthetic_image(20, 60, 3), 95);  // shorter than the 32 px crops
    auto jpg = encode_image(synthetic_image(50, 50, 4), "jpg", 90);
    jpg.resize(jpg.size() / 2);
    test::write_bytes(dir / "photos/cut.jpg", jpg);
    save_image(dir / "starry.png", synthetic_image(40, 40, 20), 95);
  }
  RunResult stylize(const std::string& sub, std::vector<std::string> args) {
    std::vector<std::string> argv = {STYLIZE_BIN, sub};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv, {"STYLIZE_WEIGHTS=" + test::synthetic_prefix_weights_file()});
  }
  // A tiny, fast training run: width 4, one residual block, 32 px crops.
  std::vector<std::string> train_args(const std::string& out, int steps) {
    return {"--style", dir / "starry.png", "--data", dir / "photos", "-o", out, "--steps", std::to_string(steps),
            "--crop-size", "32", "--batch-size", "2", "--width", "4", "--residual-blocks", "1", "--style-size",
            "40", "--learning-rate", "0.01", "--threads", "1", "--checkpoint-every", "2", "--preview-every", "3"};
  }
  TempDir dir;
};

TEST_F(FastFilters, TrainSkipsBadPhotosAndLeavesFilterCheckpointPreviewPlotAndLog) {
  auto args = train_args(dir / "out/f.safetensors", 4);
  args.insert(args.end(), {"--log", dir / "out/log.jsonl"});
  const RunResult r = stylize("train", args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("training photo '" + dir / "photos/tiny.png" + "' is 60x20, smaller than the 32 px crops; skipped"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot read training photo '" + dir / "photos/cut.jpg" + "'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("training on 2 photos"), std::string::npos) << r.err;
  for (const char* f : {"f.safetensors", "f.ckpt.safetensors", "f.preview.png", "f.losses.png", "log.jsonl"}) {
    EXPECT_TRUE(exists(dir / ("out/" + std::string(f)))) << f;
  }
  std::ifstream log(dir / "out/log.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(log, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"].get<int>(), ++steps);
    EXPECT_GT(j["style"].get<double>(), 0);
    EXPECT_NEAR(j["total"].get<double>(), j["content"].get<double>() + j["style"].get<double>() + j["tv"].get<double>(),
                1e-6 * j["total"].get<double>());
  }
  EXPECT_EQ(steps, 4);
  const LoadedFilter f = load_filter(dir / "out/f.safetensors");
  EXPECT_EQ(f.info.training.at("steps"), "4");
  EXPECT_EQ(f.info.training.at("images_seen"), "8");
  EXPECT_EQ(f.info.training.at("style"), "starry.png");
  EXPECT_EQ(f.info.training.at("style_sha256").size(), 64u);
  EXPECT_EQ(f.info.training.at("content_layers"), "relu3_2");
  // Preview: 2 photos (192 px squares), above their filtered versions.
  const LoadedImage preview = load_image(dir / "out/f.preview.png", "preview");
  EXPECT_EQ(preview.width, 2 * 192);
  EXPECT_EQ(preview.height, 2 * 192);
}

TEST_F(FastFilters, ResumeGivesTheBytesOfAnUninterruptedRun) {
  ASSERT_EQ(stylize("train", train_args(dir / "out/whole.safetensors", 4)).exit_code, 0);
  ASSERT_EQ(stylize("train", train_args(dir / "out/split.safetensors", 2)).exit_code, 0);
  auto again = train_args(dir / "out/split.safetensors", 4);
  again.push_back("--resume");
  const RunResult r = stylize("train", again);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from step 2 of 4"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(dir / "out/whole.safetensors"), test::read_bytes(dir / "out/split.safetensors"));
  // Other settings than the checkpoint's: refused, naming what differs.
  auto other = train_args(dir / "out/split.safetensors", 6);
  other.insert(other.end(), {"--resume", "--style-weight", "7"});
  const RunResult bad = stylize("train", other);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("was trained with --style-weight '6', this run asks for '7'"), std::string::npos) << bad.err;
  other.insert(other.end(), {"--content-layers", "relu2_2"});
  const RunResult layers = stylize("train", other);
  EXPECT_EQ(layers.exit_code, 2);
  EXPECT_NE(layers.err.find("was trained with --content-layers 'relu3_2', this run asks for 'relu2_2'"), std::string::npos)
      << layers.err;
}

TEST_F(FastFilters, CtrlCWritesACheckpointAndExits130ThenResumeFinishes) {
  auto args = train_args(dir / "out/f.safetensors", 100000);
  args.insert(args.begin(), {STYLIZE_BIN, "train"});
  args.insert(args.end(), {"--log", dir / "out/log.jsonl", "--weights", test::synthetic_prefix_weights_file()});
  const int pid = test::spawn_background(args, dir / "stderr.txt");
  ASSERT_GT(pid, 0);
  // Bounded wait for the first checkpoint (step 2): training is under way.
  for (int i = 0; i < 600 && !exists(dir / "out/f.ckpt.safetensors"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(exists(dir / "out/f.ckpt.safetensors"));
  kill(pid, SIGINT);
  EXPECT_EQ(test::wait_exit_code(pid), 130);
  EXPECT_FALSE(exists(dir / "out/f.safetensors")) << "no filter from an unfinished run";
  const LoadedFilter ckpt = load_filter(dir / "out/f.ckpt.safetensors", "adam.");
  const int step = std::stoi(ckpt.info.training.at("steps"));
  EXPECT_GE(step, 2);
  std::ifstream err(dir / "stderr.txt");
  const std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("interrupted at step " + std::to_string(step)), std::string::npos) << text;
  // The same command with --resume and a reachable step count finishes from there.
  auto again = train_args(dir / "out/f.safetensors", step + 2);
  again.insert(again.end(), {"--resume", "--log", dir / "out/log.jsonl"});
  const RunResult r = stylize("train", again);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_filter(dir / "out/f.safetensors").info.training.at("steps"), std::to_string(step + 2));
  // The log holds each step once: what came after the checkpoint was rewritten by the resumed run.
  std::ifstream log(dir / "out/log.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(log, line)) EXPECT_EQ(nlohmann::json::parse(line)["step"].get<int>(), ++n);
  EXPECT_EQ(n, step + 2);
}

TEST_F(FastFilters, ApplyKeepsTheInputSizeAndRepeatsItsBytes) {
  ASSERT_EQ(stylize("train", train_args(dir / "out/f.safetensors", 2)).exit_code, 0);
  save_image(dir / "odd.png", synthetic_image(37, 53, 9), 95);
  for (const char* out : {"o1.png", "o2.png"}) {
    const RunResult r = stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "odd.png", "-o", dir / out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const LoadedImage o = load_image(dir / "o1.png", "output");
  EXPECT_EQ(o.width, 53);
  EXPECT_EQ(o.height, 37);
  EXPECT_EQ(test::read_bytes(dir / "o1.png"), test::read_bytes(dir / "o2.png"));
  // The engine's own apply of the same filter gives those pixels.
  LoadedFilter f = load_filter(dir / "out/f.safetensors");
  f.net.set_precision(resolve_precision("auto", at::Device(at::kCPU), cpu_vector_features()));  // as apply does
  const at::Tensor engine = apply_filter(f.net, load_image(dir / "odd.png", "input").rgb).round();
  EXPECT_TRUE(at::equal(engine, o.rgb));
  // --size: the longest side.
  ASSERT_EQ(stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "odd.png", "-o", dir / "s.jpg", "-s", "106"})
                .exit_code,
            0);
  EXPECT_EQ(load_image(dir / "s.jpg", "output").width, 106);
  // A size whose estimate is over the memory there is: refused before any work (exit 7), not an
  // allocation failing part-way as an internal error.
  const RunResult huge = stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "odd.png", "-o", dir / "h.png",
                                           "-s", "65536"});
  EXPECT_EQ(huge.exit_code, 7) << huge.err;
  EXPECT_NE(huge.err.find("at 65536x"), std::string::npos) << huge.err;
  EXPECT_NE(huge.err.find("; use a smaller --size"), std::string::npos) << huge.err;
  EXPECT_FALSE(exists(dir / "h.png"));
}

TEST_F(FastFilters, ApplyToAFolderWritesTheGoodAndReportsTheBad) {
  ASSERT_EQ(stylize("train", train_args(dir / "out/f.safetensors", 2)).exit_code, 0);
  std::filesystem::create_directories(dir / "styled");
  const RunResult r =
      stylize("apply", {"--filter", dir / "out/f.safetensors", "-r", dir / "photos", "--out-dir", dir / "styled"});
  EXPECT_EQ(r.exit_code, 8) << r.err;  // cut.jpg failed, the others were written
  EXPECT_NE(r.err.find("cut.jpg"), std::string::npos) << r.err;
  EXPECT_TRUE(exists(dir / "styled/a.png"));
  EXPECT_TRUE(exists(dir / "styled/b.png"));
  EXPECT_TRUE(exists(dir / "styled/tiny.png"));  // 60x20 is big enough to filter
  EXPECT_FALSE(exists(dir / "styled/cut.png"));
  // --ext as -o's extension is read: any case, a leading dot allowed; one it cannot write is an output error.
  const RunResult jpg = stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "photos/a.png", "--out-dir",
                                          dir / "styled", "--ext", ".JPG"});
  EXPECT_EQ(jpg.exit_code, 0) << jpg.err;
  EXPECT_TRUE(exists(dir / "styled/a.jpg"));
  const RunResult gif = stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "photos/a.png", "--out-dir",
                                          dir / "styled", "--ext", "gif"});
  EXPECT_EQ(gif.exit_code, 5) << gif.err;
  EXPECT_NE(gif.err.find("--ext 'gif' is not a format this build writes"), std::string::npos) << gif.err;
}

TEST_F(FastFilters, BatchRunsFilterJobsWithoutTheNetworkAndMatchesApply) {
  ASSERT_EQ(stylize("train", train_args(dir / "out/f.safetensors", 2)).exit_code, 0);
  std::filesystem::create_directories(dir / "b");
  std::filesystem::remove(dir / "photos/cut.jpg");
  // No VGG19 anywhere: a filter batch must not need one.
  std::vector<std::string> argv = {STYLIZE_BIN, "batch", "--filter", dir / "out/f.safetensors", "--out-dir", dir / "b",
                                   "-r", dir / "photos", "--report", dir / "b.json"};
  const RunResult r = test::run_command(argv, {"STYLIZE_WEIGHTS=" + dir / "none.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"a_f.png", "b_f.png", "tiny_f.png"}) EXPECT_TRUE(exists(dir / ("b/" + std::string(name))));
  ASSERT_EQ(stylize("apply", {"--filter", dir / "out/f.safetensors", dir / "photos/a.png", "-o", dir / "a.png"}).exit_code,
            0);
  EXPECT_EQ(test::read_bytes(dir / "a.png"), test::read_bytes(dir / "b/a_f.png"));
  std::ifstream in(dir / "b.json");
  const auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report["totals"]["done"], 3);
  EXPECT_EQ(report["jobs"][0]["filter"], dir / "out/f.safetensors");
}

TEST_F(FastFilters, BadInputsGetOneLineAndTheirExitCode) {
  std::filesystem::create_directories(dir / "empty");
  struct Case {
    std::string sub;
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const std::string f = dir / "out/f.safetensors";
  // The tiny run's flags with some replaced or added: {"--flag", "value"} pairs, or a lone switch.
  auto train_with = [&](std::vector<std::string> change, const std::string& data = "") {
    auto a = train_args(f, 2);
    if (!data.empty()) a[3] = data;
    for (size_t i = 0; i < change.size(); ++i) {
      auto it = std::find(a.begin(), a.end(), change[i]);
      const bool has_value = i + 1 < change.size() && change[i + 1].rfind("--", 0) != 0;
      if (it != a.end() && has_value) {
        *(it + 1) = change[++i];
      } else {
        a.push_back(change[i]);
        if (has_value) a.push_back(change[++i]);
      }
    }
    return a;
  };
  test::write_bytes(dir / "w.safetensors", test::read_bytes(test::synthetic_prefix_weights_file()));
  test::write_bytes(dir / "w.ckpt.safetensors", test::read_bytes(test::synthetic_prefix_weights_file()));
  save_image(dir / "thin.png", synthetic_image(6, 200, 5), 95);
  const auto style_bytes = test::read_bytes(dir / "starry.png");
  const std::vector<Case> cases = {
      {"train", train_with({}, dir / "empty"), 3, "holds no usable photo"},
      // What a run writes never replaces what it reads, nor lands where the next run reads photos.
      {"train", train_with({"-o", dir / "photos/f.safetensors"}), 5, "the folder of -o '" + dir / "photos" + "' is the folder"},
      {"train", train_with({"--log", dir / "starry.png"}), 5, "--log '" + dir / "starry.png" + "' is the style image"},
      {"train", train_with({"--weights", dir / "w.safetensors", "-o", dir / "w.safetensors"}), 5, "is the weights file"},
      {"train", train_with({"--weights", dir / "w.ckpt.safetensors", "-o", dir / "w.safetensors", "--force"}), 5,
       "the checkpoint '" + dir / "w.ckpt.safetensors" + "' is the weights file"},
      {"train", train_with({"--style-layer-weights", "2x,1,1"}), 2, "--style-layer-weights must be comma-separated numbers"},
      {"train", train_with({"--style", dir / "thin.png", "--style-size", "16", "--style-layers", "relu3_1"}), 2,
       "needs at least 4 px on each side; use a larger --style-size"},
      {"train", train_with({}, dir / "nothing"), 3, "is not a folder"},
      {"train", train_with({"-o", dir / "out/f.png"}), 5, "a filter file ends in .safetensors"},
      {"train", train_with({"--crop-size", "30"}), 2, "--crop-size must be a multiple of 4"},
      {"train", train_with({"--seed", "-1"}), 2, "--seed: must be a whole number from 0 to 18446744073709551615, got '-1'"},
      {"apply", {"--filter", dir / "f.safetensors", dir / "starry.png", "-o", dir / "x.png", "-s", "3"}, 2,
       "--size: must be 0 (the input's size) or 16..65536, got '3'"},
      {"train", train_with({"--style-layers", "relu9_9"}), 2, "unknown VGG19 layer 'relu9_9'"},
      {"train", train_with({"--style-layers", "relu4_1"}), 4, ""},  // beyond the conv1-3 weights file
      {"train", train_with({"--resume"}), 2, "--resume: no checkpoint"},
      {"apply", {"--filter", test::synthetic_prefix_weights_file(), dir / "starry.png", "-o", dir / "x.png"}, 4,
       "is not a filter file"},
      {"apply", {"--filter", dir / "missing.safetensors", dir / "starry.png", "-o", dir / "x.png"}, 4,
       "cannot read filter file '" + dir / "missing.safetensors" + "': no such file"},
      {"apply", {"--filter", dir / "starry.png", dir / "starry.png", "-o", dir / "x.png"}, 4,
       "invalid filter file '" + dir / "starry.png" + "': it is a PNG image, not safetensors"},
      {"apply", {"--filter", f, dir / "starry.png", dir / "photos/a.png", "-o", dir / "x.png"}, 2, "use --out-dir"},
      {"apply", {"--filter", f, dir / "starry.png", "-o", dir / "x.gif"}, 5, ""},
      {"apply", {"--filter", f, dir / "starry.png", "--out-dir", dir / "nodir"}, 5,
       "output folder '" + dir / "nodir" + "' does not exist; create it first (mkdir -p "},
      // Outputs that would replace what is read: the photo itself, or the photos' own folder.
      {"apply", {"--filter", f, dir / "starry.png", "-o", dir / "starry.png"}, 5, "-o '" + dir / "starry.png" + "' is an input"},
      {"apply", {"--filter", f, dir / "photos", "--out-dir", dir / "photos"}, 5, "the images are read from"},
      {"apply", {"--filter", f, dir / "photos/a.png", "--out-dir", dir / "photos"}, 5,
       "the output '" + dir / "photos/a.png" + "' is an input: writing it would destroy that file; give another --out-dir or --ext"},
  };
  for (const auto& c : cases) {
    const RunResult r = stylize(c.sub, c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.sub << " " << c.says << ": " << r.err;
    // One error line, the last thing said (warnings about skipped photos may come before it).
    const size_t at = r.err.find("error: ");
    ASSERT_NE(at, std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("error: ", at + 1), std::string::npos) << r.err;
    EXPECT_EQ(line_count(r.err.substr(at)), 1) << r.err;
    if (!c.says.empty()) {
      EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    }
    EXPECT_FALSE(exists(dir / "x.png"));
    EXPECT_FALSE(exists(f));
  }
  EXPECT_EQ(test::read_bytes(dir / "starry.png"), style_bytes);
  EXPECT_EQ(test::read_bytes(dir / "w.safetensors"), test::read_bytes(test::synthetic_prefix_weights_file()));
  EXPECT_EQ(test::read_bytes(dir / "w.ckpt.safetensors"), test::read_bytes(test::synthetic_prefix_weights_file()));
}

// A fresh run over a finished training (its checkpoint or filter) is refused unless --force says so;
// --resume with nothing left to train says so and writes the filter as it stands.
TEST_F(FastFilters, AFreshRunDoesNotReplaceATrainingUnasked) {
  const std::string f = dir / "out/f.safetensors";
  ASSERT_EQ(stylize("train", train_args(f, 4)).exit_code, 0);
  const auto ckpt = test::read_bytes(dir / "out/f.ckpt.safetensors");
  const RunResult again = stylize("train", train_args(f, 2));
  EXPECT_EQ(again.exit_code, 5);
  EXPECT_NE(again.err.find("f.ckpt.safetensors' exists: a fresh run would replace it; continue its training with "
                           "--resume, start anew with --force"), std::string::npos) << again.err;
  EXPECT_EQ(test::read_bytes(dir / "out/f.ckpt.safetensors"), ckpt);
  auto resume = train_args(f, 2);
  resume.push_back("--resume");
  const RunResult nothing = stylize("train", resume);
  EXPECT_EQ(nothing.exit_code, 0) << nothing.err;
  EXPECT_NE(nothing.err.find("the checkpoint is at step 4, --steps is 2: nothing left to train"), std::string::npos)
      << nothing.err;
  auto force = train_args(f, 2);
  force.push_back("--force");
  ASSERT_EQ(stylize("train", force).exit_code, 0);
  EXPECT_EQ(load_filter(f).info.training.at("steps"), "2");
}

}  // namespace
