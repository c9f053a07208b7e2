#include "common/time/format.h"

#include "gtest/gtest.h"

namespace certfleet::common {
namespace {

TEST(FormatRfc3339, PrintsUtcWithWholeSeconds) {
  absl::Time t = absl::FromUnixSeconds(1795314071);
  EXPECT_EQ(FormatRfc3339(t), "2026-11-22T02:21:11Z");
}

TEST(ParseRfc3339, RoundTripsAndRejectsGarbage) {
  auto t = ParseRfc3339("2026-11-22T02:21:11Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(absl::ToUnixSeconds(*t), 1795314071);
  EXPECT_EQ(ParseRfc3339("yesterday").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseHumanDuration, AcceptsGoUnitsAndDays) {
  EXPECT_EQ(*ParseHumanDuration("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseHumanDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseHumanDuration("30d"), absl::Hours(720));
}

TEST(ParseHumanDuration, RejectsBadTextWithTheTextInTheMessage) {
  auto d = ParseHumanDuration("soon");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("soon"), absl::string_view::npos);
  EXPECT_EQ(ParseHumanDuration("-5m").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHumanDuration("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHumanDuration("xd").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::common
