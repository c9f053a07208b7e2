#include "common/model/join_token.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace certfleet::common::model {

absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(absl::StripAsciiWhitespace(token), '.');
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed join token (", why,
                     "); expected the text printed by 'certfleetctl tokens create'"));
  };
  if (parts.size() != 3 || parts[0] != "cfjt1") return bad("wrong format");
  if (parts[1].size() < 32) return bad("secret too short");
  for (char c : parts[1]) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return bad("secret is not base64url");
  }
  if (parts[2].size() != 64) return bad("CA pin is not a SHA-256");
  for (char c : parts[2]) {
    if (!absl::ascii_isxdigit(c)) return bad("CA pin is not hex");
  }
  return JoinToken{std::string(parts[1]), absl::AsciiStrToUpper(parts[2])};
}

std::string FormatJoinToken(const JoinToken& token) {
  return absl::StrCat("cfjt1.", token.secret, ".", token.ca_pin);
}

}  // namespace certfleet::common::model
