#pragma once

// The controller's state, in domain operations (never SQL). SqliteStore is the default;
// a PostgreSQL implementation can follow for several controllers. Every implementation passes
// tests/controller/store/store_conformance.h.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controller/store/records.h"

namespace certfleet::controller::store {

// Thread-safety: every method may be called from any thread; each is atomic.
class Store {
 public:
  virtual ~Store() = default;

  // --- Join tokens ---

  // AlreadyExists when a token with the same hash exists.
  virtual absl::Status CreateJoinToken(const JoinTokenRecord& token) = 0;

  // Atomically marks the token with hash `token_hash` used by `agent_id` at `now` and returns
  // it. NotFound when unknown; FailedPrecondition "already used" or "expired"; PermissionDenied
  // when the token is bound to another FQDN than `fqdn` (the token stays unused).
  virtual absl::StatusOr<JoinTokenRecord> ConsumeJoinToken(absl::string_view token_hash,
                                                           absl::string_view fqdn,
                                                           absl::string_view agent_id,
                                                           absl::Time now) = 0;

  // --- Agents ---

  // AlreadyExists when the id exists.
  virtual absl::Status CreateAgent(const AgentRecord& agent) = 0;

  // Consumes the token and creates the agent in one transaction: either both happen or
  // neither. The stored agent's labels are agent.labels with the token's labels merged over
  // them (the token wins on a shared key); its FQDN is checked against the token's binding as
  // in ConsumeJoinToken. Errors as ConsumeJoinToken and CreateAgent.
  virtual absl::StatusOr<JoinTokenRecord> EnrollAgent(absl::string_view token_hash,
                                                      const AgentRecord& agent,
                                                      absl::Time now) = 0;

  // NotFound when unknown.
  virtual absl::StatusOr<AgentRecord> GetAgent(absl::string_view id) = 0;
  // NotFound when no agent has this FQDN (case-insensitive); the most recently enrolled wins
  // when several have.
  virtual absl::StatusOr<AgentRecord> FindAgentByFqdn(absl::string_view fqdn) = 0;
  // All agents, ordered by FQDN then id.
  virtual absl::StatusOr<std::vector<AgentRecord>> ListAgents() = 0;

  // Records a Hello: platform, version, last seen. NotFound when unknown.
  virtual absl::Status RecordAgentSeen(absl::string_view id, absl::string_view platform,
                                       absl::string_view version, absl::Time seen) = 0;

  // --- Inventory ---

  // Replaces the whole inventory of `agent_id` with `certificates` and `binding`, and sets its
  // generation. NotFound when the agent is unknown.
  virtual absl::Status ReplaceInventory(absl::string_view agent_id, uint64_t generation,
                                        const std::vector<CertificateRecord>& certificates,
                                        const BindingRecord& binding, absl::Time seen) = 0;

  // Applies a delta: upserts `changed` and deletes the rows whose Key() is in `removed`, when
  // the stored generation equals `base_generation`; then sets `generation`. FailedPrecondition
  // when the generations differ (the caller asks for a full inventory). NotFound when the agent
  // is unknown.
  virtual absl::Status ApplyInventoryDelta(absl::string_view agent_id, uint64_t base_generation,
                                           uint64_t generation,
                                           const std::vector<CertificateRecord>& changed,
                                           const std::vector<std::string>& removed,
                                           const BindingRecord& binding, absl::Time seen) = 0;

  // Certificates matching `filter`, ordered by agent FQDN, store, not_after.
  virtual absl::StatusOr<std::vector<CertificateRecord>> ListCertificates(
      const CertificateFilter& filter) = 0;
};

}  // namespace certfleet::controller::store
