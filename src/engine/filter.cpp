#include "stylize/filter.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "stylize/error.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/runtime.hpp"
#include "stylize/safetensors.hpp"

namespace stylize {
namespace {

struct ConvSpec {
  std::string prefix;
  int in, out, kernel;
  bool norm;
};

// The convolutions in order; filter_parameter_shapes and forward() both read this one list.
std::vector<ConvSpec> conv_specs(const FilterArch& a) {
  const int w = a.width;
  std::vector<ConvSpec> v{{"in", 3, w, 9, true}, {"down1", w, 2 * w, 3, true}, {"down2", 2 * w, 4 * w, 3, true}};
  for (int i = 1; i <= a.residual_blocks; ++i) {
    const std::string p = "res" + std::to_string(i) + ".";
    v.push_back({p + "a", 4 * w, 4 * w, 3, true});
    v.push_back({p + "b", 4 * w, 4 * w, 3, true});
  }
  v.push_back({"up1", 4 * w, 2 * w, 3, true});
  v.push_back({"up2", 2 * w, w, 3, true});
  v.push_back({"out", w, 3, 9, false});
  return v;
}

std::string shape_text(at::IntArrayRef s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

}  // namespace

void validate(const FilterArch& a) {
  if (a.width < 4 || a.width > 256) {
    throw UsageError(field("width") + " must be in 4..256, got " + std::to_string(a.width));
  }
  if (a.residual_blocks < 0 || a.residual_blocks > 16) {
    throw UsageError(field("residual_blocks") + " must be in 0..16, got " + std::to_string(a.residual_blocks));
  }
}

std::vector<std::pair<std::string, std::vector<int64_t>>> filter_parameter_shapes(const FilterArch& a) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> v;
  for (const ConvSpec& c : conv_specs(a)) {
    v.push_back({c.prefix + ".conv.weight", {c.out, c.in, c.kernel, c.kernel}});
    v.push_back({c.prefix + ".conv.bias", {c.out}});
    if (c.norm) {
      v.push_back({c.prefix + ".norm.weight", {c.out}});
      v.push_back({c.prefix + ".norm.bias", {c.out}});
    }
  }
  return v;
}

FilterNet::FilterNet(const FilterArch& arch, uint64_t seed) : arch_(arch) {
  validate(arch);
  std::mt19937_64 rng(seed);
  for (const auto& [name, shape] : filter_parameter_shapes(arch)) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    at::Tensor t = at::empty(shape, at::kFloat);
    float* p = t.data_ptr<float>();
    const bool norm = name.find(".norm.") != std::string::npos;
    if (norm) {
      t.fill_(name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 ? 1.0 : 0.0);
    } else {
      // fan_in of the convolution this tensor belongs to (the bias shares its weight's).
      const auto& specs = conv_specs(arch);
      int64_t fan_in = 1;
      for (const ConvSpec& c : specs) {
        if (name.rfind(c.prefix + ".conv.", 0) == 0) fan_in = int64_t{c.in} * c.kernel * c.kernel;
      }
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      for (int64_t i = 0; i < n; ++i) {
        const double unit = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 random bits
        p[i] = static_cast<float>((2.0 * unit - 1.0) * bound);
      }
    }
    index_[name] = names_.size();
    names_.push_back(name);
    params_.push_back(t);
  }
}

FilterNet::FilterNet(const FilterArch& arch, const std::map<std::string, at::Tensor>& params) : arch_(arch) {
  validate(arch);
  for (const auto& [name, shape] : filter_parameter_shapes(arch)) {
    auto it = params.find(name);
    if (it == params.end() || it->second.sizes() != at::IntArrayRef(shape)) {
      throw WeightsError("filter tensor " + in_quotes(name) + " is missing or has the wrong shape");
    }
    index_[name] = names_.size();
    names_.push_back(name);
    params_.push_back(it->second.detach().to(at::kFloat).contiguous());
  }
}

void FilterNet::set_requires_grad(bool on) {
  for (auto& p : params_) p.requires_grad_(on);
}

void FilterNet::to(const at::Device& device) {
  for (auto& p : params_) p = p.detach().to(device);
  set_precision(precision_);
}

// mixed is a VGG19 plan (vgg19.hpp); the transformer network has no such split and runs in bf16,
// what auto chose for it before mixed existed.
void FilterNet::set_precision(Precision precision) {
  precision_ = precision == Precision::mixed ? Precision::bf16 : precision;
  low_.clear();
  if (precision_ != Precision::bf16) return;
  for (auto& p : params_) low_.push_back(p.detach().to(at::kBFloat16));
}

const at::Tensor& FilterNet::param(const std::string& name) const {
  const size_t i = index_.at(name);
  return precision_ == Precision::bf16 && name.find(".conv.") != std::string::npos ? low_[i] : params_[i];
}

at::Tensor FilterNet::conv(const at::Tensor& x, const std::string& prefix, int stride) const {
  const at::Tensor& w = param(prefix + ".conv.weight");
  const int64_t pad = w.size(2) / 2;
  // Padded in fp32, then cast: LibTorch 1.13 has no bf16 reflection_pad2d on the CPU.
  at::Tensor h = at::reflection_pad2d(x, {pad, pad, pad, pad}).to(w.scalar_type());
  h = at::conv2d(h, w, param(prefix + ".conv.bias"), stride);
  return h.scalar_type() == at::kFloat ? h : h.to(at::kFloat);
}

at::Tensor FilterNet::norm(const at::Tensor& x, const std::string& prefix) const {
  return at::instance_norm(x, param(prefix + ".norm.weight"), param(prefix + ".norm.bias"), {}, {},
                           /*use_input_stats=*/true, /*momentum=*/0.1, /*eps=*/1e-5, /*cudnn_enabled=*/false);
}

at::Tensor FilterNet::residual(const at::Tensor& x, const std::string& prefix) const {
  at::Tensor h = at::relu(norm(conv(x, prefix + ".a", 1), prefix + ".a"));
  return x + norm(conv(h, prefix + ".b", 1), prefix + ".b");
}

at::Tensor FilterNet::forward(const at::Tensor& rgb) const {
  const int64_t height = rgb.size(2), width = rgb.size(3);
  if (height < kFilterMinSide || width < kFilterMinSide) {
    throw UsageError("image of " + std::to_string(width) + "x" + std::to_string(height) +
                     " px is too small for a filter (at least " + std::to_string(kFilterMinSide) + " px a side)");
  }
  // The two stride-2 stages need sides divisible by 4 to come back to the input's size.
  const int64_t pad_h = (4 - height % 4) % 4, pad_w = (4 - width % 4) % 4;
  at::Tensor h = rgb / 127.5 - 1.0;
  if (pad_h || pad_w) h = at::reflection_pad2d(h, {0, pad_w, 0, pad_h});
  h = at::relu(norm(conv(h, "in", 1), "in"));
  h = at::relu(norm(conv(h, "down1", 2), "down1"));
  h = at::relu(norm(conv(h, "down2", 2), "down2"));
  for (int i = 1; i <= arch_.residual_blocks; ++i) h = residual(h, "res" + std::to_string(i));
  for (const char* up : {"up1", "up2"}) {
    h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
    h = at::relu(norm(conv(h, up, 1), up));
  }
  h = conv(h, "out", 1) * 127.5 + 127.5;
  if (pad_h || pad_w) h = h.narrow(2, 0, height).narrow(3, 0, width);
  return h;
}

std::pair<int, int> filter_size(int width, int height, int longest, const std::string& what) {
  const auto [w, h] = longest > 0 ? fit_longest(width, height, longest) : std::make_pair(width, height);
  if (std::min(w, h) < kFilterMinSide) {
    throw InputError(what + " would be " + std::to_string(w) + "x" + std::to_string(h) + " px; a filter needs at least " +
                     std::to_string(kFilterMinSide) + " px a side");
  }
  return {w, h};
}

void check_filter_memory(const FilterArch& arch, int width, int height, const std::string& what) {
  const double need = 200e6 + static_cast<double>(width) * height * (40.0 + 32.0 * arch.width);
  const uint64_t have = available_memory_bytes();
  if (have == 0 || need <= static_cast<double>(have)) return;
  char buf[160];
  std::snprintf(buf, sizeof buf, " at %dx%d needs about %.1f GB to filter, but %.1f GB is available; use a smaller ",
                width, height, need / 1e9, static_cast<double>(have) / 1e9);
  throw ResourceError(what + buf + field("size"));
}

at::Tensor apply_filter(const FilterNet& net, const at::Tensor& rgb) {
  c10::NoGradGuard no_grad;
  const at::Device device = net.parameters().front().device();
  return net.forward(rgb.to(device)).clamp_(0, 255).cpu();
}

void save_filter(const std::string& path, const FilterNet& net, const FilterInfo& info,
                 const std::vector<std::pair<std::string, at::Tensor>>& extra) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (size_t i = 0; i < net.names().size(); ++i) tensors.push_back({net.names()[i], net.parameters()[i].detach().cpu()});
  for (const auto& e : extra) tensors.push_back({e.first, e.second.detach().cpu()});
  std::map<std::string, std::string> meta = info.training;
  meta["format"] = "stylize-filter";
  meta["version"] = "1";
  meta["width"] = std::to_string(net.arch().width);
  meta["residual_blocks"] = std::to_string(net.arch().residual_blocks);
  write_safetensors(path, tensors, meta);
}

namespace {

int metadata_int(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) {
    throw WeightsError("filter file " + in_quotes(f.path) + " has no '" + key + "' in its metadata");
  }
  try {
    size_t used = 0;
    const int v = std::stoi(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw WeightsError("filter file " + in_quotes(f.path) + " has '" + key + "' = " + in_quotes(it->second) +
                     " in its metadata, not a whole number");
}

// The header's promises about this build's filter format.
FilterArch check_filter_metadata(const SafetensorsFile& f) {
  auto format = f.metadata.find("format");
  if (format == f.metadata.end() || format->second != "stylize-filter") {
    throw WeightsError("file " + in_quotes(f.path) +
                       " is not a filter file: its metadata has no format 'stylize-filter' (a VGG19 weights file?)");
  }
  auto version = f.metadata.find("version");
  if (version == f.metadata.end() || version->second != "1") {
    throw WeightsError("filter file " + in_quotes(f.path) + " is format version " +
                       (version == f.metadata.end() ? std::string("(none)") : in_quotes(version->second)) +
                       "; this build reads version '1'");
  }
  FilterArch arch{metadata_int(f, "width"), metadata_int(f, "residual_blocks")};
  try {
    validate(arch);
  } catch (const UsageError& e) {
    throw WeightsError("filter file " + in_quotes(f.path) + ": " + as_literal(key_words(e)));
  }
  return arch;
}

}  // namespace

namespace {

// The safetensors reader speaks of a "weights file"; here the file is a filter.
template <class F>
auto as_filter_file(F&& read) {
  try {
    return read();
  } catch (const WeightsError& e) {
    std::string message = e.what();
    if (const size_t at = message.find("weights file"); at != std::string::npos) message.replace(at, 12, "filter file");
    throw WeightsError(message);
  }
}

}  // namespace

LoadedFilter load_filter(const std::string& path, const std::string& allow_extra_prefix) {
  const SafetensorsFile f = as_filter_file([&] { return read_safetensors_header(path); });
  const FilterArch arch = check_filter_metadata(f);
  const auto shapes = filter_parameter_shapes(arch);
  std::map<std::string, at::Tensor> params, extra;
  for (const auto& [name, shape] : shapes) {
    auto it = f.tensors.find(name);
    if (it == f.tensors.end()) {
      throw WeightsError("tensor " + in_quotes(name) + " is missing from filter file " + in_quotes(path) +
                         " (expected shape " + shape_text(shape) + ")");
    }
    if (it->second.shape != shape) {
      throw WeightsError("tensor " + in_quotes(name) + " has shape " + shape_text(it->second.shape) + " in " +
                         in_quotes(path) + ", expected " + shape_text(shape));
    }
  }
  for (const auto& [tensor_name, entry] : f.tensors) {
    const std::string& name = tensor_name;  // a lambda may not capture a structured binding before C++20 (clang)
    const bool known = std::any_of(shapes.begin(), shapes.end(), [&](const auto& s) { return s.first == name; });
    const bool allowed = !allow_extra_prefix.empty() && name.rfind(allow_extra_prefix, 0) == 0;
    if (!known && !allowed) {
      throw WeightsError("filter file " + in_quotes(path) + " holds an unexpected tensor " + in_quotes(name) +
                         " (not part of a width-" + std::to_string(arch.width) + " network with " +
                         std::to_string(arch.residual_blocks) + " residual blocks)");
    }
    at::Tensor t = as_filter_file([&] { return read_safetensors_tensor(f, name); });  // non-float dtypes, truncation
    if (!at::isfinite(t).all().item<bool>()) {
      throw WeightsError("tensor " + in_quotes(name) + " in filter file " + in_quotes(path) +
                         " holds NaN or infinite values");
    }
    (known ? params : extra)[name] = t;
  }
  FilterInfo info{arch, {}};
  for (const auto& [k, v] : f.metadata) {
    if (k != "format" && k != "version" && k != "width" && k != "residual_blocks") info.training[k] = v;
  }
  return LoadedFilter{FilterNet(arch, params), info, extra};
}

}  // namespace stylize
