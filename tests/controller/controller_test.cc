#include "controller/controller.h"

#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;

TEST(SplitHostPort, SplitsAnIpv4AddressAndPort) {
  auto split = SplitHostPort("127.0.0.1:7443");
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_THAT(*split, Pair("127.0.0.1", 7443));
}

TEST(SplitHostPort, SplitsAHostName) {
  auto split = SplitHostPort("ctl.example.com:443");
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_THAT(*split, Pair("ctl.example.com", 443));
}

TEST(SplitHostPort, TakesTheBracketsOffAnIpv6Address) {
  auto split = SplitHostPort("[::1]:7443");
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_THAT(*split, Pair("::1", 7443));
  auto any = SplitHostPort("[::]:8443");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(*any, Pair("::", 8443));
}

TEST(SplitHostPort, AcceptsPortZeroToPickAFreePortAndTheHighestPort) {
  auto zero = SplitHostPort("0.0.0.0:0");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_THAT(*zero, Pair("0.0.0.0", 0));
  auto highest = SplitHostPort("localhost:65535");
  ASSERT_TRUE(highest.ok()) << highest.status();
  EXPECT_EQ(highest->second, 65535);
}

TEST(SplitHostPort, RejectsEveryMalformedAddressWithInvalidArgumentNamingIt) {
  for (const char* address :
       {"", "7443", ":7443", "localhost", "localhost:", "localhost:65536", "localhost:-1",
        "localhost:http", "localhost:7443x", "localhost: 7443", "localhost:+7443",
        "localhost:7443 ", "::1:7443", "[::1:7443", "[]:7443", "[::1]", "[::1]7443"}) {
    auto split = SplitHostPort(address);
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << address << "' gave " << (split.ok() ? split->first : "") << " "
        << (split.ok() ? split->second : -1);
    if (*address != '\0') {
      EXPECT_THAT(std::string(split.status().message()), HasSubstr(address));
    }
  }
}

}  // namespace
}  // namespace certfleet::controller
