#pragma once

#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/commands/key_source.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::sim {

// A fixed set of pre-generated RSA keys per key size, handed out round robin (each call returns
// a new reference to a shared key). Generating a 2048-bit RSA key costs tens of milliseconds of
// CPU, which would dominate a benchmark of thousands of renewals or the seeding of thousands of
// simulated hosts; the controller sees only public keys, so sharing a few keys between hosts
// changes nothing it measures. Results made with pooled keys are flagged "key_pool".
//
// Thread-safe. A size is generated in full on its first use (under the pool's lock: concurrent
// callers wait) unless Prepare made it earlier.
class KeyPool final : public agent::commands::KeySource {
 public:
  // `size` keys per key size (at least 1).
  explicit KeyPool(int size);

  // Generates the keys of `bits` now, so that the first RsaKey does not wait. Errors as
  // common::crypto::GenerateRsaKey.
  absl::Status Prepare(int bits);

  // The next key of `bits`. Errors as common::crypto::GenerateRsaKey.
  absl::StatusOr<common::crypto::EvpPkeyPtr> RsaKey(int bits) override;

  int size() const { return size_; }

 private:
  struct Keys {
    std::vector<common::crypto::EvpPkeyPtr> keys;
    size_t next = 0;
  };
  absl::StatusOr<Keys*> KeysOfLocked(int bits) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int size_;
  absl::Mutex mu_;
  std::map<int, Keys> by_bits_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::sim
