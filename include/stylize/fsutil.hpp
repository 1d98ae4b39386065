// Small filesystem helpers shared by every writer: nothing half-written ever appears at a final path.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stylize {

// Writes `size` bytes to `path` atomically: a temporary file in the same folder, fsync, rename.
// On any failure the temporary file is removed and OutputError is thrown; `path` is untouched.
void write_file_atomic(const std::string& path, const void* data, std::size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// Throws OutputError unless the folder that would hold `path` exists and is writable.
void check_output_folder(const std::string& path);

// `path` as one word a POSIX shell reads back as it is, for a command a message suggests
// ("mkdir -p 'my photos'"): itself when it holds only [A-Za-z0-9_./+,:=@%-], otherwise in single
// quotes (a quote inside written '\''); with a control character in it, bash's $'...' (ansi_c_string).
std::string shell_word(const std::string& path);

// Whether two paths name one file: the same device and inode where both exist, otherwise the same
// absolute path once '.', '..' and the symbolic links of its existing folders are resolved.
bool same_file(const std::string& a, const std::string& b);

// Throws OutputError when one of `outputs` would overwrite one of `inputs` or another output. Each
// entry is (what, path) — ("-o", "out.png"), ("the content image", "photo.jpg") — and the message
// names both sides by their `what`. Empty paths and inputs that do not exist are skipped. O((n + m)
// log) file lookups.
using NamedPaths = std::vector<std::pair<std::string, std::string>>;
// `fix` ends the message (default: "give <what> another path").
void check_outputs_spare_inputs(const NamedPaths& outputs, const NamedPaths& inputs, const std::string& fix = "");

// Reads a whole file into `out`. On failure returns false and sets `why` ("no such file", ...),
// so that each caller throws the error class (input, weights) that fits its context.
bool read_file(const std::string& path, std::vector<std::uint8_t>& out, std::string& why);

// Lower-cased extension without the dot ("jpg"), or "" when there is none.
std::string file_extension(const std::string& path);

// "out.png" + 100 -> "out_100.png" (neural-style's naming for intermediate saves).
std::string numbered_path(const std::string& path, long number);

}  // namespace stylize
