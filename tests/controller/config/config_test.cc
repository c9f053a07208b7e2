#include "controller/config/config.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace certfleet::controller::config {
namespace {

TEST(ParseConfig, AnEmptyFileKeepsTheEmbeddedDefaults) {
  auto c = ParseConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_issuer, "builtin");
  EXPECT_TRUE(c->profiles.empty());
  EXPECT_TRUE(c->command_issuers.empty());
}

TEST(ParseConfig, ReadsProfilesAndCommandIssuers) {
  auto c = ParseConfig(R"(
default_issuer: corp-ca
profiles:
  - name: scom-4096
    key_bits: 4096
    validity: 730d
    extra_dns_names: [scom.corp.example]
    template_name: SCOMAuth
issuers:
  - name: corp-ca
    type: command
    command: [/usr/local/bin/issue.sh, /var/lib/ca]
    timeout: 30s
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_issuer, "corp-ca");
  ASSERT_EQ(c->profiles.size(), 1u);
  EXPECT_EQ(c->profiles[0].name, "scom-4096");
  EXPECT_EQ(c->profiles[0].key_bits, 4096);
  EXPECT_EQ(c->profiles[0].validity, absl::Hours(24 * 730));
  EXPECT_EQ(c->profiles[0].extra_dns_names, std::vector<std::string>{"scom.corp.example"});
  EXPECT_EQ(c->profiles[0].template_name, "SCOMAuth");
  // Unset fields keep the scom profile's values.
  EXPECT_EQ(c->profiles[0].signature_hash, "SHA256");
  ASSERT_EQ(c->command_issuers.size(), 1u);
  EXPECT_EQ(c->command_issuers[0].argv,
            (std::vector<std::string>{"/usr/local/bin/issue.sh", "/var/lib/ca"}));
  EXPECT_EQ(c->command_issuers[0].timeout, absl::Seconds(30));
}

void ExpectInvalid(const std::string& yaml, absl::string_view mentions) {
  auto c = ParseConfig(yaml);
  ASSERT_FALSE(c.ok()) << yaml;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(c.status().message(), mentions)) << c.status();
}

TEST(ParseConfig, RejectsBadInputNamingTheField) {
  ExpectInvalid("profiles: [{name: x, key_bits: 1024}]", "key_bits");
  ExpectInvalid("profiles: [{name: x, colour: red}]", "colour");
  ExpectInvalid("profiles: [{name: scom}]", "scom");
  ExpectInvalid("profiles: [{key_bits: 2048}]", "needs a name");
  ExpectInvalid("profiles: [{name: x, validity: soon}]", "validity");
  ExpectInvalid("issuers: [{name: builtin, command: [x]}]", "builtin");
  ExpectInvalid("issuers: [{name: y}]", "command");
  ExpectInvalid("issuers: [{name: y, type: acme, command: [x]}]", "type");
  ExpectInvalid("default_issuer: nowhere", "nowhere");
  ExpectInvalid("surprise: 1", "surprise");
  ExpectInvalid("profiles: [unclosed", "YAML");
}

}  // namespace
}  // namespace certfleet::controller::config
