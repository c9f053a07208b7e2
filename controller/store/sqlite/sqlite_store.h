#pragma once

// The default Store: one SQLite database file in WAL mode, schema by versioned migrations
// (SqliteStore::Migrations()). Column encodings (times, lists, labels) are described in
// controller/store/sqlite/encoding.h.
//
//   CF_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
//                       SqliteStore::Open({.path = "/var/lib/certfleet/controller.db"}));

#include <cstdint>
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
#include "common/sqlite/database.h"
#include "common/sqlite/migration.h"
#include "controller/store/records.h"
#include "controller/store/store.h"

namespace certfleet::controller::store {

// Thread-safety: thread-safe. Every method holds one mutex around the one connection for its
// whole transaction, so calls are serialized within the process (a 500,000-row inventory
// blocks other callers while it is written; run store calls on the controller's own executor,
// never on a gRPC callback thread). Several processes may open the same file: SQLite's locks
// arbitrate, and a call that waits for another process's lock longer than
// Options::busy_timeout fails with Unavailable.
//
// Beyond the Store contract:
// - Every method validates its input before writing and fails with InvalidArgument on empty
//   ids, token hashes, FQDNs, stores or thumbprints, on a thumbprint containing '/', on a
//   certificate whose agent_id names another agent, on a removed key that is not
//   "<store>/<thumbprint>", and (ReplaceInventory) on two certificates with the same Key().
//   Nothing is written then.
// - FQDNs compare ASCII case-insensitively, both for FindAgentByFqdn and for a token bound to
//   an FQDN. ListAgents and ListCertificates order FQDNs bytewise.
// - A stored value that cannot be decoded is DataLoss.
// - Times, and durations (verify timeouts, a profile's validity), keep microsecond precision
//   (see encoding.h); absl::InfinitePast() and absl::InfiniteFuture() round-trip.
// - Commands: CreateCommand stores only the command, created_by and created_at of its argument;
//   the other fields start as the contract says (queued, never sent, no outcome), whatever they
//   hold. Ids (command and agent) must not be empty, and CommandFilter::limit must be at least
//   1 (InvalidArgument). "Oldest first" orders by created_at, then by creation. CancelCommand
//   of a queued command also sets cancel_requested. ExpireCommands returns the expired
//   commands oldest first.
// - Issuances, approval requests and renewals: empty serials, ids, renewal ids (ListIssuances),
//   agent ids (CreateRenewal) and command ids (FindRenewalByCommand) are InvalidArgument, as is
//   a RenewalFilter::limit of 0. An issuance's renewal_id may be empty (a certificate issued
//   outside a renewal job); ListIssuances cannot list those. "Oldest first" orders issuances by
//   issued_at and the others by created_at, then by creation. The Update methods write every
//   field of their argument over the stored row, except that a renewal never changes agents:
//   UpdateRenewal with another agent_id than the stored one is InvalidArgument (after the
//   compare and set, which comes first). When several renewals name the same command,
//   FindRenewalByCommand returns the most recently created. Issuances and approval requests
//   outlive the agent they name; a renewal is deleted with its agent.
// - Secrets: the connection runs with PRAGMA secure_delete=ON, so the page space a row leaves
//   behind (an ImportPayload password scrubbed from a final command) is overwritten with zeros
//   rather than left in the file. After a transaction that scrubbed a password, the store
//   checkpoints the WAL and truncates it (PRAGMA wal_checkpoint(TRUNCATE)), so the old page
//   images are gone from the -wal file too. That checkpoint waits up to busy_timeout for
//   readers in other processes; if one still holds an older snapshot, the old images stay in
//   the -wal file until a later checkpoint overwrites them (the call still succeeds: the command
//   is final). Copies the file system or its backups keep are beyond the store.
class SqliteStore final : public Store {
 public:
  struct Options {
    // The database file; created (mode 0600) when missing. Its directory must exist.
    std::string path;
    // How long a call waits for another process holding the database lock.
    absl::Duration busy_timeout = absl::Seconds(5);
    // Verify the whole file (PRAGMA quick_check) at open; O(size of the database).
    bool quick_check = false;
  };

  // Opens or creates the database and migrates its schema to the current version. Errors name
  // the path: DataLoss when the file is not an SQLite database or is corrupt; FailedPrecondition
  // when it was written by a newer certfleet (a newer schema version); NotFound when its
  // directory is missing; PermissionDenied when it may not be opened for writing; Unavailable
  // when another process holds it locked past the busy timeout; InvalidArgument for an empty
  // path.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options);

  // The schema, oldest first. Released migrations are never edited, only appended to.
  static const std::vector<common::sqlite::Migration>& Migrations();

  absl::Status CreateJoinToken(const JoinTokenRecord& token) override;
  absl::StatusOr<JoinTokenRecord> ConsumeJoinToken(absl::string_view token_hash,
                                                   absl::string_view fqdn,
                                                   absl::string_view agent_id,
                                                   absl::Time now) override;
  absl::Status CreateAgent(const AgentRecord& agent) override;
  absl::StatusOr<JoinTokenRecord> EnrollAgent(absl::string_view token_hash,
                                              const AgentRecord& agent, absl::Time now) override;
  absl::StatusOr<AgentRecord> GetAgent(absl::string_view id) override;
  absl::StatusOr<AgentRecord> FindAgentByFqdn(absl::string_view fqdn) override;
  absl::StatusOr<std::vector<AgentRecord>> ListAgents() override;
  absl::Status RecordAgentSeen(absl::string_view id, absl::string_view platform,
                               absl::string_view version, absl::Time seen) override;
  absl::Status ReplaceInventory(absl::string_view agent_id, uint64_t generation,
                                const std::vector<CertificateRecord>& certificates,
                                const BindingRecord& binding, absl::Time seen) override;
  absl::Status ApplyInventoryDelta(absl::string_view agent_id, uint64_t base_generation,
                                   uint64_t generation,
                                   const std::vector<CertificateRecord>& changed,
                                   const std::vector<std::string>& removed,
                                   const BindingRecord& binding, absl::Time seen) override;
  absl::StatusOr<std::vector<CertificateRecord>> ListCertificates(
      const CertificateFilter& filter) override;
  absl::Status CreateCommand(const CommandRecord& command) override;
  absl::StatusOr<CommandRecord> GetCommand(absl::string_view id) override;
  absl::StatusOr<std::vector<CommandRecord>> ListCommands(const CommandFilter& filter) override;
  absl::StatusOr<std::vector<CommandRecord>> PendingCommands(absl::string_view agent_id) override;
  absl::Status MarkCommandSent(absl::string_view id, absl::Time now) override;
  absl::Status MarkCommandRunning(absl::string_view id, absl::Time now) override;
  absl::StatusOr<CommandRecord> FinishCommand(absl::string_view id,
                                              const common::model::CommandOutcome& outcome,
                                              absl::Time now) override;
  absl::StatusOr<CommandRecord> CancelCommand(absl::string_view id, absl::Time now) override;
  absl::StatusOr<std::vector<CommandRecord>> ExpireCommands(absl::Time now,
                                                            absl::Duration running_grace) override;
  absl::Status RecordIssuance(const IssuanceRecord& issuance) override;
  absl::StatusOr<std::vector<IssuanceRecord>> ListIssuances(absl::string_view renewal_id) override;
  absl::Status CreateApprovalRequest(const ApprovalRequestRecord& request) override;
  absl::StatusOr<ApprovalRequestRecord> GetApprovalRequest(absl::string_view id) override;
  absl::StatusOr<std::vector<ApprovalRequestRecord>> ListApprovalRequests(
      std::optional<common::model::ApprovalState> state) override;
  absl::Status UpdateApprovalRequest(const ApprovalRequestRecord& request,
                                     common::model::ApprovalState expected) override;
  absl::Status CreateRenewal(const RenewalRecord& renewal) override;
  absl::StatusOr<RenewalRecord> GetRenewal(absl::string_view id) override;
  absl::StatusOr<std::vector<RenewalRecord>> ListRenewals(const RenewalFilter& filter) override;
  absl::Status UpdateRenewal(const RenewalRecord& renewal,
                             common::model::RenewalState expected) override;
  absl::StatusOr<RenewalRecord> FindRenewalByCommand(absl::string_view command_id) override;
  // sqlite_store_identity.cc
  absl::Status UpdateAgentIdentity(absl::string_view agent_id, absl::string_view serial,
                                   absl::Time not_after) override;
  absl::StatusOr<JoinTokenRecord> ReenrollAgent(absl::string_view token_hash,
                                                absl::string_view agent_id,
                                                absl::string_view serial, absl::Time not_after,
                                                absl::Time now) override;
  // sqlite_store_audit.cc
  absl::StatusOr<AuditRecord> AppendAudit(AuditRecord entry, const AuditSealer& seal) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter) override;
  // sqlite_store_campaigns.cc
  absl::Status CreateCampaign(const CampaignRecord& campaign,
                              const std::vector<CampaignTargetRecord>& targets) override;
  absl::StatusOr<CampaignRecord> GetCampaign(absl::string_view id) override;
  absl::StatusOr<std::vector<CampaignRecord>> ListCampaigns() override;
  absl::Status UpdateCampaign(const CampaignRecord& campaign,
                              common::model::CampaignState expected) override;
  absl::StatusOr<std::vector<CampaignTargetRecord>> ListCampaignTargets(
      absl::string_view campaign_id) override;
  absl::Status UpdateCampaignTarget(const CampaignTargetRecord& target,
                                    common::model::TargetState expected) override;
  absl::StatusOr<PolicyStateRecord> GetPolicyState(absl::string_view agent_id) override;
  absl::Status PutPolicyState(const PolicyStateRecord& state) override;
  absl::StatusOr<bool> RecordNotificationOnce(absl::string_view key, absl::Time at) override;

 private:
  explicit SqliteStore(std::unique_ptr<common::sqlite::Database> db) : db_(std::move(db)) {}

  // Each runs inside a transaction the caller holds.
  // ConsumeTokenLocked for a join token (never a re-enrollment token).
  absl::StatusOr<JoinTokenRecord> ConsumeJoinTokenLocked(absl::string_view token_hash,
                                                         absl::string_view fqdn,
                                                         absl::string_view agent_id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the token used by `agent_id` at `now`, with the checks of ConsumeJoinToken. A join
  // token (no JoinTokenRecord::agent_id) is accepted only when !reenrollment, a re-enrollment
  // token only when `reenrollment` and bound to `agent_id`: PermissionDenied otherwise, and the
  // token stays unused.
  absl::StatusOr<JoinTokenRecord> ConsumeTokenLocked(absl::string_view token_hash,
                                                     absl::string_view fqdn,
                                                     absl::string_view agent_id, absl::Time now,
                                                     bool reenrollment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertAgentLocked(const AgentRecord& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NotFound "<doing>: agent <id> not found" when no agent has `agent_id`.
  absl::Status RequireAgentLocked(absl::string_view agent_id, absl::string_view doing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the binding, generation and last-seen time of `agent_id`. NotFound when unknown.
  absl::Status UpdateBindingLocked(absl::string_view agent_id, uint64_t generation,
                                   const BindingRecord& binding, absl::Time seen)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `certificate` of `agent_id` with the statement `sql` (an INSERT variant).
  absl::Status WriteCertificateLocked(absl::string_view sql, absl::string_view agent_id,
                                      const CertificateRecord& certificate)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The command `id`. NotFound when unknown.
  absl::StatusOr<CommandRecord> ReadCommandLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `query` (bound already) to its end and decodes every row as a command.
  absl::StatusOr<std::vector<CommandRecord>> ReadCommandsLocked(common::sqlite::Statement& query,
                                                                absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the progress of `command` (payload, state, times, attempts, cancel_requested,
  // outcome) over its row, then reads the row back: the record as stored.
  absl::StatusOr<CommandRecord> UpdateCommandLocked(const CommandRecord& command)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `command` final with `outcome` at `now` and scrubs its secrets; sets *scrubbed when it
  // had one. Returns the record as stored.
  absl::StatusOr<CommandRecord> FinalizeCommandLocked(CommandRecord command,
                                                      common::model::CommandOutcome outcome,
                                                      absl::Time now, bool* scrubbed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The approval request `id`. NotFound when unknown.
  absl::StatusOr<ApprovalRequestRecord> ReadApprovalLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The renewal `id`. NotFound when unknown.
  absl::StatusOr<RenewalRecord> ReadRenewalLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a committed transaction that scrubbed a secret: moves the WAL into the database file
  // and truncates it, so the -wal file no longer holds the page images with the secret. Best
  // effort (see the class comment).
  void TruncateWalLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  const std::unique_ptr<common::sqlite::Database> db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::store
