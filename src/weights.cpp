#include "stylize/weights.hpp"

#include <ATen/ATen.h>
#include <sys/stat.h>

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

void check_vgg19_header(const SafetensorsFile& file) {
  const std::string& path = file.path;
  for (const auto& name : vgg19_parameter_names()) {
    auto it = file.tensors.find(name);
    const auto expected = vgg19_parameter_shape(name);
    if (it == file.tensors.end()) {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " (shape " +
                         shape_str(expected) + ") is missing; is this a VGG19 file with torchvision names?");
    }
    if (it->second.shape != expected) {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " has shape " +
                         shape_str(it->second.shape) + " in file, expected " + shape_str(expected));
    }
    const auto& dt = it->second.dtype;
    if (dt != "F32" && dt != "F16" && dt != "BF16") {
      throw WeightsError("invalid weights file " + in_quotes(path) + ": tensor " + in_quotes(name) + " has dtype " + dt +
                         "; expected F32, F16 or BF16");
    }
  }
}

namespace {

SafetensorsFile checked_header(const std::string& path) {
  SafetensorsFile file = read_safetensors_header(path);
  check_vgg19_header(file);
  return file;
}

}  // namespace

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
  if (!explicit_path.empty()) {
    if (!is_file(explicit_path)) {
      throw WeightsError("cannot read weights file " + in_quotes(explicit_path) + " given by --weights: no such file");
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
  throw WeightsError("no VGG19 weights found (looked in --weights, $STYLIZE_WEIGHTS, " + looked +
                     "); run 'stylize weights fetch' or see models/README.md");
}

Vgg19Weights load_vgg19_weights(const std::string& path, int last_index) {
  SafetensorsFile file = checked_header(path);
  Vgg19Weights w;
  w.path = path;
  w.metadata = file.metadata;
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

}  // namespace stylize
