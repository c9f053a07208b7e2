#include "agent/client/identity_renewal.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::agent::client {
namespace {

using ::certfleet::testing::FakeClock;

const absl::Time kNotBefore = absl::FromUnixSeconds(1'790'000'000);
const absl::Duration kLifetime = absl::Hours(24 * 30);

// Draws always at the bottom of the range asked for, or at 15/16 of it (the very top would make
// absl's real distributions reject every draw).
struct BottomOfRange {
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() { return 0; }
};
struct NearTopOfRange {
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() { return 0xF000000000000000u; }
};

TEST(IdentityRenewal, IsNeverDueBeforeTheFirstReset) {
  std::mt19937 gen(1);
  IdentityRenewal renewal({}, absl::BitGenRef(gen));
  EXPECT_EQ(renewal.due_at(), absl::InfiniteFuture());
  EXPECT_FALSE(renewal.Due(kNotBefore + 100 * kLifetime));
}

TEST(IdentityRenewal, TheRenewalTimeFallsBetween45And55PercentOfTheLifetime) {
  std::mt19937 gen(20260301);
  IdentityRenewal renewal({}, absl::BitGenRef(gen));
  absl::Duration lowest = absl::InfiniteDuration(), highest = -absl::InfiniteDuration();
  for (int i = 0; i < 500; ++i) {
    renewal.Reset(kNotBefore, kNotBefore + kLifetime);
    const absl::Duration at = renewal.due_at() - kNotBefore;
    ASSERT_GE(at, kLifetime * 0.45);
    ASSERT_LE(at, kLifetime * 0.55);
    lowest = std::min(lowest, at);
    highest = std::max(highest, at);
  }
  // Spread over the window, so that a fleet enrolled at once does not renew at once.
  EXPECT_LT(lowest, kLifetime * 0.46);
  EXPECT_GT(highest, kLifetime * 0.54);
}

TEST(IdentityRenewal, TheWindowEndsComeFromTheRandomSource) {
  BottomOfRange bottom;
  IdentityRenewal early({}, absl::BitGenRef(bottom));
  early.Reset(kNotBefore, kNotBefore + kLifetime);
  EXPECT_EQ(early.due_at(), kNotBefore + kLifetime * 0.45);

  NearTopOfRange top;
  IdentityRenewal late({}, absl::BitGenRef(top));
  late.Reset(kNotBefore, kNotBefore + kLifetime);
  EXPECT_LE(late.due_at(), kNotBefore + kLifetime * 0.55);
  EXPECT_GE(late.due_at(), kNotBefore + kLifetime * 0.54);
}

TEST(IdentityRenewal, IsDueFromTheRenewalTimeOnAndExpiredFromNotAfterOn) {
  BottomOfRange bottom;
  IdentityRenewal renewal({}, absl::BitGenRef(bottom));
  const absl::Duration lifetime = absl::Seconds(20);
  FakeClock clock(kNotBefore);
  renewal.Reset(kNotBefore, kNotBefore + lifetime);
  EXPECT_FALSE(renewal.Due(clock.Now()));
  // 45% of 20 s, drawn at the bottom of the window.
  clock.Advance(absl::Seconds(9) - absl::Milliseconds(1));
  EXPECT_FALSE(renewal.Due(clock.Now()));
  clock.Advance(absl::Milliseconds(2));
  EXPECT_TRUE(renewal.Due(clock.Now()));
  EXPECT_FALSE(renewal.Expired(clock.Now()));
  clock.Set(kNotBefore + lifetime);
  EXPECT_TRUE(renewal.Expired(clock.Now()));
}

TEST(IdentityRenewal, ResetForTheRenewedIdentityMovesTheRenewalToItsHalfLife) {
  BottomOfRange bottom;
  IdentityRenewal renewal({}, absl::BitGenRef(bottom));
  FakeClock clock(kNotBefore);
  renewal.Reset(kNotBefore, kNotBefore + kLifetime);
  clock.Set(renewal.due_at());
  ASSERT_TRUE(renewal.Due(clock.Now()));
  renewal.Failed(clock.Now());
  renewal.Reset(clock.Now(), clock.Now() + kLifetime);
  EXPECT_FALSE(renewal.Due(clock.Now()));
  EXPECT_EQ(renewal.due_at(), clock.Now() + kLifetime * 0.45);
  EXPECT_EQ(renewal.not_after(), clock.Now() + kLifetime);
  EXPECT_EQ(renewal.failures(), 0);
}

TEST(IdentityRenewal, AFailedAttemptIsRetriedWithAGrowingBackoffCeiling) {
  NearTopOfRange top;  // every delay at 15/16 of its ceiling
  IdentityRenewal::Options options;
  options.retry_initial = absl::Seconds(5);
  options.retry_max = absl::Minutes(1);
  IdentityRenewal renewal(options, absl::BitGenRef(top));
  FakeClock clock(kNotBefore);
  renewal.Reset(kNotBefore, kNotBefore + kLifetime);
  clock.Set(renewal.due_at());
  absl::Duration previous = absl::ZeroDuration();
  for (int attempt = 1; attempt <= 6; ++attempt) {
    const absl::Time next = renewal.Failed(clock.Now());
    const absl::Duration wait = next - clock.Now();
    EXPECT_GE(wait, previous) << attempt;
    EXPECT_LE(wait, absl::Minutes(1)) << attempt;
    EXPECT_EQ(renewal.failures(), attempt);
    EXPECT_FALSE(renewal.Due(clock.Now()));
    clock.Set(next);
    EXPECT_TRUE(renewal.Due(clock.Now()));
    previous = wait;
  }
  EXPECT_GE(previous, absl::Minutes(1) * 0.9);
}

TEST(IdentityRenewal, ARetryIsAtLeastMinRetryLater) {
  BottomOfRange bottom;  // every backoff delay zero
  IdentityRenewal renewal({}, absl::BitGenRef(bottom));
  renewal.Reset(kNotBefore, kNotBefore + kLifetime);
  const absl::Time now = renewal.due_at();
  EXPECT_EQ(renewal.Failed(now), now + absl::Seconds(1));
}

TEST(IdentityRenewal, ARetryNeverWaitsMoreThanHalfTheValidityLeft) {
  NearTopOfRange top;
  IdentityRenewal::Options options;
  options.retry_initial = absl::Minutes(10);
  options.retry_max = absl::Hours(1);
  IdentityRenewal renewal(options, absl::BitGenRef(top));
  const absl::Duration lifetime = absl::Seconds(20);
  renewal.Reset(kNotBefore, kNotBefore + lifetime);
  const absl::Time now = kNotBefore + absl::Seconds(10);
  EXPECT_EQ(renewal.Failed(now), now + absl::Seconds(5));
  // Close to expiry: still at least min_retry.
  const absl::Time late = kNotBefore + lifetime - absl::Milliseconds(500);
  EXPECT_EQ(renewal.Failed(late), late + absl::Seconds(1));
}

}  // namespace
}  // namespace certfleet::agent::client
