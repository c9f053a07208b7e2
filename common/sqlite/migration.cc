#include "common/sqlite/migration.h"

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace certfleet::common::sqlite {
namespace {

absl::Status CheckNewer(const Database& db, int current, int latest) {
  if (current > latest) {
    return absl::FailedPreconditionError(
        absl::StrCat("database ", db.path(), " has schema version ", current,
                     " but this build of certfleet knows versions up to ", latest,
                     "; it was written by a newer certfleet: upgrade, or restore a backup"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> SchemaVersion(Database& db) {
  CF_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("PRAGMA user_version"));
  CF_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError("PRAGMA user_version returned no row");
  return static_cast<int>(stmt.ColumnInt64(0));
}

absl::Status Migrate(Database& db, const std::vector<Migration>& migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i + 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration #", i + 1, " (", migrations[i].description, ") has version ",
                       migrations[i].version, "; versions must be 1, 2, 3, ..."));
    }
  }
  const int latest = static_cast<int>(migrations.size());

  CF_ASSIGN_OR_RETURN(int current, SchemaVersion(db), "reading schema version of ", db.path());
  CF_RETURN_IF_ERROR(CheckNewer(db, current, latest));
  if (current == latest) return absl::OkStatus();

  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db), "migrating ", db.path());
  // Another connection may have migrated between the read above and the lock.
  CF_ASSIGN_OR_RETURN(current, SchemaVersion(db), "reading schema version of ", db.path());
  CF_RETURN_IF_ERROR(CheckNewer(db, current, latest));
  for (int version = current + 1; version <= latest; ++version) {
    const Migration& migration = migrations[version - 1];
    const std::string context = absl::StrCat("migrating ", db.path(), " to schema version ",
                                             version, " (", migration.description, ")");
    CF_RETURN_IF_ERROR(db.Execute(migration.sql), "", context);
    CF_RETURN_IF_ERROR(db.Execute(absl::StrCat("PRAGMA user_version = ", version)), "", context);
  }
  CF_RETURN_IF_ERROR(txn.Commit(), "migrating ", db.path());
  return absl::OkStatus();
}

}  // namespace certfleet::common::sqlite
