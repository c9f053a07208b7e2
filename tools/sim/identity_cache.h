#pragma once

// The identities certfleet-sim enrolled, kept in one file (STATE_DIR/identities.json, mode 0600,
// written atomically) so that a rerun connects at once instead of enrolling every agent again.
// The file holds private keys: it is as secret as an agent's state directory.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/rpc/controller_client.h"

namespace certfleet::sim {

// One simulated agent's identity.
struct SimIdentity {
  std::string fqdn;
  agent::rpc::Credentials credentials;
};

// Reads the file at `path`. An absent file is an empty cache. DataLoss naming the path when the
// file is not a cache this version wrote; the errors of common::ReadFileToString otherwise.
absl::StatusOr<std::vector<SimIdentity>> LoadIdentities(const std::string& path);

// Replaces the file at `path` with `identities` (mode 0600). The directory must exist. Errors of
// common::WriteFileAtomically.
absl::Status SaveIdentities(const std::string& path, const std::vector<SimIdentity>& identities);

}  // namespace certfleet::sim
