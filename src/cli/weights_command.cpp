// `stylize weights fetch|convert|info|synth`: getting, converting and checking VGG19 weights.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "commands.hpp"
#include "common.hpp"
#include "stylize/weights_tools/checksum.hpp"
#include "stylize/weights_tools/convert.hpp"
#include "stylize/error.hpp"
#include "stylize/weights_tools/fetch.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"

namespace stylize::cli {
namespace {

struct FetchOptions {
  std::string source = "caffe";
  std::string out, url, md5, sha256;
  bool force = false;
  long timeout = 60;
};
struct ConvertOptions {
  std::string in, out;
  bool force = false;
};
struct InfoOptions {
  std::string path;
};
struct SynthOptions {
  std::string out;
  uint32_t seed = 1;
  std::string preprocess = "caffe";
  bool force = false;
};

// What a weights file written here must be: a .safetensors path not already there (unless --force),
// in a folder that exists.
void check_weights_output(const std::string& path, bool force, const std::string& flag) {
  if (file_extension(path) != "safetensors") {
    throw OutputError(flag + " " + in_quotes(path) + ": a weights file ends in .safetensors; give " + flag +
                      " a .safetensors path");
  }
  if (!force && access(path.c_str(), F_OK) == 0) {
    throw OutputError("cannot write " + in_quotes(path) + ": it exists; pass --force to replace it");
  }
  check_output_folder(path);
}

// A checksum given by hand is checked before the download it would be compared with.
void check_hex(const std::string& value, size_t digits, const std::string& flag) {
  if (value.empty()) return;
  if (value.size() != digits || value.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw UsageError(flag + " must be " + std::to_string(digits) + " hexadecimal digits, got " + in_quotes(value));
  }
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

int run_fetch(const FetchOptions& o, bool quiet) {
  FetchRequest req;
  req.source = o.source;
  req.url = o.url;
  req.out = o.out;
  req.md5 = o.md5;
  req.sha256 = o.sha256;
  req.force = o.force;
  req.download.stall_timeout_s = o.timeout;
  req.download.connect_timeout_s = std::min(30L, o.timeout);
  check_hex(o.md5, 32, "--md5");
  check_hex(o.sha256, 64, "--sha256");
  if (!o.out.empty()) check_output_folder(o.out);
  ProgressDisplay bar(0, quiet, "download ");
  install_interrupt_handler();
  const auto started = std::chrono::steady_clock::now();
  req.download.on_progress = [&](uint64_t done, uint64_t total) {
    bar.update_transfer(done, total, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return !interrupt_requested();
  };
  const WeightsSource src = weights_source(o.source);
  req.on_start = [&](const std::string& url) { spdlog::info("fetching {} VGG19 weights from {}", src.name, url); };
  FetchResult r = fetch_weights(req);
  bar.finish();
  if (r.already_present) {
    spdlog::info("valid weights already at {} (use --force to fetch again)", r.out);
    return 0;
  }
  if (!r.md5.empty()) spdlog::info("verified: md5 {} sha256 {}", r.md5, r.sha256);
  if (r.ranged) spdlog::info("fetched only the features.* tensors ({}) with range requests", megabytes(r.bytes));
  spdlog::info("wrote {} ({} preprocessing); {}", r.out, src.preprocessing,
               o.out.empty() ? "'stylize' will now find it" : "give it to 'stylize' with --weights or $STYLIZE_WEIGHTS");
  return 0;
}

int run_convert(const ConvertOptions& o) {
  check_outputs_spare_inputs({{"OUT", o.out}}, {{"the input IN", o.in}}, "give OUT another path");
  check_weights_output(o.out, o.force, "OUT");
  std::string preprocessing;
  NamedTensors tensors = read_vgg19_any(o.in, preprocessing);
  const FileDigests d = digest_file(o.in);
  // A stylize file keeps the source it names (synthetic weights stay marked "for tests only").
  std::string source = o.in;
  if (detect_weights_format(o.in) == WeightsFormat::safetensors) {
    const auto meta = read_safetensors_header(o.in).metadata;
    if (auto it = meta.find("source"); it != meta.end() && !it->second.empty()) source = it->second + " (via " + o.in + ")";
  }
  write_stylize_weights(o.out, tensors,
                        {{"source", source}, {"source_md5", d.md5}, {"source_sha256", d.sha256},
                         {"preprocessing", preprocessing}});
  spdlog::info("converted {} -> {} ({} tensors, {} preprocessing)", o.in, o.out, tensors.size(), preprocessing);
  return 0;
}

int run_info(const InfoOptions& o) {
  const std::string path = locate_weights(o.path, "");  // named here, not by --weights
  const SafetensorsFile header = read_safetensors_header(path);
  // A prefix of the network (conv1_1 … convN, none skipped) is valid: it serves loss layers up to reluN.
  const Vgg19Weights w = load_vgg19_prefix(path);
  auto meta = [&](const char* key) {
    auto it = w.metadata.find(key);
    return it == w.metadata.end() ? std::string("(not recorded)") : it->second;
  };
  int64_t params = 0;
  for (const auto& [name, t] : w.params) params += t.numel();
  std::printf("path:          %s\n", path.c_str());
  const bool complete = w.convolutions == 16;
  std::printf("status:        %s\n", complete ? "valid VGG19 feature weights"
                                              : ("valid VGG19 prefix: loss layers up to " +
                                                 deepest_usable_layer(w.convolutions) + " can be used").c_str());
  std::printf("layers:        %s\n", describe_vgg19_prefix(w.convolutions).c_str());
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
  check_weights_output(o.out, o.force, "-o");
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
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as every command
  int verbose = 0, quiet = 0;
  auto* quiet_flag = app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", verbose, "Debug logging")->excludes(quiet_flag);

  FetchOptions fetch;
  auto* fetch_cmd = app.add_subcommand("fetch", "Download, verify and convert pretrained VGG19 weights to the default "
                                                 "location, where 'stylize' finds them");
  fetch_cmd->add_option("--source", fetch.source,
                        "caffe: original VGG19 (Keras file, 80 MB, what neural-style used); torchvision: "
                        "torchvision's VGG19 (safetensors, only the 80 MB of features fetched)")
      ->check(CLI::IsMember({"caffe", "torchvision"}))
      ->capture_default_str();
  fetch_cmd->add_option("--out", fetch.out, "Output file (default: $XDG_DATA_HOME/stylize/vgg19.safetensors)");
  fetch_cmd->add_option("--url", fetch.url, "Download from this URL instead (mirror, local server, file://)");
  fetch_cmd->add_option("--md5", fetch.md5, "Expected MD5 of the downloaded file (overrides the pinned one)");
  fetch_cmd->add_option("--sha256", fetch.sha256, "Expected SHA-256 of the downloaded file");
  fetch_cmd->add_flag("--force", fetch.force,
                      "Fetch even if valid weights are already there, and replace a file that is not them");
  fetch_cmd->add_option("--timeout", fetch.timeout, "Give up when no data arrives for this many seconds")
      ->transform(number_in(1, 3600))
      ->capture_default_str();

  ConvertOptions convert;
  auto* convert_cmd = app.add_subcommand("convert", "Convert a local Keras HDF5 or safetensors VGG19 file to "
                                                     "stylize's file (PyTorch pickles are refused)");
  convert_cmd->add_option("in", convert.in, "Input: Keras .h5 or torchvision-named .safetensors")->required();
  convert_cmd->add_option("out", convert.out, "Output .safetensors")->required();
  convert_cmd->add_flag("--force", convert.force, "Replace OUT if it exists");

  InfoOptions info;
  auto* info_cmd = app.add_subcommand("info", "Check a weights file and print its source, depth, preprocessing and size; "
                                               "exit 0 only if it is valid (the whole network or a prefix of it)");
  info_cmd->add_option("path", info.path, "Weights file (default: the one 'stylize' would use)")
      ->check(not_empty("a file name"));

  SynthOptions synth;
  auto* synth_cmd = app.add_subcommand("synth", "Write seeded synthetic (random, NOT pretrained) VGG19 weights, "
                                                 "for tests and benchmarks");
  synth_cmd->add_option("-o,--out", synth.out, "Output file (.safetensors)")->required();
  synth_cmd->add_flag("--force", synth.force, "Replace the output if it exists");
  synth_cmd->add_option("--seed", synth.seed, "Seed")->transform(number_in<uint32_t>(0, UINT32_MAX))->capture_default_str();
  synth_cmd->add_option("--preprocess", synth.preprocess, "Preprocessing recorded in the metadata")
      ->check(CLI::IsMember({"caffe", "torchvision"}))
      ->capture_default_str();

  // CLI11 answers a word that is no subcommand with "A subcommand is required": name it instead.
  // The global options before it (-q, -v, -h) take no value: the first other word is the subcommand.
  int first = 1;
  while (first < argc && argv[first][0] == '-') ++first;
  const bool help = std::any_of(argv + 1, argv + argc, [](const char* a) { return !std::strcmp(a, "-h") || !std::strcmp(a, "--help"); });
  if (!(first == argc && help)) {
    const std::string word = first < argc ? argv[first] : "";
    if (word != "fetch" && word != "convert" && word != "info" && word != "synth") {
      const std::string what = word.empty() ? "no subcommand" : "unknown subcommand " + in_quotes(word);
      std::fprintf(stderr, "error: %s; use fetch, convert, info or synth; see 'stylize weights --help'\n",
                   render_fields(what, FieldWords::flag).c_str());
      return static_cast<int>(ExitCode::usage);
    }
  }
  const int parsed = parse_or_exit(app, argc, argv);
  if (parsed >= 0) return parsed;
  init_logging(quiet > 0 ? -1 : verbose);
  return run_guarded([&] {
    if (*fetch_cmd) return run_fetch(fetch, quiet > 0);
    if (*convert_cmd) return run_convert(convert);
    if (*info_cmd) return run_info(info);
    return run_synth(synth);
  });
}

}  // namespace stylize::cli
