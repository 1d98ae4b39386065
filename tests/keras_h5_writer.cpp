#include "keras_h5_writer.hpp"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <stdexcept>
#include <vector>

#include "stylize/vgg19.hpp"

namespace stylize::test {
namespace {

void write_strings_attribute(hid_t obj, const char* name, const std::vector<std::string>& values, bool vlen) {
  hsize_t n = values.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t type = H5Tcopy(H5T_C_S1);
  if (vlen) {
    H5Tset_size(type, H5T_VARIABLE);
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, ptrs.data());
    H5Aclose(attr);
  } else {
    size_t width = 1;
    for (const auto& v : values) width = std::max(width, v.size());
    H5Tset_size(type, width);  // numpy 'S' strings: fixed width, NUL-padded
    std::vector<char> buf(width * values.size(), '\0');
    for (size_t i = 0; i < values.size(); ++i) values[i].copy(buf.data() + i * width, values[i].size());
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, buf.data());
    H5Aclose(attr);
  }
  H5Tclose(type);
  H5Sclose(space);
}

void write_dataset(hid_t group, const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.contiguous().to(at::kFloat);
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);  // "block1_conv1/kernel:0" makes the subgroup
  hid_t ds = H5Dcreate2(group, name.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) throw std::runtime_error("H5Dcreate2 failed for " + name);
  H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data_ptr<float>());
  H5Dclose(ds);
  H5Pclose(lcpl);
  H5Sclose(space);
}

void add_layer(hid_t file, std::vector<std::string>& layer_names, const std::string& layer,
               const std::vector<std::pair<std::string, at::Tensor>>& weights, bool vlen) {
  layer_names.push_back(layer);
  hid_t g = H5Gcreate2(file, layer.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::string> names;
  for (const auto& [n, t] : weights) {
    names.push_back(layer + "/" + n);
    write_dataset(g, layer + "/" + n, t);
  }
  write_strings_attribute(g, "weight_names", names, vlen);
  H5Gclose(g);
}

}  // namespace

void write_keras_vgg19(const std::string& path, const std::map<std::string, at::Tensor>& params,
                       const KerasFileOptions& o) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot create " + path);
  std::vector<std::string> layer_names;
  add_layer(file, layer_names, "input_1", {}, o.variable_length_strings);
  int block = 1, conv = 1;
  for (const auto& l : vgg19_layers()) {
    if (l.kind == Vgg19Layer::Kind::pool) {
      add_layer(file, layer_names, "block" + std::to_string(block) + "_pool", {}, o.variable_length_strings);
      ++block;
      conv = 1;
      continue;
    }
    if (l.kind != Vgg19Layer::Kind::conv) continue;
    const std::string name = "block" + std::to_string(block) + "_conv" + std::to_string(conv++);
    if (name == o.skip_layer) continue;
    const std::string prefix = "features." + std::to_string(l.index) + ".";
    at::Tensor kernel = params.at(prefix + "weight").permute({2, 3, 1, 0});  // OIHW -> HWIO
    if (name == o.wrong_shape_layer) kernel = at::zeros({5, 5, l.in_channels, l.out_channels});
    add_layer(file, layer_names, name, {{"kernel:0", kernel}, {"bias:0", params.at(prefix + "bias")}},
              o.variable_length_strings);
  }
  if (o.with_classifier) {
    add_layer(file, layer_names, "flatten", {}, o.variable_length_strings);
    add_layer(file, layer_names, "fc1", {{"kernel:0", at::ones({32, 8})}, {"bias:0", at::zeros({8})}},
              o.variable_length_strings);
    add_layer(file, layer_names, "predictions", {{"kernel:0", at::ones({8, 4})}, {"bias:0", at::zeros({4})}},
              o.variable_length_strings);
  }
  write_strings_attribute(file, "layer_names", layer_names, o.variable_length_strings);
  write_strings_attribute(file, "backend", {"tensorflow"}, false);
  H5Fclose(file);
}

}  // namespace stylize::test
