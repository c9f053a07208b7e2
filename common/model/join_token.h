#pragma once

// Join tokens: "cfjt1.<secret>.<pin>", where <secret> is 32 random bytes in base64url and <pin>
// is the SHA-256 (uppercase hex) of the controller's root CA certificate. The controller stores
// only the SHA-256 of <secret>; the agent uses <pin> to authenticate the controller on its
// very first connection.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::common::model {

struct JoinToken {
  std::string secret;
  std::string ca_pin;
};

// InvalidArgument (without echoing the token, which is a secret) when `token` is not of the
// form above.
absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view token);
std::string FormatJoinToken(const JoinToken& token);

}  // namespace certfleet::common::model
