// MemoryHostPlatform beyond the conformance suite: its test and simulator hooks.

#include "agent/platform/memory/memory_host_platform.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::agent::platform {
namespace {

using certfleet::testing::FakeClock;

TEST(MemoryHostPlatformTest, UnreadableEntryIsListedWithItsError) {
  FakeClock clock(absl::UnixEpoch());
  MemoryHostPlatform host(MemoryOptions{"h.example.com"}, {clock});
  host.AddUnreadableEntry(StoreName::kCa, "broken.pem", "not a certificate");
  auto ca = host.Certificates().List(StoreName::kCa);
  ASSERT_TRUE(ca.ok());
  ASSERT_EQ(ca->size(), 1u);
  EXPECT_EQ((*ca)[0].id, "broken.pem");
  EXPECT_EQ((*ca)[0].error, "not a certificate");
  EXPECT_EQ((*ca)[0].der, "");
  EXPECT_EQ(host.Certificates().LinkKey("broken.pem", "k").code(), absl::StatusCode::kNotFound);
  host.AddUnreadableEntry(StoreName::kMy, "broken-my.pem", "");
  EXPECT_EQ(host.Certificates().LinkKey("broken-my.pem", "k").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host.Certificates().List(StoreName::kMy)->at(0).error, "unreadable entry");
  EXPECT_TRUE(host.Certificates().Remove(StoreName::kCa, "broken.pem").ok());
}

TEST(MemoryHostPlatformTest, EventLogKeepsOnlyTheNewestEvents) {
  FakeClock clock(absl::UnixEpoch());
  MemoryOptions options;
  options.fqdn = "h.example.com";
  options.max_events_kept = 3;
  MemoryHostPlatform host(options, {clock});
  for (int i = 0; i < 5; ++i) {
    host.AppendEvent(HostEvent{absl::UnixEpoch() + absl::Seconds(i), i, "Information", ""});
  }
  auto events = host.Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].id, 2);
}

TEST(MemoryHostPlatformTest, ServiceStateCanBeSet) {
  FakeClock clock(absl::UnixEpoch());
  MemoryHostPlatform host(MemoryOptions{"h.example.com"}, {clock});
  host.SetServiceState(ServiceState::kStopped);
  EXPECT_EQ(*host.HealthService().State(), ServiceState::kStopped);
  EXPECT_EQ(host.Name(), "memory");
  EXPECT_EQ(host.Fqdn(), "h.example.com");
}

TEST(StoreNameTest, TextRoundTripsIgnoringCase) {
  for (StoreName name : {StoreName::kMy, StoreName::kCa, StoreName::kRoot}) {
    EXPECT_EQ(StoreNameFromText(StoreNameText(name)), name);
  }
  EXPECT_EQ(StoreNameText(StoreName::kCa), "CA");
  EXPECT_EQ(StoreNameFromText("root"), StoreName::kRoot);
  EXPECT_EQ(StoreNameFromText("Personal"), std::nullopt);
}

TEST(SelectEventsSinceTest, FiltersSortsAndKeepsTheNewest) {
  const absl::Time t = absl::UnixEpoch();
  std::vector<HostEvent> events = {{t + absl::Seconds(3), 3, "Error", ""},
                                   {t, 0, "Error", ""},
                                   {t + absl::Seconds(1), 1, "Error", ""},
                                   {t + absl::Seconds(1), 2, "Error", ""}};
  std::vector<HostEvent> selected = SelectEventsSince(events, t + absl::Seconds(1), 2);
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0].id, 2);
  EXPECT_EQ(selected[1].id, 3);
}

TEST(NormalizeChannelSerialTest, AcceptsSpacesAndLowercase) {
  EXPECT_EQ(*NormalizeChannelSerial("56 3c af"), "563CAF");
  EXPECT_EQ(NormalizeChannelSerial("563").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeChannelSerial("").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::agent::platform
