#pragma once

// Commands the controller sends and the agent carries out (ARCHITECTURE.md, "Commands the
// agent carries out"). Plain structs shared by the controller's store, the wire conversion and
// the agent's command runner.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/profile.h"

namespace certfleet::common::model {

// Report inventory now.
struct ScanPayload {};

// Put a certificate into My: a PKCS#12/PFX file with its password, a PEM holding the
// certificate and its key, or a bare certificate (PEM or DER) whose key is already in
// MachineKeys (what `certreq -accept` does).
struct ImportPayload {
  std::string data;      // file content; may hold a private key: scrubbed once final
  std::string password;  // PFX password; a secret: never logged, never shown, scrubbed once final
};

// Link the MachineKeys key whose public key matches certificate `thumbprint`
// (`certutil -repairstore my <serial>`).
struct RepairPayload {
  std::string thumbprint;
};

// Bind SCOM to certificate `thumbprint` with verification (20053) and automatic rollback.
struct RebindPayload {
  std::string thumbprint;
  absl::Duration verify_timeout = absl::Seconds(60);
};

// Put a CA certificate into Trusted Root (self-signed) or Intermediate (otherwise).
struct TrustPayload {
  std::string data;  // PEM or DER
};

// Take certificate `thumbprint` out of My; refused for the bound certificate.
struct RemovePayload {
  std::string thumbprint;
};

// Generate a key inside the host's store per `profile` (lab: MachineKeys, 0600) and return a
// CSR for it (CommandResult::csr_pem). The private key never leaves the host.
struct RenewPayload {
  CertificateProfile profile;
};

// Install an issued certificate: the leaf into My, linked to the key Renew generated (found by
// public key), the intermediates into the CA store; then, when `bind`, the verified rebind
// (RebindPayload semantics) with `verify_timeout`.
struct InstallPayload {
  std::string chain_pem;  // leaf first
  bool bind = true;
  absl::Duration verify_timeout = absl::Seconds(60);
};

// The variant index equals the CommandKind value: append new kinds at the end of both.
using CommandPayload = std::variant<ScanPayload, ImportPayload, RepairPayload, RebindPayload,
                                    TrustPayload, RemovePayload, RenewPayload, InstallPayload>;

enum class CommandKind { kScan, kImport, kRepair, kRebind, kTrust, kRemove, kRenew, kInstall };

// "scan", "import", "repair", "rebind", "trust", "remove", "renew", "install".
absl::string_view CommandKindName(CommandKind kind);
std::optional<CommandKind> CommandKindFromName(absl::string_view name);
CommandKind KindOf(const CommandPayload& payload);

struct Command {
  std::string id;
  std::string agent_id;
  absl::Time deadline;
  CommandPayload payload;
};

enum class CommandState { kQueued, kSent, kRunning, kSucceeded, kFailed, kCancelled, kExpired };

// "queued", "sent", "running", "succeeded", "failed", "cancelled", "expired".
absl::string_view CommandStateName(CommandState state);
std::optional<CommandState> CommandStateFromName(absl::string_view name);
bool IsFinal(CommandState state);

// One host event seen while a command ran (the evidence of a rebind).
struct EventRecord {
  absl::Time time;
  int id = 0;
  std::string level;
  std::string message;
};

// What a finished command produced.
struct CommandResult {
  std::string thumbprint;               // import: the certificate put in My
  std::vector<std::string> problems;    // import: SCOM problem codes of that certificate
  std::string previous_channel_serial;  // rebind: the snapshot
  std::string channel_serial;           // rebind: the binding in force at the end
  bool rolled_back = false;             // rebind: the snapshot was restored
  std::vector<EventRecord> events;      // rebind: events written after each restart
  std::string detail;                   // a human-readable summary
  std::string csr_pem;                  // renew: the request for the key made on the host
};

// The final word of the agent on a command.
struct CommandOutcome {
  CommandState state = CommandState::kSucceeded;  // kSucceeded, kFailed, kCancelled, kExpired
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string error;  // empty on success
  CommandResult result;
};

}  // namespace certfleet::common::model
