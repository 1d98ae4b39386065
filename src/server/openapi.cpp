#include "openapi.hpp"

#include <algorithm>

#include <cmath>

namespace stylize::serve {
namespace {

// A field's schema from the shape of its text form (request.hpp's value_name).
nlohmann::json field_schema(const RequestField& f, const StylizeRequest& defaults) {
  nlohmann::json schema;
  const std::string& v = f.value_name;
  if (f.is_switch) {
    schema["type"] = "boolean";
  } else if (v.find('|') != std::string::npos) {
    schema["type"] = "string";
    nlohmann::json words = nlohmann::json::array();
    for (size_t b = 0, e; b <= v.size(); b = e + 1) {
      e = v.find('|', b);
      if (e == std::string::npos) e = v.size();
      words.push_back(v.substr(b, e - b));
    }
    schema["enum"] = words;
  } else if (v.find(',') != std::string::npos) {
    schema["type"] = "string";
    schema["pattern"] = "^[^,]+(,[^,]+)*$";
  } else if (v == "N" || v == "PX") {
    schema["type"] = "integer";
  } else {
    schema["type"] = "number";
  }
  if (f.range.numeric && (schema["type"] == "integer" || schema["type"] == "number")) {
    schema["minimum"] = f.range.min;
    if (f.range.open_min) schema["exclusiveMinimum"] = true;
    if (std::isfinite(f.range.max)) schema["maximum"] = f.range.max;
  }
  std::string description = f.help;
  if (v.find(',') != std::string::npos) description += "; comma-separated (" + v + ")";
  const std::string def = field_text(defaults, f.name);
  if (!def.empty()) description += "; this server's default: " + def;
  schema["description"] = description;
  return schema;
}

}  // namespace

nlohmann::json openapi_document(const StylizeRequest& defaults, const ServeOptions& limits) {
  nlohmann::json doc = nlohmann::json::parse(kOpenApi);
  auto& props = doc["components"]["schemas"]["JobRequest"]["properties"];
  for (const RequestField& f : request_fields()) {
    if (f.name == "init") {
      props[f.name] = {{"type", "string"}, {"enum", {"content", "random", "style"}}, {"description", f.help}};
      continue;
    }
    props[f.name] = field_schema(f, defaults);
  }
  auto& size = props["size"];
  size["maximum"] = limits.max_size;
  size["description"] = size["description"].get<std::string>() + " (this server: at most " +
                        std::to_string(limits.max_size) + ", POST /v1/stylize at most " +
                        std::to_string(std::min(limits.sync_max_size, limits.max_size)) + "; 422 beyond)";
  auto& iterations = props["iterations"];
  iterations["description"] = iterations["description"].get<std::string>() + " (this server: at most " +
                              std::to_string(limits.max_iterations) + " per scale, POST /v1/stylize at most " +
                              std::to_string(std::min(limits.sync_max_iterations, limits.max_iterations)) +
                              "; 422 beyond)";
  return doc;
}

}  // namespace stylize::serve
