#include "controller/audit/audit_log.h"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sqlite/database.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::controller::audit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A state directory with a real SqliteStore in it, and the audit log on top. Tampering goes
// through a second SQLite connection to the same file, as someone editing the database would.
class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/controller_audit_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    absl::StatusOr<std::unique_ptr<store::Store>> store =
        store::SqliteStore::Open({.path = db_path()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Reopen();
  }

  void TearDown() override {
    log_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string db_path() const { return dir_ + "/controller.db"; }
  std::string key_path() const { return dir_ + "/audit.key"; }
  std::string head_path() const { return dir_ + "/audit.head"; }

  void Reopen() {
    log_.reset();
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(dir_, *store_, clock_);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }

  // Records entries 1..n, a second apart.
  void RecordEntries(int n) {
    for (int i = 1; i <= n; ++i) {
      absl::StatusOr<store::AuditRecord> entry =
          log_->Record("operator/admin/alice", "command.create", absl::StrCat("agent-", i),
                       {{"kind", "scan"}, {"n", absl::StrCat(i)}});
      ASSERT_TRUE(entry.ok()) << entry.status();
      clock_.Advance(absl::Seconds(1));
    }
  }

  // Runs `sql` on a second connection to the database, as an intruder would.
  void Tamper(const std::string& sql) {
    absl::StatusOr<std::unique_ptr<common::sqlite::Database>> db =
        common::sqlite::Database::Open(db_path(), {.create_if_missing = false});
    ASSERT_TRUE(db.ok()) << db.status();
    absl::Status status = (*db)->Execute(sql);
    ASSERT_TRUE(status.ok()) << status;
  }

  AuditLog::Verification Verify() {
    absl::StatusOr<AuditLog::Verification> v = log_->Verify();
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : AuditLog::Verification{.ok = false, .problem = "Verify failed"};
  }

  std::vector<store::AuditRecord> All() {
    absl::StatusOr<std::vector<store::AuditRecord>> all = log_->List({});
    EXPECT_TRUE(all.ok()) << all.status();
    return all.ok() ? *all : std::vector<store::AuditRecord>{};
  }

  std::string dir_;
  testing::FakeClock clock_{kT0};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AuditLog> log_;
};

// --- Recording ---

TEST_F(AuditLogTest, RecordedEntriesFormAChainThatVerifies) {
  RecordEntries(5);
  std::vector<store::AuditRecord> all = All();
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq, i + 1);
    EXPECT_EQ(all[i].prev_hash, i == 0 ? "" : all[i - 1].hash);
    EXPECT_EQ(all[i].hash.size(), 64u) << "hex HMAC-SHA256";
  }
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 5u);
  EXPECT_EQ(v.first_bad_seq, 0u);
  EXPECT_EQ(v.problem, "");
}

TEST_F(AuditLogTest, AnEmptyLogVerifiesWithNoEntries) {
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 0u);
}

TEST_F(AuditLogTest, RecordReturnsTheEntryAsStoredAtTheClocksTimeToTheMicrosecond) {
  clock_.Set(kT0 + absl::Nanoseconds(1'234'567));
  absl::StatusOr<store::AuditRecord> entry =
      log_->Record("controller", "campaign.wave.promoted", "camp-1", {{"wave", "2"}});
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->seq, 1u);
  EXPECT_EQ(entry->at, kT0 + absl::Microseconds(1'234));
  EXPECT_EQ(entry->actor, "controller");
  EXPECT_EQ(entry->action, "campaign.wave.promoted");
  EXPECT_EQ(entry->target, "camp-1");
  std::vector<store::AuditRecord> all = All();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].at, entry->at);
  EXPECT_EQ(all[0].hash, entry->hash);
}

TEST_F(AuditLogTest, DetailsAreOneJsonObjectWithSortedKeysAndEscapedValues) {
  absl::StatusOr<store::AuditRecord> entry = log_->Record(
      "operator/operator/bob", "token.create", "web1.corp",
      {{"labels", "site=paris"}, {"fqdn", "web1.corp"}, {"note", "say \"hi\"\nbye\\"}});
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->details,
            R"({"fqdn":"web1.corp","labels":"site=paris","note":"say \"hi\"\nbye\\"})");
  absl::StatusOr<store::AuditRecord> bare = log_->Record("controller", "tick", "");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->details, "{}");
}

TEST_F(AuditLogTest, InvalidUtf8InDetailsIsReplacedNotRefused) {
  absl::StatusOr<store::AuditRecord> entry =
      log_->Record("controller", "x", "t", {{"name", "bad \xff byte"}});
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->details, "{\"name\":\"bad \xef\xbf\xbd byte\"}");
  EXPECT_TRUE(Verify().ok);
}

TEST_F(AuditLogTest, AnEmptyActorOrActionIsInvalidArgumentAndRecordsNothing) {
  EXPECT_EQ(log_->Record("", "token.create", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Record("controller", "", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(All(), IsEmpty());
}

TEST_F(AuditLogTest, ADetailNamedLikeASecretIsInvalidArgumentAndRecordsNothing) {
  for (const char* key : {"token", "Password", "passphrase", "SECRET", "private_key"}) {
    absl::StatusOr<store::AuditRecord> entry =
        log_->Record("operator/admin/alice", "token.create", "t", {{key, "hunter2"}});
    EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(entry.status().message(),
                AllOf(HasSubstr(key), ::testing::Not(HasSubstr("hunter2"))));
  }
  EXPECT_THAT(All(), IsEmpty());
}

TEST_F(AuditLogTest, ListFiltersBySinceAndLimitAndRefusesLimitZero) {
  RecordEntries(4);
  store::AuditFilter filter;
  filter.since = kT0 + absl::Seconds(2);
  absl::StatusOr<std::vector<store::AuditRecord>> since = log_->List(filter);
  ASSERT_TRUE(since.ok()) << since.status();
  ASSERT_EQ(since->size(), 2u);
  EXPECT_EQ((*since)[0].seq, 3u);
  filter.limit = 0;
  EXPECT_EQ(log_->List(filter).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuditLogTest, EightThreadsRecordingAtOnceLeaveOneValidChain) {
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!log_->Record("controller", "decision", absl::StrCat("t", t, "-", i)).ok()) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(ReadFile(head_path()), absl::StrCat(kThreads * kEach, " ", All().back().hash, "\n"));
}

TEST_F(AuditLogTest, AChainLongerThanOnePageVerifiesAndATamperedEntryOnALaterPageIsFound) {
  RecordEntries(1'005);
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 1'005u);
  Tamper("UPDATE audit_log SET target = 'agent-x' WHERE seq = 1003");
  v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 1'003u);
}

// --- The key ---

TEST_F(AuditLogTest, TheKeyFileIsCreatedWith32BytesAndMode0600) {
  struct stat st;
  ASSERT_EQ(::stat(key_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(key_path()).size(), 32u);
}

TEST_F(AuditLogTest, ReopeningKeepsTheKeyAndTheChainGoesOn) {
  RecordEntries(3);
  const std::string key = ReadFile(key_path());
  Reopen();
  EXPECT_EQ(ReadFile(key_path()), key);
  RecordEntries(2);
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 5u);
}

TEST_F(AuditLogTest, AKeyFileOfTheWrongSizeIsDataLossNamingTheFile) {
  log_.reset();
  WriteFile(key_path(), "short");
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(dir_, *store_, clock_);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr(key_path()));
}

TEST_F(AuditLogTest, AMissingKeyFileWhileTheLogHasEntriesIsDataLossNotANewKey) {
  RecordEntries(1);
  log_.reset();
  std::filesystem::remove(key_path());
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(dir_, *store_, clock_);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr(key_path()));
  EXPECT_FALSE(std::filesystem::exists(key_path()));
}

TEST_F(AuditLogTest, AnUnreadableKeyFileIsPermissionDeniedNamingTheFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  log_.reset();
  ASSERT_EQ(::chmod(key_path().c_str(), 0000), 0);
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(dir_, *store_, clock_);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(log.status().message(), HasSubstr(key_path()));
}

// --- Tampering, through a second connection to the database ---

TEST_F(AuditLogTest, ChangedDetailsAreDetectedAtThatEntry) {
  RecordEntries(5);
  Tamper(R"(UPDATE audit_log SET details = '{"kind":"import"}' WHERE seq = 3)");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 3u);
  EXPECT_EQ(v.entries, 5u);
  EXPECT_EQ(v.problem, "entry 3: hash does not match its content (changed after it was written)");
}

TEST_F(AuditLogTest, AChangedActorIsDetectedAtThatEntry) {
  RecordEntries(5);
  Tamper("UPDATE audit_log SET actor = 'operator/admin/mallory' WHERE seq = 2");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 2u);
  EXPECT_THAT(v.problem, HasSubstr("entry 2: hash does not match its content"));
}

TEST_F(AuditLogTest, AnEntryResealedWithAPlainHashIsStillDetected) {
  RecordEntries(3);
  // An intruder without the key recomputes the "hash" the only way it can: unkeyed.
  Tamper(
      "UPDATE audit_log SET details = '{}', "
      "hash = '0000000000000000000000000000000000000000000000000000000000000000' WHERE seq = 2; "
      "UPDATE audit_log SET prev_hash = "
      "'0000000000000000000000000000000000000000000000000000000000000000' WHERE seq = 3");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 2u);
}

TEST_F(AuditLogTest, ADeletedMiddleEntryIsDetectedAsMissing) {
  RecordEntries(5);
  Tamper("DELETE FROM audit_log WHERE seq = 3");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 3u);
  EXPECT_THAT(v.problem, HasSubstr("entry 3 is missing: the log jumps from entry 2 to entry 4"));
}

TEST_F(AuditLogTest, ADeletedFirstEntryIsDetectedAsMissing) {
  RecordEntries(3);
  Tamper("DELETE FROM audit_log WHERE seq = 1");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 1u);
  EXPECT_THAT(v.problem, HasSubstr("entry 1 is missing: the log starts at entry 2"));
}

TEST_F(AuditLogTest, SwappedEntriesAreDetected) {
  RecordEntries(5);
  Tamper(
      "UPDATE audit_log SET seq = 1002 WHERE seq = 2; "
      "UPDATE audit_log SET seq = 2 WHERE seq = 3; "
      "UPDATE audit_log SET seq = 3 WHERE seq = 1002");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 2u);
  EXPECT_THAT(v.problem, HasSubstr("entry 2: hash does not match"));
}

TEST_F(AuditLogTest, ARemovedTailIsDetectedThroughTheHead) {
  RecordEntries(5);
  Tamper("DELETE FROM audit_log WHERE seq > 3");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 4u);
  EXPECT_EQ(v.entries, 3u);
  EXPECT_THAT(v.problem, AllOf(HasSubstr("entries 4 to 5 are missing"),
                               HasSubstr("the log ends at entry 3"), HasSubstr(head_path())));
}

TEST_F(AuditLogTest, AnEmptiedLogIsDetectedThroughTheHead) {
  RecordEntries(2);
  Tamper("DELETE FROM audit_log");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 1u);
  EXPECT_THAT(v.problem, HasSubstr("entries 1 to 2 are missing"));
}

TEST_F(AuditLogTest, AMissingHeadWhileTheLogHasEntriesIsAProblem) {
  RecordEntries(2);
  std::filesystem::remove(head_path());
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.problem, AllOf(HasSubstr(head_path()), HasSubstr("missing")));
}

TEST_F(AuditLogTest, AMalformedHeadIsAProblem) {
  RecordEntries(2);
  WriteFile(head_path(), "garbage\n");
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_THAT(v.problem, HasSubstr(head_path()));
}

TEST_F(AuditLogTest, AHeadBehindAValidChainIsAcceptedAsAnInterruptedHeadWrite) {
  RecordEntries(3);
  const std::vector<store::AuditRecord> all = All();
  WriteFile(head_path(), absl::StrCat("2 ", all[1].hash, "\n"));
  AuditLog::Verification v = Verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.entries, 3u);
}

TEST_F(AuditLogTest, AHeadWhoseHashDiffersFromItsEntryIsAProblem) {
  RecordEntries(3);
  WriteFile(head_path(), absl::StrCat("2 ", std::string(64, 'a'), "\n"));
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 2u);
}

TEST_F(AuditLogTest, AnotherKeyFileMakesEveryEntryFailAndTheProblemNamesTheKey) {
  RecordEntries(3);
  log_.reset();
  WriteFile(key_path(), std::string(32, 'k'));
  Reopen();
  AuditLog::Verification v = Verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 1u);
  EXPECT_THAT(v.problem, AllOf(HasSubstr("entry 1: hash does not match"), HasSubstr(key_path()),
                               HasSubstr("not the key this log was written with")));
}

}  // namespace
}  // namespace certfleet::controller::audit
