#include "controller/policy/renewal_timing.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace certfleet::controller::policy {
namespace {

const absl::Time kNotBefore =
    absl::FromCivil(absl::CivilSecond(2026, 1, 1, 0, 0, 0), absl::UTCTimeZone());
constexpr absl::Duration kDay = absl::Hours(24);

RenewalTiming NoJitter() {
  RenewalTiming t;
  t.jitter = absl::ZeroDuration();
  return t;
}

TEST(RenewalDueAt, AOneYearCertificateRenewsAtTwoThirdsOfItsLifetime) {
  // 2/3 of 365 days (243.3 days) comes before 30 days ahead of expiry (335 days).
  absl::Time due = RenewalDueAt(kNotBefore, kNotBefore + 365 * kDay, NoJitter(), "k");
  EXPECT_EQ(due, kNotBefore + 365 * kDay * (2.0 / 3.0));
}

TEST(RenewalDueAt, ASixtyDayCertificateRenewsThirtyDaysBeforeExpiry) {
  // 30 days ahead of expiry (day 30) comes before 2/3 of the lifetime (day 40).
  absl::Time due = RenewalDueAt(kNotBefore, kNotBefore + 60 * kDay, NoJitter(), "k");
  EXPECT_EQ(due, kNotBefore + 30 * kDay);
}

TEST(RenewalDueAt, FollowsTheConfiguredFractionAndLeadTime) {
  RenewalTiming t = NoJitter();
  t.lifetime_fraction = 0.5;
  t.lead_time = 10 * kDay;
  EXPECT_EQ(RenewalDueAt(kNotBefore, kNotBefore + 100 * kDay, t, "k"), kNotBefore + 50 * kDay);
  t.lifetime_fraction = 1.0;
  EXPECT_EQ(RenewalDueAt(kNotBefore, kNotBefore + 100 * kDay, t, "k"), kNotBefore + 90 * kDay);
}

TEST(RenewalDueAt, JitterSpreadsDueTimesEarlierAcrossTheWholeRange) {
  const absl::Time not_after = kNotBefore + 365 * kDay;
  const absl::Time latest = RenewalDueAt(kNotBefore, not_after, NoJitter(), "k");
  RenewalTiming timing;  // 24h jitter
  constexpr int kKeys = 1000;
  constexpr int kBuckets = 10;
  std::vector<int> buckets(kBuckets);
  absl::Duration min_shift = absl::InfiniteDuration();
  absl::Duration max_shift = -absl::InfiniteDuration();
  for (int i = 0; i < kKeys; ++i) {
    std::string key = absl::StrCat("agent-", i, "/", 1000000 + i * 7919);
    absl::Time due = RenewalDueAt(kNotBefore, not_after, timing, key);
    ASSERT_EQ(due, RenewalDueAt(kNotBefore, not_after, timing, key)) << key;
    absl::Duration shift = latest - due;
    ASSERT_GE(shift, absl::ZeroDuration()) << key;
    ASSERT_LT(shift, timing.jitter) << key;
    min_shift = std::min(min_shift, shift);
    max_shift = std::max(max_shift, shift);
    ++buckets[static_cast<int>(absl::FDivDuration(shift, timing.jitter) * kBuckets)];
  }
  EXPECT_LT(min_shift, absl::Hours(1));
  EXPECT_GT(max_shift, absl::Hours(23));
  // 100 expected per bucket; a standard deviation of about 9.5 makes 60..140 a safe band.
  for (int b = 0; b < kBuckets; ++b) {
    EXPECT_GT(buckets[b], 60) << "bucket " << b;
    EXPECT_LT(buckets[b], 140) << "bucket " << b;
  }
}

TEST(RenewalDueAt, IsNeverBeforeNotBefore) {
  RenewalTiming t;
  t.lifetime_fraction = 0.001;  // 8.76 hours into a year, less than the 24h jitter
  int at_not_before = 0;
  for (int i = 0; i < 200; ++i) {
    absl::Time due = RenewalDueAt(kNotBefore, kNotBefore + 365 * kDay, t, absl::StrCat(i));
    ASSERT_GE(due, kNotBefore);
    if (due == kNotBefore) ++at_not_before;
  }
  EXPECT_GT(at_not_before, 0);
}

TEST(RenewalDueAt, ACertificateShorterThanTheLeadTimeIsDueAtOnce) {
  absl::Time due = RenewalDueAt(kNotBefore, kNotBefore + absl::Hours(1), RenewalTiming{}, "k");
  EXPECT_EQ(due, kNotBefore);
}

TEST(RenewalDueAt, ACertificateShorterThanTheJitterGetsATenthOfItsLifetimeAsJitter) {
  RenewalTiming t;
  t.lead_time = absl::Minutes(10);
  // One hour: due at 40 minutes (2/3) at the latest, jitter 6 minutes instead of 24 hours.
  const absl::Time not_after = kNotBefore + absl::Hours(1);
  absl::Duration smallest = absl::InfiniteDuration();
  for (int i = 0; i < 200; ++i) {
    absl::Time due = RenewalDueAt(kNotBefore, not_after, t, absl::StrCat("short-", i));
    ASSERT_LE(due, kNotBefore + absl::Minutes(40));
    ASSERT_GT(due, kNotBefore + absl::Minutes(34));
    smallest = std::min(smallest, due - kNotBefore);
  }
  EXPECT_LT(smallest, absl::Minutes(35));
}

TEST(RenewalDueAt, ACertificateThatEndsBeforeItStartsIsDueAtNotBefore) {
  EXPECT_EQ(RenewalDueAt(kNotBefore, kNotBefore - kDay, RenewalTiming{}, "k"), kNotBefore);
  EXPECT_EQ(RenewalDueAt(kNotBefore, kNotBefore, RenewalTiming{}, "k"), kNotBefore);
}

TEST(StableFraction, IsTheFirstEightBytesOfSha256Scaled) {
  // SHA-256("abc") starts ba7816bf8f01cfea.
  const double expected = static_cast<double>(uint64_t{0xba7816bf8f01cfea} >> 11) /
                          static_cast<double>(uint64_t{1} << 53);
  EXPECT_EQ(StableFraction("abc"), expected);
}

TEST(StableFraction, IsInTheHalfOpenUnitInterval) {
  for (int i = 0; i < 1000; ++i) {
    double f = StableFraction(absl::StrCat("key-", i));
    ASSERT_GE(f, 0.0);
    ASSERT_LT(f, 1.0);
  }
  EXPECT_NE(StableFraction("a"), StableFraction("b"));
}

TEST(ValidateRenewalTiming, AcceptsTheDefaultsAndAFractionOfOne) {
  EXPECT_TRUE(ValidateRenewalTiming(RenewalTiming{}).ok());
  RenewalTiming t;
  t.lifetime_fraction = 1.0;
  t.lead_time = absl::ZeroDuration();
  t.jitter = absl::ZeroDuration();
  EXPECT_TRUE(ValidateRenewalTiming(t).ok());
}

TEST(ValidateRenewalTiming, RejectsAFractionOutsideZeroToOne) {
  for (double f : {0.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    RenewalTiming t;
    t.lifetime_fraction = f;
    absl::Status s = ValidateRenewalTiming(t);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << f;
    EXPECT_NE(s.message().find("lifetime_fraction"), absl::string_view::npos) << s;
  }
}

TEST(ValidateRenewalTiming, RejectsNegativeOrInfiniteDurations) {
  RenewalTiming lead;
  lead.lead_time = -absl::Hours(1);
  EXPECT_EQ(ValidateRenewalTiming(lead).code(), absl::StatusCode::kInvalidArgument);
  lead.lead_time = absl::InfiniteDuration();
  EXPECT_EQ(ValidateRenewalTiming(lead).code(), absl::StatusCode::kInvalidArgument);
  RenewalTiming jitter;
  jitter.jitter = -absl::Seconds(1);
  absl::Status s = ValidateRenewalTiming(jitter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("jitter"), absl::string_view::npos) << s;
}

TEST(RetryDelay, IsZeroBeforeAnyFailure) {
  EXPECT_EQ(RetryDelay(RetryPolicy{}, 0), absl::ZeroDuration());
  EXPECT_EQ(RetryDelay(RetryPolicy{}, -3), absl::ZeroDuration());
  EXPECT_EQ(RetryDelay(RetryPolicy{}, INT_MIN), absl::ZeroDuration());
}

TEST(RetryDelay, DoublesAfterEachFailure) {
  RetryPolicy p;  // 5m, capped at 6h
  EXPECT_EQ(RetryDelay(p, 1), absl::Minutes(5));
  EXPECT_EQ(RetryDelay(p, 2), absl::Minutes(10));
  EXPECT_EQ(RetryDelay(p, 3), absl::Minutes(20));
  EXPECT_EQ(RetryDelay(p, 7), absl::Minutes(320));
}

TEST(RetryDelay, IsCappedAtTheMaximum) {
  RetryPolicy p;
  EXPECT_EQ(RetryDelay(p, 8), absl::Hours(6));  // 640 minutes
  EXPECT_EQ(RetryDelay(p, 20), absl::Hours(6));
}

TEST(RetryDelay, DoesNotOverflowForHugeCounts) {
  RetryPolicy p;
  for (int failures : {62, 63, 64, 65, 100, 1000000, INT_MAX}) {
    EXPECT_EQ(RetryDelay(p, failures), absl::Hours(6)) << failures;
  }
  RetryPolicy uncapped{absl::Hours(1), absl::InfiniteDuration()};
  EXPECT_GT(RetryDelay(uncapped, INT_MAX), absl::Hours(24 * 365 * 1000));
}

}  // namespace
}  // namespace certfleet::controller::policy
