// `stylize weights fetch|convert|info|synth`: getting, converting and checking VGG19 weights.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <cstdio>

#include "commands.hpp"
#include "common.hpp"
#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"

namespace stylize::cli {
namespace {

struct InfoOptions {
  std::string path;
};
struct SynthOptions {
  std::string out;
  uint32_t seed = 1;
  std::string preprocess = "caffe";
};

int run_info(const InfoOptions& o) {
  const std::string path = locate_weights(o.path);
  const SafetensorsFile header = read_safetensors_header(path);
  const Vgg19Weights w = load_vgg19_weights(path);  // validates every VGG19 tensor
  auto meta = [&](const char* key) {
    auto it = w.metadata.find(key);
    return it == w.metadata.end() ? std::string("(not recorded)") : it->second;
  };
  int64_t params = 0;
  for (const auto& [name, t] : w.params) params += t.numel();
  std::printf("path:          %s\n", path.c_str());
  std::printf("status:        valid VGG19 feature weights\n");
  std::printf("source:        %s\n", meta("source").c_str());
  std::printf("source sha256: %s\n", meta("source_sha256").c_str());
  std::printf("source md5:    %s\n", meta("source_md5").c_str());
  std::printf("preprocessing: %s\n", meta("preprocessing").c_str());
  std::printf("tensors:       %zu in file, %zu used (%lld parameters)\n", header.tensors.size(), w.params.size(),
              static_cast<long long>(params));
  std::printf("size:          %.1f MB\n", static_cast<double>(header.file_size) / 1e6);
  return 0;
}

int run_synth(const SynthOptions& o) {
  const auto params = synthetic_vgg19(o.seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& name : vgg19_parameter_names()) tensors.emplace_back(name, params.at(name));
  write_safetensors(o.out, tensors,
                    {{"source", "synthetic (seed " + std::to_string(o.seed) + "), for tests only"},
                     {"preprocessing", o.preprocess}});
  spdlog::info("wrote synthetic VGG19 weights to {} (seeded He-uniform; NOT pretrained)", o.out);
  return 0;
}

}  // namespace

int weights_main(int argc, char** argv) {
  CLI::App app("Get, convert and check VGG19 weights", "stylize weights");
  app.require_subcommand(1);
  app.fallthrough();  // -q/-v also after the subcommand name
  int verbose = 0, quiet = 0;
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  InfoOptions info;
  auto* info_cmd = app.add_subcommand("info", "Check a weights file and print its source, preprocessing and size; "
                                               "exit 0 only if it is complete and valid");
  info_cmd->add_option("path", info.path, "Weights file (default: the one 'stylize' would use)");

  SynthOptions synth;
  auto* synth_cmd = app.add_subcommand("synth", "Write seeded synthetic (random, NOT pretrained) VGG19 weights, "
                                                 "for tests and benchmarks");
  synth_cmd->add_option("-o,--out", synth.out, "Output file")->required();
  synth_cmd->add_option("--seed", synth.seed, "Seed")->capture_default_str();
  synth_cmd->add_option("--preprocess", synth.preprocess, "Preprocessing recorded in the metadata")
      ->check(CLI::IsMember({"caffe", "torchvision"}))
      ->capture_default_str();

  const int parsed = parse_or_exit(app, argc, argv);
  if (parsed >= 0) return parsed;
  init_logging(quiet > 0 ? -1 : verbose);
  return run_guarded([&] {
    if (*info_cmd) return run_info(info);
    return run_synth(synth);
  });
}

}  // namespace stylize::cli
