#include "common/crypto/encoding.h"

#include <gtest/gtest.h>

namespace certfleet::common::crypto {
namespace {

TEST(HexUpper, WritesTwoUppercaseDigitsPerByte) {
  EXPECT_EQ(HexUpper(std::string("\x00\x0a\xff\x3c", 4)), "000AFF3C");
  EXPECT_EQ(HexUpper(""), "");
}

TEST(HexDecode, AcceptsEitherCaseAndSpacesBetweenBytes) {
  auto bytes = HexDecode("af 3C 56");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "\xAF\x3C\x56");
}

TEST(HexDecode, RejectsOddLengthAndNonHexWithInvalidArgument) {
  EXPECT_EQ(HexDecode("ABC").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("ZZ").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("A BC").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Digests, MatchTheFipsTestVectors) {
  EXPECT_EQ(Sha1Hex("abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
  EXPECT_EQ(Sha256Hex("abc"), "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
  EXPECT_EQ(Sha256("abc").size(), 32u);
}

TEST(RandomBytes, ReturnsTheRequestedNumberOfBytes) {
  EXPECT_EQ(RandomBytes(16).size(), 16u);
  EXPECT_NE(RandomBytes(16), RandomBytes(16));
}

TEST(Base64UrlEncode, UsesTheUrlAlphabetWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(Base64UrlEncode("abcd"), "YWJjZA");
}

}  // namespace
}  // namespace certfleet::common::crypto
