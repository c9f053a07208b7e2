#pragma once

// What the agent reports about its host: every certificate of My, CA and Root described and
// judged, the binding and how it drifted from what SCOM needs, the HealthService's state and
// its recent events. Read through HostPlatform only.

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/platform/event_log.h"
#include "agent/platform/host_platform.h"
#include "agent/platform/service_control.h"
#include "common/model/certificate.h"

namespace certfleet::agent::inventory {

struct ScanOptions {
  // The time validity and EXPIRES_SOON are judged at. Required (take it from the Clock).
  absl::Time now;
  // EXPIRES_SOON when a certificate ends within this long of `now`.
  absl::Duration warn_within = absl::Hours(24 * 30);
  // The newest events to report, at most.
  size_t max_events = 50;
  // Only events written at or after this time are reported.
  absl::Time events_since = absl::InfinitePast();
};

// One certificate of a store.
struct ScannedCertificate {
  std::string store;     // "My", "CA", "Root"
  std::string location;  // the entry's id in its store (lab: file name)
  common::model::CertificateInfo info;
  // model::ProblemName strings. My: common::scom::Evaluate's verdict (fqdn = the host's,
  // chain trust verified, a private key required). CA and Root: always empty; they are not
  // authentication certificates, and the rules (EKU, key usage, IS_CA...) would flag every
  // healthy CA certificate.
  std::vector<std::string> problems;
  // The certificate ChannelCertificateSerialNumber names (My only; at most one is bound).
  bool bound = false;
  // model::DriftName strings that concern this certificate:
  // BOUND_WITHOUT_PRIVATE_KEY (the bound one), RENEWED_NOT_ACTIVE (a better one not bound).
  std::vector<std::string> drift;
};

// An entry that could not be read or described, or a part of the host that could not be read.
struct StoreEntryError {
  std::string store;     // "My", "CA", "Root"; "Registry", "Service", "EventLog" for the rest
  std::string location;  // the entry's id; empty for a whole part
  std::string error;
};

struct HostInventory {
  // My, then CA, then Root; by id within a store.
  std::vector<ScannedCertificate> certificates;
  std::vector<StoreEntryError> errors;
  // ChannelCertificateSerialNumber as stored (uppercase hex); empty when absent.
  std::string channel_serial;
  // Thumbprint of the bound certificate; empty when none is bound.
  std::string bound_thumbprint;
  // Host-level model::DriftName strings, each at most once, in this order:
  // NOT_BOUND | BINDING_NOT_FOUND, BOUND_WITHOUT_PRIVATE_KEY, RENEWED_NOT_ACTIVE.
  std::vector<std::string> drift;
  platform::ServiceState service = platform::ServiceState::kUnknown;
  // Oldest first.
  std::vector<platform::HostEvent> recent_events;
};

// Scans `host`. Each certificate is parsed once.
//
// Binding: the My certificate whose serial common::scom::ChannelSerialMatches the registry
// value (leading zero bytes of the serial ignored); among several, one with a private key.
// Drift:
// - value absent: NOT_BOUND; present but matching no readable My certificate:
//   BINDING_NOT_FOUND;
// - bound certificate without a private key: BOUND_WITHOUT_PRIVATE_KEY (host and certificate);
// - RENEWED_NOT_ACTIVE (host and certificate) for each My certificate that is not bound, whose
//   subject matches the host's FQDN, that has no problem at all, and that would improve the
//   binding: when the bound certificate is usable (no problem other than EXPIRES_SOON) it must
//   end later than the bound one; when nothing usable is bound (not bound, binding not found,
//   or the bound one has another problem) any such certificate qualifies.
// Chain trust of a My certificate: common::crypto::VerifyChain against Root, with CA and the CA
// certificates of My as intermediates, at `now` clamped into the certificate's validity (so an
// expired certificate is EXPIRED, not also CHAIN_UNTRUSTED).
//
// Errors: Unavailable (or the platform's code) when a certificate store cannot be listed.
// An unreadable entry, and a registry, service state or event log that cannot be read, do not
// fail the scan: they are reported in `errors` (and binding drift is not judged without the
// registry; `service` stays kUnknown without the state).
//
// Thread-safety: as safe as `host` (HostPlatform implementations are thread-safe).
absl::StatusOr<HostInventory> ScanHost(platform::HostPlatform& host, const ScanOptions& options);

}  // namespace certfleet::agent::inventory
