#include "stylize/weights_tools/convert.hpp"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <cstring>
#include <fstream>
#include <memory>

#include "stylize/error.hpp"
#include "stylize/safetensors.hpp"
#include "stylize/vgg19.hpp"
#include "stylize/weights.hpp"

namespace stylize {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw WeightsError("cannot convert " + in_quotes(path) + ": " + why);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// RAII for HDF5 ids.
struct H5Id {
  hid_t id;
  herr_t (*close)(hid_t);
  H5Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~H5Id() {
    if (id >= 0) close(id);
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  operator hid_t() const { return id; }
  bool ok() const { return id >= 0; }
};

// Reads a string-array attribute (fixed-length or variable-length strings).
std::vector<std::string> read_string_attribute(hid_t object, const char* name, const std::string& path) {
  if (H5Aexists(object, name) <= 0) return {};
  H5Id attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  H5Id type(H5Aget_type(attr), H5Tclose);
  H5Id space(H5Aget_space(attr), H5Sclose);
  if (!attr.ok() || !type.ok() || !space.ok()) bad(path, "attribute " + in_quotes(name) + " cannot be read");
  if (H5Tget_class(type) != H5T_STRING) bad(path, "attribute " + in_quotes(name) + " is not a list of strings");
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<std::string> out;
  if (n <= 0) return out;
  if (H5Tis_variable_str(type) > 0) {
    std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
    H5Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem, H5T_VARIABLE);
    if (H5Aread(attr, mem, ptrs.data()) < 0) bad(path, "attribute " + in_quotes(name) + " cannot be read");
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(type);
    std::vector<char> buf(size * static_cast<size_t>(n) + 1, '\0');
    if (H5Aread(attr, type, buf.data()) < 0) bad(path, "attribute " + in_quotes(name) + " cannot be read");
    for (hssize_t i = 0; i < n; ++i) {
      const char* s = buf.data() + static_cast<size_t>(i) * size;
      out.emplace_back(s, strnlen(s, size));
    }
  }
  return out;
}

at::Tensor read_dataset(hid_t group, const std::string& name, const std::string& path, const std::string& layer) {
  H5Id ds(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) bad(path, "layer " + in_quotes(layer) + " lists weight " + in_quotes(name) + " but it is not in the file");
  H5Id space(H5Dget_space(ds), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 1 || rank > 4) bad(path, "weight " + in_quotes(name) + " has rank " + std::to_string(rank));
  hsize_t dims[4];
  H5Sget_simple_extent_dims(space, dims, nullptr);
  std::vector<int64_t> shape(dims, dims + rank);
  at::Tensor t = at::empty(shape, at::kFloat);
  // HDF5 converts whatever float type is stored (F16/F32/F64) to native float.
  if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>()) < 0) {
    bad(path, "weight " + in_quotes(name) + " of layer " + in_quotes(layer) + " cannot be read (truncated or not numeric)");
  }
  return t;
}

}  // namespace

WeightsFormat detect_weights_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WeightsError("cannot read " + in_quotes(path) + ": no such file or not readable");
  unsigned char m[8] = {0};
  in.read(reinterpret_cast<char*>(m), 8);
  const auto n = in.gcount();
  if (n >= 8 && std::memcmp(m, "\x89HDF\r\n\x1a\n", 8) == 0) return WeightsFormat::keras_h5;
  if (n >= 4 && std::memcmp(m, "PK\x03\x04", 4) == 0) return WeightsFormat::pytorch_pickle;  // torch.save zip
  if (n >= 2 && m[0] == 0x80 && m[1] >= 2 && m[1] <= 5) return WeightsFormat::pytorch_pickle;  // legacy pickle
  if (n >= 8) {
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | m[i];
    char brace = 0;
    in.read(&brace, 1);
    if (len > 1 && len < (100ull << 20) && brace == '{') return WeightsFormat::safetensors;
  }
  return WeightsFormat::unknown;
}

// `text` as a Python string literal in single quotes.
static std::string python_string(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += (c == '\\' || c == '\'') ? std::string("\\") + c : std::string(1, c);
  return out + "'";
}

std::string pickle_refusal(const std::string& path) {
  return "refusing " + in_quotes(path) +
         ": it is a PyTorch pickle, and loading a pickle can run arbitrary code. Re-save it as safetensors "
         "with Python (pip install safetensors): "
         "import torch, safetensors.torch; "
         "safetensors.torch.save_file({k: v.contiguous() for k, v in torch.load(" + as_literal(python_string(path)) +
         ", map_location='cpu').items() if k.startswith('features.')}, 'vgg19.safetensors')"
         " -- then run: stylize weights convert vgg19.safetensors OUT";
}

NamedTensors read_keras_vgg19(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become our messages, not HDF5's stack dumps
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) bad(path, "not a readable HDF5 file (truncated?)");
  hid_t root_id = file;
  std::unique_ptr<H5Id> model_weights;
  if (H5Aexists(file, "layer_names") <= 0 && H5Lexists(file, "model_weights", H5P_DEFAULT) > 0) {
    model_weights = std::make_unique<H5Id>(H5Gopen2(file, "model_weights", H5P_DEFAULT), H5Gclose);
    root_id = *model_weights;
  }
  const auto layers = read_string_attribute(root_id, "layer_names", path);
  if (layers.empty()) bad(path, "no 'layer_names' attribute: not a Keras weights file");

  std::vector<Vgg19Layer> convs;
  for (const auto& l : vgg19_layers()) {
    if (l.kind == Vgg19Layer::Kind::conv) convs.push_back(l);
  }
  NamedTensors out;
  size_t conv = 0;
  for (const auto& layer : layers) {
    H5Id group(H5Gopen2(root_id, layer.c_str(), H5P_DEFAULT), H5Gclose);
    if (!group.ok()) bad(path, "layer " + in_quotes(layer) + " is listed in layer_names but has no group");
    const auto names = read_string_attribute(group, "weight_names", path);
    if (names.empty()) continue;  // input and pooling layers
    if (names.size() != 2) {
      bad(path, "layer " + in_quotes(layer) + " has " + std::to_string(names.size()) + " weights; expected kernel and bias");
    }
    at::Tensor kernel = read_dataset(group, names[0], path, layer);
    at::Tensor bias = read_dataset(group, names[1], path, layer);
    if (kernel.dim() == 2) continue;  // a dense (classifier) layer: not used for style transfer
    if (conv >= convs.size()) bad(path, "more than 16 convolution layers (at " + in_quotes(layer) + "): not VGG19");
    const auto& l = convs[conv++];
    const std::vector<int64_t> want = {3, 3, l.in_channels, l.out_channels};
    if (kernel.sizes().vec() != want) {
      bad(path, "layer " + in_quotes(layer) + " kernel " + in_quotes(names[0]) + " has shape " + shape_str(kernel.sizes().vec()) +
                    ", expected " + shape_str(want) + " for VGG19's " + l.name);
    }
    if (bias.sizes().vec() != std::vector<int64_t>{l.out_channels}) {
      bad(path, "layer " + in_quotes(layer) + " bias " + in_quotes(names[1]) + " has shape " + shape_str(bias.sizes().vec()) +
                    ", expected [" + std::to_string(l.out_channels) + "]");
    }
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    out.emplace_back(prefix + "weight", kernel.permute({3, 2, 0, 1}).contiguous());
    out.emplace_back(prefix + "bias", bias);
  }
  if (conv != convs.size()) {
    bad(path, "found " + std::to_string(conv) + " convolution layers, VGG19 has 16");
  }
  return out;
}

NamedTensors read_torchvision_vgg19(const std::string& path) {
  const Vgg19Weights w = load_vgg19_weights(path);  // validates names, shapes, dtypes, values
  NamedTensors out;
  for (const auto& name : vgg19_parameter_names()) out.emplace_back(name, w.params.at(name));
  return out;
}

NamedTensors read_vgg19_any(const std::string& path, std::string& preprocessing) {
  switch (detect_weights_format(path)) {
    case WeightsFormat::keras_h5:
      preprocessing = "caffe";
      return read_keras_vgg19(path);
    case WeightsFormat::safetensors: {
      const auto meta = read_safetensors_header(path).metadata;
      auto it = meta.find("preprocessing");
      preprocessing = it != meta.end() ? it->second : "torchvision";
      return read_torchvision_vgg19(path);
    }
    case WeightsFormat::pytorch_pickle:
      throw WeightsError(pickle_refusal(path));
    case WeightsFormat::unknown:
      break;
  }
  bad(path, "not a Keras HDF5 or safetensors file");
}

void write_stylize_weights(const std::string& path, const NamedTensors& tensors,
                           std::map<std::string, std::string> metadata) {
  metadata["format"] = "stylize-vgg19-features";
  write_safetensors(path, tensors, metadata);
}

}  // namespace stylize
