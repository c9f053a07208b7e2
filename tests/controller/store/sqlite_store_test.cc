#include "controller/store/sqlite/sqlite_store.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sqlite/database.h"
#include "common/sqlite/migration.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/store/store_conformance.h"

namespace certfleet::controller::store {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A fresh directory for one test, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/controller_store_test.XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty when the directory could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class SqliteStoreFactory : public StoreFactory {
 public:
  absl::StatusOr<std::unique_ptr<Store>> NewStore() override {
    if (dir_.path().empty()) return absl::InternalError("cannot make a temporary directory");
    return SqliteStore::Open({.path = absl::StrCat(dir_.path(), "/store", ++count_, ".db")});
  }

 private:
  TempDir dir_;
  int count_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreImplementation{
                             "Sqlite",
                             [] { return std::unique_ptr<StoreFactory>(new SqliteStoreFactory); }}),
                         StoreImplementationName);

// --- What only the SQLite store has: a file ---

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);

AgentRecord Agent(const std::string& id, const std::string& fqdn) {
  AgentRecord agent;
  agent.id = id;
  agent.fqdn = fqdn;
  agent.enrolled_at = kT0;
  agent.labels = {{"k", "v,1:x"}};
  return agent;
}

CertificateRecord Certificate(const std::string& store, const std::string& thumbprint,
                              absl::Time not_after) {
  CertificateRecord cert;
  cert.store = store;
  cert.location = "LocalMachine";
  cert.info.thumbprint = thumbprint;
  cert.info.subject = "CN=" + thumbprint;
  cert.info.dns_names = {thumbprint + ".example.com"};
  cert.info.not_before = not_after - absl::Hours(24 * 365);
  cert.info.not_after = not_after;
  cert.problems = {"EXPIRES_SOON"};
  return cert;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  std::string path() const { return dir_.path() + "/controller.db"; }

  std::unique_ptr<Store> OpenOrDie() {
    absl::StatusOr<std::unique_ptr<Store>> store = SqliteStore::Open({.path = path()});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::unique_ptr<common::sqlite::Database> OpenRaw() {
    absl::StatusOr<std::unique_ptr<common::sqlite::Database>> db =
        common::sqlite::Database::Open(path(), {});
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  TempDir dir_;
};

TEST_F(SqliteStoreTest, DataSurvivesReopening) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    JoinTokenRecord token;
    token.token_hash = "hash-1";
    token.expires_at = kT0 + absl::Hours(1);
    ASSERT_TRUE(store->CreateJoinToken(token).ok());
    ASSERT_TRUE(store->EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0).ok());
    ASSERT_TRUE(store
                    ->ReplaceInventory("agent-1", 3, {Certificate("My", "AAAA", kT0)},
                                       {"AB", {"NOT_BOUND"}}, kT0)
                    .ok());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<AgentRecord> agent = store->GetAgent("agent-1");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->labels, Agent("agent-1", "").labels);
  EXPECT_EQ(agent->inventory_generation, 3u);
  EXPECT_EQ(agent->channel_serial, "AB");
  absl::StatusOr<std::vector<CertificateRecord>> certs = store->ListCertificates({});
  ASSERT_TRUE(certs.ok());
  ASSERT_EQ(certs->size(), 1u);
  EXPECT_EQ((*certs)[0].info.dns_names, std::vector<std::string>{"AAAA.example.com"});
  EXPECT_EQ(store->ConsumeJoinToken("hash-1", "web1.example.com", "agent-2", kT0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, TheDatabaseFileIsReadableByTheOwnerOnly) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteStoreTest, TheSchemaIsAtTheLastMigrationWithItsIndexes) {
  ASSERT_NE(OpenOrDie(), nullptr);
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*common::sqlite::SchemaVersion(*db),
            static_cast<int>(SqliteStore::Migrations().size()));
  absl::StatusOr<common::sqlite::Statement> indexes = db->Prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_%' "
      "ORDER BY name");
  ASSERT_TRUE(indexes.ok());
  std::vector<std::string> names;
  while (*indexes->Step()) names.push_back(indexes->ColumnText(0));
  EXPECT_THAT(names, ::testing::ElementsAre("agents_by_fqdn", "certificates_by_not_after"));
}

TEST_F(SqliteStoreTest, AGarbageFileIsDataLossNamingThePath) {
  {
    std::ofstream out(path(), std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(i * 31 % 253));
  }
  absl::StatusOr<std::unique_ptr<Store>> store = SqliteStore::Open({.path = path()});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path()));
}

TEST_F(SqliteStoreTest, ADatabaseWithADamagedPageIsDataLoss) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  }
  {
    // Checkpoint the WAL into the main file, then overwrite everything after the header page.
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE").ok());
  }
  ASSERT_GT(std::filesystem::file_size(path()), 4096u);
  {
    std::fstream file(path(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(4096);
    for (int i = 0; i < 4096; ++i) file.put('\x5a');
  }
  absl::StatusOr<std::unique_ptr<Store>> store =
      SqliteStore::Open({.path = path(), .quick_check = true});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path()));
}

TEST_F(SqliteStoreTest, ADatabaseFromANewerCertfleetIsRefused) {
  ASSERT_NE(OpenOrDie(), nullptr);
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("PRAGMA user_version = 99").ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = SqliteStore::Open({.path = path()});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              AllOf(HasSubstr(path()), HasSubstr("schema version 99")));
}

TEST_F(SqliteStoreTest, AMissingDirectoryIsNotFound) {
  absl::StatusOr<std::unique_ptr<Store>> store =
      SqliteStore::Open({.path = dir_.path() + "/missing/controller.db"});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound) << store.status();
  EXPECT_EQ(SqliteStore::Open({.path = ""}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, AStoredValueThatCannotBeDecodedIsDataLoss) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(
        store->ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  }
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("UPDATE agents SET labels = x'39393a78'").ok());
    ASSERT_TRUE(db->Execute("UPDATE certificates SET problems = x'313a'").ok());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<AgentRecord> agent = store->GetAgent("agent-1");
  EXPECT_EQ(agent.status().code(), absl::StatusCode::kDataLoss) << agent.status();
  EXPECT_THAT(std::string(agent.status().message()), HasSubstr("agent-1"));
  EXPECT_EQ(store->ListAgents().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->ListCertificates({}).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteStoreTest, OneTokenConsumedThroughTwoConnectionsHasOneWinner) {
  std::unique_ptr<Store> first = OpenOrDie();
  std::unique_ptr<Store> second = OpenOrDie();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  JoinTokenRecord token;
  token.token_hash = "hash-1";
  token.expires_at = kT0 + absl::Hours(1);
  ASSERT_TRUE(first->CreateJoinToken(token).ok());

  constexpr int kThreads = 8;
  std::atomic<int> winners{0};
  std::atomic<int> already_used{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    Store* store = (i % 2 == 0) ? first.get() : second.get();
    threads.emplace_back([&, store, i] {
      absl::StatusOr<JoinTokenRecord> used =
          store->EnrollAgent("hash-1", Agent(absl::StrCat("agent-", i), "web1.example.com"), kT0);
      if (used.ok()) ++winners;
      if (used.status().code() == absl::StatusCode::kFailedPrecondition) ++already_used;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
  EXPECT_EQ(second->ListAgents()->size(), 1u);
}

TEST_F(SqliteStoreTest, DeletingAnAgentRowDeletesItsCertificates) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(
        store->ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  }
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("DELETE FROM agents").ok());
  absl::StatusOr<common::sqlite::Statement> count =
      db->Prepare("SELECT count(*) FROM certificates");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt64(0), 0);
}

std::vector<CertificateRecord> ManyCertificates(int count, absl::string_view prefix) {
  std::vector<CertificateRecord> certs;
  certs.reserve(count);
  for (int i = 0; i < count; ++i) {
    certs.push_back(
        Certificate(i % 3 == 0 ? "My" : "CA", absl::StrCat(prefix, i), kT0 + absl::Minutes(i)));
  }
  return certs;
}

TEST_F(SqliteStoreTest, ALargeInventoryIsReplacedAndUpdatedInOneGo) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  ASSERT_TRUE(store->ReplaceInventory("agent-1", 1, ManyCertificates(20'000, "A"), {}, kT0).ok());
  ASSERT_TRUE(store->ReplaceInventory("agent-1", 2, ManyCertificates(20'000, "B"), {}, kT0).ok());
  std::vector<std::string> removed;
  for (int i = 0; i < 5'000; ++i)
    removed.push_back(absl::StrCat(i % 3 == 0 ? "My" : "CA", "/B", i));
  ASSERT_TRUE(
      store->ApplyInventoryDelta("agent-1", 2, 3, ManyCertificates(1'000, "C"), removed, {}, kT0)
          .ok());
  absl::StatusOr<std::vector<CertificateRecord>> certs = store->ListCertificates({});
  ASSERT_TRUE(certs.ok());
  EXPECT_EQ(certs->size(), 16'000u);
}

// Run by hand: --gtest_also_run_disabled_tests --gtest_filter='*HalfAMillion*'
TEST_F(SqliteStoreTest, DISABLED_BenchmarkHalfAMillionCertificates) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  std::vector<CertificateRecord> certs = ManyCertificates(500'000, "A");
  absl::Time start = absl::Now();
  ASSERT_TRUE(store->ReplaceInventory("agent-1", 1, certs, {}, kT0).ok());
  absl::Time replaced = absl::Now();
  ASSERT_TRUE(store->ReplaceInventory("agent-1", 2, certs, {}, kT0).ok());
  absl::Time replaced_again = absl::Now();
  absl::StatusOr<std::vector<CertificateRecord>> listed = store->ListCertificates({});
  absl::Time listed_at = absl::Now();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 500'000u);
  CertificateFilter filter;
  filter.code = "EXPIRED";
  ASSERT_TRUE(store->ListCertificates(filter).ok());
  absl::Time filtered = absl::Now();
  std::cout << "replace 500k into empty: " << (replaced - start)
            << "\nreplace 500k over 500k: " << (replaced_again - replaced)
            << "\nlist 500k: " << (listed_at - replaced_again)
            << "\nlist with code filter (no match): " << (filtered - listed_at) << "\n";
}

}  // namespace
}  // namespace certfleet::controller::store
