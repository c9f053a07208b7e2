#include "common/sqlite/database.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sqlite/status.h"
#include "common/status/status_macros.h"

namespace certfleet::common::sqlite {
namespace {

// A pointer that is never null, for binding empty text and blobs: SQLite binds NULL for a null
// data pointer whatever the length.
constexpr char kEmpty[] = "";

const char* NonNullData(absl::string_view value) {
  return value.data() == nullptr ? kEmpty : value.data();
}

absl::Status ErrorFrom(sqlite3* db, int rc, absl::string_view context) {
  return SqliteError(rc, context, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

// The first line of `sql`, shortened, to name a statement in an error message.
std::string Excerpt(absl::string_view sql) {
  constexpr size_t kMax = 60;
  size_t end = sql.find('\n');
  if (end == absl::string_view::npos) end = sql.size();
  end = std::min(end, kMax);
  return absl::StrCat("'", sql.substr(0, end), end < sql.size() ? "...'" : "'");
}

// Creates `path` with mode 0600 when it does not exist, so that SQLite (which otherwise uses
// 0644 less the umask) and its -wal and -shm files are readable by the owner only.
absl::Status CreateOwnerOnly(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    std::string message = absl::StrCat("creating ", path, ": ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
    if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
    if (err == EISDIR) return absl::FailedPreconditionError(message);
    return absl::UnavailableError(message);
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

// --- Statement ---

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

absl::Status Statement::BindResult(int rc, int index, absl::string_view what) {
  if (rc == SQLITE_OK) return absl::OkStatus();
  return ErrorFrom(
      db_, rc,
      absl::StrCat("binding ", what, " to parameter ", index, " of ", Excerpt(sqlite3_sql(stmt_))));
}

absl::StatusOr<int> Statement::ParameterIndex(absl::string_view name) {
  int index = sqlite3_bind_parameter_index(stmt_, std::string(name).c_str());
  if (index == 0) {
    return absl::InternalError(
        absl::StrCat("no parameter ", name, " in ", Excerpt(sqlite3_sql(stmt_))));
  }
  return index;
}

absl::Status Statement::BindInt64(int index, int64_t value) {
  return BindResult(sqlite3_bind_int64(stmt_, index, value), index, "an integer");
}

absl::Status Statement::BindText(int index, absl::string_view value) {
  return BindResult(sqlite3_bind_text64(stmt_, index, NonNullData(value), value.size(),
                                        SQLITE_TRANSIENT, SQLITE_UTF8),
                    index, "text");
}

absl::Status Statement::BindBlob(int index, absl::string_view value) {
  return BindResult(
      sqlite3_bind_blob64(stmt_, index, NonNullData(value), value.size(), SQLITE_TRANSIENT), index,
      "a blob");
}

absl::Status Statement::BindNull(int index) {
  return BindResult(sqlite3_bind_null(stmt_, index), index, "NULL");
}

absl::Status Statement::BindOptionalInt64(int index, std::optional<int64_t> value) {
  return value.has_value() ? BindInt64(index, *value) : BindNull(index);
}

absl::Status Statement::BindOptionalText(int index, const std::optional<std::string>& value) {
  return value.has_value() ? BindText(index, *value) : BindNull(index);
}

absl::Status Statement::BindInt64(absl::string_view name, int64_t value) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindInt64(index, value);
}

absl::Status Statement::BindText(absl::string_view name, absl::string_view value) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindText(index, value);
}

absl::Status Statement::BindBlob(absl::string_view name, absl::string_view value) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindBlob(index, value);
}

absl::Status Statement::BindNull(absl::string_view name) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindNull(index);
}

absl::Status Statement::BindOptionalInt64(absl::string_view name, std::optional<int64_t> value) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindOptionalInt64(index, value);
}

absl::Status Statement::BindOptionalText(absl::string_view name,
                                         const std::optional<std::string>& value) {
  CF_ASSIGN_OR_RETURN(int index, ParameterIndex(name));
  return BindOptionalText(index, value);
}

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status status = ErrorFrom(db_, rc, "");
  sqlite3_reset(stmt_);  // releases any snapshot or lock the failed statement holds
  return status;
}

absl::Status Statement::Run() {
  while (true) {
    CF_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) break;
  }
  Reset();
  return absl::OkStatus();
}

// sqlite3_reset returns the error of the last Step(), which Step() has already reported.
void Statement::Reset() { sqlite3_reset(stmt_); }

void Statement::ClearBindings() { sqlite3_clear_bindings(stmt_); }

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::ColumnText(int column) const {
  // The pointer first, then the size (sqlite3_column_bytes after the conversion).
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (text == nullptr || size <= 0) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::string Statement::ColumnBlob(int column) const {
  // A zero-length blob reads as a null pointer.
  const void* blob = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (blob == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(blob), static_cast<size_t>(size));
}

std::optional<int64_t> Statement::ColumnOptionalInt64(int column) const {
  if (ColumnIsNull(column)) return std::nullopt;
  return ColumnInt64(column);
}

std::optional<std::string> Statement::ColumnOptionalText(int column) const {
  if (ColumnIsNull(column)) return std::nullopt;
  return ColumnText(column);
}

std::string Statement::sql() const {
  const char* text = sqlite3_sql(stmt_);
  return text == nullptr ? std::string() : std::string(text);
}

// --- Database ---

absl::StatusOr<std::unique_ptr<Database>> Database::Open(absl::string_view path,
                                                         const Options& options) {
  std::string file(path);
  if (file.empty()) return absl::InvalidArgumentError("database path is empty");
  const std::string context = absl::StrCat("opening database ", file);
  if (options.create_if_missing) {
    CF_RETURN_IF_ERROR(CreateOwnerOnly(file), "opening database ", file);
  }

  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    int err = sqlite3_system_errno(raw);
    absl::Status status = ErrorFrom(raw, rc, context);
    sqlite3_close_v2(raw);
    if ((rc & 0xff) == SQLITE_CANTOPEN) {
      if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(status.message());
      if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(status.message());
    }
    return status;
  }
  // From here on the Database owns the connection and closes it on every return.
  std::unique_ptr<Database> db(new Database(file, raw));
  sqlite3_extended_result_codes(raw, 1);
  int64_t timeout_ms = absl::ToInt64Milliseconds(options.busy_timeout);
  sqlite3_busy_timeout(raw, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT_MAX)));

  // The first statement reads the file header: a file that is not a database fails here with
  // SQLITE_NOTADB.
  {
    CF_ASSIGN_OR_RETURN(Statement journal, db->Prepare("PRAGMA journal_mode=WAL"), "", context);
    CF_ASSIGN_OR_RETURN(bool row, journal.Step(), "", context);
    std::string mode = row ? journal.ColumnText(0) : std::string();
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": cannot use WAL journal mode (got '", mode, "')"));
    }
  }
  CF_RETURN_IF_ERROR(db->Execute("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"), "",
                     context);

  if (options.quick_check) {
    // One row "ok", or up to 5 rows each naming a problem.
    CF_ASSIGN_OR_RETURN(Statement check, db->Prepare("PRAGMA quick_check(5)"), "", context);
    std::vector<std::string> problems;
    while (true) {
      CF_ASSIGN_OR_RETURN(bool row, check.Step(), "", context);
      if (!row) break;
      problems.push_back(check.ColumnText(0));
    }
    if (problems != std::vector<std::string>{"ok"}) {
      return absl::DataLossError(
          absl::StrCat(context, ": integrity check failed: ", absl::StrJoin(problems, "; ")));
    }
  }
  return db;
}

Database::~Database() {
  cache_.clear();
  sqlite3_close_v2(db_);
}

absl::Status Database::Execute(absl::string_view sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status = SqliteError(rc, absl::StrCat("executing ", Excerpt(sql)),
                                    message != nullptr ? message : sqlite3_errmsg(db_));
  sqlite3_free(message);
  return status;
}

absl::StatusOr<Statement> Database::PrepareWithFlags(absl::string_view sql, unsigned int flags) {
  if (sql.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("SQL text too long");
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc =
      sqlite3_prepare_v3(db_, NonNullData(sql), static_cast<int>(sql.size()), flags, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return ErrorFrom(db_, rc, absl::StrCat("preparing ", Excerpt(sql)));
  }
  if (stmt == nullptr) {
    return absl::InternalError(absl::StrCat("preparing ", Excerpt(sql), ": no statement"));
  }
  return Statement(db_, stmt);
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  return PrepareWithFlags(sql, 0);
}

absl::StatusOr<Statement*> Database::PrepareCached(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    CF_ASSIGN_OR_RETURN(Statement stmt, PrepareWithFlags(sql, SQLITE_PREPARE_PERSISTENT));
    it = cache_.emplace(std::string(sql), std::make_unique<Statement>(std::move(stmt))).first;
  }
  Statement* stmt = it->second.get();
  stmt->Reset();
  stmt->ClearBindings();
  return stmt;
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }

bool Database::in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

// --- Transaction ---

absl::StatusOr<Transaction> Transaction::Begin(Database& db) {
  CF_RETURN_IF_ERROR(db.Execute("BEGIN IMMEDIATE"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr && db_->in_transaction()) {
    // Nothing to report to: a failed ROLLBACK leaves SQLite to roll back when the connection
    // next reads or closes.
    db_->Execute("ROLLBACK").IgnoreError();
  }
}

absl::Status Transaction::Commit() {
  if (db_ == nullptr) return absl::InternalError("transaction already finished");
  CF_RETURN_IF_ERROR(db_->Execute("COMMIT"));
  db_ = nullptr;
  return absl::OkStatus();
}

absl::Status Transaction::Rollback() {
  if (db_ == nullptr) return absl::InternalError("transaction already finished");
  Database* db = db_;
  db_ = nullptr;
  if (!db->in_transaction()) return absl::OkStatus();  // SQLite already rolled it back
  return db->Execute("ROLLBACK");
}

}  // namespace certfleet::common::sqlite
