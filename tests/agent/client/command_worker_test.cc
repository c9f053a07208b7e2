// CommandWorker over a real CommandRunner, a MemoryHostPlatform and a real Journal in a
// temporary directory. A reporter that can hold a command at its start makes "in flight" and
// "in order" observable without sleeping.

#include "agent/client/command_worker.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/commands/command_runner.h"
#include "agent/journal/journal.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "common/model/command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::agent::client {
namespace {

using ::certfleet::testing::FakeClock;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace model = common::model;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

// The longest a test waits for the worker thread (real time; only reached on a failure).
constexpr absl::Duration kPatience = absl::Seconds(10);

model::Command Scan(std::string id) {
  model::Command command;
  command.id = std::move(id);
  command.agent_id = "agent-1";
  command.deadline = kNow + absl::Hours(1);
  command.payload = model::ScanPayload{};
  return command;
}

model::Command RemoveUnknown(std::string id) {
  model::Command command = Scan(std::move(id));
  command.payload = model::RemovePayload{std::string(40, 'A')};
  return command;
}

// What a stream's reporter saw, in order: "started <id>" and "finished <id>". It can hold the
// worker inside a command's start (the command is then in flight) until released.
// Thread-safe.
class RecordingReporter {
 public:
  CommandWorker::Reporter AsReporter() {
    return [this](const std::string& id, const model::CommandOutcome* outcome) {
      OnReport(id, outcome);
    };
  }

  // The next start of `id` blocks until Release().
  void HoldAtStart(const std::string& id) {
    absl::MutexLock lock(&mu_);
    hold_id_ = id;
    released_ = false;
  }

  // Waits until the worker is held; false after kPatience.
  bool WaitUntilHeld() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&held_), kPatience);
  }

  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  // Waits until `id` has finished `times` times; false after kPatience.
  bool WaitForFinished(const std::string& id, int times = 1) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return FinishedLocked(id) >= times; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kPatience);
  }

  // Waits until `id` has started; false after kPatience.
  bool WaitForStarted(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto started = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& e : events_) {
        if (e == "started " + id) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&started), kPatience);
  }

  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

  // The last outcome reported for `id`.
  std::optional<model::CommandOutcome> OutcomeOf(const std::string& id) {
    absl::MutexLock lock(&mu_);
    std::optional<model::CommandOutcome> found;
    for (const auto& [outcome_id, outcome] : outcomes_) {
      if (outcome_id == id) found = outcome;
    }
    return found;
  }

 private:
  void OnReport(const std::string& id, const model::CommandOutcome* outcome) {
    absl::MutexLock lock(&mu_);
    if (outcome == nullptr) {
      events_.push_back("started " + id);
      if (hold_id_ == id) {
        hold_id_.reset();
        held_ = true;
        mu_.Await(absl::Condition(&released_));
        held_ = false;
      }
    } else {
      events_.push_back("finished " + id);
      outcomes_.emplace_back(id, *outcome);
    }
  }

  int FinishedLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int n = 0;
    for (const auto& [outcome_id, outcome] : outcomes_) n += outcome_id == id ? 1 : 0;
    return n;
  }

  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, model::CommandOutcome>> outcomes_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> hold_id_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

class CommandWorkerTest : public ::testing::Test {
 protected:
  CommandWorkerTest()
      : clock_(kNow), host_({.fqdn = "host1.example.com"}, platform::MemoryDeps{clock_}) {}

  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cf-command-worker-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    dir_ = pattern;
    auto journal = journal::Journal::Open(dir_ + "/journal.db");
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = std::move(*journal);
    runner_ = std::make_unique<commands::CommandRunner>(
        commands::CommandRunner::Options{},
        commands::CommandRunner::Deps{host_, *journal_, clock_});
    worker_ = std::make_unique<CommandWorker>(*runner_);
  }

  void TearDown() override {
    // A failed test may leave the worker held inside the reporter: let it go before joining.
    reporter_.Release();
    worker_.reset();
    runner_.reset();
    journal_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Ids of the outcomes journaled and not yet acknowledged, oldest first.
  std::vector<std::string> UnreportedIds() {
    auto unreported = runner_->Unreported();
    EXPECT_TRUE(unreported.ok()) << unreported.status();
    std::vector<std::string> ids;
    if (unreported.ok()) {
      for (const auto& [id, outcome] : *unreported) ids.push_back(id);
    }
    return ids;
  }

  // Polls the journal (no reporter to tell) until `id` has an outcome; false after kPatience.
  bool WaitForJournaledOutcome(const std::string& id) {
    const absl::Time give_up = absl::Now() + kPatience;
    while (absl::Now() < give_up) {
      auto entry = journal_->Find(id);
      if (entry.ok() && entry->has_value() && (*entry)->outcome.has_value()) return true;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  }

  bool Journaled(const std::string& id) {
    auto entry = journal_->Find(id);
    EXPECT_TRUE(entry.ok()) << entry.status();
    return entry.ok() && entry->has_value();
  }

  FakeClock clock_;
  platform::MemoryHostPlatform host_;
  std::string dir_;
  std::unique_ptr<journal::Journal> journal_;
  std::unique_ptr<commands::CommandRunner> runner_;
  RecordingReporter reporter_;  // outlives the worker, which may call it until joined
  std::unique_ptr<CommandWorker> worker_;
};

TEST_F(CommandWorkerTest, SubmitRunsTheCommandAndReportsItStartedThenFinished) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-1"));

  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1", "finished cmd-1"));
  std::optional<model::CommandOutcome> outcome = reporter_.OutcomeOf("cmd-1");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state, model::CommandState::kSucceeded);
  EXPECT_EQ(outcome->code, absl::StatusCode::kOk);
}

TEST_F(CommandWorkerTest, TheReportedOutcomeIsJournaledUntilTheControllerAcknowledgesIt) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-1"));
  EXPECT_THAT(UnreportedIds(), ElementsAre("cmd-1"));
}

TEST_F(CommandWorkerTest, AFailedCommandIsReportedWithItsCode) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->Submit(RemoveUnknown("cmd-1"));
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-1"));
  std::optional<model::CommandOutcome> outcome = reporter_.OutcomeOf("cmd-1");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state, model::CommandState::kFailed);
  EXPECT_EQ(outcome->code, absl::StatusCode::kNotFound) << outcome->error;
}

TEST_F(CommandWorkerTest, ADuplicateSubmitOfACommandInFlightIsDroppedAndReportedOnce) {
  worker_->SetReporter(reporter_.AsReporter());
  reporter_.HoldAtStart("cmd-1");
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitUntilHeld());
  worker_->Submit(Scan("cmd-1"));  // the controller re-sent it while it runs
  worker_->Submit(Scan("cmd-1"));
  worker_->Submit(Scan("cmd-2"));
  reporter_.Release();

  // Commands run in order: had a duplicate been queued, it would have finished before cmd-2.
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-2"));
  EXPECT_THAT(reporter_.Events(),
              ElementsAre("started cmd-1", "finished cmd-1", "started cmd-2", "finished cmd-2"));
}

TEST_F(CommandWorkerTest, ADuplicateQueuedBehindAnotherCommandIsDropped) {
  worker_->SetReporter(reporter_.AsReporter());
  reporter_.HoldAtStart("cmd-1");
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitUntilHeld());
  worker_->Submit(Scan("cmd-2"));
  worker_->Submit(Scan("cmd-2"));
  worker_->Submit(Scan("cmd-3"));
  reporter_.Release();

  ASSERT_TRUE(reporter_.WaitForFinished("cmd-3"));
  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1", "finished cmd-1", "started cmd-2",
                                              "finished cmd-2", "started cmd-3", "finished cmd-3"));
}

TEST_F(CommandWorkerTest, CommandsRunOneAtATimeInTheOrderTheyArrived) {
  worker_->SetReporter(reporter_.AsReporter());
  reporter_.HoldAtStart("cmd-1");
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitUntilHeld());
  worker_->Submit(RemoveUnknown("cmd-2"));
  worker_->Submit(Scan("cmd-3"));
  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1"));  // the others wait their turn
  reporter_.Release();

  ASSERT_TRUE(reporter_.WaitForFinished("cmd-3"));
  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1", "finished cmd-1", "started cmd-2",
                                              "finished cmd-2", "started cmd-3", "finished cmd-3"));
  EXPECT_THAT(UnreportedIds(), ElementsAre("cmd-1", "cmd-2", "cmd-3"));
}

TEST_F(CommandWorkerTest, ARedeliveryAfterTheCommandFinishedIsAnsweredFromTheJournal) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->Submit(RemoveUnknown("cmd-1"));
  // Once cmd-2 has started, the worker is done with cmd-1 (one command at a time).
  worker_->Submit(Scan("cmd-2"));
  ASSERT_TRUE(reporter_.WaitForStarted("cmd-2"));
  worker_->Submit(RemoveUnknown("cmd-1"));
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-1", 2));

  // Not run again (no second start), and the same outcome.
  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1", "finished cmd-1", "started cmd-2",
                                              "finished cmd-2", "finished cmd-1"));
  std::optional<model::CommandOutcome> outcome = reporter_.OutcomeOf("cmd-1");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->code, absl::StatusCode::kNotFound);
}

TEST_F(CommandWorkerTest, ACommandCancelledBeforeItStartsIsReportedCancelledWithoutRunning) {
  worker_->SetReporter(reporter_.AsReporter());
  reporter_.HoldAtStart("cmd-1");
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitUntilHeld());
  worker_->Submit(Scan("cmd-2"));
  worker_->Cancel("cmd-2");
  reporter_.Release();

  ASSERT_TRUE(reporter_.WaitForFinished("cmd-2"));
  EXPECT_THAT(reporter_.Events(), ElementsAre("started cmd-1", "finished cmd-1", "finished cmd-2"));
  std::optional<model::CommandOutcome> outcome = reporter_.OutcomeOf("cmd-2");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state, model::CommandState::kCancelled);
  EXPECT_EQ(outcome->code, absl::StatusCode::kCancelled);
}

TEST_F(CommandWorkerTest, ACommandPastItsDeadlineIsReportedExpiredWithoutRunning) {
  worker_->SetReporter(reporter_.AsReporter());
  model::Command late = Scan("cmd-1");
  late.deadline = kNow - absl::Seconds(1);
  worker_->Submit(late);
  ASSERT_TRUE(reporter_.WaitForFinished("cmd-1"));
  EXPECT_THAT(reporter_.Events(), ElementsAre("finished cmd-1"));
  std::optional<model::CommandOutcome> outcome = reporter_.OutcomeOf("cmd-1");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state, model::CommandState::kExpired);
  EXPECT_EQ(outcome->code, absl::StatusCode::kDeadlineExceeded);
}

TEST_F(CommandWorkerTest, WithoutAReporterTheOutcomeIsStillJournaledForTheNextConnection) {
  worker_->Submit(RemoveUnknown("cmd-1"));
  ASSERT_TRUE(WaitForJournaledOutcome("cmd-1"));

  auto unreported = runner_->Unreported();
  ASSERT_TRUE(unreported.ok()) << unreported.status();
  ASSERT_EQ(unreported->size(), 1u);
  EXPECT_EQ((*unreported)[0].first, "cmd-1");
  EXPECT_EQ((*unreported)[0].second.state, model::CommandState::kFailed);
  EXPECT_EQ((*unreported)[0].second.code, absl::StatusCode::kNotFound);
}

TEST_F(CommandWorkerTest, AnEmptyReporterDetachesTheStream) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->SetReporter(nullptr);
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(WaitForJournaledOutcome("cmd-1"));
  EXPECT_THAT(reporter_.Events(), IsEmpty());
  EXPECT_THAT(UnreportedIds(), ElementsAre("cmd-1"));
}

TEST_F(CommandWorkerTest, StopFinishesTheRunningCommandBeforeItReturns) {
  worker_->SetReporter(reporter_.AsReporter());
  reporter_.HoldAtStart("cmd-1");
  worker_->Submit(Scan("cmd-1"));
  ASSERT_TRUE(reporter_.WaitUntilHeld());

  std::thread stopper([this] { worker_->Stop(); });
  absl::SleepFor(absl::Milliseconds(5));  // let Stop reach the join (not required for passing)
  reporter_.Release();
  stopper.join();

  // Stop joined the worker: the running command had finished and been reported.
  EXPECT_THAT(reporter_.Events(), Contains("finished cmd-1"));
  auto entry = journal_->Find("cmd-1");
  ASSERT_TRUE(entry.ok()) << entry.status();
  ASSERT_TRUE(entry->has_value());
  EXPECT_TRUE((*entry)->outcome.has_value());
}

TEST_F(CommandWorkerTest, AfterStopSubmitRunsNothing) {
  worker_->SetReporter(reporter_.AsReporter());
  worker_->Stop();
  worker_->Submit(Scan("cmd-1"));
  EXPECT_FALSE(Journaled("cmd-1"));  // the thread is gone: nothing can pick it up later
  EXPECT_THAT(reporter_.Events(), IsEmpty());
}

TEST_F(CommandWorkerTest, StopIsIdempotentAndTheDestructorStopsToo) {
  worker_->Stop();
  worker_->Stop();
  worker_.reset();  // a destructor after Stop does not join twice

  CommandWorker idle(*runner_);  // destroyed while waiting for work: must not hang
}

}  // namespace
}  // namespace certfleet::agent::client
