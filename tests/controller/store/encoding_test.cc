#include "controller/store/sqlite/encoding.h"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
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

}  // namespace
}  // namespace certfleet::controller::store
