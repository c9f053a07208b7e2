#pragma once

// A small RAII layer over the SQLite C API: a connection (Database), prepared statements
// (Statement) and write transactions (Transaction). Errors are absl::Status values with the
// codes of common/sqlite/status.h and the message of sqlite3_errmsg().
//
//   CF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path, {}));
//   CF_RETURN_IF_ERROR(Migrate(*db, kMigrations));          // common/sqlite/migration.h
//   CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db));
//   CF_ASSIGN_OR_RETURN(Statement* insert, db->PrepareCached("INSERT INTO t(a) VALUES (?1)"));
//   CF_RETURN_IF_ERROR(insert->BindInt64(1, 42));
//   CF_RETURN_IF_ERROR(insert->Run());
//   CF_RETURN_IF_ERROR(txn.Commit());
//
// Thread-safety: none of these classes is thread-safe. A Database and every Statement and
// Transaction made from it must be used by one thread at a time, normally under the owner's
// mutex (the connection is opened in SQLite's multi-thread mode, SQLITE_OPEN_NOMUTEX). Several
// Database objects, in this process or others, may open the same file: SQLite's file locks and
// the busy timeout arbitrate between them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace certfleet::common::sqlite {

class Database;

// A prepared statement. Move-only; finalized when destroyed. Must not outlive its Database and
// must not be used after being moved from.
//
// Parameters are numbered from 1 ("?1", or "?" in order) or named with their prefix
// (":name", "@name", "$name"). Columns are numbered from 0. Text and blobs are copied at bind
// time, so the caller's buffers may go away before Step().
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binding. Internal when the index is out of range or the name is not a parameter of the
  // statement (a bug in the caller); InvalidArgument when a value is too big for SQLite.
  absl::Status BindInt64(int index, int64_t value);
  absl::Status BindInt64(absl::string_view name, int64_t value);
  absl::Status BindText(int index, absl::string_view value);
  absl::Status BindText(absl::string_view name, absl::string_view value);
  // An empty `value` binds an empty blob, never NULL.
  absl::Status BindBlob(int index, absl::string_view value);
  absl::Status BindBlob(absl::string_view name, absl::string_view value);
  absl::Status BindNull(int index);
  absl::Status BindNull(absl::string_view name);
  // NULL when `value` is nullopt.
  absl::Status BindOptionalInt64(int index, std::optional<int64_t> value);
  absl::Status BindOptionalInt64(absl::string_view name, std::optional<int64_t> value);
  absl::Status BindOptionalText(int index, const std::optional<std::string>& value);
  absl::Status BindOptionalText(absl::string_view name, const std::optional<std::string>& value);

  // Runs the statement to its next row: true when a row is available through the Column*
  // getters, false when the statement has finished. Errors per common/sqlite/status.h (e.g.
  // Unavailable when the database stays locked past the busy timeout, AlreadyExists on a
  // primary-key conflict, DataLoss when the file is corrupt). A failed statement is reset, ready
  // to run again with the same bindings.
  absl::StatusOr<bool> Step();

  // Steps until the statement finishes (discarding any rows), then Reset()s it, keeping the
  // bindings. For INSERT, UPDATE, DELETE and DDL. Errors as Step().
  absl::Status Run();

  // Rewinds the statement so it can run again; bindings are kept. Releases any read snapshot
  // an unfinished query holds.
  void Reset();
  // Sets every parameter back to NULL.
  void ClearBindings();

  // Column getters for the current row (valid after Step() returned true). A NULL column reads
  // as 0 / empty; ColumnIsNull and the Optional getters tell NULL apart.
  int ColumnCount() const;
  bool ColumnIsNull(int column) const;
  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  std::optional<int64_t> ColumnOptionalInt64(int column) const;
  std::optional<std::string> ColumnOptionalText(int column) const;

  // The SQL text the statement was prepared from.
  std::string sql() const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  absl::Status BindResult(int rc, int index, absl::string_view what);
  absl::StatusOr<int> ParameterIndex(absl::string_view name);

  sqlite3* db_;
  sqlite3_stmt* stmt_;  // null once moved from
};

// One connection to one SQLite database file. See the file comment for thread-safety.
class Database {
 public:
  struct Options {
    // How long a statement waits for another connection's lock before failing with
    // Unavailable.
    absl::Duration busy_timeout = absl::Seconds(5);
    // Create the file (mode 0600, and SQLite gives its -wal and -shm files the same mode) when
    // it does not exist. When false, a missing file is NotFound.
    bool create_if_missing = true;
    // Run "PRAGMA quick_check" at open and fail with DataLoss when it finds a problem. Reads
    // the whole file, O(size); off by default.
    bool quick_check = false;
  };

  // Opens (or creates) the database at `path` and sets it up: WAL journal mode,
  // foreign_keys=ON, synchronous=NORMAL and the busy timeout. Errors name the path:
  // DataLoss when the file is not an SQLite database or is corrupt; NotFound when it (or its
  // directory) does not exist and may not be created; PermissionDenied when it may not be
  // opened; FailedPrecondition when WAL mode cannot be enabled; Unavailable when it is locked
  // past the busy timeout.
  static absl::StatusOr<std::unique_ptr<Database>> Open(absl::string_view path,
                                                        const Options& options);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  // Finalizes cached statements and closes the connection. Statements made by Prepare() should
  // be destroyed first; the connection is released when the last one is.
  ~Database();

  // Runs `sql`, which may hold several statements separated by ';', discarding any rows.
  // Errors per common/sqlite/status.h.
  absl::Status Execute(absl::string_view sql);

  // Prepares one statement. Internal when the SQL is invalid (a bug), DataLoss when the schema
  // is corrupt.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // Like Prepare(), but the statement is prepared once and kept by the Database, keyed by its
  // SQL text. Returns it rewound with every parameter NULL. The pointer stays valid as long as
  // the Database; do not use the same SQL text twice at once (e.g. nested loops).
  absl::StatusOr<Statement*> PrepareCached(absl::string_view sql);

  // Rows changed by the most recent INSERT, UPDATE or DELETE on this connection.
  int64_t changes() const;
  // False in autocommit mode, true while a transaction is open.
  bool in_transaction() const;
  const std::string& path() const { return path_; }

 private:
  Database(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

  absl::StatusOr<Statement> PrepareWithFlags(absl::string_view sql, unsigned int flags);

  std::string path_;
  sqlite3* db_;
  absl::flat_hash_map<std::string, std::unique_ptr<Statement>> cache_;
};

// A write transaction (BEGIN IMMEDIATE: the write lock is taken at Begin, so a busy database
// fails here, with Unavailable, rather than halfway through). Rolled back when destroyed
// without a successful Commit(). Move-only; must not outlive its Database. Transactions do not
// nest.
class Transaction {
 public:
  // Internal when a transaction is already open on `db`; Unavailable when another connection
  // holds the write lock past the busy timeout.
  static absl::StatusOr<Transaction> Begin(Database& db);

  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Commits. On failure the transaction is still rolled back by the destructor. Internal when
  // already committed or rolled back.
  absl::Status Commit();
  // Rolls back now. Internal when already committed or rolled back.
  absl::Status Rollback();

 private:
  explicit Transaction(Database* db) : db_(db) {}

  Database* db_;  // null once committed, rolled back or moved from
};

}  // namespace certfleet::common::sqlite
