#pragma once

// Parsers for certfleet-sim's command-line values that CLI11 cannot check by itself. Pure
// functions; main.cc is the only caller.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::sim {

// The most addresses --sources may name.
inline constexpr int kMaxSources = 256;

// "127.0.0.1-127.0.0.8" (an inclusive IPv4 range), "127.0.0.1,127.0.0.5" (a list) or one
// address, to the IPv4 addresses in order. InvalidArgument naming the text for anything else,
// a range that runs backwards, or more than kMaxSources addresses.
absl::StatusOr<std::vector<std::string>> ParseSources(absl::string_view text);

// "500/s" or "500": connections per second, > 0. "0" means no limit (returns 0).
// InvalidArgument naming the text otherwise.
absl::StatusOr<double> ParseRate(absl::string_view text);

// "HOST:PORT" or "[V6]:PORT" to host (without brackets) and port (1..65535). InvalidArgument
// naming the text otherwise.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(absl::string_view address);

// True for a dotted-quad IPv4 literal.
bool IsIpv4Literal(absl::string_view host);

// The gRPC target for `host`:`port`: "ipv4:A.B.C.D:PORT" for an IPv4 literal (no resolver
// involved), "ipv6:[H]:PORT" for an IPv6 literal, else "dns:///HOST:PORT".
std::string GrpcTarget(absl::string_view host, int port);

}  // namespace certfleet::sim
