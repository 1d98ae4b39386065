// `stylize apply --filter F IN... (-o OUT | --out-dir DIR)`: a trained filter over photos, one
// forward pass each. Fully convolutional: any size; the output is the input's size unless --size.
#include <spdlog/spdlog.h>

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "commands.hpp"
#include "common.hpp"
#include "engine_flags.hpp"
#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"
#include "stylize/filter.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"
#include "stylize/runtime.hpp"

namespace fs = std::filesystem;

namespace stylize::cli {
namespace {

struct ApplyOptions {
  std::string filter;
  std::vector<std::string> inputs;
  std::string output, out_dir, ext = "png";
  int size = 0;
  bool recursive = false;
  EngineFlags engine;
};

void setup(CLI::App& app, ApplyOptions& o) {
  app.description(
      "Stylises photos with a filter made by 'stylize train': one pass of a small network per photo.\n"
      "Exit codes: 0 ok, 1 internal (a bug), 2 usage, 3 input image, 4 filter file, 5 output, 6 device, 7 memory,\n"
      "8 some photos failed (the others were written), 9 none could be done.");
  app.add_option("--filter", o.filter, "The filter file (.safetensors from 'stylize train')")->required()->type_name("FILE");
  app.add_option("inputs", o.inputs, "Photos, or folders of photos")->required()->type_name("IN");
  app.add_option("-o,--output", o.output, "Output image for a single input; format from the extension");
  app.add_option("--out-dir", o.out_dir, "Folder for the outputs, named after the inputs (IN stem + .ext)");
  app.add_option("--ext", o.ext, "Format of the --out-dir outputs: png, jpg, webp, tif, bmp")
      ->transform(extension_word())
      ->capture_default_str();
  app.add_option("-s,--size", o.size, "Longest side of the output, px: 16..65536, or 0 = the input's size")
      ->transform(number_in(0, 65536))
      ->check(CLI::Validator(
          [](std::string& v) {  // digits by now (number_in): a filter needs 16 px a side
            return v != "0" && std::stol(v) < 16 ? "must be 0 (the input's size) or 16..65536, got " + in_quotes(v)
                                                  : std::string();
          },
          ""))
      ->capture_default_str();
  app.add_flag("-r,--recursive", o.recursive, "Search input folders recursively");
  app.add_option("--quality", o.engine.quality, "JPEG/WebP quality")->transform(number_in(1, 100))->capture_default_str();
  add_device_flags(app, o.engine);
}

std::string output_for(const ApplyOptions& o, const std::string& input) {
  if (!o.output.empty()) return o.output;
  return (fs::path(o.out_dir) / (fs::path(input).stem().string() + "." + o.ext)).string();
}

void check_destination(const ApplyOptions& o, size_t inputs) {
  if (o.output.empty() == o.out_dir.empty()) throw UsageError("give either -o OUT (one input) or --out-dir DIR");
  if (!o.output.empty()) {
    if (inputs != 1) {
      throw UsageError("-o names one output but there are " + std::to_string(inputs) + " inputs; use --out-dir");
    }
    check_output_image_path(o.output);
    return;
  }
  check_out_dir_exists(o.out_dir);
  check_ext_writable(o.ext);
  check_output_image_path(output_for(o, "x"));
}

// Two inputs with one stem (a.jpg, a.png) would write one output twice, an output named as an input
// (--out-dir the photos' own folder, --ext their own) would replace the photo, and a rerun would
// filter the outputs of the last: all refused before any work.
void check_distinct_outputs(const ApplyOptions& o, const std::vector<std::string>& inputs) {
  std::map<std::string, std::string> seen;
  NamedPaths written, read = {{"the filter", o.filter}};
  for (const auto& in : inputs) {
    const auto [it, fresh] = seen.emplace(output_for(o, in), in);
    if (!fresh) {
      throw UsageError("inputs " + in_quotes(it->second) + " and " + in_quotes(in) + " would both write " +
                       in_quotes(it->first) + "; rename one or run them separately");
    }
    written.push_back({o.output.empty() ? "the output" : "-o", it->first});
    read.push_back({"an input", in});
  }
  if (!o.out_dir.empty()) check_out_dir_outside_inputs(o.out_dir, o.inputs, o.recursive);
  check_outputs_spare_inputs(written, read, o.output.empty() ? "give another --out-dir or --ext" : "");
}

// One photo through the filter and onto disk; the seconds the filter itself took.
double apply_one(const ApplyOptions& o, const FilterNet& net, const std::string& input, const std::string& output) {
  LoadedImage img = read_image(input, "input image", o.engine);
  const auto [w, h] = filter_size(img.width, img.height, o.size, "input image " + in_quotes(input));
  check_filter_memory(net.arch(), w, h, "input image " + in_quotes(input));
  const at::Tensor rgb = (w == img.width && h == img.height) ? img.rgb : resize_image(img.rgb, w, h);
  const auto t = std::chrono::steady_clock::now();
  const at::Tensor out = apply_filter(net, rgb);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  save_image(output, out, o.engine.quality);
  spdlog::info("wrote {} ({}x{}) in {:.3f} s", output, out.size(3), out.size(2), seconds);
  return seconds;
}

int run(ApplyOptions& o) {
  const std::vector<std::string> inputs = expand_inputs(o.inputs, o.recursive);
  if (inputs.empty()) throw InputError("no input images found in the folder(s) given");
  check_destination(o, inputs.size());
  check_distinct_outputs(o, inputs);
  const at::Device device = resolve_device(o.engine.device);
  configure_threads(o.engine.threads);
  use_reusing_cpu_allocator();
  LoadedFilter filter = load_filter(o.filter);
  filter.net.to(device);
  filter.net.set_precision(resolve_precision_flag(o.engine.precision, device));
  spdlog::debug("filter {}: width {}, {} residual blocks, style '{}', {} arithmetic", o.filter, filter.info.arch.width,
                filter.info.arch.residual_blocks, filter.info.training["style"], to_string(filter.net.precision()));
  if (inputs.size() == 1) {
    apply_one(o, filter.net, inputs[0], output_for(o, inputs[0]));
    return 0;
  }
  size_t failed = 0;
  install_interrupt_handler();
  for (const auto& in : inputs) {
    if (interrupt_requested()) return static_cast<int>(ExitCode::interrupted);
    try {
      apply_one(o, filter.net, in, output_for(o, in));
    } catch (...) {
      const ErrorReport r = error_report(std::current_exception(), FieldWords::flag);
      if (r.code != ExitCode::input && r.code != ExitCode::output) throw;  // the filter or the machine: stop
      spdlog::error("{}", r.message);
      ++failed;
    }
  }
  if (failed == 0) return 0;
  spdlog::warn("{} of {} photos failed", failed, inputs.size());
  return static_cast<int>(failed == inputs.size() ? ExitCode::nothing_done : ExitCode::partial);
}

}  // namespace

int apply_main(int argc, char** argv) {
  return command_main<ApplyOptions>("stylize apply", argc, argv, setup, run);
}

}  // namespace stylize::cli
