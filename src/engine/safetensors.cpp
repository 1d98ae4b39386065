#include "stylize/safetensors.hpp"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"

namespace stylize {
namespace {

// The format's own limit: a header above 100 MB is rejected by the reference implementation too.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw WeightsError("invalid weights file " + in_quotes(path) + ": " + why);
}

int64_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"U16", 2}, {"U32", 4},  {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// What a file that failed as safetensors is, from its first bytes, so that the message can say so
// (a photo passed as --weights, a PyTorch pickle, a Keras file): "" when nothing is recognised.
// Asked only once the header length has failed: a valid file is never named something else.
std::string known_kind(const unsigned char* b) {
  if (b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "it is a JPEG image, not safetensors";
  if (b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') return "it is a PNG image, not safetensors";
  if (std::memcmp(b, "GIF8", 4) == 0) return "it is a GIF image, not safetensors";
  if (std::memcmp(b, "RIFF", 4) == 0) return "it is a RIFF file (a WebP image?), not safetensors";
  if (std::memcmp(b, "PK\x03\x04", 4) == 0) return "it is a zip archive (a PyTorch .pth?), not safetensors";
  if (std::memcmp(b, "\x89HDF", 4) == 0) return "it is an HDF5 file (Keras?), not safetensors";
  return "";
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsFile read_safetensors_header(const std::string& path) {
  SafetensorsFile f;
  f.path = path;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    throw WeightsError("cannot read weights file " + in_quotes(path) + ": " +
                       (errno == ENOENT ? "no such file" : std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) bad(path, "it is a folder, not a file");
  f.file_size = static_cast<uint64_t>(st.st_size);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WeightsError("cannot read weights file " + in_quotes(path) + ": " + std::strerror(errno));
  if (f.file_size < 8) {
    bad(path, "file is " + std::to_string(f.file_size) +
                  " bytes, too short for a safetensors header (truncated or not safetensors)");
  }
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  const std::string kind = known_kind(len_bytes);
  if (header_len > f.file_size - 8 && !kind.empty()) bad(path, kind);
  if (header_len > f.file_size - 8) {
    bad(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                  std::to_string(f.file_size) + " (truncated or not a safetensors file)");
  }
  if (header_len > kMaxHeaderBytes || header_len < 2) {
    if (!kind.empty()) bad(path, kind);
    bad(path, "header length " + std::to_string(header_len) + " is implausible (not a safetensors file)");
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) bad(path, "cannot read header");
  try {
    return parse_safetensors_header(header, f.file_size, path);
  } catch (const WeightsError&) {
    if (!kind.empty()) bad(path, kind);  // a zip's signature reads as a plausible 67 MB header
    throw;
  }
}

SafetensorsFile parse_safetensors_header(const std::string& header, uint64_t file_size, const std::string& path) {
  SafetensorsFile f;
  f.path = path;
  f.file_size = file_size;
  f.data_start = 8 + header.size();
  if (f.data_start > file_size) bad(path, "header runs past the end of the file");
  const uint64_t data_size = f.file_size - f.data_start;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    bad(path, "header is not valid JSON (" + as_literal(e.what()) + ")");
  }
  if (!j.is_object()) bad(path, "header JSON is not an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (m.value().is_string()) f.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + in_quotes(name);
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
      bad(path, where + " lacks dtype, shape or data_offsets");
    }
    SafetensorsEntry e;
    if (!v["dtype"].is_string()) bad(path, where + " has a non-string dtype");
    e.dtype = v["dtype"].get<std::string>();
    const int64_t esize = dtype_size(e.dtype);
    if (esize == 0) bad(path, where + " has unknown dtype " + in_quotes(e.dtype));
    if (!v["shape"].is_array()) bad(path, where + " has a shape that is not a list");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) bad(path, where + " has a negative or non-integer dimension");
      const auto dim = d.get<int64_t>();
      if (dim > 0 && numel > (uint64_t(1) << 48) / static_cast<uint64_t>(dim)) bad(path, where + " is impossibly large");
      e.shape.push_back(dim);
      numel *= static_cast<uint64_t>(dim);
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      bad(path, where + " has malformed data_offsets");
    }
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) {
      bad(path, where + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] outside the data section of " + std::to_string(data_size) +
                    " bytes (truncated file?)");
    }
    if (e.end - e.begin != numel * static_cast<uint64_t>(esize)) {
      bad(path, where + " of shape " + shape_str(e.shape) + " and dtype " + e.dtype + " needs " +
                    std::to_string(numel * esize) + " bytes but its data_offsets span " +
                    std::to_string(e.end - e.begin));
    }
    f.tensors.emplace(name, std::move(e));
  }
  return f;
}

namespace {

at::ScalarType float_type(const SafetensorsFile& file, const std::string& name, const SafetensorsEntry& e) {
  at::ScalarType type;
  if (e.dtype == "F32") {
    type = at::kFloat;
  } else if (e.dtype == "F16") {
    type = at::kHalf;
  } else if (e.dtype == "BF16") {
    type = at::kBFloat16;
  } else if (e.dtype == "F64") {
    type = at::kDouble;
  } else {
    bad(file.path, "tensor " + in_quotes(name) + " has dtype " + e.dtype + "; expected F32, F16 or BF16");
  }
  return type;
}

const SafetensorsEntry& entry(const SafetensorsFile& file, const std::string& name) {
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) bad(file.path, "tensor " + in_quotes(name) + " is missing");
  return it->second;
}

}  // namespace

at::Tensor safetensors_tensor_from_bytes(const SafetensorsFile& file, const std::string& name, const char* data) {
  const SafetensorsEntry& e = entry(file, name);
  const at::ScalarType type = float_type(file, name, e);
  at::Tensor raw = at::empty(e.shape, at::TensorOptions().dtype(type));
  // An empty tensor has no storage (data_ptr() is null): memcpy may not be given null, even for
  // 0 bytes (found by fuzz/fuzz_safetensors.cpp; fuzz/regressions/safetensors/empty-tensor).
  if (e.end > e.begin) std::memcpy(raw.data_ptr(), data + e.begin, e.end - e.begin);
  return type == at::kFloat ? raw : raw.to(at::kFloat);
}

at::Tensor read_safetensors_tensor(const SafetensorsFile& file, const std::string& name) {
  const SafetensorsEntry& e = entry(file, name);
  const at::ScalarType type = float_type(file, name, e);
  at::Tensor raw = at::empty(e.shape, at::TensorOptions().dtype(type));
  std::ifstream in(file.path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(file.data_start + e.begin));
  const auto nbytes = static_cast<std::streamsize>(e.end - e.begin);
  if (!in || (nbytes > 0 && !in.read(static_cast<char*>(raw.data_ptr()), nbytes))) {
    bad(file.path, "tensor " + in_quotes(name) + " cannot be read (file truncated?)");
  }
  return type == at::kFloat ? raw : raw.to(at::kFloat);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).to(at::kFloat).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(c);
  }
  std::string h = header.dump();
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  bytes += h;
  for (const auto& c : data) bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * 4);
  write_file_atomic(path, bytes);
}

}  // namespace stylize
