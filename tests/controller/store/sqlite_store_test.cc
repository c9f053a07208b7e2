#include "controller/store/sqlite/sqlite_store.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/model/renewal.h"
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
  EXPECT_THAT(names, ::testing::ElementsAre(
                         "agents_by_fqdn", "approval_requests_by_state", "audit_log_at",
                         "campaign_targets_position", "certificates_by_not_after",
                         "commands_by_agent_state", "commands_by_created_at",
                         "commands_unfinished_by_deadline", "issuances_by_renewal",
                         "renewals_active", "renewals_by_agent", "renewals_by_bind_command",
                         "renewals_by_install_command", "renewals_by_renew_command",
                         "renewals_by_state", "renewals_one_active_per_agent"));
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

CommandRecord Command(const std::string& id, const std::string& agent_id,
                      common::model::CommandPayload payload = common::model::ScanPayload{},
                      absl::Time deadline = kT0 + absl::Hours(1)) {
  CommandRecord command;
  command.command.id = id;
  command.command.agent_id = agent_id;
  command.command.deadline = deadline;
  command.command.payload = std::move(payload);
  command.created_by = "alice";
  command.created_at = kT0;
  return command;
}

// The single integer `sql` returns.
int64_t QueryInt(common::sqlite::Database& db, const std::string& sql) {
  absl::StatusOr<common::sqlite::Statement> stmt = db.Prepare(sql);
  EXPECT_TRUE(stmt.ok()) << stmt.status();
  if (!stmt.ok()) return -1;
  absl::StatusOr<bool> row = stmt->Step();
  EXPECT_TRUE(row.ok() && *row) << sql;
  return row.ok() && *row ? stmt->ColumnInt64(0) : -1;
}

RenewalRecord Renewal(const std::string& id, const std::string& agent_id) {
  RenewalRecord renewal;
  renewal.id = id;
  renewal.agent_id = agent_id;
  renewal.fqdn = "web1.example.com";
  renewal.profile = common::model::ScomProfile();
  renewal.issuer = "builtin";
  renewal.steps = {{common::model::RenewalState::kPlanned, kT0, "planned"}};
  renewal.renew_command_id = id + "-renew";
  renewal.evidence = common::model::CommandResult{};
  renewal.created_at = kT0;
  renewal.updated_at = kT0;
  return renewal;
}

TEST_F(SqliteStoreTest, DeletingAnAgentRowDeletesItsCertificatesCommandsAndRenewals) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(store->CreateAgent(Agent("agent-2", "web2.example.com")).ok());
    ASSERT_TRUE(
        store->ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
    ASSERT_TRUE(store->CreateCommand(Command("cmd-1", "agent-1")).ok());
    ASSERT_TRUE(store->CreateCommand(Command("cmd-2", "agent-1")).ok());
    ASSERT_TRUE(store->CreateCommand(Command("cmd-3", "agent-2")).ok());
    ASSERT_TRUE(store->CreateRenewal(Renewal("renewal-1", "agent-1")).ok());
    ASSERT_TRUE(store->CreateRenewal(Renewal("renewal-2", "agent-2")).ok());
    IssuanceRecord issuance;
    issuance.serial = "0A";
    issuance.renewal_id = "renewal-1";
    issuance.agent_id = "agent-1";
    ASSERT_TRUE(store->RecordIssuance(issuance).ok());
    ApprovalRequestRecord request;
    request.id = "req-1";
    request.renewal_id = "renewal-1";
    request.agent_id = "agent-1";
    ASSERT_TRUE(store->CreateApprovalRequest(request).ok());
  }
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("DELETE FROM agents WHERE id = 'agent-1'").ok());
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM certificates"), 0);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM commands"), 1);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM renewals"), 1);
  // What was signed and decided stays on record.
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM issuances"), 1);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM approval_requests"), 1);
}

TEST_F(SqliteStoreTest, AVersionOneDatabaseIsMigratedToCommandsAndKeepsItsData) {
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(common::sqlite::Migrate(*db, {SqliteStore::Migrations().front()}).ok());
    ASSERT_TRUE(db->Execute("INSERT INTO agents VALUES ('agent-1', 'web1.example.com', x'', "
                            "'windows', '1.0', 0, NULL, '', 0, '', x'', 0)")
                    .ok());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetAgent("agent-1")->fqdn, "web1.example.com");
  ASSERT_TRUE(store->CreateCommand(Command("cmd-1", "agent-1")).ok());
  EXPECT_EQ(store->PendingCommands("agent-1")->size(), 1u);
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*common::sqlite::SchemaVersion(*db),
            static_cast<int>(SqliteStore::Migrations().size()));
}

TEST_F(SqliteStoreTest, AStoredCommandThatCannotBeDecodedIsDataLoss) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(store
                    ->CreateCommand(Command("payload", "agent-1",
                                            common::model::ImportPayload{"data", "secret"}))
                    .ok());
    ASSERT_TRUE(store->CreateCommand(Command("outcome", "agent-1")).ok());
    ASSERT_TRUE(store->CancelCommand("outcome", kT0).ok());
  }
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    // An import payload with one field; an outcome with a status code out of range.
    ASSERT_TRUE(
        db->Execute("UPDATE commands SET payload = CAST('4:data,' AS BLOB) WHERE id = 'payload'")
            .ok());
    ASSERT_TRUE(db->Execute("UPDATE commands SET outcome = CAST('2:99,0:,0:,0:,0:,0:,1:0,0:,0:,' "
                            "AS BLOB) WHERE id = 'outcome'")
                    .ok());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const char* id : {"payload", "outcome"}) {
    absl::StatusOr<CommandRecord> command = store->GetCommand(id);
    EXPECT_EQ(command.status().code(), absl::StatusCode::kDataLoss) << command.status();
    EXPECT_THAT(std::string(command.status().message()), HasSubstr(id));
  }
  EXPECT_EQ(store->ListCommands({}).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->PendingCommands("agent-1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->MarkCommandSent("payload", kT0).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->ExpireCommands(kT0 + absl::Hours(2), absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SqliteStoreTest, TheSchemaKeepsAFinalCommandConsistent) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(store->CreateCommand(Command("cmd-1", "agent-1")).ok());
  }
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  for (const char* sql : {
           "UPDATE commands SET state = 'succeeded'",   // final without an outcome
           "UPDATE commands SET outcome = x''",         // an outcome while queued
           "UPDATE commands SET finished_at = 1",       // finished while queued
           "UPDATE commands SET state = 'paused'",      // no such state
           "UPDATE commands SET kind = 'reboot'",       // no such kind
           "UPDATE commands SET agent_id = 'agent-9'",  // no such agent
       }) {
    absl::Status status = db->Execute(sql);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << sql << ": " << status;
  }
}

TEST_F(SqliteStoreTest, AVersionTwoDatabaseWithCommandsIsMigratedAndKeepsThemAsTheyWere) {
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    const std::vector<common::sqlite::Migration> up_to_two(SqliteStore::Migrations().begin(),
                                                           SqliteStore::Migrations().begin() + 2);
    ASSERT_TRUE(common::sqlite::Migrate(*db, up_to_two).ok());
    ASSERT_EQ(*common::sqlite::SchemaVersion(*db), 2);
    // As a version-2 store wrote them: outcomes of nine fields, without csr_pem. "scan-b" and
    // "scan-a" were created at the same instant, "scan-b" first.
    ASSERT_TRUE(db->Execute(R"sql(
      INSERT INTO agents VALUES ('agent-1', 'web1.example.com', x'', 'windows', '1.0', 0, NULL,
                                 '', 0, '', x'', 0);
      INSERT INTO agents VALUES ('agent-2', 'web2.example.com', x'', 'windows', '1.0', 0, NULL,
                                 '', 0, '', x'', 0);
      INSERT INTO commands (id, agent_id, kind, payload, deadline, state, created_by, created_at,
                            sent_at, started_at, finished_at, attempts, cancel_requested, outcome)
      VALUES
        ('import-1', 'agent-1', 'import', CAST('4:data,6:secret,' AS BLOB), 9000000, 'sent',
         'alice', 1000000, 1500000, NULL, NULL, 1, 0, NULL),
        ('rebind-1', 'agent-1', 'rebind', CAST('4:NEW1,8:60000000,' AS BLOB), 9000000, 'failed',
         'alice', 500000, 600000, 700000, 800000, 2, 1,
         CAST('1:9,11:rolled back,4:NEW1,12:9:NOT_BOUND,,4:OLD1,4:OLD1,1:1,' ||
              '28:24:1:5,5:20053,4:Info,2:ok,,,6:detail,' AS BLOB)),
        ('scan-b', 'agent-1', 'scan', x'', 9000000, 'queued', 'controller', 2000000, NULL, NULL,
         NULL, 0, 0, NULL),
        ('scan-a', 'agent-1', 'scan', x'', 9000000, 'queued', 'controller', 2000000, NULL, NULL,
         NULL, 0, 0, NULL),
        ('trust-2', 'agent-2', 'trust', CAST('2:CA,' AS BLOB), 9000000, 'queued', 'bob', 3000000,
         NULL, NULL, NULL, 0, 0, NULL);
    )sql")
                    .ok());
  }

  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<CommandRecord> import = store->GetCommand("import-1");
  ASSERT_TRUE(import.ok()) << import.status();
  EXPECT_EQ(import->state, common::model::CommandState::kSent);
  EXPECT_EQ(import->sent_at, std::optional<absl::Time>(absl::FromUnixMicros(1'500'000)));
  EXPECT_EQ(std::get<common::model::ImportPayload>(import->command.payload).password, "secret");

  absl::StatusOr<CommandRecord> rebind = store->GetCommand("rebind-1");
  ASSERT_TRUE(rebind.ok()) << rebind.status();
  EXPECT_EQ(rebind->state, common::model::CommandState::kFailed);
  EXPECT_EQ(rebind->attempts, 2);
  EXPECT_TRUE(rebind->cancel_requested);
  EXPECT_EQ(std::get<common::model::RebindPayload>(rebind->command.payload).verify_timeout,
            absl::Seconds(60));
  ASSERT_TRUE(rebind->outcome.has_value());
  EXPECT_EQ(rebind->outcome->code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rebind->outcome->error, "rolled back");
  EXPECT_EQ(rebind->outcome->result.problems, std::vector<std::string>{"NOT_BOUND"});
  EXPECT_TRUE(rebind->outcome->result.rolled_back);
  ASSERT_EQ(rebind->outcome->result.events.size(), 1u);
  EXPECT_EQ(rebind->outcome->result.events[0].id, 20053);
  EXPECT_EQ(rebind->outcome->result.detail, "detail");
  EXPECT_EQ(rebind->outcome->result.csr_pem, "");

  // Creation order survives the copy: ties on created_at still break by creation.
  absl::StatusOr<std::vector<CommandRecord>> pending = store->PendingCommands("agent-1");
  ASSERT_TRUE(pending.ok()) << pending.status();
  std::vector<std::string> ids;
  for (const CommandRecord& command : *pending) ids.push_back(command.command.id);
  EXPECT_THAT(ids, ::testing::ElementsAre("import-1", "scan-b", "scan-a"));

  // The migrated table takes the new kinds and still finishes, scrubs and expires.
  common::model::CertificateProfile profile = common::model::ScomProfile();
  profile.extra_dns_names = {"scom.example.com"};
  ASSERT_TRUE(
      store->CreateCommand(Command("renew-1", "agent-1", common::model::RenewPayload{profile}))
          .ok());
  ASSERT_TRUE(store
                  ->CreateCommand(
                      Command("install-1", "agent-1", common::model::InstallPayload{"PEM", false}))
                  .ok());
  EXPECT_EQ(std::get<common::model::RenewPayload>(store->GetCommand("renew-1")->command.payload)
                .profile.extra_dns_names,
            profile.extra_dns_names);
  absl::StatusOr<CommandRecord> finished = store->FinishCommand("import-1", {}, kT0);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(std::get<common::model::ImportPayload>(finished->command.payload).password, "");
  absl::StatusOr<std::vector<CommandRecord>> expired =
      store->ExpireCommands(absl::FromUnixSeconds(10), absl::ZeroDuration());
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->size(), 3u);  // scan-b, scan-a, trust-2
  ASSERT_TRUE(store->CreateRenewal(Renewal("renewal-1", "agent-2")).ok());

  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*common::sqlite::SchemaVersion(*db),
            static_cast<int>(SqliteStore::Migrations().size()));
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM sqlite_schema WHERE name = 'commands_v3'"), 0);
  // The rebuilt table keeps its constraints: kinds, and the agent's cascade.
  EXPECT_EQ(db->Execute("UPDATE commands SET kind = 'reboot' WHERE id = 'scan-a'").code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(db->Execute("DELETE FROM agents WHERE id = 'agent-2'").ok());
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM commands WHERE agent_id = 'agent-2'"), 0);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM renewals"), 0);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM commands"), 6);
  EXPECT_EQ(QueryInt(*db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

TEST_F(SqliteStoreTest, TheSchemaKeepsRenewalsApprovalsAndIssuancesConsistent) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    ASSERT_TRUE(store->CreateRenewal(Renewal("renewal-1", "agent-1")).ok());
    ApprovalRequestRecord request;
    request.id = "req-1";
    ASSERT_TRUE(store->CreateApprovalRequest(request).ok());
    IssuanceRecord issuance;
    issuance.serial = "0A";
    ASSERT_TRUE(store->RecordIssuance(issuance).ok());
  }
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  for (const char* sql : {
           "UPDATE renewals SET state = 'paused'",          // no such state
           "UPDATE renewals SET bind = 2",                  // not a boolean
           "UPDATE renewals SET agent_id = 'agent-9'",      // no such agent
           "UPDATE renewals SET id = ''",                   // empty key
           "UPDATE renewals SET created_at = 'yesterday'",  // STRICT: not an integer
           "UPDATE approval_requests SET state = 'maybe'",  // no such state
           "UPDATE approval_requests SET id = ''",          // empty key
           "UPDATE issuances SET serial = ''",              // empty key
           "UPDATE issuances SET issued_at = 1.5",          // STRICT: not an integer
       }) {
    absl::Status status = db->Execute(sql);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << sql << ": " << status;
  }
}

TEST_F(SqliteStoreTest, AStoredRenewalThatCannotBeDecodedIsDataLoss) {
  {
    std::unique_ptr<Store> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
    // Ended jobs: an agent has at most one active renewal.
    for (const char* id : {"profile", "steps", "evidence"}) {
      RenewalRecord renewal = Renewal(id, "agent-1");
      renewal.state = common::model::RenewalState::kDone;
      ASSERT_TRUE(store->CreateRenewal(renewal).ok());
    }
  }
  {
    std::unique_ptr<common::sqlite::Database> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    // A profile of one field; a step in an unknown state; evidence with rolled_back "2".
    ASSERT_TRUE(
        db->Execute("UPDATE renewals SET profile = CAST('4:scom,' AS BLOB) WHERE id = 'profile'")
            .ok());
    ASSERT_TRUE(db->Execute("UPDATE renewals SET steps = CAST('18:6:paused,1:0,2:no,,' AS BLOB) "
                            "WHERE id = 'steps'")
                    .ok());
    ASSERT_TRUE(db->Execute("UPDATE renewals SET evidence = CAST('0:,0:,0:,0:,1:2,0:,0:,0:,' AS "
                            "BLOB) WHERE id = 'evidence'")
                    .ok());
  }
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  for (const char* id : {"profile", "steps", "evidence"}) {
    absl::StatusOr<RenewalRecord> renewal = store->GetRenewal(id);
    EXPECT_EQ(renewal.status().code(), absl::StatusCode::kDataLoss) << renewal.status();
    EXPECT_THAT(std::string(renewal.status().message()), HasSubstr(id));
    absl::StatusOr<RenewalRecord> found = store->FindRenewalByCommand(absl::StrCat(id, "-renew"));
    EXPECT_EQ(found.status().code(), absl::StatusCode::kDataLoss) << found.status();
  }
  EXPECT_EQ(store->ListRenewals({}).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteStoreTest, UpdateRenewalRefusesToMoveAJobToAnotherAgent) {
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  ASSERT_TRUE(store->CreateAgent(Agent("agent-2", "web2.example.com")).ok());
  ASSERT_TRUE(store->CreateRenewal(Renewal("renewal-1", "agent-1")).ok());
  RenewalRecord moved = Renewal("renewal-1", "agent-2");
  moved.state = common::model::RenewalState::kCsrRequested;
  absl::Status status = store->UpdateRenewal(moved, common::model::RenewalState::kPlanned);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  // The compare and set comes first.
  status = store->UpdateRenewal(moved, common::model::RenewalState::kIssued);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  absl::StatusOr<RenewalRecord> stored = store->GetRenewal("renewal-1");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->agent_id, "agent-1");
  EXPECT_EQ(stored->state, common::model::RenewalState::kPlanned);
}

TEST_F(SqliteStoreTest, OneRenewalStepTakenThroughTwoConnectionsHasOneWinner) {
  std::unique_ptr<Store> first = OpenOrDie();
  std::unique_ptr<Store> second = OpenOrDie();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(first->CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  ASSERT_TRUE(first->CreateRenewal(Renewal("renewal-1", "agent-1")).ok());

  constexpr int kThreads = 8;
  std::atomic<int> winners{0};
  std::atomic<int> moved_on{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    Store* store = (i % 2 == 0) ? first.get() : second.get();
    threads.emplace_back([&, store, i] {
      RenewalRecord step = Renewal("renewal-1", "agent-1");
      step.state = common::model::RenewalState::kCsrRequested;
      step.renew_command_id = absl::StrCat("cmd-", i);
      absl::Status status = store->UpdateRenewal(step, common::model::RenewalState::kPlanned);
      if (status.ok()) ++winners;
      if (status.code() == absl::StatusCode::kFailedPrecondition) ++moved_on;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(moved_on.load(), kThreads - 1);
  EXPECT_EQ(second->GetRenewal("renewal-1")->state, common::model::RenewalState::kCsrRequested);
}

// --- Secrets ---

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The ways a command becomes final.
enum class FinalPath { kFinish, kCancel, kExpire };

struct SecretCase {
  std::string name;
  FinalPath path;
  size_t data_size;  // the PFX: small, or spread over overflow pages
};

void PrintTo(const SecretCase& secret_case, std::ostream* os) { *os << secret_case.name; }

class SqliteSecretTest : public SqliteStoreTest, public ::testing::WithParamInterface<SecretCase> {
 protected:
  // Everything SQLite keeps of the database on disk: the file, its WAL and the WAL index.
  std::string DiskBytes() const {
    return ReadBytes(path()) + ReadBytes(path() + "-wal") + ReadBytes(path() + "-shm");
  }
};

TEST_P(SqliteSecretTest, AFinalImportsPasswordIsInNoFileOfTheDatabase) {
  const std::string password = "pfx-password-7f3a9c1e-must-not-stay-on-disk";
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateAgent(Agent("agent-1", "web1.example.com")).ok());

  std::string pfx(GetParam().data_size, '\0');
  for (size_t i = 0; i < pfx.size(); ++i) pfx[i] = static_cast<char>(i * 7 % 251);
  // Neighbours on both sides, then grown by their outcomes while the import still holds the
  // password: their pages fill and rebalance, and the import's row moves between pages.
  const std::string filler(300, 'f');
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store
                    ->CreateCommand(Command(absl::StrCat("before-", i), "agent-1",
                                            common::model::TrustPayload{filler}))
                    .ok());
  }
  ASSERT_TRUE(
      store
          ->CreateCommand(Command("import", "agent-1", common::model::ImportPayload{pfx, password},
                                  kT0 + absl::Hours(1)))
          .ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store
                    ->CreateCommand(Command(absl::StrCat("after-", i), "agent-1",
                                            common::model::TrustPayload{filler}))
                    .ok());
  }
  common::model::CommandOutcome grown;
  grown.result.detail = std::string(400, 'd');
  for (const char* side : {"before-", "after-"}) {
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(store->FinishCommand(absl::StrCat(side, i), grown, kT0).ok());
    }
  }
  // Cancelled while queued; sent otherwise.
  if (GetParam().path != FinalPath::kCancel) {
    ASSERT_TRUE(store->MarkCommandSent("import", kT0).ok());
  }
  // The check below can see the password: it is on disk while the command is pending.
  ASSERT_THAT(DiskBytes(), HasSubstr(password));

  const absl::Time later = kT0 + absl::Hours(2);
  switch (GetParam().path) {
    case FinalPath::kFinish:
      ASSERT_TRUE(store->FinishCommand("import", {}, later).ok());
      break;
    case FinalPath::kCancel:
      ASSERT_EQ(store->CancelCommand("import", later)->state,
                common::model::CommandState::kCancelled);
      break;
    case FinalPath::kExpire:
      ASSERT_EQ(store->ExpireCommands(later, absl::ZeroDuration())->size(), 1u);
      break;
  }

  // With the store still open, as in a running controller.
  const std::string disk = DiskBytes();
  EXPECT_EQ(disk.find(password), std::string::npos);
  // Nor any long piece of it (a page boundary could split it).
  EXPECT_EQ(disk.find(password.substr(0, 16)), std::string::npos);
  EXPECT_EQ(disk.find(password.substr(password.size() - 16)), std::string::npos);
  // The file is gone too (a PEM may carry an unencrypted private key).
  EXPECT_EQ(disk.find(pfx.substr(0, std::min<size_t>(pfx.size(), 64))), std::string::npos);

  // And the column, read as it is stored, through another connection.
  std::unique_ptr<common::sqlite::Database> db = OpenRaw();
  ASSERT_NE(db, nullptr);
  absl::StatusOr<common::sqlite::Statement> payload =
      db->Prepare("SELECT payload, state FROM commands WHERE id = 'import'");
  ASSERT_TRUE(payload.ok()) << payload.status();
  ASSERT_TRUE(*payload->Step());
  EXPECT_EQ(payload->ColumnBlob(0).find(password), std::string::npos);
  EXPECT_NE(payload->ColumnText(1), "sent");
}

INSTANTIATE_TEST_SUITE_P(AllFinalPaths, SqliteSecretTest,
                         ::testing::Values(SecretCase{"FinishSmall", FinalPath::kFinish, 16},
                                           SecretCase{"FinishLarge", FinalPath::kFinish, 20'000},
                                           SecretCase{"CancelSmall", FinalPath::kCancel, 16},
                                           SecretCase{"CancelLarge", FinalPath::kCancel, 20'000},
                                           SecretCase{"ExpireSmall", FinalPath::kExpire, 16},
                                           SecretCase{"ExpireLarge", FinalPath::kExpire, 20'000}),
                         [](const ::testing::TestParamInfo<SecretCase>& info) {
                           return info.param.name;
                         });

TEST_F(SqliteStoreTest, AReaderThatKeepsTheWalFromBeingTruncatedDoesNotFailFinishCommand) {
  absl::StatusOr<std::unique_ptr<Store>> opened =
      SqliteStore::Open({.path = path(), .busy_timeout = absl::Milliseconds(50)});
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  ASSERT_TRUE(store.CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  ASSERT_TRUE(
      store.CreateCommand(Command("import", "agent-1", common::model::ImportPayload{"pfx", "pw"}))
          .ok());

  // Another process reading: its snapshot predates the scrub.
  std::unique_ptr<common::sqlite::Database> reader = OpenRaw();
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<common::sqlite::Statement> query = reader->Prepare("SELECT id FROM commands");
  ASSERT_TRUE(query.ok()) << query.status();
  ASSERT_TRUE(*query->Step());

  absl::StatusOr<CommandRecord> finished = store.FinishCommand("import", {}, kT0);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(std::get<common::model::ImportPayload>(finished->command.payload).password, "");
  query->Reset();
  EXPECT_EQ(store.GetCommand("import")->state, common::model::CommandState::kSucceeded);
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
