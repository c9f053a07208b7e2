#include "common/scom/channel_serial.h"

#include <gtest/gtest.h>

#include "common/crypto/describe.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::scom {
namespace {

TEST(ChannelSerialFromDisplay, ReversesTheBytesButNotTheDigitsInsideAByte) {
  auto channel = ChannelSerialFromDisplay("AF3C56");
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(*channel, "563CAF");
}

TEST(ChannelSerialFromDisplay, KeepsTheSignByteSoTheResultEndsWithZero) {
  auto channel = ChannelSerialFromDisplay("00af3c56");
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(*channel, "563CAF00");
}

TEST(ChannelSerialFromDisplay, RejectsOddLengthNonHexAndEmptyWithInvalidArgument) {
  EXPECT_EQ(ChannelSerialFromDisplay("ABC").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChannelSerialFromDisplay("XY").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChannelSerialFromDisplay("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChannelSerialMatches, MatchesTheReversedSerialIgnoringCase) {
  EXPECT_TRUE(ChannelSerialMatches("563caf", "AF3C56"));
  EXPECT_FALSE(ChannelSerialMatches("563CAE", "AF3C56"));
  EXPECT_FALSE(ChannelSerialMatches("AF3C56", "AF3C56"));
}

TEST(ChannelSerialMatches, IgnoresTheSignByteOnEitherSide) {
  EXPECT_TRUE(ChannelSerialMatches("563C8F00", "008F3C56"));
  EXPECT_TRUE(ChannelSerialMatches("563C8F", "008F3C56"));
  EXPECT_TRUE(ChannelSerialMatches("563C8F00", "8F3C56"));
}

TEST(ChannelSerialMatches, DoesNotIgnoreZeroBytesThatAreNotLeading) {
  EXPECT_FALSE(ChannelSerialMatches("00563C8F", "8F3C56"));
  EXPECT_FALSE(ChannelSerialMatches("563C8F", "8F3C5600"));
}

TEST(ChannelSerialMatches, IsFalseForMalformedOrEmptyValues) {
  EXPECT_FALSE(ChannelSerialMatches("563", "AF3C56"));
  EXPECT_FALSE(ChannelSerialMatches("563CAF", "AF3C5G"));
  EXPECT_FALSE(ChannelSerialMatches("", ""));
  EXPECT_FALSE(ChannelSerialMatches("", "00"));
}

TEST(ChannelSerialMatches, MatchesARealHighBitCertificateWithAndWithoutTheTrailingZero) {
  const absl::Time now = absl::FromUnixSeconds(1772366400);
  auto pki = certfleet::testing::TestPki::Create(now);
  auto spec = pki.ScomLeafSpec("host1.example.com");
  spec.serial = std::string("\x00\x9A\x01\x02", 4);
  auto leaf = pki.Issue(spec);
  auto info = crypto::DescribeCertificate(leaf.cert.get(), true);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->serial, "009A0102");
  EXPECT_EQ(info->channel_serial, "02019A00");
  EXPECT_EQ(*ChannelSerialFromDisplay(info->serial), info->channel_serial);
  EXPECT_TRUE(ChannelSerialMatches(info->channel_serial, info->serial));
  EXPECT_TRUE(ChannelSerialMatches("02019A", info->serial));
}

}  // namespace
}  // namespace certfleet::common::scom
