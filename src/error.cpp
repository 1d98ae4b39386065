#include "stylize/error.hpp"

#include <c10/util/Exception.h>

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

ErrorReport error_report(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return {err.code(), err.what()};
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
