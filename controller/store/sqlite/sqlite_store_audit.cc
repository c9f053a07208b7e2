// SqliteStore: the audit log (table audit_log, schema version 5).
//
// One row per entry, keyed by seq. The store only keeps the chain's order and links (seq,
// prev_hash) and stores what the sealer computes; what the hash covers and how it is keyed is
// controller/audit/audit_log.h's business. Rows are never updated or deleted by the store.

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/sqlite/database.h"
#include "common/status/status_macros.h"
#include "controller/store/sqlite/encoding.h"
#include "controller/store/sqlite/sqlite_store.h"

namespace certfleet::controller::store {
namespace {

using common::sqlite::Statement;
using common::sqlite::Transaction;

constexpr char kLastAuditSql[] = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
constexpr char kInsertAuditSql[] =
    "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr char kListAuditSql[] =
    "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log "
    "WHERE seq > ?1 AND at >= ?2 ORDER BY seq LIMIT ?3";

absl::StatusOr<AuditRecord> ReadAudit(const Statement& row) {
  AuditRecord r;
  const int64_t seq = row.ColumnInt64(0);
  if (seq <= 0) {
    return absl::DataLossError(absl::StrCat("audit log: stored entry has seq ", seq));
  }
  r.seq = static_cast<uint64_t>(seq);
  r.at = MicrosToTime(row.ColumnInt64(1));
  r.actor = row.ColumnText(2);
  r.action = row.ColumnText(3);
  r.target = row.ColumnText(4);
  r.details = row.ColumnText(5);
  r.prev_hash = row.ColumnText(6);
  r.hash = row.ColumnText(7);
  return r;
}

// SQLite integers are signed: values past int64's range are clamped (no real log gets there).
int64_t ClampToInt64(uint64_t value) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(value > kMax ? kMax : value);
}

}  // namespace

absl::StatusOr<AuditRecord> SqliteStore::AppendAudit(AuditRecord entry, const AuditSealer& seal) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(entry.actor, "audit actor"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(entry.action, "audit action"));
  if (!seal) return absl::InvalidArgumentError("audit entry: no sealer given");
  // The time as it will read back, so that the sealer hashes exactly what is stored.
  entry.at = MicrosToTime(TimeToMicros(entry.at));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "appending to the audit log");
  {
    CF_ASSIGN_OR_RETURN(Statement * last, db_->PrepareCached(kLastAuditSql));
    CF_ASSIGN_OR_RETURN(bool found, last->Step(), "reading the audit log's last entry");
    if (found) {
      const int64_t last_seq = last->ColumnInt64(0);
      entry.prev_hash = last->ColumnText(1);
      last->Reset();
      if (last_seq <= 0) {
        return absl::DataLossError(absl::StrCat("audit log: last entry has seq ", last_seq));
      }
      entry.seq = static_cast<uint64_t>(last_seq) + 1;
    } else {
      entry.prev_hash.clear();
      entry.seq = 1;
    }
  }
  entry.hash = seal(entry);
  CF_ASSIGN_OR_RETURN(Statement * insert, db_->PrepareCached(kInsertAuditSql));
  CF_RETURN_IF_ERROR(insert->BindInt64(1, ClampToInt64(entry.seq)));
  CF_RETURN_IF_ERROR(insert->BindInt64(2, TimeToMicros(entry.at)));
  CF_RETURN_IF_ERROR(insert->BindText(3, entry.actor));
  CF_RETURN_IF_ERROR(insert->BindText(4, entry.action));
  CF_RETURN_IF_ERROR(insert->BindText(5, entry.target));
  CF_RETURN_IF_ERROR(insert->BindText(6, entry.details));
  CF_RETURN_IF_ERROR(insert->BindText(7, entry.prev_hash));
  CF_RETURN_IF_ERROR(insert->BindText(8, entry.hash));
  CF_RETURN_IF_ERROR(insert->Run(), "appending audit entry ", entry.seq);
  CF_RETURN_IF_ERROR(txn.Commit(), "appending audit entry ", entry.seq);
  return entry;
}

absl::StatusOr<std::vector<AuditRecord>> SqliteStore::ListAudit(const AuditFilter& filter) {
  if (filter.limit == 0) return absl::InvalidArgumentError("audit filter limit is 0");
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kListAuditSql));
  CF_RETURN_IF_ERROR(stmt->BindInt64(1, ClampToInt64(filter.after_seq)));
  CF_RETURN_IF_ERROR(stmt->BindInt64(
      2, filter.since ? TimeToMicros(*filter.since) : std::numeric_limits<int64_t>::min()));
  CF_RETURN_IF_ERROR(stmt->BindInt64(3, ClampToInt64(filter.limit)));
  return ReadAll<AuditRecord>(*stmt, ReadAudit, "listing the audit log");
}

}  // namespace certfleet::controller::store
