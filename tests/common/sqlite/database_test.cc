#include "common/sqlite/database.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/sqlite/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::common::sqlite {
namespace {

using ::testing::HasSubstr;

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/common_sqlite_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string PathOf(const std::string& name) const { return dir_ + "/" + name; }

  std::unique_ptr<Database> OpenOrDie(const std::string& name, Database::Options options = {}) {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(PathOf(name), options);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  std::string dir_;
};

int ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

std::string PragmaText(Database& db, const std::string& pragma) {
  absl::StatusOr<Statement> stmt = db.Prepare("PRAGMA " + pragma);
  EXPECT_TRUE(stmt.ok()) << stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  EXPECT_TRUE(row.ok() && *row);
  return stmt->ColumnText(0);
}

TEST_F(DatabaseTest, OpenCreatesTheFileReadableByTheOwnerOnly) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (x INTEGER)").ok());
  EXPECT_EQ(ModeOf(PathOf("a.db")), 0600);
  EXPECT_EQ(ModeOf(PathOf("a.db-wal")), 0600);
  EXPECT_EQ(ModeOf(PathOf("a.db-shm")), 0600);
  EXPECT_EQ(db->path(), PathOf("a.db"));
}

TEST_F(DatabaseTest, OpenUsesWalForeignKeysNormalSyncAndTheBusyTimeout) {
  Database::Options options;
  options.busy_timeout = absl::Milliseconds(1234);
  std::unique_ptr<Database> db = OpenOrDie("a.db", options);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(PragmaText(*db, "journal_mode"), "wal");
  EXPECT_EQ(PragmaText(*db, "foreign_keys"), "1");
  EXPECT_EQ(PragmaText(*db, "synchronous"), "1");  // NORMAL
  EXPECT_EQ(PragmaText(*db, "busy_timeout"), "1234");
}

TEST_F(DatabaseTest, OpeningAMissingFileWithoutCreateIsNotFound) {
  Database::Options options;
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(PathOf("missing.db"), options);
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound) << db.status();
  EXPECT_FALSE(std::filesystem::exists(PathOf("missing.db")));
}

TEST_F(DatabaseTest, OpeningInAMissingDirectoryIsNotFound) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(PathOf("no/such/dir.db"), {});
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound) << db.status();
}

TEST_F(DatabaseTest, AnEmptyPathIsInvalidArgument) {
  EXPECT_EQ(Database::Open("", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatabaseTest, AGarbageFileIsDataLossNamingThePath) {
  {
    std::ofstream out(PathOf("garbage.db"), std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 7919) % 251));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(PathOf("garbage.db"), {});
  EXPECT_EQ(db.status().code(), absl::StatusCode::kDataLoss) << db.status();
  EXPECT_THAT(std::string(db.status().message()), HasSubstr(PathOf("garbage.db")));
}

TEST_F(DatabaseTest, AShortTextFileIsDataLoss) {
  {
    std::ofstream out(PathOf("notes.db"));
    out << "this is not a database\n";
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(PathOf("notes.db"), {});
  EXPECT_EQ(db.status().code(), absl::StatusCode::kDataLoss) << db.status();
}

TEST_F(DatabaseTest, QuickCheckPassesOnAHealthyDatabase) {
  { ASSERT_TRUE(OpenOrDie("a.db")->Execute("CREATE TABLE t (x)").ok()); }
  Database::Options options;
  options.quick_check = true;
  EXPECT_NE(OpenOrDie("a.db", options), nullptr);
}

TEST_F(DatabaseTest, ValuesRoundTripThroughBindAndColumn) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (i INTEGER, s TEXT, b BLOB, n INTEGER)").ok());
  const std::string text_with_nul("a\0b\n\xff", 5);
  const std::string blob("\x00\x01\x02\xfe", 4);
  absl::StatusOr<Statement> insert = db->Prepare("INSERT INTO t VALUES (?1, ?2, ?3, ?4)");
  ASSERT_TRUE(insert.ok()) << insert.status();
  ASSERT_TRUE(insert->BindInt64(1, std::numeric_limits<int64_t>::min()).ok());
  ASSERT_TRUE(insert->BindText(2, text_with_nul).ok());
  ASSERT_TRUE(insert->BindBlob(3, blob).ok());
  ASSERT_TRUE(insert->BindOptionalInt64(4, std::nullopt).ok());
  ASSERT_TRUE(insert->Run().ok());
  ASSERT_EQ(db->changes(), 1);
  // Empty text and empty blobs are values, not NULL.
  ASSERT_TRUE(insert->BindInt64(1, std::numeric_limits<int64_t>::max()).ok());
  ASSERT_TRUE(insert->BindText(2, absl::string_view()).ok());
  ASSERT_TRUE(insert->BindBlob(3, absl::string_view()).ok());
  ASSERT_TRUE(insert->BindOptionalInt64(4, 7).ok());
  ASSERT_TRUE(insert->Run().ok());

  absl::StatusOr<Statement> select =
      db->Prepare("SELECT i, s, b, n, s IS NULL, b IS NULL FROM t ORDER BY i");
  ASSERT_TRUE(select.ok()) << select.status();
  EXPECT_EQ(select->ColumnCount(), 6);
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnInt64(0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(select->ColumnText(1), text_with_nul);
  EXPECT_EQ(select->ColumnBlob(2), blob);
  EXPECT_TRUE(select->ColumnIsNull(3));
  EXPECT_EQ(select->ColumnOptionalInt64(3), std::nullopt);
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnInt64(0), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(select->ColumnOptionalText(1), std::optional<std::string>(""));
  EXPECT_EQ(select->ColumnBlob(2), "");
  EXPECT_EQ(select->ColumnOptionalInt64(3), std::optional<int64_t>(7));
  EXPECT_EQ(select->ColumnInt64(4), 0);
  EXPECT_EQ(select->ColumnInt64(5), 0);
  EXPECT_FALSE(*select->Step());
}

TEST_F(DatabaseTest, ParametersBindByName) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  absl::StatusOr<Statement> stmt = db->Prepare("SELECT :a + :b, :c, :d IS NULL");
  ASSERT_TRUE(stmt.ok()) << stmt.status();
  ASSERT_TRUE(stmt->BindInt64(":a", 40).ok());
  ASSERT_TRUE(stmt->BindInt64(":b", 2).ok());
  ASSERT_TRUE(stmt->BindOptionalText(":c", std::optional<std::string>("x")).ok());
  ASSERT_TRUE(stmt->BindNull(":d").ok());
  ASSERT_TRUE(*stmt->Step());
  EXPECT_EQ(stmt->ColumnInt64(0), 42);
  EXPECT_EQ(stmt->ColumnText(1), "x");
  EXPECT_EQ(stmt->ColumnInt64(2), 1);
}

TEST_F(DatabaseTest, BindingAnUnknownParameterIsInternal) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  absl::StatusOr<Statement> stmt = db->Prepare("SELECT :a");
  ASSERT_TRUE(stmt.ok());
  EXPECT_EQ(stmt->BindInt64(":nope", 1).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(stmt->BindInt64(2, 1).code(), absl::StatusCode::kInternal);
}

TEST_F(DatabaseTest, InvalidSqlIsInternalNamingTheProblem) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  absl::StatusOr<Statement> stmt = db->Prepare("SELEKT 1");
  EXPECT_EQ(stmt.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(stmt.status().message()), HasSubstr("syntax error"));
  EXPECT_EQ(db->Execute("SELECT * FROM missing").code(), absl::StatusCode::kInternal);
}

TEST_F(DatabaseTest, ConstraintViolationsMapToTheirCodes) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE p (id TEXT PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL);"
                          "CREATE TABLE c (p TEXT REFERENCES p(id));"
                          "INSERT INTO p VALUES ('a', 'x', 'n');")
                  .ok());
  absl::Status duplicate = db->Execute("INSERT INTO p VALUES ('a', 'y', 'n')");
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kAlreadyExists) << duplicate;
  EXPECT_THAT(std::string(duplicate.message()), HasSubstr("UNIQUE constraint failed: p.id"));
  EXPECT_EQ(db->Execute("INSERT INTO p VALUES ('b', 'x', 'n')").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(db->Execute("INSERT INTO p VALUES ('c', 'z', NULL)").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db->Execute("INSERT INTO c VALUES ('nobody')").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DatabaseTest, CachedStatementsAreReusedAndComeBackCleared) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  absl::StatusOr<Statement*> first = db->PrepareCached("SELECT ?1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->BindInt64(1, 5).ok());
  ASSERT_TRUE(*(*first)->Step());  // left unfinished on purpose
  absl::StatusOr<Statement*> second = db->PrepareCached("SELECT ?1");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  ASSERT_TRUE(*(*second)->Step());
  EXPECT_TRUE((*second)->ColumnIsNull(0));
}

TEST_F(DatabaseTest, TransactionCommitKeepsTheChanges) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (x INTEGER)").ok());
  {
    absl::StatusOr<Transaction> txn = Transaction::Begin(*db);
    ASSERT_TRUE(txn.ok()) << txn.status();
    EXPECT_TRUE(db->in_transaction());
    ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (1)").ok());
    ASSERT_TRUE(txn->Commit().ok());
    EXPECT_FALSE(db->in_transaction());
    EXPECT_EQ(txn->Commit().code(), absl::StatusCode::kInternal);
  }
  EXPECT_EQ(PragmaText(*db, "user_version"), "0");
  absl::StatusOr<Statement> count = db->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt64(0), 1);
}

TEST_F(DatabaseTest, TransactionRollsBackWhenItLeavesScopeUncommitted) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (x INTEGER)").ok());
  {
    absl::StatusOr<Transaction> txn = Transaction::Begin(*db);
    ASSERT_TRUE(txn.ok()) << txn.status();
    ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (1)").ok());
  }
  EXPECT_FALSE(db->in_transaction());
  {
    absl::StatusOr<Transaction> txn = Transaction::Begin(*db);
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (2)").ok());
    ASSERT_TRUE(txn->Rollback().ok());
    EXPECT_EQ(txn->Rollback().code(), absl::StatusCode::kInternal);
  }
  absl::StatusOr<Statement> count = db->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt64(0), 0);
}

TEST_F(DatabaseTest, TransactionsDoNotNest) {
  std::unique_ptr<Database> db = OpenOrDie("a.db");
  ASSERT_NE(db, nullptr);
  absl::StatusOr<Transaction> outer = Transaction::Begin(*db);
  ASSERT_TRUE(outer.ok());
  EXPECT_EQ(Transaction::Begin(*db).status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(db->in_transaction());
}

TEST_F(DatabaseTest, ALockHeldPastTheBusyTimeoutIsUnavailable) {
  std::unique_ptr<Database> holder = OpenOrDie("a.db");
  ASSERT_NE(holder, nullptr);
  ASSERT_TRUE(holder->Execute("CREATE TABLE t (x INTEGER)").ok());
  Database::Options impatient;
  impatient.busy_timeout = absl::Milliseconds(50);
  std::unique_ptr<Database> waiter = OpenOrDie("a.db", impatient);
  ASSERT_NE(waiter, nullptr);

  absl::StatusOr<Transaction> held = Transaction::Begin(*holder);
  ASSERT_TRUE(held.ok());
  absl::StatusOr<Transaction> blocked = Transaction::Begin(*waiter);
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kUnavailable) << blocked.status();
  EXPECT_EQ(waiter->Execute("INSERT INTO t VALUES (1)").code(), absl::StatusCode::kUnavailable);
  // Readers are not blocked by a writer in WAL mode.
  absl::StatusOr<Statement> read = waiter->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->Step().ok());
  read->Reset();

  ASSERT_TRUE(held->Commit().ok());
  absl::StatusOr<Transaction> now = Transaction::Begin(*waiter);
  EXPECT_TRUE(now.ok()) << now.status();
}

TEST(SqliteStatusTest, ResultCodesMapToCanonicalCodes) {
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_BUSY), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_BUSY_SNAPSHOT), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_LOCKED), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_CORRUPT), absl::StatusCode::kDataLoss);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_NOTADB), absl::StatusCode::kDataLoss);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_CONSTRAINT_PRIMARYKEY), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_CONSTRAINT_UNIQUE), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_CONSTRAINT_FOREIGNKEY),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_CONSTRAINT_CHECK), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_READONLY), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_FULL), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_TOOBIG), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_ERROR), absl::StatusCode::kInternal);
  EXPECT_EQ(StatusCodeFromSqlite(SQLITE_IOERR_READ), absl::StatusCode::kInternal);
}

TEST(SqliteStatusTest, ErrorsCarryContextMessageAndCode) {
  absl::Status status = SqliteError(SQLITE_CONSTRAINT_PRIMARYKEY, "inserting agent",
                                    "UNIQUE constraint failed: agents.id");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(),
            "inserting agent: UNIQUE constraint failed: agents.id (SQLITE_CONSTRAINT 1555)");
}

}  // namespace
}  // namespace certfleet::common::sqlite
