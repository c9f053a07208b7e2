#pragma once

// Internal to common/crypto: splitting PEM text into blocks and decoding private-key blocks.
// Not part of the library's public API.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto::internal {

struct PemBlock {
  std::string name;    // "CERTIFICATE", "PRIVATE KEY", ...
  std::string header;  // RFC 1421 headers ("Proc-Type: ..."), usually empty
  std::string data;    // the decoded DER
};

// True when `text` looks like PEM (holds a "-----BEGIN " line).
bool LooksLikePem(absl::string_view text);

// Every PEM block of `text`, in order; text between blocks is ignored. InvalidArgument when a
// block is truncated or its base64 is malformed.
absl::StatusOr<std::vector<PemBlock>> ReadPemBlocks(absl::string_view text);

bool IsCertificateBlock(absl::string_view name);
bool IsPrivateKeyBlock(absl::string_view name);

// Decodes a private-key block (PKCS#8, encrypted PKCS#8, traditional RSA / EC, with or without
// legacy PEM encryption). An encrypted key without `password`: FailedPrecondition. A password
// that does not decrypt it, or an undecodable key: InvalidArgument. Messages never contain the
// password.
absl::StatusOr<EvpPkeyPtr> DecodePrivateKeyBlock(const PemBlock& block,
                                                 const std::optional<std::string>& password);

// A pem_password_cb: `u` points to a const std::string password, or is null (then the callback
// refuses, so OpenSSL never prompts on a terminal).
int PasswordCallback(char* buf, int size, int rwflag, void* u);

}  // namespace certfleet::common::crypto::internal
