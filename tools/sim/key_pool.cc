#include "tools/sim/key_pool.h"

#include <openssl/evp.h>

#include <algorithm>
#include <utility>

#include "common/crypto/keys.h"

namespace certfleet::sim {

KeyPool::KeyPool(int size) : size_(std::max(size, 1)) {}

absl::StatusOr<KeyPool::Keys*> KeyPool::KeysOfLocked(int bits) {
  auto it = by_bits_.find(bits);
  if (it != by_bits_.end()) return &it->second;
  Keys keys;
  for (int i = 0; i < size_; ++i) {
    absl::StatusOr<common::crypto::EvpPkeyPtr> key = common::crypto::GenerateRsaKey(bits);
    if (!key.ok()) return key.status();
    keys.keys.push_back(std::move(*key));
  }
  return &by_bits_.emplace(bits, std::move(keys)).first->second;
}

absl::Status KeyPool::Prepare(int bits) {
  absl::MutexLock lock(&mu_);
  return KeysOfLocked(bits).status();
}

absl::StatusOr<common::crypto::EvpPkeyPtr> KeyPool::RsaKey(int bits) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Keys*> keys = KeysOfLocked(bits);
  if (!keys.ok()) return keys.status();
  EVP_PKEY* key = (*keys)->keys[(*keys)->next++ % (*keys)->keys.size()].get();
  if (EVP_PKEY_up_ref(key) != 1) return absl::InternalError("EVP_PKEY_up_ref failed");
  return common::crypto::EvpPkeyPtr(key);
}

}  // namespace certfleet::sim
