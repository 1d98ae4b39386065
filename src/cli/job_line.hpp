// One line of a `batch --job-file`, read and checked without touching a file: {"content": F,
// "style": F | "styles": [F, ...] | "filter": F, "output": NAME, and any request field by its name}.
// Its own unit so that the fuzz target (fuzz/fuzz_job_line.cpp) reads lines exactly as batch does.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "stylize/request.hpp"

namespace stylize::cli {

struct JobLine {
  std::string content, filter, output;
  std::vector<std::string> styles;
  std::map<std::string, std::string> fields;  // request fields as text, by field name ("blend" read as style_blend)
  int size = 0;                               // the job's output size after its fields
};

// `r`: the request the flags make, which the line's fields go over; a line with neither style nor
// filter takes `default_styles`, else `default_filter`. Throws UsageError or FieldError (naming the
// key, for a value of the wrong type too), or nlohmann::json::exception for text that is not JSON.
JobLine parse_job_line(const std::string& line, StylizeRequest r, const std::vector<std::string>& default_styles,
                       const std::string& default_filter);

}  // namespace stylize::cli
