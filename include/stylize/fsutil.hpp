// Small filesystem helpers shared by every writer: nothing half-written ever appears at a final path.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stylize {

// A file written in two steps, so that several outputs appear together or not at all: the
// constructor writes the bytes to a temporary file in the folder of the file `path` names (a
// symbolic link is followed: the file it points to is replaced, the link stays), fsynced; commit()
// renames it into place. Destroyed uncommitted, the temporary file is removed and `path` is untouched.
// A path that names a stream rather than a file — "-" (standard output), /dev/stdout, /dev/fd/N, a
// device such as /dev/null, a FIFO — cannot be replaced: its bytes are held and written to it, in
// place, by commit(). Throws OutputError (the path, why, what to do) from either step.
class StagedFile {
 public:
  StagedFile(const std::string& path, const void* data, std::size_t size);
  StagedFile(const std::string& path, const std::string& text) : StagedFile(path, text.data(), text.size()) {}
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();
  void commit();

 private:
  std::string path_;      // as given, for messages
  std::string target_;    // the file written: path_ with its symbolic links followed
  std::string temp_;      // the temporary file, "" once renamed or for a stream
  int stream_fd_ = -1;    // a stream that is one of this process's descriptors (not closed here)
  std::string held_;      // a stream's bytes until commit()
};

// Writes `size` bytes to `path` atomically: StagedFile(path, ...).commit().
void write_file_atomic(const std::string& path, const void* data, std::size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// Throws OutputError unless the folder that would hold `path` (its symbolic links followed) exists
// and is writable. A stream (see StagedFile) passes.
void check_output_folder(const std::string& path);

// `path` as one word a POSIX shell reads back as it is, for a command a message suggests
// ("mkdir -p 'my photos'"): itself when it holds only [A-Za-z0-9_./+,:=@%-], otherwise in single
// quotes; with a control character or a single quote in it, bash's $'...' (ansi_c_string).
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
