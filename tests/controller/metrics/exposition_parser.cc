#include "tests/controller/metrics/exposition_parser.h"

#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace certfleet::controller::metrics {
namespace {

bool IsName(absl::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool ParseValue(absl::string_view text, double* value) {
  if (text == "+Inf") {
    *value = std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "-Inf") {
    *value = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "NaN") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (text.empty()) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return false;
    }
  }
  return absl::SimpleAtod(text, value);
}

// Parses `{a="x",b="y"}` at the start of `*rest`, consuming it.
bool ParseLabels(absl::string_view* rest, std::map<std::string, std::string>* labels) {
  if (!absl::ConsumePrefix(rest, "{")) return true;  // no labels
  if (absl::ConsumePrefix(rest, "}")) return false;  // "{}" is not what we write
  while (true) {
    const size_t eq = rest->find('=');
    if (eq == absl::string_view::npos) return false;
    const std::string name(rest->substr(0, eq));
    if (!IsName(name, false) || labels->count(name) > 0) return false;
    rest->remove_prefix(eq + 1);
    if (!absl::ConsumePrefix(rest, "\"")) return false;
    std::string value;
    while (true) {
      if (rest->empty()) return false;
      const char c = rest->front();
      rest->remove_prefix(1);
      if (c == '"') break;
      if (c == '\n') return false;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (rest->empty()) return false;
      const char escaped = rest->front();
      rest->remove_prefix(1);
      if (escaped == '\\') {
        value += '\\';
      } else if (escaped == '"') {
        value += '"';
      } else if (escaped == 'n') {
        value += '\n';
      } else {
        return false;
      }
    }
    (*labels)[name] = std::move(value);
    if (absl::ConsumePrefix(rest, "}")) return true;
    if (!absl::ConsumePrefix(rest, ",")) return false;
  }
}

bool UnescapeHelp(absl::string_view text, std::string* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      *out += text[i];
      continue;
    }
    if (++i == text.size()) return false;
    if (text[i] == '\\') {
      *out += '\\';
    } else if (text[i] == 'n') {
      *out += '\n';
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<ParsedFamily>> ParseExposition(absl::string_view text) {
  if (!text.empty() && !absl::EndsWith(text, "\n")) {
    return absl::InvalidArgumentError("the exposition does not end with a newline");
  }
  std::vector<ParsedFamily> families;
  std::set<std::string> names;
  bool expect_type = false;
  int number = 0;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty()) lines.pop_back();  // after the final '\n'
  for (absl::string_view line : lines) {
    ++number;
    const auto bad = [number, line](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", number, " \"", line, "\": ", why));
    };
    if (line.empty()) return bad("blank line");
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "# HELP ")) {
      if (expect_type) return bad("HELP where TYPE was expected");
      const size_t space = rest.find(' ');
      ParsedFamily family;
      family.name = std::string(rest.substr(0, space));
      if (!IsName(family.name, true)) return bad("invalid metric name");
      if (!names.insert(family.name).second) return bad("family repeated");
      if (space != absl::string_view::npos && !UnescapeHelp(rest.substr(space + 1), &family.help)) {
        return bad("invalid escape in HELP");
      }
      families.push_back(std::move(family));
      expect_type = true;
      continue;
    }
    if (absl::ConsumePrefix(&rest, "# TYPE ")) {
      if (!expect_type) return bad("TYPE without HELP");
      const std::vector<std::string> parts = absl::StrSplit(rest, ' ');
      if (parts.size() != 2 || parts[0] != families.back().name) return bad("TYPE mismatch");
      if (parts[1] != "counter" && parts[1] != "gauge" && parts[1] != "histogram") {
        return bad("unknown type");
      }
      families.back().type = parts[1];
      expect_type = false;
      continue;
    }
    if (absl::StartsWith(line, "#")) return bad("unexpected comment");
    if (families.empty() || expect_type) return bad("sample outside a family");
    ParsedFamily& family = families.back();

    ParsedSample sample;
    size_t name_end = 0;
    while (name_end < rest.size() && rest[name_end] != '{' && rest[name_end] != ' ') ++name_end;
    sample.name = std::string(rest.substr(0, name_end));
    if (!IsName(sample.name, true)) return bad("invalid sample name");
    rest.remove_prefix(name_end);
    if (!ParseLabels(&rest, &sample.labels)) return bad("invalid labels");
    if (!absl::ConsumePrefix(&rest, " ")) return bad("no space before the value");
    const std::vector<absl::string_view> fields = absl::StrSplit(rest, ' ');
    if (fields.size() > 2) return bad("trailing text");
    if (!ParseValue(fields[0], &sample.value)) return bad("invalid value");
    if (fields.size() == 2) {
      int64_t timestamp = 0;
      if (!absl::SimpleAtoi(fields[1], &timestamp)) return bad("invalid timestamp");
    }

    if (family.type == "histogram") {
      if (sample.name == family.name + "_bucket") {
        if (sample.labels.count("le") == 0) return bad("bucket without le");
        double le = 0;
        if (!ParseValue(sample.labels["le"], &le)) return bad("invalid le");
      } else if (sample.name != family.name + "_sum" && sample.name != family.name + "_count") {
        return bad("sample name does not belong to the histogram");
      }
    } else if (sample.name != family.name) {
      return bad("sample name differs from its family's");
    }
    family.samples.push_back(std::move(sample));
  }
  if (expect_type) return absl::InvalidArgumentError("the last family has no TYPE line");
  return families;
}

}  // namespace certfleet::controller::metrics
