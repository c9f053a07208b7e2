#include "controller/store/sqlite/encoding.h"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "gtest/gtest.h"

namespace certfleet::controller::store {
namespace {

TEST(EncodingTest, TimesAreUnixMicroseconds) {
  EXPECT_EQ(TimeToMicros(absl::UnixEpoch()), 0);
  EXPECT_EQ(TimeToMicros(absl::FromUnixSeconds(1) + absl::Microseconds(5)), 1'000'005);
  EXPECT_EQ(MicrosToTime(1'000'005), absl::FromUnixMicros(1'000'005));
  EXPECT_EQ(MicrosToTime(-1), absl::UnixEpoch() - absl::Microseconds(1));
}

TEST(EncodingTest, InfiniteTimesRoundTrip) {
  EXPECT_EQ(TimeToMicros(absl::InfiniteFuture()), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(MicrosToTime(TimeToMicros(absl::InfiniteFuture())), absl::InfiniteFuture());
  EXPECT_EQ(MicrosToTime(TimeToMicros(absl::InfinitePast())), absl::InfinitePast());
}

TEST(EncodingTest, ListsAreNetstrings) {
  EXPECT_EQ(EncodeStringList({}), "");
  EXPECT_EQ(EncodeStringList({"EXPIRED", "", "a,b"}), "7:EXPIRED,0:,3:a,b,");
  EXPECT_EQ(EncodeStringMap({{"tier", "web"}, {"site", "paris"}}), "4:site,5:paris,4:tier,3:web,");
}

TEST(EncodingTest, AnyBytesRoundTrip) {
  const std::vector<std::string> list = {
      "", ",", ":", "12:", std::string("\0\n\xff", 3), std::string(1000, 'x')};
  absl::StatusOr<std::vector<std::string>> decoded = DecodeStringList(EncodeStringList(list));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, list);

  const std::map<std::string, std::string> map = {
      {"", ""}, {"a=b", "c\nd"}, {std::string("\0", 1), "3:abc,"}};
  absl::StatusOr<std::map<std::string, std::string>> decoded_map =
      DecodeStringMap(EncodeStringMap(map));
  ASSERT_TRUE(decoded_map.ok()) << decoded_map.status();
  EXPECT_EQ(*decoded_map, map);
}

TEST(EncodingTest, MalformedNetstringsAreDataLoss) {
  for (absl::string_view bad :
       {"x", "3:ab,", "3:abc", "3:abcd", ":,", "-1:,", "1a:b,", "99999999999:", "1:a,2"}) {
    EXPECT_EQ(DecodeStringList(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  EXPECT_EQ(DecodeStringMap("1:a,").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeStringMap("1:a,1:b,1:a,1:c,").status().code(), absl::StatusCode::kDataLoss);
}

namespace model = common::model;

TEST(EncodingTest, DurationsAreMicroseconds) {
  EXPECT_EQ(DurationToMicros(absl::Seconds(60)), 60'000'000);
  EXPECT_EQ(DurationToMicros(absl::Nanoseconds(1999)), 1);
  EXPECT_EQ(MicrosToDuration(-5), absl::Microseconds(-5));
  EXPECT_EQ(MicrosToDuration(DurationToMicros(absl::InfiniteDuration())), absl::InfiniteDuration());
  EXPECT_EQ(MicrosToDuration(DurationToMicros(-absl::InfiniteDuration())),
            -absl::InfiniteDuration());
}

TEST(EncodingTest, CommandPayloadsAreTheirFieldsAsNetstrings) {
  EXPECT_EQ(EncodeCommandPayload(model::ScanPayload{}), "");
  EXPECT_EQ(EncodeCommandPayload(model::ImportPayload{"pfx", "pw"}), "3:pfx,2:pw,");
  EXPECT_EQ(EncodeCommandPayload(model::RepairPayload{"AB"}), "2:AB,");
  EXPECT_EQ(EncodeCommandPayload(model::RebindPayload{"ABCD", absl::Seconds(60)}),
            "4:ABCD,8:60000000,");
  EXPECT_EQ(EncodeCommandPayload(model::TrustPayload{"der"}), "3:der,");
  EXPECT_EQ(EncodeCommandPayload(model::RemovePayload{"CD"}), "2:CD,");
}

TEST(EncodingTest, CommandPayloadsRoundTrip) {
  const std::string binary("\0,1:\xff\n", 6);
  absl::StatusOr<model::CommandPayload> import = DecodeCommandPayload(
      model::CommandKind::kImport, EncodeCommandPayload(model::ImportPayload{binary, binary}));
  ASSERT_TRUE(import.ok()) << import.status();
  EXPECT_EQ(std::get<model::ImportPayload>(*import).data, binary);
  EXPECT_EQ(std::get<model::ImportPayload>(*import).password, binary);

  for (absl::Duration timeout :
       {absl::ZeroDuration(), absl::Microseconds(-1), absl::Hours(1), absl::InfiniteDuration()}) {
    absl::StatusOr<model::CommandPayload> rebind = DecodeCommandPayload(
        model::CommandKind::kRebind, EncodeCommandPayload(model::RebindPayload{"T", timeout}));
    ASSERT_TRUE(rebind.ok()) << rebind.status();
    EXPECT_EQ(std::get<model::RebindPayload>(*rebind).thumbprint, "T");
    EXPECT_EQ(std::get<model::RebindPayload>(*rebind).verify_timeout, timeout);
  }
  absl::StatusOr<model::CommandPayload> scan = DecodeCommandPayload(model::CommandKind::kScan, "");
  ASSERT_TRUE(scan.ok());
  EXPECT_TRUE(std::holds_alternative<model::ScanPayload>(*scan));
  absl::StatusOr<model::CommandPayload> trust =
      DecodeCommandPayload(model::CommandKind::kTrust, "1:x,");
  ASSERT_TRUE(trust.ok());
  EXPECT_EQ(std::get<model::TrustPayload>(*trust).data, "x");
}

TEST(EncodingTest, PayloadsWithTheWrongFieldsAreDataLoss) {
  const std::pair<model::CommandKind, absl::string_view> bad[] = {
      {model::CommandKind::kScan, "1:x,"},           {model::CommandKind::kImport, "3:pfx,"},
      {model::CommandKind::kImport, "1:a,1:b,1:c,"}, {model::CommandKind::kRepair, ""},
      {model::CommandKind::kRebind, "1:T,"},         {model::CommandKind::kRebind, "1:T,2:6a,"},
      {model::CommandKind::kRebind, "1:T,2:+6,"},    {model::CommandKind::kRebind, "1:T,2:06,"},
      {model::CommandKind::kRebind, "1:T,0:,"},      {model::CommandKind::kTrust, "3:x,"},
      {model::CommandKind::kRemove, "1:a,1:b,"},
  };
  for (const auto& [kind, encoded] : bad) {
    EXPECT_EQ(DecodeCommandPayload(kind, encoded).status().code(), absl::StatusCode::kDataLoss)
        << model::CommandKindName(kind) << " " << encoded;
  }
}

TEST(EncodingTest, OutcomesAreTheirFieldsInTheDocumentedOrder) {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kFailed;
  outcome.code = absl::StatusCode::kFailedPrecondition;
  outcome.error = "boom";
  EXPECT_EQ(EncodeCommandOutcome(outcome), "1:9,4:boom,0:,0:,0:,0:,1:0,0:,0:,");

  outcome.result.problems = {"P"};
  outcome.result.rolled_back = true;
  outcome.result.events = {{absl::FromUnixMicros(5), 20053, "Info", "ok"}};
  EXPECT_EQ(EncodeCommandOutcome(outcome),
            "1:9,4:boom,0:,4:1:P,,0:,0:,1:1,28:24:1:5,5:20053,4:Info,2:ok,,,0:,");
}

TEST(EncodingTest, OutcomesRoundTripWithTheStateGivenApart) {
  model::CommandOutcome outcome;
  outcome.code = absl::StatusCode::kUnauthenticated;
  outcome.error = std::string("e\0,", 3);
  outcome.result.thumbprint = "T";
  outcome.result.problems = {"", "A,B", "1:x,"};
  outcome.result.previous_channel_serial = "OLD";
  outcome.result.channel_serial = "NEW";
  outcome.result.rolled_back = true;
  outcome.result.events = {{absl::FromUnixMicros(-1), -7, "", std::string("m\0\n", 3)},
                           {absl::InfiniteFuture(), 0, "Error", "x"}};
  outcome.result.detail = "d";
  absl::StatusOr<model::CommandOutcome> decoded =
      DecodeCommandOutcome(model::CommandState::kExpired, EncodeCommandOutcome(outcome));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->state, model::CommandState::kExpired);
  EXPECT_EQ(decoded->code, outcome.code);
  EXPECT_EQ(decoded->error, outcome.error);
  EXPECT_EQ(decoded->result.thumbprint, "T");
  EXPECT_EQ(decoded->result.problems, outcome.result.problems);
  EXPECT_EQ(decoded->result.previous_channel_serial, "OLD");
  EXPECT_EQ(decoded->result.channel_serial, "NEW");
  EXPECT_TRUE(decoded->result.rolled_back);
  ASSERT_EQ(decoded->result.events.size(), 2u);
  EXPECT_EQ(decoded->result.events[0].time, absl::FromUnixMicros(-1));
  EXPECT_EQ(decoded->result.events[0].id, -7);
  EXPECT_EQ(decoded->result.events[0].message, std::string("m\0\n", 3));
  EXPECT_EQ(decoded->result.events[1].time, absl::InfiniteFuture());
  EXPECT_EQ(decoded->result.events[1].level, "Error");
  EXPECT_EQ(decoded->result.detail, "d");
}

TEST(EncodingTest, MalformedOutcomesAreDataLoss) {
  for (absl::string_view bad : {
           "",
           "1:9,4:boom,0:,0:,0:,0:,1:0,0:,",                 // 8 fields
           "1:9,4:boom,0:,0:,0:,0:,1:0,0:,0:,0:,",           // 10 fields
           "2:17,0:,0:,0:,0:,0:,1:0,0:,0:,",                 // no such status code
           "2:-1,0:,0:,0:,0:,0:,1:0,0:,0:,",                 // no such status code
           "1:x,0:,0:,0:,0:,0:,1:0,0:,0:,",                  // not a number
           "1:0,0:,0:,0:,0:,0:,1:2,0:,0:,",                  // rolled_back neither 0 nor 1
           "1:0,0:,0:,2:1:,0:,0:,1:0,0:,0:,",                // problems not a list
           "1:0,0:,0:,0:,0:,0:,1:0,15:11:1:5,1:1,0:,,,0:,",  // an event with 3 fields
           "1:0,0:,0:,0:,0:,0:,1:0,28:24:1:5,10:9999999999,0:,0:,,,0:,",  // event id beyond int
       }) {
    absl::Status status = DecodeCommandOutcome(model::CommandState::kFailed, bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace certfleet::controller::store
