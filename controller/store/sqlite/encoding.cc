#include "controller/store/sqlite/encoding.h"

#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::store {
namespace {

constexpr int64_t kInfiniteFutureMicros = std::numeric_limits<int64_t>::max();
constexpr int64_t kInfinitePastMicros = std::numeric_limits<int64_t>::min();

void AppendNetstring(absl::string_view value, std::string& out) {
  absl::StrAppend(&out, value.size(), ":", value, ",");
}

// Reads one netstring from the front of `in` and removes it.
absl::StatusOr<absl::string_view> ReadNetstring(absl::string_view& in) {
  constexpr size_t kMaxDigits = 10;  // lengths below 10 GB; a blob is at most 1 GB anyway
  size_t colon = in.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > kMaxDigits) {
    return absl::DataLossError("malformed netstring length");
  }
  uint64_t length = 0;
  for (char c : in.substr(0, colon)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return absl::DataLossError("malformed netstring length");
    }
    length = length * 10 + static_cast<uint64_t>(c - '0');
  }
  in.remove_prefix(colon + 1);
  if (length >= in.size() || in[length] != ',') {
    return absl::DataLossError("truncated netstring");
  }
  absl::string_view value = in.substr(0, length);
  in.remove_prefix(length + 1);
  return value;
}

}  // namespace

int64_t TimeToMicros(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kInfiniteFutureMicros;
  if (t == absl::InfinitePast()) return kInfinitePastMicros;
  return absl::ToUnixMicros(t);
}

absl::Time MicrosToTime(int64_t micros) {
  if (micros == kInfiniteFutureMicros) return absl::InfiniteFuture();
  if (micros == kInfinitePastMicros) return absl::InfinitePast();
  return absl::FromUnixMicros(micros);
}

std::string EncodeStringList(const std::vector<std::string>& list) {
  std::string out;
  for (const std::string& value : list) AppendNetstring(value, out);
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeStringList(absl::string_view encoded) {
  std::vector<std::string> list;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view value, ReadNetstring(encoded));
    list.emplace_back(value);
  }
  return list;
}

std::string EncodeStringMap(const std::map<std::string, std::string>& map) {
  std::string out;
  for (const auto& [key, value] : map) {
    AppendNetstring(key, out);
    AppendNetstring(value, out);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> DecodeStringMap(absl::string_view encoded) {
  std::map<std::string, std::string> map;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view key, ReadNetstring(encoded));
    if (encoded.empty()) return absl::DataLossError("map key without a value");
    CF_ASSIGN_OR_RETURN(absl::string_view value, ReadNetstring(encoded));
    if (!map.emplace(std::string(key), std::string(value)).second) {
      return absl::DataLossError(absl::StrCat("duplicate map key '", key, "'"));
    }
  }
  return map;
}

}  // namespace certfleet::controller::store
