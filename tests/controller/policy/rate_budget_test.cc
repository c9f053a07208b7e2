#include "controller/policy/rate_budget.h"

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::controller::policy {
namespace {

using certfleet::testing::FakeClock;

const absl::Time kStart = absl::FromUnixSeconds(1'780'000'000);

TEST(RateBudget, StartsFullWithTheBurst) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/60, /*burst=*/5, clock);
  EXPECT_EQ(budget.Available(), 5.0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(budget.TryAcquire()) << i;
  EXPECT_FALSE(budget.TryAcquire());
  EXPECT_EQ(budget.Available(), 0.0);
}

TEST(RateBudget, RefillsContinuouslyAtTheHourlyRate) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/60, /*burst=*/2, clock);  // one a minute
  ASSERT_TRUE(budget.TryAcquire());
  ASSERT_TRUE(budget.TryAcquire());
  clock.Advance(absl::Seconds(30));
  EXPECT_DOUBLE_EQ(budget.Available(), 0.5);
  clock.Advance(absl::Seconds(29));
  EXPECT_FALSE(budget.TryAcquire());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(budget.TryAcquire());
  EXPECT_FALSE(budget.TryAcquire());
  clock.Advance(absl::Hours(1));  // 60 minutes refill only up to the burst
  EXPECT_EQ(budget.Available(), 2.0);
  EXPECT_TRUE(budget.TryAcquire());
  EXPECT_TRUE(budget.TryAcquire());
  EXPECT_FALSE(budget.TryAcquire());
}

TEST(RateBudget, NextTokenAtIsNowWhenOneIsAvailableAndOtherwiseWhenItRefills) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/600, /*burst=*/1, clock);  // one every 6 seconds
  EXPECT_EQ(budget.NextTokenAt(), kStart);
  ASSERT_TRUE(budget.TryAcquire());
  EXPECT_EQ(budget.NextTokenAt(), kStart + absl::Seconds(6));
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(budget.NextTokenAt(), kStart + absl::Seconds(6));
  clock.Set(budget.NextTokenAt() - absl::Nanoseconds(1));
  EXPECT_FALSE(budget.TryAcquire());
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(budget.TryAcquire());
}

TEST(RateBudget, ATokenIsAlwaysThereAtNextTokenAtForAnAwkwardRate) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/7, /*burst=*/3, clock);
  for (int i = 0; i < 100; ++i) {
    while (budget.TryAcquire()) {
    }
    clock.Set(budget.NextTokenAt());
    ASSERT_TRUE(budget.TryAcquire()) << i;
  }
}

TEST(RateBudget, AWholeHourRefillsPerHourTokens) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/600, /*burst=*/50, clock);
  int taken = 0;
  for (int second = 0; second < 3600; ++second) {
    while (budget.TryAcquire()) ++taken;
    clock.Advance(absl::Seconds(1));
  }
  // The initial 50, then one every 6 seconds (at 6, 12, ... 3594 seconds).
  EXPECT_EQ(taken, 50 + 599);
}

TEST(RateBudget, WithoutARefillRateOnlyTheBurstIsEverAvailable) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/0, /*burst=*/2, clock);
  EXPECT_TRUE(budget.TryAcquire());
  EXPECT_TRUE(budget.TryAcquire());
  clock.Advance(absl::Hours(24 * 365));
  EXPECT_FALSE(budget.TryAcquire());
  EXPECT_EQ(budget.NextTokenAt(), absl::InfiniteFuture());
  EXPECT_EQ(budget.Available(), 0.0);
}

TEST(RateBudget, ABurstBelowOneCountsAsOne) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/60, /*burst=*/0, clock);
  EXPECT_TRUE(budget.TryAcquire());
  EXPECT_FALSE(budget.TryAcquire());
}

TEST(RateBudget, AClockThatGoesBackDoesNotRefillTwice) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/60, /*burst=*/1, clock);
  ASSERT_TRUE(budget.TryAcquire());
  clock.Set(kStart - absl::Hours(1));
  EXPECT_FALSE(budget.TryAcquire());
  clock.Set(kStart + absl::Seconds(59));
  EXPECT_FALSE(budget.TryAcquire());
  clock.Set(kStart + absl::Seconds(60));
  EXPECT_TRUE(budget.TryAcquire());
}

TEST(RateBudget, ManyThreadsTogetherGetExactlyTheBurst) {
  FakeClock clock(kStart);
  RateBudget budget(/*per_hour=*/60, /*burst=*/50, clock);
  std::atomic<int> acquired{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (budget.TryAcquire()) acquired.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(acquired.load(), 50);
}

TEST(RateBudgets, AnIssuerWithoutABudgetIsUnlimited) {
  FakeClock clock(kStart);
  RateBudgets budgets(clock);
  budgets.Set("builtin", 60, 1);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(budgets.TryAcquire("corp-ca"));
  EXPECT_EQ(budgets.NextTokenAt("corp-ca"), kStart);
  EXPECT_TRUE(std::isinf(budgets.Available("corp-ca")));
}

TEST(RateBudgets, EachIssuerHasItsOwnBudget) {
  FakeClock clock(kStart);
  RateBudgets budgets(clock);
  budgets.Set("builtin", /*per_hour=*/60, /*burst=*/1);
  budgets.Set("manual", /*per_hour=*/6, /*burst=*/2);
  EXPECT_TRUE(budgets.TryAcquire("builtin"));
  EXPECT_FALSE(budgets.TryAcquire("builtin"));
  EXPECT_EQ(budgets.NextTokenAt("builtin"), kStart + absl::Minutes(1));
  EXPECT_TRUE(budgets.TryAcquire("manual"));
  EXPECT_TRUE(budgets.TryAcquire("manual"));
  EXPECT_FALSE(budgets.TryAcquire("manual"));
  EXPECT_EQ(budgets.NextTokenAt("manual"), kStart + absl::Minutes(10));
  EXPECT_EQ(budgets.Available("manual"), 0.0);
}

TEST(RateBudgets, SetReplacesABudgetWithAFullOne) {
  FakeClock clock(kStart);
  RateBudgets budgets(clock);
  budgets.Set("builtin", 60, 1);
  ASSERT_TRUE(budgets.TryAcquire("builtin"));
  ASSERT_FALSE(budgets.TryAcquire("builtin"));
  budgets.Set("builtin", 60, 3);
  EXPECT_EQ(budgets.Available("builtin"), 3.0);
  EXPECT_TRUE(budgets.TryAcquire("builtin"));
}

TEST(RateBudgets, ManyThreadsAcrossIssuersGetExactlyEachBurst) {
  FakeClock clock(kStart);
  RateBudgets budgets(clock);
  budgets.Set("a", 60, 10);
  budgets.Set("b", 60, 20);
  std::atomic<int> a{0}, b{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (budgets.TryAcquire("a")) a.fetch_add(1);
        if (budgets.TryAcquire("b")) b.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(a.load(), 10);
  EXPECT_EQ(b.load(), 20);
}

}  // namespace
}  // namespace certfleet::controller::policy
