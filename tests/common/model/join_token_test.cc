#include "common/model/join_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace certfleet::common::model {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 43 characters: what base64url makes of 32 bytes.
const std::string kSecret = "Zq3VbTg0-8Xw_Ka1LmNoPqRsTuVwXyZ0123456789ab";
const std::string kPin = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";

TEST(FormatJoinToken, WritesPrefixSecretAndPinSeparatedByDots) {
  EXPECT_EQ(FormatJoinToken(JoinToken{kSecret, kPin}), "cfjt1." + kSecret + "." + kPin);
}

TEST(ParseJoinToken, ReadsBackWhatFormatJoinTokenWrote) {
  auto token = ParseJoinToken(FormatJoinToken(JoinToken{kSecret, kPin}));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->secret, kSecret);
  EXPECT_EQ(token->ca_pin, kPin);
  EXPECT_EQ(FormatJoinToken(*token), FormatJoinToken(JoinToken{kSecret, kPin}));
}

TEST(ParseJoinToken, UppercasesALowercasePin) {
  std::string lower_pin = kPin;
  for (char& c : lower_pin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto token = ParseJoinToken("cfjt1." + kSecret + "." + lower_pin);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->ca_pin, kPin);
}

TEST(ParseJoinToken, IgnoresWhitespaceAroundTheToken) {
  auto token = ParseJoinToken("  cfjt1." + kSecret + "." + kPin + "\r\n");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->secret, kSecret);
  EXPECT_EQ(token->ca_pin, kPin);
}

TEST(ParseJoinToken, AcceptsASecretOf32CharactersButNot31) {
  const std::string secret32 = kSecret.substr(0, 32);
  auto token = ParseJoinToken("cfjt1." + secret32 + "." + kPin);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->secret, secret32);
  EXPECT_EQ(ParseJoinToken("cfjt1." + kSecret.substr(0, 31) + "." + kPin).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Every malformed form, each built around the same secret and pin so that the message can be
// checked for leaks.
std::vector<std::string> MalformedTokens() {
  return {
      "",
      "cfjt1",
      kSecret,
      "cfjt1." + kSecret,
      "cfjt1." + kSecret + ".",
      "cfjt1.." + kPin,
      "." + kSecret + "." + kPin,
      "cfjt2." + kSecret + "." + kPin,
      "CFJT1." + kSecret + "." + kPin,
      "cfjt1." + kSecret + "." + kPin + ".",
      "cfjt1." + kSecret + "." + kPin + ".extra",
      "cfjt1:" + kSecret + ":" + kPin,
      "cfjt1." + kSecret.substr(0, 31) + "." + kPin,
      "cfjt1." + kSecret.substr(0, 42) + "+." + kPin,
      "cfjt1." + kSecret.substr(0, 42) + "/." + kPin,
      "cfjt1." + kSecret + "=." + kPin,
      "cfjt1." + kSecret.substr(0, 20) + " " + kSecret.substr(21) + "." + kPin,
      "cfjt1." + kSecret + "." + kPin.substr(0, 63),
      "cfjt1." + kSecret + "." + kPin + "0",
      "cfjt1." + kSecret + "." + kPin.substr(0, 63) + "G",
      "cfjt1." + kSecret + "." + kPin.substr(0, 62) + ":0",
      "cfjt1." + kSecret + ". " + kPin.substr(1),
  };
}

TEST(ParseJoinToken, RejectsEveryMalformedFormWithInvalidArgument) {
  for (const std::string& text : MalformedTokens()) {
    EXPECT_EQ(ParseJoinToken(text).status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << text << "'";
  }
}

TEST(ParseJoinToken, ErrorsNeverContainTheTokenText) {
  for (const std::string& text : MalformedTokens()) {
    absl::Status status = ParseJoinToken(text).status();
    ASSERT_FALSE(status.ok()) << "'" << text << "'";
    const std::string message(status.message());
    EXPECT_THAT(message, Not(HasSubstr(kSecret.substr(0, 16)))) << "'" << text << "'";
    EXPECT_THAT(message, Not(HasSubstr(kSecret.substr(20, 16)))) << "'" << text << "'";
    EXPECT_THAT(message, Not(HasSubstr(kPin.substr(0, 16)))) << "'" << text << "'";
    EXPECT_THAT(message, Not(HasSubstr(kPin.substr(40, 16)))) << "'" << text << "'";
  }
}

}  // namespace
}  // namespace certfleet::common::model
