#pragma once

// A directory tree that stands in for a Windows SCOM host (ARCHITECTURE.md, "Lab host
// layout", and docs/lab-host.md). Tests, the simulator and the lab create hosts by writing
// these files; LabHostPlatform reads and changes them as the agent would change the real host.
//
//   ROOT/LocalMachine/{My,CA,Root}/   one certificate per file (.pem .crt .cer .der, read by
//                                     content); a PEM file in My that also holds the private
//                                     key = certificate with linked key. Entry id = file name.
//   ROOT/MachineKeys/                 unlinked private keys (PEM), 0600. Id = file name.
//   ROOT/Registry/Machine Settings.json
//                                     {"ChannelCertificateSerialNumber": "<hex>",
//                                      "ChannelCertificateHash": "<thumbprint>"}, both optional;
//                                     other members are kept on write.
//   ROOT/EventLog/Operations Manager.log
//                                     one event per line, four tab-separated fields:
//                                     TIME<TAB>ID<TAB>LEVEL<TAB>MESSAGE
//                                     TIME: RFC 3339 UTC ("2026-11-22T02:21:11Z", fractional
//                                     seconds allowed and written); ID: decimal; LEVEL:
//                                     Information | Warning | Error; MESSAGE: the rest of the
//                                     line (written without CR/LF).
//   ROOT/Services/HealthService.json  {"state": "running" | "stopped"}; absent = running.
//   ROOT/Faults/HealthService.json    fault injection for restarts:
//                                     {"restart": "fail" | "hang" | "no_event" | "none",
//                                      "hang_seconds": N (default 3600), "times": N (optional;
//                                      the number of restarts it applies to, counted down in
//                                      the file, which is removed at 0)}.
//
// Files whose names start with "." (temporary files of atomic writes) and subdirectories are
// ignored. Every write goes to a temporary file in the same directory and is renamed into
// place. Key-bearing files are written 0600, other files 0644.

#include <memory>
#include <string>

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

struct LabOptions {
  // The lab host's directory (ROOT). Created with its subdirectories when missing. Required.
  std::string root;
  // The computer's FQDN, as the emulated HealthService compares it. Required.
  std::string fqdn;
  // The longest a restart hung by a fault blocks (clock time) before DeadlineExceeded.
  absl::Duration max_restart_time = absl::Minutes(2);
};

struct LabDeps {
  // Stamps events, judges validity, and waits out hung restarts. Must outlive the platform.
  common::Clock& clock;
};

// HostPlatform over the lab layout above.
//
// Thread-safety: thread-safe. Operations on files are serialized by one mutex inside the
// object; restarts are serialized by a second one and do not hold the first while a hung
// restart waits. Other processes writing the tree at the same time see atomic file
// replacements, but their read-modify-write cycles are not coordinated with ours.
class LabHostPlatform final : public HostPlatform {
 public:
  // Opens (and creates the missing directories of) the lab host at options.root.
  // InvalidArgument when root or fqdn is empty; FailedPrecondition when a path that must be a
  // directory is something else; PermissionDenied / Unavailable when a directory cannot be
  // created.
  static absl::StatusOr<std::unique_ptr<LabHostPlatform>> Open(const LabOptions& options,
                                                               const LabDeps& deps);

  ~LabHostPlatform() override;
  LabHostPlatform(const LabHostPlatform&) = delete;
  LabHostPlatform& operator=(const LabHostPlatform&) = delete;

  std::string Name() const override { return "lab"; }
  std::string Fqdn() const override { return options_.fqdn; }
  CertificateStore& Certificates() override;
  BindingRegistry& Binding() override;
  ServiceControl& HealthService() override;
  EventLog& Events() override;

  // The root directory.
  const std::string& root() const { return options_.root; }
  // Absolute path of the directory of `store` (ROOT/LocalMachine/My, ...).
  std::string StoreDirectory(StoreName store) const;

  // Appends `event` to the event log file, as another writer of the log would (tests, tools).
  // CR and LF in the message become spaces. Unavailable / PermissionDenied when the file cannot
  // be written.
  absl::Status AppendEvent(const HostEvent& event);

  // Writes ROOT/Faults/HealthService.json for `fault` (kNone removes it).
  // Unavailable / PermissionDenied when it cannot be written.
  absl::Status SetRestartFault(const RestartFault& fault);

 private:
  class Store;
  class Registry;
  class Service;
  class Log;

  LabHostPlatform(const LabOptions& options, const LabDeps& deps);

  // Path of `relative` under the root.
  std::string PathOf(absl::string_view relative) const;
  absl::Status AppendEventLocked(const HostEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(files_mu_);

  const LabOptions options_;
  common::Clock& clock_;
  // Serializes every read-modify-write of files under the root (the state it guards is on
  // disk, so there is no member to annotate).
  absl::Mutex files_mu_;
  // Serializes restarts; acquired before files_mu_, never while holding it.
  absl::Mutex restart_mu_ ABSL_ACQUIRED_BEFORE(files_mu_);

  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<HealthServiceEmulator> emulator_;
  std::unique_ptr<Service> service_;
};

}  // namespace certfleet::agent::platform
