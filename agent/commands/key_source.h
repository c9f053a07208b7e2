#pragma once

#include "absl/status/statusor.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::agent::commands {

// Where a renew command gets the RSA key it stores on the host. The agent leaves
// CommandRunner::Deps::keys null and every renew generates a fresh key on the host; the fleet
// simulator passes a pool of pre-generated keys, so that key generation does not dominate a
// benchmark of thousands of renewals.
//
// Thread-safety: implementations must be safe to call from several threads.
class KeySource {
 public:
  virtual ~KeySource() = default;

  // A private RSA key of `bits` bits that the caller owns. InvalidArgument for a size
  // common::crypto::GenerateRsaKey refuses; Internal when OpenSSL fails.
  virtual absl::StatusOr<common::crypto::EvpPkeyPtr> RsaKey(int bits) = 0;
};

}  // namespace certfleet::agent::commands
