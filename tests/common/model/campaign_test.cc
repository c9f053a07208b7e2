#include "common/model/campaign.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<int> Ends(absl::string_view waves, int hosts) {
  absl::StatusOr<std::vector<WaveStep>> steps = ParseWaves(waves);
  EXPECT_TRUE(steps.ok()) << steps.status();
  return steps.ok() ? WaveEnds(*steps, hosts) : std::vector<int>{};
}

// --- State names ---

TEST(CampaignStateName, NamesEveryStateAndCampaignStateFromNameReadsItBack) {
  const std::vector<std::pair<CampaignState, std::string>> names = {
      {CampaignState::kPlanned, "planned"},     {CampaignState::kRunning, "running"},
      {CampaignState::kPaused, "paused"},       {CampaignState::kHalted, "halted"},
      {CampaignState::kCancelled, "cancelled"}, {CampaignState::kCompleted, "completed"},
  };
  for (const auto& [state, name] : names) {
    EXPECT_EQ(CampaignStateName(state), name);
    EXPECT_EQ(CampaignStateFromName(name), state) << name;
  }
  for (const char* bad : {"", "Running", "done", " planned"}) {
    EXPECT_FALSE(CampaignStateFromName(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(IsFinal, OnlyCancelledAndCompletedCampaignsAreFinal) {
  EXPECT_TRUE(IsFinal(CampaignState::kCancelled));
  EXPECT_TRUE(IsFinal(CampaignState::kCompleted));
  for (CampaignState state : {CampaignState::kPlanned, CampaignState::kRunning,
                              CampaignState::kPaused, CampaignState::kHalted}) {
    EXPECT_FALSE(IsFinal(state)) << CampaignStateName(state);
  }
}

TEST(TargetStateName, NamesEveryStateAndTargetStateFromNameReadsItBack) {
  const std::vector<std::pair<TargetState, std::string>> names = {
      {TargetState::kPending, "pending"},     {TargetState::kRunning, "running"},
      {TargetState::kSucceeded, "succeeded"}, {TargetState::kRolledBack, "rolled_back"},
      {TargetState::kFailed, "failed"},       {TargetState::kNotReached, "not_reached"},
      {TargetState::kCancelled, "cancelled"}, {TargetState::kReverting, "reverting"},
      {TargetState::kReverted, "reverted"},   {TargetState::kRevertFailed, "revert_failed"},
  };
  for (const auto& [state, name] : names) {
    EXPECT_EQ(TargetStateName(state), name);
    EXPECT_EQ(TargetStateFromName(name), state) << name;
  }
  for (const char* bad : {"", "rolled-back", "Pending", "done"}) {
    EXPECT_FALSE(TargetStateFromName(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(IsFailure, OnlyRolledBackAndFailedHostsCountAgainstTheBudget) {
  EXPECT_TRUE(IsFailure(TargetState::kRolledBack));
  EXPECT_TRUE(IsFailure(TargetState::kFailed));
  for (TargetState state :
       {TargetState::kPending, TargetState::kRunning, TargetState::kSucceeded,
        TargetState::kNotReached, TargetState::kCancelled, TargetState::kReverting,
        TargetState::kReverted, TargetState::kRevertFailed}) {
    EXPECT_FALSE(IsFailure(state)) << TargetStateName(state);
  }
}

TEST(IsSettled, EveryStateButPendingAndRunningIsSettled) {
  EXPECT_FALSE(IsSettled(TargetState::kPending));
  EXPECT_FALSE(IsSettled(TargetState::kRunning));
  for (TargetState state :
       {TargetState::kSucceeded, TargetState::kRolledBack, TargetState::kFailed,
        TargetState::kNotReached, TargetState::kCancelled, TargetState::kReverting,
        TargetState::kReverted, TargetState::kRevertFailed}) {
    EXPECT_TRUE(IsSettled(state)) << TargetStateName(state);
  }
}

// --- ParseWaves ---

TEST(ParseWaves, ReadsCountsAndPercentagesInOrder) {
  absl::StatusOr<std::vector<WaveStep>> steps = ParseWaves("1,10%,50%,100%");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 4u);
  EXPECT_FALSE((*steps)[0].percent);
  EXPECT_EQ((*steps)[0].value, 1);
  EXPECT_TRUE((*steps)[1].percent);
  EXPECT_EQ((*steps)[1].value, 10);
  EXPECT_TRUE((*steps)[3].percent);
  EXPECT_EQ((*steps)[3].value, 100);
}

TEST(ParseWaves, AcceptsSpacesAroundStepsAndFractionalPercentages) {
  absl::StatusOr<std::vector<WaveStep>> steps = ParseWaves(" 2 , 12.5% ,100% ");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].value, 2);
  EXPECT_EQ((*steps)[1].value, 12.5);
}

TEST(ParseWaves, ComparesCountsWithCountsAndPercentagesWithPercentages) {
  // 10 hosts, then 5%: not comparable, so not "shrinking".
  EXPECT_TRUE(ParseWaves("10,5%").ok());
  EXPECT_TRUE(ParseWaves("1,1,10%,10%").ok());  // equal steps are allowed (they add nothing)
  EXPECT_TRUE(ParseWaves("5,10%,5").ok());      // a count equal to the last count
}

TEST(ParseWaves, RejectsEmptyMalformedOutOfRangeAndShrinkingSteps) {
  for (const char* bad : {"", "   ", "1,,2", "x", "1,x", "1.5", "%", "100%%", "0", "-1", "0%",
                          "101%", "nan%", "inf", "10%,5%", "5,3", "5,10%,3"}) {
    absl::StatusOr<std::vector<WaveStep>> steps = ParseWaves(bad);
    EXPECT_EQ(steps.status().code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
}

TEST(ParseWaves, ErrorNamesTheTextAndTheBadStep) {
  absl::Status s = ParseWaves("1,lots,100%").status();
  EXPECT_THAT(s.message(), HasSubstr("'1,lots,100%'"));
  EXPECT_THAT(s.message(), HasSubstr("'lots'"));
  EXPECT_THAT(ParseWaves("20%,10%").status().message(), HasSubstr("'10%'"));
}

// --- WaveEnds ---

TEST(WaveEnds, SplitsFortyHostsIntoTheDocumentedWaves) {
  EXPECT_THAT(Ends("1,10%,50%,100%", 40), ElementsAre(1, 4, 20, 40));
  EXPECT_THAT(Ends("1,10%,50%,100%", 20), ElementsAre(1, 2, 10, 20));
}

TEST(WaveEnds, IsEmptyWithoutHosts) {
  EXPECT_THAT(Ends("1,100%", 0), IsEmpty());
  EXPECT_THAT(Ends("1,100%", -3), IsEmpty());
}

TEST(WaveEnds, RoundsPercentagesUpWithoutFloatingPointNoise) {
  EXPECT_THAT(Ends("10%", 15), ElementsAre(2, 15));   // 1.5 -> 2
  EXPECT_THAT(Ends("10%", 30), ElementsAre(3, 30));   // exactly 3, not 4
  EXPECT_THAT(Ends("7%", 100), ElementsAre(7, 100));  // 7.000000000000001 -> 7
  EXPECT_THAT(Ends("1%", 1), ElementsAre(1));
  EXPECT_THAT(Ends("0.5%", 10), ElementsAre(1, 10));  // a wave has at least one host
}

TEST(WaveEnds, CapsCountsAtTheHostsAndDropsWavesThatAddNoHost) {
  EXPECT_THAT(Ends("5,100%", 3), ElementsAre(3));
  EXPECT_THAT(Ends("1,5%,10%", 10), ElementsAre(1, 10));
  EXPECT_THAT(Ends("1,1,2", 10), ElementsAre(1, 2, 10));
}

TEST(WaveEnds, LastWaveAlwaysReachesEveryHost) {
  EXPECT_THAT(Ends("1,2", 10), ElementsAre(1, 2, 10));
  EXPECT_THAT(Ends("50%", 9), ElementsAre(5, 9));
  EXPECT_THAT(Ends("10%,5", 20), ElementsAre(2, 5, 20));
}

// --- Failure budget ---

TEST(ParseFailureBudget, ReadsACountOrAPercentage) {
  absl::StatusOr<FailureBudget> count = ParseFailureBudget("3");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_FALSE(count->percent);
  EXPECT_EQ(count->value, 3);
  absl::StatusOr<FailureBudget> percent = ParseFailureBudget(" 12.5% ");
  ASSERT_TRUE(percent.ok()) << percent.status();
  EXPECT_TRUE(percent->percent);
  EXPECT_EQ(percent->value, 12.5);
  for (const char* ok : {"0", "0%", "100%", "1000"}) {
    EXPECT_TRUE(ParseFailureBudget(ok).ok()) << ok;
  }
}

TEST(ParseFailureBudget, RejectsNegativeFractionalCountsOver100PercentAndText) {
  for (const char* bad : {"", "-1", "-1%", "1.5", "101%", "x", "%", "nan", "3 hosts"}) {
    absl::Status s = ParseFailureBudget(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("'", bad, "'")));
  }
}

TEST(AllowedFailures, CountIsTheSameWhateverTheHosts) {
  EXPECT_EQ(AllowedFailures({.percent = false, .value = 3}, 20), 3);
  EXPECT_EQ(AllowedFailures({.percent = false, .value = 3}, 2), 3);
  EXPECT_EQ(AllowedFailures({.percent = false, .value = 0}, 20), 0);
}

TEST(AllowedFailures, PercentageRoundsDown) {
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 10}, 20), 2);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 10}, 19), 1);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 10}, 9), 0);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 10}, 30), 3);  // not 2.999...
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 12.5}, 8), 1);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 100}, 7), 7);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 0}, 7), 0);
  EXPECT_EQ(AllowedFailures({.percent = true, .value = 50}, 0), 0);
}

}  // namespace
}  // namespace certfleet::common::model
