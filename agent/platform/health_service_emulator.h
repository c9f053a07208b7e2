#pragma once

// The part of SCOM's HealthService that certfleet must reproduce: on start it reads
// ChannelCertificateSerialNumber, looks the certificate up in LocalMachine\My, checks it and
// writes exactly one "OpsMgr Connector" event (SCOM.md). Both emulated platforms (lab,
// memory) restart through this class, so they behave the same by construction.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/platform/binding_registry.h"
#include "agent/platform/certificate_store.h"
#include "agent/platform/event_log.h"
#include "agent/platform/service_control.h"
#include "common/time/clock.h"

namespace certfleet::agent::platform {

// Event ids of the "OpsMgr Connector" source that the emulated HealthService writes.
inline constexpr int kEventCertificateLoaded = 20053;    // Information
inline constexpr int kEventKeyUsage = 20049;             // Error
inline constexpr int kEventEnhancedKeyUsage = 20050;     // Error
inline constexpr int kEventNotTimeValid = 20051;         // Error
inline constexpr int kEventSubjectMismatch = 20052;      // Error
inline constexpr int kEventCertificateNotFound = 20066;  // Error
inline constexpr int kEventNoPrivateKey = 20068;         // Error
inline constexpr int kEventChainUntrusted = 20072;       // Error

inline constexpr absl::string_view kLevelInformation = "Information";
inline constexpr absl::string_view kLevelWarning = "Warning";
inline constexpr absl::string_view kLevelError = "Error";

// A fault injected into the emulated HealthService's next restarts (tests, simulator).
struct RestartFault {
  enum class Kind {
    kNone,     // restarts normally
    kFail,     // the restart fails: Unavailable, service stopped, no event
    kHang,     // the start hangs: blocks for `hang` (at most max_restart_time), then
               // DeadlineExceeded, service stopped, no event
    kNoEvent,  // the restart succeeds but nothing is written to the event log
  };
  Kind kind = Kind::kNone;
  // kHang only: how long the start hangs. Waited on the injected clock (a FakeClock returns at
  // once), and never longer than the platform's max_restart_time.
  absl::Duration hang = absl::Hours(1);
  // How many restarts the fault applies to; after that the service restarts normally.
  // Negative: every restart until the fault is replaced.
  int times = -1;
};

// "none", "fail", "hang", "no_event".
absl::string_view RestartFaultKindText(RestartFault::Kind kind);
// Inverse of RestartFaultKindText (exact, lowercase); nullopt for anything else.
std::optional<RestartFault::Kind> RestartFaultKindFromText(absl::string_view text);

// What one emulated restart did.
struct RestartOutcome {
  // What ServiceControl::Restart returns.
  absl::Status status;
  // The service's state afterwards.
  ServiceState state = ServiceState::kRunning;
  // The event to append to the log, if any (exactly one after a normal restart).
  std::optional<HostEvent> event;
};

// Checks the bound certificate as the HealthService does when it starts, over the platform
// interfaces only. Stateless apart from its dependencies.
//
// Thread-safety: as safe as its dependencies (the platforms' are thread-safe).
class HealthServiceEmulator {
 public:
  // Interfaces the emulator reads; all must outlive it.
  struct Deps {
    CertificateStore& certificates;
    BindingRegistry& binding;
    common::Clock& clock;
  };

  // `fqdn`: the computer name the subject is compared with. `max_restart_time`: the longest a
  // hung restart blocks.
  HealthServiceEmulator(const Deps& deps, std::string fqdn, absl::Duration max_restart_time);

  // Loads the bound certificate and returns the one event the HealthService logs, stamped with
  // the clock's now. The checks, in this precedence (the first failing one decides):
  //   20066 ChannelCertificateSerialNumber absent, or no readable certificate in My whose
  //         serial matches it (common::scom::ChannelSerialMatches; among several matches one
  //         with a private key is preferred)
  //   20068 no linked private key
  //   20051 now outside [not_before, not_after]
  //   20049 a Key Usage extension without digitalSignature + keyEncipherment (an absent
  //         extension allows every usage)
  //   20050 Enhanced Key Usage without Server Authentication or Client Authentication
  //   20052 first SAN DNS name (else subject CN) differs from the FQDN, ignoring case
  //   20072 no chain to a certificate of Root at now, with the certificates of CA and the CA
  //         certificates of My as intermediates (what agent/inventory verifies too)
  //   20053 loaded (Information)
  // Errors are the platform's own, annotated: DataLoss for corrupt Machine Settings,
  // Unavailable when a store cannot be read.
  absl::StatusOr<HostEvent> LoadCertificate();

  // Plays one restart under `fault` (see RestartFault::Kind). Without a fault: the service is
  // running afterwards and `event` is LoadCertificate()'s event; when LoadCertificate fails,
  // `status` carries its error and there is no event. Never blocks longer than
  // max_restart_time of clock time.
  RestartOutcome Restart(const RestartFault& fault);

 private:
  CertificateStore& certificates_;
  BindingRegistry& binding_;
  common::Clock& clock_;
  const std::string fqdn_;
  const absl::Duration max_restart_time_;
};

}  // namespace certfleet::agent::platform
