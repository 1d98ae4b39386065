// The engine alone, timed: what bench/gpu.sh runs on a GPU machine, where only LibTorch is at hand
// (no OpenCV, no CLI11). Synthetic VGG19 weights and synthetic images, the CLI's default losses, an
// L-BFGS run of N iterations with no progress reads; prints one JSON object.
//
//   stylize_engine_bench --device cuda --size 512 --iterations 500 [--precision fp32|bf16|mixed]
//       [--history 100] [--threads N] [--inputs-out FILE] [--profile-out FILE] [--allocator reusing|c10]
//       [--conv automatic|direct]
//
// --conv: the network's convolution algorithm (include/stylize/vgg19.hpp): automatic (what `stylize`
// runs: Winograd for the CPU fp32 layers it was measured faster at) or direct (oneDNN everywhere).
//
// --allocator: the CPU allocator `stylize` installs (reusing, the default here too, so that the
// bench times what the CLI runs) or c10's own, which returns every large block to the system and
// takes page faults on each new one (what the Python reference runs with).
//
// --profile-out records the operators of `--iterations` L-BFGS iterations after three unrecorded
// ones (LibTorch's own profiler, with input shapes) and writes them as JSON spans for
// bench/iteration_profile.py; the run stops after them, and the printed timings then cover the
// warm-up and the recorded iterations, both slowed by the recording.
//
// --inputs-out writes the weights and both images to a safetensors file for bench/reference.py
// --inputs, so that the reference optimises exactly the same problem.
//
// A real run instead of the synthetic one (bench/gpu.sh's picture on the GPU machine, which has no
// image library): --weights FILE (a VGG19 safetensors file, a prefix such as the shallow conv1-3 one
// will do), --images FILE (safetensors holding "content" and "style", RGB 0-255 float32 [1, 3, H, W],
// written by `gpu.sh --prepare`), --style-layers / --content-layers (comma lists, the CLI's defaults
// otherwise) and --image-out FILE.ppm (the result, 8-bit binary PPM). Both images are resized here so
// that their longest side is --size (bicubic; the CLI averages areas down): the resized ones are what
// --inputs-out writes, so the reference still solves the very same problem.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <iostream>
#include <string>

#include "stylize/cpu_allocator.hpp"
#include "stylize/error.hpp"
#include "stylize/request.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/weights.hpp"

using namespace stylize;

namespace {

struct Args {
  std::string device = "auto", precision = "fp32", inputs_out, profile_out, allocator = "reusing", conv = "automatic";
  std::string weights, images, style_layers, content_layers, image_out;
  int size = 512, iterations = 500, history = 100, threads = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "error: %s\nusage: stylize_engine_bench [--device D] [--size PX] [--iterations N] "
               "[--precision fp32|bf16|mixed] [--history N] [--threads N] [--inputs-out FILE] "
               "[--profile-out FILE] [--allocator reusing|c10] [--conv automatic|direct] [--weights FILE] "
               "[--images FILE] [--style-layers L,L] [--content-layers L,L] [--image-out FILE.ppm]\n",
               why.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    auto number = [&] {
      size_t used = 0;
      int parsed = 0;
      try {
        parsed = std::stoi(value, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != value.size()) usage(flag + ": not a whole number: " + value);
      return parsed;
    };
    if (flag == "--device") a.device = value;
    else if (flag == "--precision") a.precision = value;
    else if (flag == "--inputs-out") a.inputs_out = value;
    else if (flag == "--profile-out") a.profile_out = value;
    else if (flag == "--allocator") a.allocator = value;
    else if (flag == "--conv") a.conv = value;
    else if (flag == "--weights") a.weights = value;
    else if (flag == "--images") a.images = value;
    else if (flag == "--style-layers") a.style_layers = value;
    else if (flag == "--content-layers") a.content_layers = value;
    else if (flag == "--image-out") a.image_out = value;
    else if (flag == "--size") a.size = number();
    else if (flag == "--iterations") a.iterations = number();
    else if (flag == "--history") a.history = number();
    else if (flag == "--threads") a.threads = number();
    else usage("unknown option " + flag);
  }
  if (a.precision != "fp32" && a.precision != "bf16" && a.precision != "mixed") usage("--precision: fp32, bf16 or mixed");
  if (a.allocator != "reusing" && a.allocator != "c10") usage("--allocator: reusing or c10");
  if (a.conv != "automatic" && a.conv != "direct") usage("--conv: automatic or direct");
  if (a.size < 32 || a.iterations < 1 || a.history < 1) usage("--size >= 32, --iterations and --history >= 1");
  if (a.weights.empty() != a.images.empty()) usage("--weights and --images go together");
  return a;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1) {
    out.push_back(text.substr(start, comma - start));
  }
  out.push_back(text.substr(start));
  return out;
}

// RGB 0-255 [1, 3, H, W] -> longest side `size`, bicubic, clamped back into 0..255.
at::Tensor resize_longest(const at::Tensor& rgb, int size) {
  const int64_t h = rgb.size(2), w = rgb.size(3);
  const double scale = static_cast<double>(size) / static_cast<double>(std::max(h, w));
  const int64_t nh = std::max<int64_t>(1, std::llround(static_cast<double>(h) * scale));
  const int64_t nw = std::max<int64_t>(1, std::llround(static_cast<double>(w) * scale));
  if (nh == h && nw == w) return rgb;
  return at::upsample_bicubic2d(rgb, {nh, nw}, /*align_corners=*/false).clamp(0, 255).contiguous();
}

// The result as an 8-bit binary PPM (P6): the GPU machine has no image library, and PIL reads it.
void write_ppm(const std::string& path, const at::Tensor& rgb) {
  const at::Tensor hwc = rgb.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << hwc.size(1) << " " << hwc.size(0) << "\n255\n";
  out.write(reinterpret_cast<const char*>(hwc.data_ptr<uint8_t>()), static_cast<std::streamsize>(hwc.numel()));
  if (!out.flush()) throw Error(ExitCode::output, "could not write " + path);
}

struct BenchProblem {
  Vgg19Weights weights;
  at::Tensor content, style;  // RGB 0-255 [1, 3, H, W]
};

// The synthetic problem (VGG19 of seed 1, hashed images), or --weights and --images at --size.
BenchProblem load_problem(const Args& a) {
  BenchProblem p;
  if (a.weights.empty()) {
    // 4:3 like the photographs of the CPU benchmark (512 -> 512x384).
    p.weights.params = synthetic_vgg19(1);
    p.weights.preprocessing = Preprocessing::caffe;
    p.content = synthetic_image(a.size * 3 / 4, a.size, 9001);
    p.style = synthetic_image(a.size * 3 / 4, a.size, 9002);
  } else {
    p.weights = load_vgg19_prefix(a.weights);
    const SafetensorsFile images = read_safetensors_header(a.images);
    p.content = resize_longest(read_safetensors_tensor(images, "content"), a.size);
    p.style = resize_longest(read_safetensors_tensor(images, "style"), a.size);
  }
  return p;
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

namespace profiler = torch::autograd::profiler;

// The profiler's push/pop events, paired per thread into spans: name, thread, start and length in µs,
// nesting depth (0 = called by the engine itself) and the input shapes. Self time (a span less its
// children) is left to the script.
void write_spans(const profiler::thread_event_lists& threads, int iterations, double seconds, const std::string& path) {
  nlohmann::json spans = nlohmann::json::array();
  for (const auto& events : threads) {
    std::vector<const profiler::LegacyEvent*> open;
    for (const auto& e : events) {
      if (e.kindStr() == "push") {
        open.push_back(&e);
      } else if (e.kindStr() == "pop" && !open.empty()) {
        const profiler::LegacyEvent& start = *open.back();
        open.pop_back();
        spans.push_back({{"name", start.name()}, {"thread", start.threadId()}, {"start_us", start.cpuUs()},
                         {"us", start.cpuElapsedUs(e)}, {"depth", open.size()}, {"sequence", start.sequenceNr()},
                         {"shapes", start.shapes()}});
      }
    }
  }
  const nlohmann::json j = {{"iterations", iterations}, {"seconds", seconds}, {"spans", spans}};
  std::ofstream(path) << j.dump() << std::endl;
}

// Records evaluations 4 .. 3+n (should_stop is polled as each evaluation starts, so the span between
// two polls is one whole iteration: forward, losses, backward and the L-BFGS update), then stops the run.
TransferCallbacks profile_callbacks(int n, const std::string& path) {
  constexpr int warmup = 3;
  auto polls = std::make_shared<int>(0);
  auto started = std::make_shared<std::chrono::steady_clock::time_point>();
  TransferCallbacks cb;
  cb.should_stop = [=] {
    const int k = (*polls)++;
    if (k == warmup) {
      profiler::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(
          torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true));
      *started = std::chrono::steady_clock::now();
    } else if (k == warmup + n) {
      const double seconds = since(*started);
      write_spans(profiler::disableProfilerLegacy(), n, seconds, path);
      return true;
    }
    return false;
  };
  return cb;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    const int threads = configure_threads(a.threads);
    const at::Device device = resolve_device(a.device);
    if (a.allocator == "reusing") use_reusing_cpu_allocator();
    const Precision precision = resolve_precision(a.precision, device, engine_vector_features());
    const auto [weights, content, style] = load_problem(a);
    const Preprocessing pre = weights.preprocessing.value_or(Preprocessing::caffe);
    const int64_t width = content.size(3), height = content.size(2);
    if (!a.inputs_out.empty()) {
      std::vector<std::pair<std::string, at::Tensor>> tensors(weights.params.begin(), weights.params.end());
      tensors.emplace_back("content", content);
      tensors.emplace_back("style", style);
      write_safetensors(a.inputs_out, tensors, {{"preprocessing", to_string(pre)}});
    }

    StylizeParams params;
    params.loss = request_defaults(pre).loss;
    if (!a.style_layers.empty()) params.loss.style_layers = split_commas(a.style_layers);
    if (!a.content_layers.empty()) params.loss.content_layers = split_commas(a.content_layers);
    params.optimizer.iterations = a.iterations;
    params.optimizer.lbfgs_history = a.history;
    auto t = std::chrono::steady_clock::now();
    Stylizer stylizer(weights, pre, Pooling::max, deepest_layer(params.loss), device, precision);
    stylizer.set_conv_algorithm(a.conv == "direct" ? ConvAlgorithm::direct : ConvAlgorithm::automatic);
    const StyleTargets targets = stylizer.style_targets(params.loss, {style}, {});
    const double seconds_setup = since(t);
    t = std::chrono::steady_clock::now();
    const TransferCallbacks cb = a.profile_out.empty() ? TransferCallbacks{} : profile_callbacks(a.iterations, a.profile_out);
    if (!a.profile_out.empty()) params.optimizer.iterations = a.iterations + 10;  // stopped after the recorded ones
    const StylizeOutput out = stylizer.stylize(content, targets, params, cb);  // the output is read back: a sync
    const double seconds_run = since(t);
    if (!a.image_out.empty()) write_ppm(a.image_out, out.rgb);

    nlohmann::json j = {
        {"program", "stylize"},
        {"weights", a.weights.empty() ? "synthetic" : a.weights},
        {"style_layers", params.loss.style_layers},
        {"content_layers", params.loss.content_layers},
        {"device", device.str()},
        {"precision", to_string(precision)},
        {"threads", threads},
        {"allocator", a.allocator},
        {"conv", a.conv},
        // Large blocks the reusing allocator served from its cache and from the system, whole run:
        // a fresh block costs a page fault per 4 KiB on first touch.
        {"allocator_reused", cpu_allocator_stats().reused},
        {"allocator_fresh", cpu_allocator_stats().fresh},
        {"width", width},
        {"height", height},
        {"iterations", out.transfer.iterations},
        {"evaluations", out.transfer.evaluations},
        // Content targets, the loop and the closing evaluation, over the iterations: what the
        // reference's per-iteration figure also covers (it reads every loss).
        {"seconds_per_iteration", seconds_run / out.transfer.iterations},
        {"seconds_loop_per_iteration", out.transfer.seconds_loop / out.transfer.iterations},
        {"seconds_setup", seconds_setup},
        {"loss_initial", out.transfer.initial.total},
        {"loss_final", out.transfer.final.total},
    };
    std::cout << j.dump() << std::endl;
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {  // LibTorch's own (a GPU out of memory at 2048 px): one line, no backtrace
    const std::string what = e.what_without_backtrace();
    std::fprintf(stderr, "error: %s\n", what.substr(0, what.find('\n')).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
