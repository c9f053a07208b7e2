#pragma once

// Gives every simulated agent an identity: from the cache when the controller still knows it,
// otherwise through the real enrollment (Admin.CreateJoinToken bound to the agent's FQDN, then
// AgentGateway.Enroll with a key made here), with bounded parallelism.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certfleet/v1/admin.grpc.pb.h"
#include "tools/sim/identity_cache.h"

namespace certfleet::sim {

// The admin API with the operator credentials the controller writes to STATE/admin
// (ca.pem, client.pem, client.key). Thread-safe (one channel, concurrent calls).
class AdminClient {
 public:
  // `target`: a gRPC target for the controller; `server_name`: the name its certificate is
  // checked against (empty: the target's host). InvalidArgument naming a missing file.
  static absl::StatusOr<std::unique_ptr<AdminClient>> Dial(const std::string& target,
                                                           const std::string& server_name,
                                                           const std::string& admin_dir);

  // The controller's root (admin_dir/ca.pem).
  const std::string& root_pem() const { return root_pem_; }

  // A single-use join token bound to `fqdn`, labelled sim=true, valid for `ttl`. The
  // controller's status otherwise (PermissionDenied: the credentials are not an operator's).
  absl::StatusOr<std::string> CreateJoinToken(const std::string& fqdn, absl::Duration ttl);

  // The ids of every agent the controller knows.
  absl::StatusOr<absl::flat_hash_set<std::string>> KnownAgentIds();

 private:
  AdminClient(std::unique_ptr<certfleet::v1::Admin::Stub> stub, std::string root_pem)
      : stub_(std::move(stub)), root_pem_(std::move(root_pem)) {}

  std::unique_ptr<certfleet::v1::Admin::Stub> stub_;
  std::string root_pem_;
};

struct EnrollmentOptions {
  std::string controller;  // HOST:PORT for AgentGateway.Enroll
  int agents = 0;
  // The identity cache; empty: none (every agent enrolls, nothing is kept).
  std::string cache_path;
  int parallelism = 8;
  std::string version;
  // A cached identity that ends within this long is replaced by a new enrollment.
  absl::Duration min_identity_life = absl::Hours(1);
};

struct EnrollmentResult {
  // By agent index; nullopt when the agent could not be enrolled.
  std::vector<std::optional<SimIdentity>> identities;
  int64_t cached = 0;
  int64_t enrolled = 0;
  std::map<std::string, int64_t> errors;  // by status code name
  absl::Status first_error;               // the first enrollment that failed; OK when none
};

// The FQDN of simulated agent `index` (0-based): "sim-00001.sim.certfleet.test".
std::string SimFqdn(int index);

// Loads the cache, keeps each cached identity whose CA is the controller's root, whose agent the
// controller still knows and whose certificate lives long enough, enrolls the others (retrying
// Unavailable twice), and saves the cache (also every 30 s while enrolling). `stopped` is polled;
// once it returns true no new enrollment starts. Errors: the cache cannot be read (DataLoss for a
// corrupt one) or written, or the admin API fails (its status: Unavailable when the controller
// cannot be reached); a single agent's enrollment failure is counted in `errors`, not returned.
absl::StatusOr<EnrollmentResult> EnsureIdentities(const EnrollmentOptions& options,
                                                  AdminClient& admin,
                                                  const std::function<bool()>& stopped);

}  // namespace certfleet::sim
