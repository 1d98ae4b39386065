// Errors thrown by stylize's library code, each carrying the process exit code the CLI maps it to.
// Library code throws and never exits; only src/cli decides how a process ends.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace stylize {

// Documented in README.md ("Exit codes"). Values are part of the CLI contract: never renumber.
enum class ExitCode : int {
  ok = 0,
  internal = 1,      // a bug or an unexpected library failure
  usage = 2,         // bad flags, unknown layer names, out-of-range numbers
  input = 3,         // an input image is missing, unreadable, corrupt, or too large
  weights = 4,       // the weights file is missing or invalid
  output = 5,        // the output cannot be written (folder missing, not writable, unknown extension)
  device = 6,        // the requested device is not available
  resources = 7,     // out of memory
  partial = 8,       // batch: some jobs failed, the others finished
  nothing_done = 9,  // batch: no job could run
  network = 10,      // weights fetch: download failed or checksum mismatch; Redis (--queue) unreachable
  interrupted = 130  // SIGINT: stopped early (the best image so far was still written)
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

struct UsageError : Error {
  explicit UsageError(const std::string& m) : Error(ExitCode::usage, m) {}
};
struct InputError : Error {
  explicit InputError(const std::string& m) : Error(ExitCode::input, m) {}
};
struct WeightsError : Error {
  explicit WeightsError(const std::string& m) : Error(ExitCode::weights, m) {}
};
struct OutputError : Error {
  explicit OutputError(const std::string& m) : Error(ExitCode::output, m) {}
};
struct DeviceError : Error {
  explicit DeviceError(const std::string& m) : Error(ExitCode::device, m) {}
};
struct ResourceError : Error {
  explicit ResourceError(const std::string& m) : Error(ExitCode::resources, m) {}
};
struct NetworkError : Error {
  explicit NetworkError(const std::string& m) : Error(ExitCode::network, m) {}
};

// Engine messages name settings by their request field ("style_blend", "lbfgs_history"), never by
// a front-end's word for it: field("style_blend") marks the name in the message, and render_fields
// turns every marked name into the front-end's word: "--style-blend" on the command line, 'style_blend'
// for a job-file key or an HTTP form field.
//
// A marker is a backtick-quoted identifier ([A-Za-z0-9_]). User text never makes one: in_quotes
// doubles its backticks and render_fields turns a doubled backtick back into one, so a file named
// "my `best` photo.jpg" reads as it is; a lone backtick, or a pair around anything but an
// identifier, is left as it is.
enum class FieldWords { flag, key };
std::string field(const std::string& name);  // "`name`"; a name that is no identifier: in_quotes(name)
std::string render_fields(const std::string& message, FieldWords words);

// What any exception means for whoever reports it: its exit code and one line without a backtrace,
// its field names rendered in `words`. stylize::Error keeps its own code; LibTorch's out-of-memory
// errors (CPU or CUDA) and std::bad_alloc are `resources` ("out of memory: ..."); other LibTorch
// errors and std::exceptions are `internal`, with the first line of their text. The CLI, batch jobs
// and serve jobs all report exceptions through this.
struct ErrorReport {
  ExitCode code = ExitCode::internal;
  std::string message;
};
ErrorReport error_report(const std::exception_ptr& e, FieldWords words = FieldWords::key);
// e.what() with its field markers rendered as request keys ('tile'): the words of the HTTP API and
// of the server's log lines, whatever the exception's type.
std::string key_words(const std::exception& e);

// Quotes a user-supplied path or name for messages: 'a.jpg'. Safe for render_fields (backticks
// doubled, see above) and one line whatever the name holds: a name with a control character or a
// single quote is written as bash's ANSI-C string ($'it\'s.jpg' pastes back into a shell), $'a\nb.jpg', its control characters as \n, \r, \t or \xNN,
// UTF-8's C1 controls as their two bytes \xc2\xNN, a backslash as \\ and a quote as \' (a
// terminal is never sent an escape sequence, and 'a\nb.jpg' is a name with a backslash in it).
std::string in_quotes(const std::string& s);
// The escapes of in_quotes without quotes and without $'...' (backslashes stay as they are, a C1
// control reads \u00NN): text put into a message that is rendered later and must read as it is (a
// message already rendered in other words, user text quoted otherwise, JSON that escapes its own).
std::string as_literal(const std::string& s);
// Whether `s` holds a control character (C0, DEL, or UTF-8's C1): in_quotes writes it as $'...'.
bool has_control_characters(const std::string& s);
// `s` as bash's ANSI-C string, $'...', for a shell command a message suggests: control characters,
// backslashes and quotes escaped as in_quotes does, backticks as they are (put the command into a
// message through as_literal).
std::string ansi_c_string(const std::string& s);

}  // namespace stylize
