// Reading and writing the safetensors format: 8-byte little-endian header length, a JSON header
// mapping tensor names to {dtype, shape, data_offsets}, an optional "__metadata__" object of strings,
// then the raw little-endian data. Every malformed file raises WeightsError naming file and tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stylize {

struct SafetensorsEntry {
  std::string dtype;            // "F32", "F16", "BF16", ... as written in the file
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

struct SafetensorsFile {
  std::string path;
  uint64_t file_size = 0;
  uint64_t data_start = 0;  // 8 + header length
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses and validates the header: length within the file, JSON well-formed, every entry's dtype
// known, offsets in bounds and consistent with shape × dtype size. Tensor data is not read.
SafetensorsFile read_safetensors_header(const std::string& path);

// The same validation for a header already in memory (a ranged download): `header` is the JSON
// text, `file_size` the whole file's size; `path` names it in messages.
SafetensorsFile parse_safetensors_header(const std::string& header, uint64_t file_size, const std::string& path);

// A tensor as float32 from `data`, the start of the data section (or a buffer standing for it).
at::Tensor safetensors_tensor_from_bytes(const SafetensorsFile& file, const std::string& name, const char* data);

// Reads one tensor as float32 on the CPU (F32, F16 and BF16 are converted). Throws WeightsError
// if the name is absent, the dtype is not floating point, or the file is shorter than the header says.
at::Tensor read_safetensors_tensor(const SafetensorsFile& file, const std::string& name);

// Writes tensors (any float dtype, converted to contiguous F32) with string metadata, atomically.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace stylize
