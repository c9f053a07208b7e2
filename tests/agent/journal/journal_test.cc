// The agent's journal over a real SQLite file in a temporary directory.

#include "agent/journal/journal.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/sqlite/database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::agent::journal {
namespace {

namespace model = common::model;
using ::testing::ElementsAre;

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

model::CommandOutcome RichOutcome() {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kFailed;
  outcome.code = absl::StatusCode::kFailedPrecondition;
  outcome.error = "the HealthService rejected certificate AB with event 20068";
  outcome.result.thumbprint = "0123456789ABCDEF0123456789ABCDEF01234567";
  outcome.result.problems = {"NO_PRIVATE_KEY", "EXPIRES_SOON"};
  outcome.result.previous_channel_serial = "563CAF00";
  outcome.result.channel_serial = "563CAF00";
  outcome.result.rolled_back = true;
  outcome.result.events.push_back(
      {Now() + absl::Nanoseconds(123456789), 20068, "Error", "no key\twith a tab \"quoted\""});
  outcome.result.events.push_back({Now() + absl::Seconds(1), 20053, "Information", "loaded"});
  outcome.result.detail = "restored ChannelCertificateSerialNumber 563CAF00";
  return outcome;
}

void ExpectSameOutcome(const model::CommandOutcome& got, const model::CommandOutcome& want) {
  EXPECT_EQ(got.state, want.state);
  EXPECT_EQ(got.code, want.code);
  EXPECT_EQ(got.error, want.error);
  EXPECT_EQ(got.result.thumbprint, want.result.thumbprint);
  EXPECT_EQ(got.result.problems, want.result.problems);
  EXPECT_EQ(got.result.previous_channel_serial, want.result.previous_channel_serial);
  EXPECT_EQ(got.result.channel_serial, want.result.channel_serial);
  EXPECT_EQ(got.result.rolled_back, want.result.rolled_back);
  EXPECT_EQ(got.result.detail, want.result.detail);
  EXPECT_EQ(got.result.csr_pem, want.result.csr_pem);
  ASSERT_EQ(got.result.events.size(), want.result.events.size());
  for (size_t i = 0; i < got.result.events.size(); ++i) {
    EXPECT_EQ(got.result.events[i].time, want.result.events[i].time);
    EXPECT_EQ(got.result.events[i].id, want.result.events[i].id);
    EXPECT_EQ(got.result.events[i].level, want.result.events[i].level);
    EXPECT_EQ(got.result.events[i].message, want.result.events[i].message);
  }
}

model::CommandOutcome Succeeded() {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kSucceeded;
  outcome.result.detail = "ok";
  return outcome;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = absl::StrCat(::testing::TempDir(), "/certfleet-journal-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/journal.db";
    Reopen();
  }
  void TearDown() override {
    journal_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Reopen() {
    journal_.reset();
    auto journal = Journal::Open(path_);
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = std::move(*journal);
  }

  JournalEntry Entry(absl::string_view id) {
    auto entry = journal_->Find(id);
    EXPECT_TRUE(entry.ok()) << entry.status();
    EXPECT_TRUE(entry.ok() && entry->has_value()) << id << " not found";
    return entry.ok() && entry->has_value() ? **entry : JournalEntry{};
  }

  // A rebind journaled as running.
  void StartRebind(absl::string_view id) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kRebind, Now()).ok());
    ASSERT_TRUE(journal_->MarkRunning(id).ok());
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(JournalTest, AnUnknownCommandIsNotFound) {
  auto entry = journal_->Find("nope");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_FALSE(entry->has_value());
  EXPECT_EQ(journal_->MarkRunning("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(journal_->Finish("nope", Succeeded(), Now()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(journal_->MarkReported("nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(JournalTest, OpenRefusesAnEmptyPathAndAMissingDirectory) {
  EXPECT_EQ(Journal::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status missing = Journal::Open(dir_ + "/no/such/dir/journal.db").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("no/such/dir"));
}

TEST_F(JournalTest, ReceiveRecordsACommandOnceAndReturnsItOnDuplicates) {
  auto first = journal_->Receive("c1", model::CommandKind::kImport, Now());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->phase, Phase::kReceived);
  EXPECT_EQ(first->kind, model::CommandKind::kImport);
  EXPECT_EQ(first->deadline, Now());
  EXPECT_FALSE(first->outcome.has_value());

  ASSERT_TRUE(journal_->MarkRunning("c1").ok());
  auto second = journal_->Receive("c1", model::CommandKind::kImport, Now() + absl::Hours(1));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->phase, Phase::kRunning);
  EXPECT_EQ(second->deadline, Now()) << "a duplicate does not change the journaled command";
}

TEST_F(JournalTest, ReceiveRefusesAnEmptyIdAndAnIdReusedForAnotherKind) {
  EXPECT_EQ(journal_->Receive("", model::CommandKind::kScan, Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kScan, Now()).ok());
  EXPECT_EQ(journal_->Receive("c1", model::CommandKind::kRemove, Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, InfiniteDeadlinesSurvive) {
  ASSERT_TRUE(journal_->Receive("future", model::CommandKind::kScan, absl::InfiniteFuture()).ok());
  ASSERT_TRUE(journal_->Receive("past", model::CommandKind::kScan, absl::InfinitePast()).ok());
  EXPECT_EQ(Entry("future").deadline, absl::InfiniteFuture());
  EXPECT_EQ(Entry("past").deadline, absl::InfinitePast());
}

TEST_F(JournalTest, MarkRunningMovesAReceivedCommandOnlyOnce) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kScan, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("c1").ok());
  EXPECT_EQ(Entry("c1").phase, Phase::kRunning);
  EXPECT_EQ(journal_->MarkRunning("c1").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, FinishStoresEveryFieldOfTheOutcome) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kRebind, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("c1").ok());
  ASSERT_TRUE(journal_->Finish("c1", RichOutcome(), Now()).ok());
  JournalEntry entry = Entry("c1");
  EXPECT_EQ(entry.phase, Phase::kDone);
  ASSERT_TRUE(entry.outcome.has_value());
  ExpectSameOutcome(*entry.outcome, RichOutcome());
  EXPECT_FALSE(entry.reported);
}

TEST_F(JournalTest, AnOutcomeIsFinal) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kScan, Now()).ok());
  ASSERT_TRUE(journal_->Finish("c1", Succeeded(), Now()).ok()) << "received -> done is allowed";
  EXPECT_EQ(journal_->Finish("c1", RichOutcome(), Now()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Entry("c1").outcome->state, model::CommandState::kSucceeded);
  EXPECT_EQ(journal_->MarkRunning("c1").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, FinishRefusesAStateThatIsNotFinal) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kScan, Now()).ok());
  model::CommandOutcome running;
  running.state = model::CommandState::kRunning;
  EXPECT_EQ(journal_->Finish("c1", running, Now()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Entry("c1").phase, Phase::kReceived);
}

TEST_F(JournalTest, UnreportedListsOutcomesInFinishOrderUntilAcknowledged) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kScan, Now()).ok());
  }
  ASSERT_TRUE(journal_->Finish("c", Succeeded(), Now()).ok());
  ASSERT_TRUE(journal_->Finish("a", RichOutcome(), Now()).ok());

  auto unreported = journal_->Unreported();
  ASSERT_TRUE(unreported.ok()) << unreported.status();
  ASSERT_EQ(unreported->size(), 2u);
  EXPECT_EQ((*unreported)[0].first, "c");
  EXPECT_EQ((*unreported)[1].first, "a");
  ExpectSameOutcome((*unreported)[1].second, RichOutcome());

  EXPECT_EQ(journal_->MarkReported("b").code(), absl::StatusCode::kFailedPrecondition)
      << "no outcome yet";
  ASSERT_TRUE(journal_->MarkReported("c").ok());
  ASSERT_TRUE(journal_->MarkReported("c").ok()) << "idempotent";
  EXPECT_TRUE(Entry("c").reported);
  unreported = journal_->Unreported();
  ASSERT_TRUE(unreported.ok());
  ASSERT_EQ(unreported->size(), 1u);
  EXPECT_EQ((*unreported)[0].first, "a");
}

TEST_F(JournalTest, RebindProgressFollowsItsSteps) {
  StartRebind("r1");
  const BindingSnapshot snapshot{std::string("563CAF00"), std::string("AABB")};
  EXPECT_EQ(journal_->RecordValueWritten("r1").code(), absl::StatusCode::kFailedPrecondition)
      << "no snapshot yet";
  ASSERT_TRUE(journal_->RecordSnapshot("r1", snapshot, "TP", "0102").ok());
  JournalEntry entry = Entry("r1");
  ASSERT_TRUE(entry.rebind.has_value());
  EXPECT_EQ(entry.rebind->step, RebindStep::kSnapshotTaken);
  EXPECT_EQ(entry.rebind->snapshot.channel_serial, "563CAF00");
  EXPECT_EQ(entry.rebind->snapshot.channel_hash, "AABB");
  EXPECT_EQ(entry.rebind->target_thumbprint, "TP");
  EXPECT_EQ(entry.rebind->target_channel_serial, "0102");
  EXPECT_FALSE(entry.rebind->restart_time.has_value());
  EXPECT_EQ(entry.target, "TP");

  EXPECT_EQ(journal_->RecordRestarted("r1", Now()).code(), absl::StatusCode::kFailedPrecondition)
      << "not written yet";
  ASSERT_TRUE(journal_->RecordValueWritten("r1").ok());
  EXPECT_EQ(Entry("r1").rebind->step, RebindStep::kValueWritten);
  const absl::Time restart = Now() + absl::Nanoseconds(42);
  ASSERT_TRUE(journal_->RecordRestarted("r1", restart).ok());
  entry = Entry("r1");
  EXPECT_EQ(entry.rebind->step, RebindStep::kRestarted);
  EXPECT_EQ(entry.rebind->restart_time, restart);
}

TEST_F(JournalTest, TheSnapshotIsTakenOnceAndOnlyForARunningRebind) {
  ASSERT_TRUE(journal_->Receive("r1", model::CommandKind::kRebind, Now()).ok());
  EXPECT_EQ(journal_->RecordSnapshot("r1", {}, "TP", "01").code(),
            absl::StatusCode::kFailedPrecondition)
      << "not running";
  ASSERT_TRUE(journal_->MarkRunning("r1").ok());
  EXPECT_EQ(journal_->RecordSnapshot("r1", {}, "", "01").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(journal_->RecordSnapshot("r1", {}, "TP", "01").ok());
  EXPECT_EQ(journal_->RecordSnapshot("r1", {std::string("99"), std::nullopt}, "TP", "01").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(Entry("r1").rebind->snapshot.channel_serial.has_value())
      << "the first snapshot (absent) stands";

  ASSERT_TRUE(journal_->Receive("i1", model::CommandKind::kImport, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("i1").ok());
  EXPECT_EQ(journal_->RecordSnapshot("i1", {}, "TP", "01").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, AnInstallThatBindsFollowsTheRebindSteps) {
  ASSERT_TRUE(journal_->Receive("n1", model::CommandKind::kInstall, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("n1").ok());
  ASSERT_TRUE(
      journal_->RecordSnapshot("n1", {std::string("0A0B"), std::nullopt}, "TP", "0102").ok());
  ASSERT_TRUE(journal_->RecordValueWritten("n1").ok());
  ASSERT_TRUE(journal_->RecordRestarted("n1", Now()).ok());
  Reopen();
  JournalEntry entry = Entry("n1");
  EXPECT_EQ(entry.kind, model::CommandKind::kInstall);
  EXPECT_EQ(entry.target, "TP");
  ASSERT_TRUE(entry.rebind.has_value());
  EXPECT_EQ(entry.rebind->step, RebindStep::kRestarted);
  EXPECT_EQ(entry.rebind->snapshot.channel_serial, "0A0B");

  ASSERT_TRUE(journal_->Receive("w1", model::CommandKind::kRenew, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("w1").ok());
  EXPECT_EQ(journal_->RecordSnapshot("w1", {}, "TP", "01").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, ARenewalOutcomeKeepsItsRequest) {
  model::CommandOutcome renewed = Succeeded();
  renewed.result.csr_pem =
      "-----BEGIN CERTIFICATE REQUEST-----\nMIIBfake\n-----END CERTIFICATE REQUEST-----\n";
  renewed.result.detail = "generated key container AB.pem";
  ASSERT_TRUE(journal_->Receive("w1", model::CommandKind::kRenew, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("w1").ok());
  ASSERT_TRUE(journal_->SetTarget("w1", "AB.pem").ok());
  ASSERT_TRUE(journal_->Finish("w1", renewed, Now()).ok());
  ASSERT_TRUE(journal_->Receive("s1", model::CommandKind::kScan, Now()).ok());
  ASSERT_TRUE(journal_->Finish("s1", Succeeded(), Now()).ok());
  Reopen();
  ExpectSameOutcome(*Entry("w1").outcome, renewed);
  EXPECT_EQ(Entry("w1").target, "AB.pem");
  EXPECT_EQ(Entry("s1").outcome->result.csr_pem, "");
  auto unreported = journal_->Unreported();
  ASSERT_TRUE(unreported.ok()) << unreported.status();
  ASSERT_EQ(unreported->size(), 2u);
  ExpectSameOutcome((*unreported)[0].second, renewed);
}

TEST_F(JournalTest, AnAbsentBindingIsSnapshotAsAbsent) {
  StartRebind("r1");
  ASSERT_TRUE(journal_->RecordSnapshot("r1", BindingSnapshot{}, "TP", "01").ok());
  Reopen();
  JournalEntry entry = Entry("r1");
  ASSERT_TRUE(entry.rebind.has_value());
  EXPECT_FALSE(entry.rebind->snapshot.channel_serial.has_value());
  EXPECT_FALSE(entry.rebind->snapshot.channel_hash.has_value());
}

TEST_F(JournalTest, SetTargetOnlyWhileRunning) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kImport, Now()).ok());
  EXPECT_EQ(journal_->SetTarget("c1", "TP").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(journal_->MarkRunning("c1").ok());
  ASSERT_TRUE(journal_->SetTarget("c1", "TP").ok());
  EXPECT_EQ(Entry("c1").target, "TP");
  EXPECT_EQ(journal_->SetTarget("nope", "TP").code(), absl::StatusCode::kNotFound);
}

TEST_F(JournalTest, InterruptedListsRunningCommandsOldestFirst) {
  for (const char* id : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kScan, Now()).ok());
  }
  ASSERT_TRUE(journal_->MarkRunning("c").ok());
  ASSERT_TRUE(journal_->MarkRunning("a").ok());
  ASSERT_TRUE(journal_->MarkRunning("d").ok());
  ASSERT_TRUE(journal_->Finish("d", Succeeded(), Now()).ok());
  auto interrupted = journal_->Interrupted();
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  std::vector<std::string> ids;
  for (const JournalEntry& entry : *interrupted) ids.push_back(entry.id);
  EXPECT_THAT(ids, ElementsAre("a", "c"));
}

TEST_F(JournalTest, EverythingSurvivesReopening) {
  StartRebind("r1");
  ASSERT_TRUE(
      journal_->RecordSnapshot("r1", {std::string("0A0B"), std::nullopt}, "TP", "0102").ok());
  ASSERT_TRUE(journal_->RecordValueWritten("r1").ok());
  ASSERT_TRUE(journal_->RecordRestarted("r1", Now()).ok());
  ASSERT_TRUE(journal_->Receive("done", model::CommandKind::kRebind, Now()).ok());
  ASSERT_TRUE(journal_->Finish("done", RichOutcome(), Now()).ok());
  ASSERT_TRUE(journal_->Receive("acked", model::CommandKind::kScan, Now()).ok());
  ASSERT_TRUE(journal_->Finish("acked", Succeeded(), Now()).ok());
  ASSERT_TRUE(journal_->MarkReported("acked").ok());

  Reopen();

  JournalEntry rebind = Entry("r1");
  EXPECT_EQ(rebind.phase, Phase::kRunning);
  ASSERT_TRUE(rebind.rebind.has_value());
  EXPECT_EQ(rebind.rebind->step, RebindStep::kRestarted);
  EXPECT_EQ(rebind.rebind->snapshot.channel_serial, "0A0B");
  EXPECT_FALSE(rebind.rebind->snapshot.channel_hash.has_value());
  EXPECT_EQ(rebind.rebind->restart_time, Now());
  ExpectSameOutcome(*Entry("done").outcome, RichOutcome());
  EXPECT_TRUE(Entry("acked").reported);
  auto unreported = journal_->Unreported();
  ASSERT_TRUE(unreported.ok());
  ASSERT_EQ(unreported->size(), 1u);
  EXPECT_EQ((*unreported)[0].first, "done");
}

TEST_F(JournalTest, ForgetReportedBeforeDropsOnlyOldAcknowledgedCommands) {
  for (const char* id : {"old-acked", "old-unacked", "new-acked", "running"}) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kScan, Now()).ok());
  }
  ASSERT_TRUE(journal_->Finish("old-acked", Succeeded(), Now() - absl::Hours(48)).ok());
  ASSERT_TRUE(journal_->Finish("old-unacked", Succeeded(), Now() - absl::Hours(48)).ok());
  ASSERT_TRUE(journal_->Finish("new-acked", Succeeded(), Now()).ok());
  ASSERT_TRUE(journal_->MarkReported("old-acked").ok());
  ASSERT_TRUE(journal_->MarkReported("new-acked").ok());
  ASSERT_TRUE(journal_->MarkRunning("running").ok());

  auto forgotten = journal_->ForgetReportedBefore(Now() - absl::Hours(24));
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_EQ(*forgotten, 1);
  EXPECT_FALSE(journal_->Find("old-acked")->has_value());
  EXPECT_TRUE(journal_->Find("old-unacked")->has_value());
  EXPECT_TRUE(journal_->Find("new-acked")->has_value());
  EXPECT_TRUE(journal_->Find("running")->has_value());
}

TEST_F(JournalTest, AJournalFromANewerCertfleetIsRefused) {
  journal_.reset();
  {
    auto db = common::sqlite::Database::Open(path_, {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Execute("PRAGMA user_version = 99").ok());
  }
  EXPECT_EQ(Journal::Open(path_).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, ACorruptStoredOutcomeIsDataLossNamingTheCommand) {
  ASSERT_TRUE(journal_->Receive("c1", model::CommandKind::kScan, Now()).ok());
  ASSERT_TRUE(journal_->Finish("c1", Succeeded(), Now()).ok());
  {
    auto db = common::sqlite::Database::Open(path_, {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Execute("UPDATE commands SET outcome_result = '{\"thumbprint\": 7}'").ok());
  }
  auto entry = journal_->Find("c1");
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(entry.status().message()), ::testing::HasSubstr("c1"));
  EXPECT_EQ(journal_->Unreported().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(JournalTest, ConcurrentCommandsAreEachJournaledOnce) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        // Every thread delivers every command (duplicates) and finishes its share.
        const std::string id = absl::StrCat("c", i);
        ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kScan, Now()).ok());
        if (i % 4 == t) {
          ASSERT_TRUE(journal_->Finish(id, Succeeded(), Now()).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto unreported = journal_->Unreported();
  ASSERT_TRUE(unreported.ok());
  EXPECT_EQ(unreported->size(), 25u);
}

TEST_F(JournalTest, PhaseAndStepNamesRoundTrip) {
  for (Phase phase : {Phase::kReceived, Phase::kRunning, Phase::kDone}) {
    EXPECT_EQ(PhaseFromName(PhaseName(phase)), phase);
  }
  for (RebindStep step :
       {RebindStep::kSnapshotTaken, RebindStep::kValueWritten, RebindStep::kRestarted}) {
    EXPECT_EQ(RebindStepFromName(RebindStepName(step)), step);
  }
  EXPECT_FALSE(PhaseFromName("sleeping").has_value());
}

}  // namespace
}  // namespace certfleet::agent::journal
