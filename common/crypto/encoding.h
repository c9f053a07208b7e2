#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::common::crypto {

// Uppercase hex of `bytes` ("0A1B...").
std::string HexUpper(absl::string_view bytes);
// Decodes hex (either case, optional spaces between bytes). InvalidArgument on other text.
absl::StatusOr<std::string> HexDecode(absl::string_view hex);

// Uppercase hex SHA-1 / SHA-256 digests of `data`.
std::string Sha1Hex(absl::string_view data);
std::string Sha256Hex(absl::string_view data);
// Raw SHA-256 digest (32 bytes).
std::string Sha256(absl::string_view data);

// `n` bytes from OpenSSL's CSPRNG. Crashes only if the CSPRNG itself fails (broken invariant).
std::string RandomBytes(size_t n);

// Base64url without padding (RFC 4648 section 5).
std::string Base64UrlEncode(absl::string_view bytes);

}  // namespace certfleet::common::crypto
