#pragma once

// The agent identity kept in the state directory:
//
//   DIR/agent_id       the agent id, one line
//   DIR/ca.pem         the controller's root, as the join token pinned it
//   DIR/identity.pem   the identity chain, leaf first
//   DIR/identity.key   its private key (0600); present = enrolled
//
// Renewal replaces identity.pem and identity.key together: both are written beside the old ones
// (identity.pem.new, identity.key.new), then identity.key.new is renamed over identity.key (the
// commit point) and identity.pem.new over identity.pem. LoadIdentity finishes a replacement
// that a crash interrupted after the commit point and drops one interrupted before it, so the
// key and the chain on disk always belong together.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::agent::client {

struct StoredIdentity {
  std::string agent_id;
  std::string ca_pem;
  std::string identity_pem;
  std::string key_pem;  // a secret
  // The leaf's validity (set by LoadIdentity; ignored by the writers).
  absl::Time not_before;
  absl::Time not_after;
};

// Reads the identity in `dir`, first finishing or dropping an interrupted replacement. NotFound
// when the agent is not enrolled (no identity.key); DataLoss naming the file when a file is
// missing or unreadable, the chain or key cannot be parsed, or the key is not the leaf's.
absl::StatusOr<StoredIdentity> LoadIdentity(const std::string& dir);

// First enrollment: writes the four files (the key last: its presence marks a complete
// identity). `dir` must exist. Unavailable / PermissionDenied when a file cannot be written.
absl::Status WriteIdentity(const std::string& dir, const StoredIdentity& identity);

// Renewal and re-enrollment: replaces identity.pem and identity.key as described above
// (agent_id and ca.pem stay). Errors as WriteIdentity; on an error before the commit point the
// old identity stays in place.
absl::Status ReplaceIdentity(const std::string& dir, absl::string_view identity_pem,
                             absl::string_view key_pem);

// The validity of the first certificate of `identity_pem`. DataLoss when it cannot be parsed.
absl::StatusOr<std::pair<absl::Time, absl::Time>> IdentityValidity(absl::string_view identity_pem);

}  // namespace certfleet::agent::client
