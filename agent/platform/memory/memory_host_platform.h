#pragma once

// A host kept entirely in memory: the same behaviour as LabHostPlatform (both pass the
// conformance suite in tests/agent/platform) without touching the disk. The fleet simulator
// runs thousands of these in one process, so each holds only what a host has: certificate DER,
// key PEM, two registry values, its recent events.

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/platform/health_service_emulator.h"
#include "agent/platform/host_platform.h"
#include "common/time/clock.h"

namespace certfleet::agent::platform {

struct MemoryOptions {
  // The computer's FQDN, as the emulated HealthService compares it.
  std::string fqdn;
  // The longest a restart hung by a fault blocks (clock time) before DeadlineExceeded.
  absl::Duration max_restart_time = absl::Minutes(2);
  // The event log keeps at most this many events; the oldest go first.
  size_t max_events_kept = 1000;
};

struct MemoryDeps {
  // Stamps events, judges validity, and waits out hung restarts. Must outlive the platform.
  common::Clock& clock;
};

// HostPlatform in memory. Entry ids: a certificate's is its SHA-1 thumbprint (uppercase hex),
// a key container's the SHA-1 of its SubjectPublicKeyInfo DER. The HealthService starts out
// running, with no fault.
//
// Thread-safety: thread-safe. One mutex guards the host's state; restarts are serialized by a
// second one and do not hold the first while a hung restart waits.
class MemoryHostPlatform final : public HostPlatform {
 public:
  MemoryHostPlatform(const MemoryOptions& options, const MemoryDeps& deps);
  ~MemoryHostPlatform() override;
  MemoryHostPlatform(const MemoryHostPlatform&) = delete;
  MemoryHostPlatform& operator=(const MemoryHostPlatform&) = delete;

  std::string Name() const override { return "memory"; }
  std::string Fqdn() const override { return options_.fqdn; }
  CertificateStore& Certificates() override;
  BindingRegistry& Binding() override;
  ServiceControl& HealthService() override;
  EventLog& Events() override;

  // Appends `event` to the event log, as another writer of the log would (tests, simulator).
  void AppendEvent(const HostEvent& event);

  // Replaces the fault applied to the next restarts (kNone clears it).
  void SetRestartFault(const RestartFault& fault);

  // Sets the HealthService's state as if an operator had stopped or started it.
  void SetServiceState(ServiceState state);

  // Puts an entry `id` into `store` that is not a readable certificate: List shows it with
  // `error` (what a garbage file is in the lab). Replaces an entry with the same id.
  void AddUnreadableEntry(StoreName store, absl::string_view id, absl::string_view error);

 private:
  class Store;
  class Registry;
  class Service;
  class Log;

  struct CertificateEntry {
    std::string der;
    std::string key_pem;  // PKCS#8 PEM of the linked key; empty when none
    std::string error;    // set for unreadable entries
  };
  struct KeyEntry {
    std::string key_pem;
    std::string public_key_der;
  };

  std::map<std::string, CertificateEntry>& StoreLocked(StoreName store)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AppendEventLocked(HostEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const MemoryOptions options_;
  common::Clock& clock_;

  // Serializes restarts; acquired before mu_, never while holding it.
  absl::Mutex restart_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::map<std::string, CertificateEntry> my_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CertificateEntry> ca_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CertificateEntry> root_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, KeyEntry> key_containers_ ABSL_GUARDED_BY(mu_);
  MachineSettings settings_ ABSL_GUARDED_BY(mu_);
  std::vector<HostEvent> events_ ABSL_GUARDED_BY(mu_);
  ServiceState state_ ABSL_GUARDED_BY(mu_) = ServiceState::kRunning;
  RestartFault fault_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<HealthServiceEmulator> emulator_;
  std::unique_ptr<Service> service_;
};

}  // namespace certfleet::agent::platform
