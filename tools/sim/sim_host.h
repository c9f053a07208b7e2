#pragma once

// The simulated hosts: each is an agent::platform::MemoryHostPlatform seeded like a healthy SCOM
// host, with certificates from the simulator's own "enterprise" CA.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "common/crypto/openssl_types.h"
#include "common/time/clock.h"
#include "tools/sim/key_pool.h"

namespace certfleet::sim {

// Builds seeded hosts. The CA is a P-256 root made at start (ECDSA signs thousands of host
// certificates in well under a second; SCOM judges the leaf's key and hash, which are RSA-2048
// and SHA-256). The host keys come from `keys` (see KeyPool).
//
// Thread-safe after Create: NewHost may run on several threads.
class HostFactory {
 public:
  // Makes the CA. Internal when OpenSSL fails.
  static absl::StatusOr<std::unique_ptr<HostFactory>> Create(common::Clock& clock, KeyPool& keys);

  // A host for `fqdn`: the CA's root in Root; `certificates` (at least 1) SCOM certificates for
  // `fqdn` in My with their keys linked (RSA-2048, SHA-256, digital signature + key
  // encipherment, server + client auth); the first, valid for a year, bound; the others end a
  // day earlier each, so the bound one stays the best. The HealthService is restarted once, so
  // the log holds the 20053 of a healthy host. Internal when the seeded host does not load its
  // certificate (a bug in the seeding); other errors are OpenSSL's or the platform's.
  absl::StatusOr<std::unique_ptr<agent::platform::MemoryHostPlatform>> NewHost(
      const std::string& fqdn, int certificates);

 private:
  HostFactory(common::Clock& clock, KeyPool& keys) : clock_(clock), keys_(keys) {}

  common::Clock& clock_;
  KeyPool& keys_;
  common::crypto::EvpPkeyPtr ca_key_;
  common::crypto::X509Ptr ca_;
  std::string ca_der_;
};

}  // namespace certfleet::sim
