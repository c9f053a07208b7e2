#include "common/sqlite/migration.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/sqlite/database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::common::sqlite {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const std::vector<Migration> kV1 = {
    {1, "notes table", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"},
};

std::vector<Migration> V2() {
  std::vector<Migration> migrations = kV1;
  migrations.push_back({2, "note authors",
                        "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT '';"
                        "CREATE INDEX notes_author ON notes(author);"});
  return migrations;
}

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/common_sqlite_migration_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/m.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Database> Open() {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path_, {});
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  int64_t CountNotes(Database& db) {
    absl::StatusOr<Statement> count = db.Prepare("SELECT count(*) FROM notes");
    EXPECT_TRUE(count.ok()) << count.status();
    if (!count.ok()) return -1;
    EXPECT_TRUE(*count->Step());
    return count->ColumnInt64(0);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(MigrationTest, ANewDatabaseIsMigratedToTheLastVersion) {
  std::unique_ptr<Database> db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*SchemaVersion(*db), 0);
  ASSERT_TRUE(Migrate(*db, V2()).ok());
  EXPECT_EQ(*SchemaVersion(*db), 2);
  EXPECT_TRUE(db->Execute("INSERT INTO notes(body, author) VALUES ('x', 'ann')").ok());
}

TEST_F(MigrationTest, MigratingAgainAfterReopenChangesNothing) {
  {
    std::unique_ptr<Database> db = Open();
    ASSERT_TRUE(Migrate(*db, kV1).ok());
    ASSERT_TRUE(db->Execute("INSERT INTO notes(body) VALUES ('kept')").ok());
  }
  std::unique_ptr<Database> db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(Migrate(*db, kV1).ok());
  ASSERT_TRUE(Migrate(*db, kV1).ok());
  EXPECT_EQ(*SchemaVersion(*db), 1);
  EXPECT_EQ(CountNotes(*db), 1);
}

TEST_F(MigrationTest, OnlyTheMissingMigrationsAreApplied) {
  {
    std::unique_ptr<Database> db = Open();
    ASSERT_TRUE(Migrate(*db, kV1).ok());
    ASSERT_TRUE(db->Execute("INSERT INTO notes(body) VALUES ('old')").ok());
  }
  std::unique_ptr<Database> db = Open();
  ASSERT_TRUE(Migrate(*db, V2()).ok());
  EXPECT_EQ(*SchemaVersion(*db), 2);
  EXPECT_EQ(CountNotes(*db), 1);
}

TEST_F(MigrationTest, ADatabaseFromANewerBuildIsRefused) {
  {
    std::unique_ptr<Database> db = Open();
    ASSERT_TRUE(Migrate(*db, V2()).ok());
  }
  std::unique_ptr<Database> db = Open();
  absl::Status status = Migrate(*db, kV1);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr(path_), HasSubstr("schema version 2"), HasSubstr("up to 1")));
  EXPECT_EQ(*SchemaVersion(*db), 2);
}

TEST_F(MigrationTest, MigrationsMustBeNumberedFromOneWithoutGaps) {
  std::unique_ptr<Database> db = Open();
  std::vector<Migration> gap = {{1, "a", "CREATE TABLE a (x);"}, {3, "c", "CREATE TABLE c (x);"}};
  EXPECT_EQ(Migrate(*db, gap).code(), absl::StatusCode::kInvalidArgument);
  std::vector<Migration> zero = {{0, "a", "CREATE TABLE a (x);"}};
  EXPECT_EQ(Migrate(*db, zero).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*SchemaVersion(*db), 0);
}

TEST_F(MigrationTest, AFailingMigrationAppliesNothingAndNamesItself) {
  std::unique_ptr<Database> db = Open();
  std::vector<Migration> migrations = kV1;
  migrations.push_back({2, "broken step", "ALTER TABLE no_such_table ADD COLUMN x TEXT;"});
  absl::Status status = Migrate(*db, migrations);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("version 2"), HasSubstr("broken step"), HasSubstr("no_such_table")));
  EXPECT_EQ(*SchemaVersion(*db), 0);
  EXPECT_EQ(db->Execute("SELECT * FROM notes").code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(db->in_transaction());
}

}  // namespace
}  // namespace certfleet::common::sqlite
