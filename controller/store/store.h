#pragma once

// The controller's state, in domain operations (never SQL). SqliteStore is the default;
// a PostgreSQL implementation can follow for several controllers. Every implementation passes
// tests/controller/store/store_conformance.h.

#include <functional>
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
                                                      const AgentRecord& agent, absl::Time now) = 0;

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

  // --- Commands ---
  // A command is persisted before it is sent; its state only moves forward:
  // queued -> sent -> running -> succeeded | failed | cancelled | expired (a final state).
  // Once final, a command never changes again, and its secrets are gone from the store: an
  // import's password and its data (a PEM file may hold an unencrypted private key).

  // Stores a new command (state queued, attempts 0). AlreadyExists for a duplicate id;
  // NotFound when the agent is unknown; InvalidArgument for an empty id.
  virtual absl::Status CreateCommand(const CommandRecord& command) = 0;

  // NotFound when unknown.
  virtual absl::StatusOr<CommandRecord> GetCommand(absl::string_view id) = 0;

  // Commands matching `filter`, oldest first (the newest `limit` when more match).
  virtual absl::StatusOr<std::vector<CommandRecord>> ListCommands(const CommandFilter& filter) = 0;

  // The agent's commands not yet final, oldest first: what to (re)send when it connects.
  virtual absl::StatusOr<std::vector<CommandRecord>> PendingCommands(
      absl::string_view agent_id) = 0;

  // Records that the command was sent at `now`: queued -> sent (a running command stays
  // running), attempts + 1. FailedPrecondition when it is final; NotFound when unknown.
  virtual absl::Status MarkCommandSent(absl::string_view id, absl::Time now) = 0;

  // The agent started it: queued/sent -> running, started_at = now. A running command stays
  // as it is (OK). FailedPrecondition when final; NotFound when unknown.
  virtual absl::Status MarkCommandRunning(absl::string_view id, absl::Time now) = 0;

  // Records the agent's outcome: state = outcome.state (must be final, else InvalidArgument),
  // finished_at = now, the payload's secrets scrubbed. A command already final is left
  // unchanged and the call returns OK with the stored record (duplicate reports are expected
  // with at-least-once delivery). NotFound when unknown. Returns the record as stored.
  virtual absl::StatusOr<CommandRecord> FinishCommand(absl::string_view id,
                                                      const common::model::CommandOutcome& outcome,
                                                      absl::Time now) = 0;

  // Cancels: a queued command becomes cancelled (final, outcome state kCancelled with code
  // kCancelled); a sent or running one gets cancel_requested = true and stays as it is (the
  // agent decides). FailedPrecondition when already final; NotFound when unknown. Returns the
  // record as stored.
  virtual absl::StatusOr<CommandRecord> CancelCommand(absl::string_view id, absl::Time now) = 0;

  // Expires every queued or sent command whose deadline is before `now`, and every running one
  // whose deadline is before `now - running_grace` (an agent that started it may still report).
  // Each becomes expired (outcome code kDeadlineExceeded). Returns the expired records.
  virtual absl::StatusOr<std::vector<CommandRecord>> ExpireCommands(
      absl::Time now, absl::Duration running_grace) = 0;

  // --- Issuance log ---

  // Records a certificate before the issuer hands it out. AlreadyExists for a serial already
  // recorded (an issuer must never reuse one); InvalidArgument for an empty serial.
  virtual absl::Status RecordIssuance(const IssuanceRecord& issuance) = 0;
  // Every issuance of renewal `renewal_id`, oldest first (empty when none).
  virtual absl::StatusOr<std::vector<IssuanceRecord>> ListIssuances(
      absl::string_view renewal_id) = 0;

  // --- Approval queue (manual issuer) ---

  // AlreadyExists for a duplicate id; InvalidArgument for an empty id.
  virtual absl::Status CreateApprovalRequest(const ApprovalRequestRecord& request) = 0;
  // NotFound when unknown.
  virtual absl::StatusOr<ApprovalRequestRecord> GetApprovalRequest(absl::string_view id) = 0;
  // Oldest first; `state` nullopt = all.
  virtual absl::StatusOr<std::vector<ApprovalRequestRecord>> ListApprovalRequests(
      std::optional<common::model::ApprovalState> state) = 0;
  // Replaces the stored request with `request` when its stored state is `expected` (compare
  // and set: two officers cannot both decide). FailedPrecondition naming the stored state
  // otherwise; NotFound when unknown.
  virtual absl::Status UpdateApprovalRequest(const ApprovalRequestRecord& request,
                                             common::model::ApprovalState expected) = 0;

  // --- Renewal jobs ---

  // AlreadyExists for a duplicate id, and when the agent already has a renewal that is not
  // done, rolled_back or failed (one job at a time per host, also between racing callers);
  // NotFound for an unknown agent; InvalidArgument for an empty id.
  virtual absl::Status CreateRenewal(const RenewalRecord& renewal) = 0;
  // NotFound when unknown.
  virtual absl::StatusOr<RenewalRecord> GetRenewal(absl::string_view id) = 0;
  virtual absl::StatusOr<std::vector<RenewalRecord>> ListRenewals(const RenewalFilter& filter) = 0;
  // Replaces the stored job with `renewal` when its stored state is `expected` (compare and
  // set, so a job driven from several threads moves one step at a time). FailedPrecondition
  // naming the stored state otherwise; NotFound when unknown.
  virtual absl::Status UpdateRenewal(const RenewalRecord& renewal,
                                     common::model::RenewalState expected) = 0;
  // The job that sent command `command_id` (renew, install or bind command); NotFound when none.
  virtual absl::StatusOr<RenewalRecord> FindRenewalByCommand(absl::string_view command_id) = 0;

  // --- Agent identity ---

  // Records a renewed identity certificate. NotFound when the agent is unknown.
  virtual absl::Status UpdateAgentIdentity(absl::string_view agent_id, absl::string_view serial,
                                           absl::Time not_after) = 0;
  // Consumes a re-enrollment token (JoinTokenRecord::agent_id set) for `agent_id` and records the
  // new identity, in one transaction. Errors as ConsumeJoinToken; PermissionDenied when the token
  // is bound to another agent or is not a re-enrollment token; NotFound for an unknown agent.
  virtual absl::StatusOr<JoinTokenRecord> ReenrollAgent(absl::string_view token_hash,
                                                        absl::string_view agent_id,
                                                        absl::string_view serial,
                                                        absl::Time not_after, absl::Time now) = 0;

  // --- Audit log ---

  // Computes the hash of an entry whose seq, prev_hash and other fields are set.
  using AuditSealer = std::function<std::string(const AuditRecord&)>;
  // Appends `entry` atomically: seq = the last seq + 1, prev_hash = the last entry's hash, hash =
  // seal(entry). Returns the entry as stored. InvalidArgument for an empty actor or action.
  virtual absl::StatusOr<AuditRecord> AppendAudit(AuditRecord entry, const AuditSealer& seal) = 0;
  // Entries matching `filter`, by seq ascending, exactly as stored (verification reads these).
  virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter) = 0;

  // --- Campaigns ---

  // Stores a campaign with its targets, in one transaction. AlreadyExists for a duplicate id;
  // InvalidArgument for an empty id, a target naming another campaign, or two targets for one
  // agent.
  virtual absl::Status CreateCampaign(const CampaignRecord& campaign,
                                      const std::vector<CampaignTargetRecord>& targets) = 0;
  // NotFound when unknown.
  virtual absl::StatusOr<CampaignRecord> GetCampaign(absl::string_view id) = 0;
  // Oldest first.
  virtual absl::StatusOr<std::vector<CampaignRecord>> ListCampaigns() = 0;
  // Compare and set on the state, as UpdateRenewal. FailedPrecondition naming the stored state;
  // NotFound when unknown.
  virtual absl::Status UpdateCampaign(const CampaignRecord& campaign,
                                      common::model::CampaignState expected) = 0;
  // The campaign's targets by position. NotFound when the campaign is unknown.
  virtual absl::StatusOr<std::vector<CampaignTargetRecord>> ListCampaignTargets(
      absl::string_view campaign_id) = 0;
  // Compare and set on the target's state. FailedPrecondition naming the stored state; NotFound
  // when the campaign has no target for target.agent_id.
  virtual absl::Status UpdateCampaignTarget(const CampaignTargetRecord& target,
                                            common::model::TargetState expected) = 0;

  // --- Automatic scheduling ---

  // NotFound when the agent has none.
  virtual absl::StatusOr<PolicyStateRecord> GetPolicyState(absl::string_view agent_id) = 0;
  // Creates or replaces. NotFound when the agent is unknown.
  virtual absl::Status PutPolicyState(const PolicyStateRecord& state) = 0;
  // Records that the notification `key` went out; true the first time, false when it already
  // had. InvalidArgument for an empty key.
  virtual absl::StatusOr<bool> RecordNotificationOnce(absl::string_view key, absl::Time at) = 0;
};

}  // namespace certfleet::controller::store
