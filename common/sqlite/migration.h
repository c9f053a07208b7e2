#pragma once

// Versioned schema migrations. A database's schema version is its PRAGMA user_version (0 for a
// new file); migration N takes it from N-1 to N. Migrate() applies the missing ones, in order,
// in one transaction, so a database is always at exactly one known version:
//
//   const std::vector<Migration> kMigrations = {
//       {1, "initial schema", "CREATE TABLE agents (...); CREATE INDEX ...;"},
//       {2, "agent notes", "ALTER TABLE agents ADD COLUMN notes TEXT NOT NULL DEFAULT '';"},
//   };
//   CF_RETURN_IF_ERROR(Migrate(*db, kMigrations));
//
// Released migrations are never edited, only appended to. A migration's SQL runs inside the
// transaction, so it must not change PRAGMA foreign_keys or journal_mode.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sqlite/database.h"

namespace certfleet::common::sqlite {

struct Migration {
  int version = 0;          // 1, 2, 3, ... without gaps
  std::string description;  // for error messages, e.g. "initial schema"
  std::string sql;          // one or more statements separated by ';'
};

// The schema version of `db` (PRAGMA user_version). Errors per common/sqlite/status.h.
absl::StatusOr<int> SchemaVersion(Database& db);

// Brings `db` to the last version in `migrations`. Does nothing (and takes no write lock) when
// it is already there. InvalidArgument when `migrations` is not numbered 1, 2, 3, ...;
// FailedPrecondition when the database's version is newer than the last migration (it was
// written by a newer certfleet); otherwise the error of the failing migration, named by
// version and description, with its SQLite code (nothing is applied then).
absl::Status Migrate(Database& db, const std::vector<Migration>& migrations);

}  // namespace certfleet::common::sqlite
