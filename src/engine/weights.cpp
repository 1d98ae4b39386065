#include "stylize/weights.hpp"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <cstdlib>

#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/vgg19.hpp"

namespace stylize {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

namespace {

// VGG19's convolutions in order (16 of them).
const std::vector<Vgg19Layer>& conv_layers() {
  static const std::vector<Vgg19Layer> convs = [] {
    std::vector<Vgg19Layer> v;
    for (const auto& l : vgg19_layers()) {
      if (l.kind == Vgg19Layer::Kind::conv) v.push_back(l);
    }
    return v;
  }();
  return convs;
}

std::string tensor_name(const Vgg19Layer& conv, const char* part) {
  return "features." + std::to_string(conv.index) + "." + part;
}

// How many convolutions a network cut after layer `last_index` runs.
int convolutions_up_to(int last_index) {
  int n = 0;
  for (const auto& c : conv_layers()) n += c.index <= last_index ? 1 : 0;
  return n;
}

// "a … b", or "a" when they are the same.
std::string span(const std::string& a, const std::string& b) { return a == b ? a : a + " \u2026 " + b; }

// The last of the first `convolutions` convolutions, within 1..16.
const Vgg19Layer& last_conv(int convolutions) {
  const auto& convs = conv_layers();
  return convs[static_cast<size_t>(std::clamp(convolutions, 1, static_cast<int>(convs.size())) - 1)];
}

std::string missing_message(const std::string& path, const std::string& name) {
  return "invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " (shape " +
         shape_str(vgg19_parameter_shape(name)) + ") is missing; stylize reads VGG19 with torchvision's names "
         "(features.0.weight ...)";
}

void check_entry(const std::string& path, const std::string& name, const SafetensorsEntry& entry) {
  const auto expected = vgg19_parameter_shape(name);
  if (entry.shape != expected) {
    throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " has shape " +
                       shape_str(entry.shape) + " in file, expected " + shape_str(expected));
  }
  const auto& dt = entry.dtype;
  if (dt != "F32" && dt != "F16" && dt != "BF16") {
    throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " has dtype " + dt +
                       "; expected F32, F16 or BF16");
  }
}

}  // namespace

int check_vgg19_prefix(const SafetensorsFile& file) {
  const std::string& path = file.path;
  int depth = 0;
  const Vgg19Layer* first_absent = nullptr;  // the first convolution with neither tensor
  for (const auto& conv : conv_layers()) {
    const std::string weight = tensor_name(conv, "weight"), bias = tensor_name(conv, "bias");
    auto w = file.tensors.find(weight), b = file.tensors.find(bias);
    const bool has_w = w != file.tensors.end(), has_b = b != file.tensors.end();
    if (!has_w && !has_b) {
      if (!first_absent) first_absent = &conv;
      continue;
    }
    if (first_absent) {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": it has " + conv.name + " (" +
                         in_quotes(has_w ? weight : bias) + ") but not " + first_absent->name + " (" +
                         in_quotes(tensor_name(*first_absent, "weight")) +
                         ") before it; a file may stop after any convolution but not skip one");
    }
    if (!has_w || !has_b) throw WeightsError(missing_message(path, has_w ? bias : weight));
    check_entry(path, weight, w->second);
    check_entry(path, bias, b->second);
    ++depth;
  }
  if (depth == 0) throw WeightsError(missing_message(path, tensor_name(conv_layers()[0], "weight")));
  return depth;
}

void check_vgg19_header(const SafetensorsFile& file) {
  const int depth = check_vgg19_prefix(file);
  if (depth < static_cast<int>(conv_layers().size())) {
    // A valid prefix: no naming problem, only short. Say so, and where such a file serves as it is.
    const std::string first_missing = tensor_name(conv_layers()[static_cast<size_t>(depth)], "weight");
    throw WeightsError("invalid weights file " + in_quotes(file.path) + ": it holds only " +
                       describe_vgg19_prefix(depth) + ", and the whole VGG19 is needed here (tensor " +
                       in_quotes(first_missing) + " (shape " + shape_str(vgg19_parameter_shape(first_missing)) +
                       ") is missing); a prefix file is used as it is, named by " + field("weights") +
                       ", for loss layers up to " + deepest_usable_layer(depth));
  }
}

std::string describe_vgg19_prefix(int convolutions) {
  const int n = std::clamp(convolutions, 1, static_cast<int>(conv_layers().size()));
  return span(conv_layers()[0].name, last_conv(n).name) + ": " + std::to_string(n) + " of " +
         std::to_string(conv_layers().size()) + " convolutions";
}

std::string deepest_usable_layer(int convolutions) { return "relu" + last_conv(convolutions).name.substr(4); }

int deepest_usable_index(int convolutions) {
  int last = 0;
  for (const auto& l : vgg19_layers()) {
    if (convolutions_up_to(l.index) <= convolutions) last = l.index;
  }
  return last;
}

std::string default_weights_install_path() {
  std::string base = env("XDG_DATA_HOME");
  if (base.empty()) base = env("HOME") + "/.local/share";
  return base + "/stylize/vgg19.safetensors";
}

std::vector<std::string> weights_search_path(const std::string& explicit_path) {
  std::vector<std::string> paths;
  if (!explicit_path.empty()) paths.push_back(explicit_path);
  if (!env("STYLIZE_WEIGHTS").empty()) paths.push_back(env("STYLIZE_WEIGHTS"));
  paths.push_back("models/vgg19.safetensors");
  paths.push_back(default_weights_install_path());
  return paths;
}

std::string locate_weights(const std::string& explicit_path) {
  return locate_weights(explicit_path, " given by " + field("weights"));
}

std::string locate_weights(const std::string& explicit_path, const std::string& given_by) {
  if (!explicit_path.empty()) {
    if (!is_file(explicit_path)) {
      std::error_code ec;
      const bool folder = std::filesystem::is_directory(explicit_path, ec);
      throw WeightsError("cannot read weights file " + in_quotes(explicit_path) + given_by +
                         (folder ? ": it is a folder; give the .safetensors file in it" : ": no such file; check the path"));
    }
    return explicit_path;
  }
  const std::string from_env = env("STYLIZE_WEIGHTS");
  if (!from_env.empty()) {
    if (!is_file(from_env)) {
      throw WeightsError("cannot read weights file " + in_quotes(from_env) + " given by $STYLIZE_WEIGHTS: no such file");
    }
    return from_env;
  }
  std::string looked;
  for (const auto& p : weights_search_path("")) {
    if (is_file(p)) return p;
    looked += (looked.empty() ? "" : ", ") + p;
  }
  throw WeightsError("no VGG19 weights found (looked in " + field("weights") + ", $STYLIZE_WEIGHTS, " + looked +
                     "); run 'stylize weights fetch' or see models/README.md");
}

namespace {

Vgg19Weights load_checked(const SafetensorsFile& file, int depth, int last_index) {
  const std::string& path = file.path;
  Vgg19Weights w;
  w.path = path;
  w.metadata = file.metadata;
  w.convolutions = depth;
  auto pre = file.metadata.find("preprocessing");
  if (pre != file.metadata.end()) {
    try {
      w.preprocessing = parse_preprocessing(pre->second);
    } catch (const Error&) {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": __metadata__ preprocessing is " +
                         in_quotes(pre->second) + ", expected caffe or torchvision");
    }
  }
  for (const auto& name : vgg19_parameter_names(last_index)) {
    at::Tensor t = read_safetensors_tensor(file, name);
    if (!at::isfinite(t).all().item<bool>()) {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) +
                         " contains NaN or infinite values");
    }
    w.params.emplace(name, t);
  }
  return w;
}

// The file's prefix depth, after checking that it reaches `last_index` (throws WeightsError saying
// what is missing and what to do).
int depth_reaching(const SafetensorsFile& file, int last_index) {
  const std::string& path = file.path;
  const int depth = check_vgg19_prefix(file);
  const int needed = convolutions_up_to(last_index);
  if (needed > depth) {
    if (last_index >= vgg19_layers().back().index) check_vgg19_header(file);  // throws, naming the tensor
    const auto& convs = conv_layers();
    const Vgg19Layer &first = convs[static_cast<size_t>(depth)], &last = convs[static_cast<size_t>(needed - 1)];
    throw WeightsError("weights file " + in_quotes(path) + " holds only " + span(convs[0].name, last_conv(depth).name) +
                       " (" + std::to_string(depth) + " of " + std::to_string(convs.size()) + " convolutions), but layer " +
                       vgg19_layers()[static_cast<size_t>(last_index)].name + " needs " + span(first.name, last.name) +
                       " too (" + span("features." + std::to_string(first.index), "features." + std::to_string(last.index)) +
                       "); get the full VGG19 with 'stylize weights fetch', or use loss layers up to " +
                       deepest_usable_layer(depth));
  }
  return depth;
}

}  // namespace

Vgg19Weights load_vgg19_weights(const std::string& path, int last_index) {
  const SafetensorsFile file = read_safetensors_header(path);
  return load_checked(file, depth_reaching(file, last_index), last_index);
}

Vgg19Weights load_vgg19_weights_whole(const std::string& path, int last_index) {
  const SafetensorsFile file = read_safetensors_header(path);
  const int depth = depth_reaching(file, last_index);
  return load_checked(file, depth, deepest_usable_index(depth));
}

Vgg19Weights load_vgg19_prefix(const std::string& path) {
  const SafetensorsFile file = read_safetensors_header(path);
  const int depth = check_vgg19_prefix(file);
  return load_checked(file, depth, last_conv(depth).index);
}

}  // namespace stylize
