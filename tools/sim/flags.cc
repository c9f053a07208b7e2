#include "tools/sim/flags.h"

#include <arpa/inet.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace certfleet::sim {
namespace {

bool ParseIpv4(absl::string_view text, uint32_t* out) {
  in_addr addr;
  if (inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) return false;
  *out = ntohl(addr.s_addr);
  return true;
}

std::string FormatIpv4(uint32_t value) {
  return absl::StrCat(value >> 24, ".", (value >> 16) & 0xff, ".", (value >> 8) & 0xff, ".",
                      value & 0xff);
}

}  // namespace

bool IsIpv4Literal(absl::string_view host) {
  uint32_t unused;
  return ParseIpv4(host, &unused);
}

absl::StatusOr<std::vector<std::string>> ParseSources(absl::string_view text) {
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat("'", text,
                   "' is not an IPv4 range (127.0.0.1-127.0.0.8), list (127.0.0.1,127.0.0.2) or "
                   "address"));
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::vector<absl::string_view> ends = absl::StrSplit(part, '-');
    uint32_t first = 0;
    uint32_t last = 0;
    if (ends.size() == 1) {
      if (!ParseIpv4(ends[0], &first)) return bad;
      last = first;
    } else if (ends.size() == 2) {
      if (!ParseIpv4(absl::StripAsciiWhitespace(ends[0]), &first) ||
          !ParseIpv4(absl::StripAsciiWhitespace(ends[1]), &last) || last < first) {
        return bad;
      }
    } else {
      return bad;
    }
    if (last - first >= static_cast<uint32_t>(kMaxSources) ||
        out.size() + (last - first + 1) > static_cast<size_t>(kMaxSources)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "' names more than ", kMaxSources, " addresses"));
    }
    for (uint64_t a = first; a <= last; ++a) out.push_back(FormatIpv4(static_cast<uint32_t>(a)));
  }
  if (out.empty()) return bad;
  return out;
}

absl::StatusOr<double> ParseRate(absl::string_view text) {
  absl::string_view number = absl::StripAsciiWhitespace(text);
  absl::ConsumeSuffix(&number, "/s");
  double rate = 0;
  if (!absl::SimpleAtod(number, &rate) || !(rate >= 0) || rate > 1e7) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a rate (connections per second, e.g. 500/s)"));
  }
  return rate;
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(absl::string_view address) {
  const absl::Status bad =
      absl::InvalidArgumentError(absl::StrCat("'", address, "' is not HOST:PORT"));
  std::string host;
  absl::string_view port_text;
  if (absl::StartsWith(address, "[")) {
    size_t close = address.find("]:");
    if (close == absl::string_view::npos) return bad;
    host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos || address.find(':') != colon) return bad;
    host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) {
    return bad;
  }
  return std::make_pair(std::move(host), port);
}

std::string GrpcTarget(absl::string_view host, int port) {
  if (IsIpv4Literal(host)) return absl::StrCat("ipv4:", host, ":", port);
  in6_addr v6;
  if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) == 1) {
    return absl::StrCat("ipv6:[", host, "]:", port);
  }
  return absl::StrCat("dns:///", host, ":", port);
}

}  // namespace certfleet::sim
