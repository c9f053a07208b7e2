#include "agent/client/backoff.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace certfleet::agent::client {
namespace {

constexpr absl::Duration kInitial = absl::Milliseconds(100);
constexpr absl::Duration kMax = absl::Seconds(30);

// The n-th ceiling of the contract: min(max, initial * 2^n).
absl::Duration Ceiling(int n) {
  absl::Duration c = kInitial;
  for (int i = 0; i < n && c < kMax; ++i) c *= 2;
  return std::min(c, kMax);
}

// A generator that always draws the top of its range, so every delay is at its ceiling
// (less the millisecond lost to rounding down).
struct TopOfRange {
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() { return max(); }
};

// One that always draws the bottom: every delay is zero.
struct BottomOfRange {
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() { return 0; }
};

TEST(Backoff, EveryDelayIsWithinZeroAndTheDoublingCeiling) {
  std::mt19937 gen(20260301);
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  for (int n = 0; n < 200; ++n) {
    absl::Duration d = backoff.Next();
    EXPECT_GE(d, absl::ZeroDuration()) << "attempt " << n;
    EXPECT_LE(d, Ceiling(n)) << "attempt " << n;
  }
}

TEST(Backoff, TheCeilingDoublesFromInitialThenReachesMaxAndStaysThere) {
  TopOfRange gen;
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(100),  absl::Milliseconds(200),   absl::Milliseconds(400),
      absl::Milliseconds(800),  absl::Milliseconds(1600),  absl::Milliseconds(3200),
      absl::Milliseconds(6400), absl::Milliseconds(12800), absl::Milliseconds(25600),
      absl::Seconds(30),        absl::Seconds(30),         absl::Seconds(30)};
  for (size_t n = 0; n < expected.size(); ++n) {
    absl::Duration d = backoff.Next();
    EXPECT_LE(d, expected[n]) << "attempt " << n;
    EXPECT_GE(d, expected[n] - absl::Milliseconds(1)) << "attempt " << n;
  }
  // Long after, still at max, never past it (no overflow of the doubling).
  for (int n = 0; n < 1000; ++n) {
    absl::Duration d = backoff.Next();
    ASSERT_LE(d, kMax) << "attempt " << n;
    ASSERT_GE(d, kMax - absl::Milliseconds(1)) << "attempt " << n;
  }
}

TEST(Backoff, ABottomDrawGivesNoDelayAtAll) {
  BottomOfRange gen;
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  for (int n = 0; n < 20; ++n) EXPECT_EQ(backoff.Next(), absl::ZeroDuration());
}

TEST(Backoff, ResetStartsOverFromTheInitialCeiling) {
  TopOfRange gen;
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  for (int n = 0; n < 12; ++n) backoff.Next();
  EXPECT_EQ(backoff.attempt(), 12);
  backoff.Reset();
  EXPECT_EQ(backoff.attempt(), 0);
  absl::Duration first = backoff.Next();
  EXPECT_LE(first, kInitial);
  EXPECT_GE(first, kInitial - absl::Milliseconds(1));
  absl::Duration second = backoff.Next();
  EXPECT_LE(second, 2 * kInitial);
  EXPECT_GT(second, kInitial);
}

TEST(Backoff, AttemptCountsTheDelaysHandedOut) {
  std::mt19937 gen(7);
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  EXPECT_EQ(backoff.attempt(), 0);
  backoff.Next();
  backoff.Next();
  backoff.Next();
  EXPECT_EQ(backoff.attempt(), 3);
}

TEST(Backoff, DelaysAtTheSameCeilingAreSpreadOverTheWholeRange) {
  std::mt19937 gen(42);
  Backoff backoff(kInitial, kMax, absl::BitGenRef(gen));
  for (int n = 0; n < 20; ++n) backoff.Next();  // well past the point the ceiling is max
  std::set<int64_t> distinct;
  absl::Duration lowest = absl::InfiniteDuration(), highest = absl::ZeroDuration();
  for (int n = 0; n < 200; ++n) {
    absl::Duration d = backoff.Next();
    distinct.insert(absl::ToInt64Milliseconds(d));
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
  }
  EXPECT_GT(distinct.size(), 150u);
  EXPECT_LT(lowest, kMax / 10);
  EXPECT_GT(highest, kMax * 9 / 10);
}

TEST(Backoff, TwoAgentsWithDifferentSeedsDoNotRetryInStep) {
  std::mt19937 gen_a(1), gen_b(2);
  Backoff a(kInitial, kMax, absl::BitGenRef(gen_a));
  Backoff b(kInitial, kMax, absl::BitGenRef(gen_b));
  int same = 0;
  for (int n = 0; n < 20; ++n) same += a.Next() == b.Next() ? 1 : 0;
  EXPECT_LT(same, 5);
}

}  // namespace
}  // namespace certfleet::agent::client
