#include "job_line.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "stylize/error.hpp"
#include "stylize/fsutil.hpp"
#include "stylize/image/image.hpp"

namespace stylize::cli {
namespace {

// A job-file value as the text set_field() reads: strings as they are, numbers and booleans as JSON
// writes them, arrays comma-joined.
std::string field_text_of(const std::string& key, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (v.is_array() && !v.empty()) {
    std::string out;
    for (const auto& e : v) {
      if (!(e.is_string() || e.is_number())) break;
      out += (out.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    }
    if (std::count(out.begin(), out.end(), ',') + 1 == static_cast<long>(v.size())) return out;
  }
  throw FieldError(key, FieldError::syntax, field(key) + " must be a value or a list of values, got " + as_literal(v.dump()));
}

// A file name under `key`: a JSON string, or a refusal that names the key and what it got.
std::string file_name_of(const std::string& key, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  throw UsageError("\"" + key + "\" must be a file name (a JSON string), got " + as_literal(v.dump()));
}

}  // namespace

JobLine parse_job_line(const std::string& line, StylizeRequest r, const std::vector<std::string>& default_styles,
                       const std::string& default_filter) {
  JobLine job;
  // A key given twice would be kept silently as its last value (JSON leaves it to the reader):
  // refused, as serve refuses a form field sent twice.
  std::set<std::string> keys;
  std::string twice;
  const auto j = nlohmann::json::parse(line, [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second &&
        twice.empty()) {
      twice = parsed.get<std::string>();
    }
    return true;
  });
  if (!twice.empty()) throw UsageError("key " + in_quotes(twice) + " is given more than once in the line; give it once");
  if (!j.is_object()) throw UsageError("a job line must be a JSON object");
  if (!j.contains("content")) throw UsageError("a job line needs \"content\": the photo's file name");
  job.content = file_name_of("content", j.at("content"));
  for (const auto& [key, value] : j.items()) {
    if (key == "content") continue;
    if (key == "styles") {
      if (!value.is_array() || value.empty()) {
        throw UsageError("\"styles\" must be a list of file names, got " + as_literal(value.dump()));
      }
      for (const auto& s : value) job.styles.push_back(file_name_of("styles", s));
    } else if (key == "style") {
      job.styles.push_back(file_name_of(key, value));
    } else if (key == "filter") {
      job.filter = file_name_of(key, value);
    } else if (key == "output") {
      job.output = file_name_of(key, value);
      if (job.output.empty()) throw UsageError("\"output\" is empty; give a file name, or leave the key out for --name's");
    } else {
      const std::string name = key == "blend" ? "style_blend" : key;  // "blend": the older key
      if (job.fields.count(name)) throw UsageError("\"blend\" and \"style_blend\" are one setting; give one of them");
      job.fields[name] = field_text_of(key, value);
      set_field(r, name, job.fields[name]);
    }
  }
  if (!job.filter.empty() && !job.styles.empty()) throw UsageError("a job has a style or a filter, not both");
  if (job.styles.empty() && job.filter.empty()) job.styles = default_styles;
  if (job.styles.empty() && job.filter.empty()) job.filter = default_filter;
  if (job.styles.empty() && job.filter.empty()) {
    throw UsageError("no style given (set \"style\" or \"filter\", or give --style or --filter)");
  }
  validate(r);
  std::vector<std::string> given;
  for (const auto& [name, text] : job.fields) given.push_back(name);
  check_given_fields_apply(r, given);  // the flags' L-BFGS settings under a line's adam are defaults
  check_style_blend_count(r, job.styles.size());
  if (job.output.find('/') != std::string::npos) throw UsageError("output must be a file name, not a path");
  if (!job.output.empty() && !is_writable_image_extension(file_extension(job.output))) {
    throw UsageError("output " + in_quotes(job.output) + " has no image extension this build writes; use .png, .jpg, "
                     ".webp, .tif or .bmp");
  }
  job.size = r.size;
  return job;
}

}  // namespace stylize::cli
