// One `batch --job-file` line, read exactly as batch reads it (parse_job_line over the default
// request): every key, every field's text, validate(). Refusals are stylize errors or the JSON
// library's; anything else escaping is a finding.
#include <nlohmann/json.hpp>

#include "../src/cli/job_line.hpp"
#include "stylize/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const stylize::StylizeRequest base = stylize::request_defaults(stylize::Preprocessing::caffe);
  try {
    stylize::cli::parse_job_line(std::string(reinterpret_cast<const char*>(data), size), base, {"s.png"}, "");
  } catch (const stylize::Error&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
