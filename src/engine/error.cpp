#include "stylize/error.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <new>

namespace stylize {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool says_out_of_memory(const std::string& what) {
  // CPU: "DefaultCPUAllocator: can't allocate memory"; CUDA: "CUDA out of memory" / "Out of memory".
  return what.find("out of memory") != std::string::npos || what.find("Out of memory") != std::string::npos ||
         what.find("DefaultCPUAllocator") != std::string::npos;
}

}  // namespace

std::string render_fields(const std::string& message, FieldWords words) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    const size_t open = message.find('`', pos);
    const size_t close = open == std::string::npos ? open : message.find('`', open + 1);
    if (close == std::string::npos) return out + message.substr(pos);
    std::string name = message.substr(open + 1, close - open - 1);
    if (words == FieldWords::flag) {
      std::replace(name.begin(), name.end(), '_', '-');
      name = "--" + name;
    } else {
      name = "'" + name + "'";
    }
    out += message.substr(pos, open - pos) + name;
    pos = close + 1;
  }
}

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
    return {ExitCode::internal, std::string("internal error: ") + first_line(err.what())};
  } catch (...) {
    return {ExitCode::internal, "internal error: an exception of unknown type"};
  }
}

}  // namespace stylize
