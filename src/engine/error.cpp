#include "stylize/error.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <new>

namespace stylize {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool says_out_of_memory(const std::string& what) {
  // CPU: "DefaultCPUAllocator: can't allocate memory"; CUDA: "CUDA out of memory" / "Out of memory";
  // OpenCV (a cv::Exception, a std::exception here): "(-4:Insufficient memory) Failed to allocate".
  return what.find("out of memory") != std::string::npos || what.find("Out of memory") != std::string::npos ||
         what.find("DefaultCPUAllocator") != std::string::npos || what.find("Insufficient memory") != std::string::npos;
}

bool is_identifier(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_c1_control(unsigned char c, unsigned char next) { return c == 0xc2 && next >= 0x80 && next <= 0x9f; }

}  // namespace

bool has_control_characters(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (c < 0x20 || c == 0x7f || is_c1_control(c, next)) return true;
  }
  return false;
}

namespace {

// Control characters written out; with `ansi_c` also a backslash and a single quote, so that
// "$'" + result + "'" is the text as bash reads it, and a C1 control as its two UTF-8 bytes (bash's
// \u needs bash 4.2 and a UTF-8 locale). Backticks doubled for render_fields unless `for_shell`.
std::string escaped(const std::string& s, bool ansi_c, bool for_shell = false) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    const auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (is_c1_control(c, next)) {  // U+0080..U+009F (CSI is U+009B)
      out += std::string(ansi_c ? "\\xc2\\x" : "\\u00") + kHex[next >> 4] + kHex[next & 15];
      ++i;
    } else if (c == '`' && !for_shell) {
      out += "``";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    } else if (ansi_c && (c == '\\' || c == '\'')) {
      out += '\\';
      out += ch;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

std::string as_literal(const std::string& s) { return escaped(s, false); }

// A name with a control character is quoted as bash's $'...' (backslashes and quotes escaped too),
// so it cannot be taken for a name holding the same text: 'two\nlines.jpg' holds a backslash and an
// n, $'two\nlines.jpg' a newline (and pastes into a shell as that name). So is a name with a single
// quote: 'it's.jpg' would not paste back, $'it\'s.jpg' does.
std::string in_quotes(const std::string& s) {
  const bool ansi_c = has_control_characters(s) || s.find('\'') != std::string::npos;
  return ansi_c ? "$'" + escaped(s, true) + "'" : "'" + escaped(s, false) + "'";
}

std::string ansi_c_string(const std::string& s) { return "$'" + escaped(s, true, true) + "'"; }

std::string field(const std::string& name) { return is_identifier(name) ? "`" + name + "`" : in_quotes(name); }

std::string render_fields(const std::string& message, FieldWords words) {
  std::string out;
  size_t pos = 0;
  while (pos < message.size()) {
    const size_t open = message.find('`', pos);
    if (open == std::string::npos) break;
    out += message.substr(pos, open - pos);
    if (open + 1 < message.size() && message[open + 1] == '`') {  // in_quotes's escape
      out += '`';
      pos = open + 2;
      continue;
    }
    const size_t close = message.find('`', open + 1);
    std::string name = close == std::string::npos ? "" : message.substr(open + 1, close - open - 1);
    if (!is_identifier(name)) {  // not a marker: the backtick is text
      out += '`';
      pos = open + 1;
      continue;
    }
    if (words == FieldWords::flag) {
      std::replace(name.begin(), name.end(), '_', '-');
      out += "--" + name;
    } else {
      out += "'" + name + "'";
    }
    pos = close + 1;
  }
  return out + message.substr(pos);  // pos <= size: the rest, or nothing
}

std::string key_words(const std::exception& e) { return render_fields(e.what(), FieldWords::key); }

ErrorReport error_report(const std::exception_ptr& e, FieldWords words) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return {err.code(), render_fields(err.what(), words)};
  } catch (const c10::Error& err) {
    const std::string what = err.what_without_backtrace();
    if (says_out_of_memory(what)) return {ExitCode::resources, "out of memory: " + first_line(what)};
    return {ExitCode::internal, "internal error in LibTorch: " + first_line(what)};
  } catch (const std::bad_alloc&) {
    return {ExitCode::resources, "out of memory"};
  } catch (const std::exception& err) {
    if (says_out_of_memory(err.what())) return {ExitCode::resources, "out of memory: " + first_line(err.what())};
    return {ExitCode::internal, std::string("internal error: ") + first_line(err.what())};
  } catch (...) {
    return {ExitCode::internal, "internal error: an exception of unknown type"};
  }
}

}  // namespace stylize
