#pragma once

// How SQLite result codes become absl::Status codes. Every failure in common/sqlite goes through
// here, so callers can rely on the mapping:
//
//   SQLITE_BUSY, SQLITE_LOCKED, SQLITE_SCHEMA          -> Unavailable (retry later)
//   SQLITE_CORRUPT, SQLITE_NOTADB                      -> DataLoss
//   SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE / _ROWID    -> AlreadyExists
//   any other SQLITE_CONSTRAINT_* (foreign key, NOT NULL, CHECK, STRICT datatype, ...)
//                                                      -> FailedPrecondition
//   SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH          -> PermissionDenied
//   SQLITE_FULL, SQLITE_NOMEM                          -> ResourceExhausted
//   SQLITE_TOOBIG                                      -> InvalidArgument
//   SQLITE_CANTOPEN                                    -> Unavailable
//   SQLITE_INTERRUPT                                   -> Cancelled
//   everything else (SQLITE_ERROR: bad SQL, SQLITE_MISUSE, SQLITE_RANGE, SQLITE_IOERR, ...)
//                                                      -> Internal

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace certfleet::common::sqlite {

// The canonical code for an SQLite result code, primary or extended (see the table above).
// Must not be called with SQLITE_OK, SQLITE_ROW or SQLITE_DONE.
absl::StatusCode StatusCodeFromSqlite(int result_code);

// A Status with the code above and the message "<context>: <message> (<primary name> <code>)",
// e.g. "inserting agent: UNIQUE constraint failed: agents.id (SQLITE_CONSTRAINT 1555)".
// `message` is normally sqlite3_errmsg() of the connection that failed.
absl::Status SqliteError(int result_code, absl::string_view context, absl::string_view message);

}  // namespace certfleet::common::sqlite
