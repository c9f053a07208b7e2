// SqliteStore: agent identities (renewal and re-enrollment).
#include "absl/strings/str_cat.h"
#include "common/sqlite/database.h"
#include "common/status/status_macros.h"
#include "controller/store/sqlite/encoding.h"
#include "controller/store/sqlite/sqlite_store.h"

namespace certfleet::controller::store {
namespace {

using common::sqlite::Statement;
using common::sqlite::Transaction;

constexpr char kAgentFqdnSql[] = "SELECT fqdn FROM agents WHERE id = ?1";
constexpr char kAgentIdentitySql[] =
    "UPDATE agents SET identity_serial = ?2, identity_not_after = ?3 WHERE id = ?1";

}  // namespace

absl::Status SqliteStore::UpdateAgentIdentity(absl::string_view agent_id, absl::string_view serial,
                                              absl::Time not_after) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(serial, "identity serial"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kAgentIdentitySql));
  CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
  CF_RETURN_IF_ERROR(stmt->BindText(2, serial));
  CF_RETURN_IF_ERROR(stmt->BindInt64(3, TimeToMicros(not_after)));
  CF_RETURN_IF_ERROR(stmt->Run(), "recording the identity of agent ", agent_id);
  if (db_->changes() == 0) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<JoinTokenRecord> SqliteStore::ReenrollAgent(absl::string_view token_hash,
                                                           absl::string_view agent_id,
                                                           absl::string_view serial,
                                                           absl::Time not_after, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(token_hash, "join token hash"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(serial, "identity serial"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "re-enrolling agent ", agent_id);
  // The agent's registered FQDN is what a token bound to an FQDN is checked against.
  CF_ASSIGN_OR_RETURN(Statement * select, db_->PrepareCached(kAgentFqdnSql));
  CF_RETURN_IF_ERROR(select->BindText(1, agent_id));
  CF_ASSIGN_OR_RETURN(bool found, select->Step(), "re-enrolling agent ", agent_id);
  if (!found) return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
  const std::string fqdn = select->ColumnText(0);
  select->Reset();

  CF_ASSIGN_OR_RETURN(JoinTokenRecord token, ConsumeTokenLocked(token_hash, fqdn, agent_id, now,
                                                                /*reenrollment=*/true));
  CF_ASSIGN_OR_RETURN(Statement * update, db_->PrepareCached(kAgentIdentitySql));
  CF_RETURN_IF_ERROR(update->BindText(1, agent_id));
  CF_RETURN_IF_ERROR(update->BindText(2, serial));
  CF_RETURN_IF_ERROR(update->BindInt64(3, TimeToMicros(not_after)));
  // On failure the transaction rolls back, and the token stays unused.
  CF_RETURN_IF_ERROR(update->Run(), "re-enrolling agent ", agent_id);
  CF_RETURN_IF_ERROR(txn.Commit(), "re-enrolling agent ", agent_id);
  return token;
}

}  // namespace certfleet::controller::store
