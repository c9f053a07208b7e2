#include "controller/store/sqlite/encoding.h"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/model/renewal.h"
#include "controller/store/records.h"
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
  EXPECT_EQ(EncodeCommandOutcome(outcome), "1:9,4:boom,0:,0:,0:,0:,1:0,0:,0:,0:,");

  outcome.result.problems = {"P"};
  outcome.result.rolled_back = true;
  outcome.result.events = {{absl::FromUnixMicros(5), 20053, "Info", "ok"}};
  outcome.result.csr_pem = "CSR";
  EXPECT_EQ(EncodeCommandOutcome(outcome),
            "1:9,4:boom,0:,4:1:P,,0:,0:,1:1,28:24:1:5,5:20053,4:Info,2:ok,,,0:,3:CSR,");
}

TEST(EncodingTest, OutcomesWrittenBeforeTheCsrFieldStillDecode) {
  // As schema version 2 wrote them: nine fields, no csr_pem.
  absl::StatusOr<model::CommandOutcome> decoded = DecodeCommandOutcome(
      model::CommandState::kFailed, "1:9,4:boom,1:T,4:1:P,,0:,0:,1:1,0:,6:detail,");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(decoded->error, "boom");
  EXPECT_EQ(decoded->result.thumbprint, "T");
  EXPECT_EQ(decoded->result.problems, std::vector<std::string>{"P"});
  EXPECT_TRUE(decoded->result.rolled_back);
  EXPECT_EQ(decoded->result.detail, "detail");
  EXPECT_EQ(decoded->result.csr_pem, "");
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
  outcome.result.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIC,1:x\n";
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
  EXPECT_EQ(decoded->result.csr_pem, outcome.result.csr_pem);
}

TEST(EncodingTest, MalformedOutcomesAreDataLoss) {
  for (absl::string_view bad : {
           "",
           "1:9,4:boom,0:,0:,0:,0:,1:0,0:,",                 // 8 fields
           "1:9,4:boom,0:,0:,0:,0:,1:0,0:,0:,0:,0:,",        // 11 fields
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

// A profile with every field away from its default, and bytes an encoding could mangle.
model::CertificateProfile AwkwardProfile() {
  model::CertificateProfile profile;
  profile.name = "scom,4:x";
  profile.key_algorithm = "RSA";
  profile.key_bits = 4096;
  profile.signature_hash = "SHA512";
  profile.extra_dns_names = {"scom.example.com", "", "a,b:c"};
  profile.key_usage = 0xffffffffu;
  profile.extended_key_usage = {"1.3.6.1.5.5.7.3.2"};
  profile.validity = absl::Hours(24 * 90) + absl::Microseconds(1);
  profile.template_name = std::string("SCOM\0Agent", 10);
  return profile;
}

void ExpectSameProfile(const model::CertificateProfile& actual,
                       const model::CertificateProfile& expected) {
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.key_algorithm, expected.key_algorithm);
  EXPECT_EQ(actual.key_bits, expected.key_bits);
  EXPECT_EQ(actual.signature_hash, expected.signature_hash);
  EXPECT_EQ(actual.extra_dns_names, expected.extra_dns_names);
  EXPECT_EQ(actual.key_usage, expected.key_usage);
  EXPECT_EQ(actual.extended_key_usage, expected.extended_key_usage);
  EXPECT_EQ(actual.validity, expected.validity);
  EXPECT_EQ(actual.template_name, expected.template_name);
}

TEST(EncodingTest, ProfilesAreTheirFieldsInTheDocumentedOrder) {
  EXPECT_EQ(EncodeProfile(model::ScomProfile()),
            "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,"
            "42:17:1.3.6.1.5.5.7.3.1,17:1.3.6.1.5.5.7.3.2,,14:31536000000000,0:,");
}

TEST(EncodingTest, ProfilesRoundTrip) {
  for (const model::CertificateProfile& profile : {model::ScomProfile(), AwkwardProfile()}) {
    SCOPED_TRACE(profile.name);
    absl::StatusOr<model::CertificateProfile> decoded = DecodeProfile(EncodeProfile(profile));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ExpectSameProfile(*decoded, profile);
  }
  model::CertificateProfile forever = model::ScomProfile();
  forever.validity = absl::InfiniteDuration();
  forever.key_bits = -1;
  absl::StatusOr<model::CertificateProfile> decoded = DecodeProfile(EncodeProfile(forever));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameProfile(*decoded, forever);
}

TEST(EncodingTest, MalformedProfilesAreDataLoss) {
  for (absl::string_view bad : {
           "",
           "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,0:,1:0,",               // 8 fields
           "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,0:,1:0,0:,0:,",         // 10 fields
           "4:scom,3:RSA,4:2k48,6:SHA256,0:,1:5,0:,1:0,0:,",            // key_bits not a number
           "4:scom,3:RSA,10:9999999999,6:SHA256,0:,1:5,0:,1:0,0:,",     // key_bits beyond int
           "4:scom,3:RSA,4:2048,6:SHA256,0:,2:-1,0:,1:0,0:,",           // key_usage negative
           "4:scom,3:RSA,4:2048,6:SHA256,0:,10:4294967296,0:,1:0,0:,",  // key_usage beyond 32 bits
           "4:scom,3:RSA,4:2048,6:SHA256,2:1:,1:5,0:,1:0,0:,",          // extra names not a list
           "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,2:9:,1:0,0:,",          // EKUs not a list
           "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,0:,2:1d,0:,",           // validity not a number
       }) {
    EXPECT_EQ(DecodeProfile(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

TEST(EncodingTest, RenewAndInstallPayloadsAreTheirFieldsAsNetstrings) {
  const std::string profile = EncodeProfile(model::ScomProfile());
  EXPECT_EQ(EncodeCommandPayload(model::RenewPayload{model::ScomProfile()}),
            absl::StrCat(profile.size(), ":", profile, ","));
  EXPECT_EQ(EncodeCommandPayload(model::InstallPayload{"PEM", true, absl::Seconds(60)}),
            "3:PEM,1:1,8:60000000,");
  EXPECT_EQ(EncodeCommandPayload(model::InstallPayload{"", false, absl::ZeroDuration()}),
            "0:,1:0,1:0,");
}

TEST(EncodingTest, RenewAndInstallPayloadsRoundTrip) {
  absl::StatusOr<model::CommandPayload> renew = DecodeCommandPayload(
      model::CommandKind::kRenew, EncodeCommandPayload(model::RenewPayload{AwkwardProfile()}));
  ASSERT_TRUE(renew.ok()) << renew.status();
  ExpectSameProfile(std::get<model::RenewPayload>(*renew).profile, AwkwardProfile());

  const std::string chain = "-----BEGIN CERTIFICATE-----\nMII,3:x\n-----END CERTIFICATE-----\n";
  for (bool bind : {true, false}) {
    for (absl::Duration timeout : {absl::Seconds(90) + absl::Microseconds(3),
                                   absl::InfiniteDuration(), absl::ZeroDuration()}) {
      absl::StatusOr<model::CommandPayload> install =
          DecodeCommandPayload(model::CommandKind::kInstall,
                               EncodeCommandPayload(model::InstallPayload{chain, bind, timeout}));
      ASSERT_TRUE(install.ok()) << install.status();
      const auto& decoded = std::get<model::InstallPayload>(*install);
      EXPECT_EQ(decoded.chain_pem, chain);
      EXPECT_EQ(decoded.bind, bind);
      EXPECT_EQ(decoded.verify_timeout, timeout);
    }
  }
}

TEST(EncodingTest, RenewAndInstallPayloadsWithTheWrongFieldsAreDataLoss) {
  const std::pair<model::CommandKind, absl::string_view> bad[] = {
      {model::CommandKind::kRenew, ""},
      {model::CommandKind::kRenew, "0:,"},                   // not a profile
      {model::CommandKind::kRenew, "4:scom,3:RSA,"},         // the profile not nested
      {model::CommandKind::kInstall, "3:PEM,1:1,"},          // 2 fields
      {model::CommandKind::kInstall, "3:PEM,1:1,1:0,1:0,"},  // 4 fields
      {model::CommandKind::kInstall, "3:PEM,3:yes,1:0,"},    // bind neither 0 nor 1
      {model::CommandKind::kInstall, "3:PEM,1:1,3:60s,"},    // timeout not a number
  };
  for (const auto& [kind, encoded] : bad) {
    EXPECT_EQ(DecodeCommandPayload(kind, encoded).status().code(), absl::StatusCode::kDataLoss)
        << model::CommandKindName(kind) << " " << encoded;
  }
}

TEST(EncodingTest, CommandResultsAreAnOutcomesFieldsAfterCodeAndError) {
  model::CommandOutcome outcome;
  outcome.code = absl::StatusCode::kAborted;
  outcome.error = "e";
  outcome.result.thumbprint = "T";
  outcome.result.problems = {"P"};
  outcome.result.events = {{absl::FromUnixMicros(5), 20053, "Info", "ok"}};
  outcome.result.csr_pem = "CSR";
  EXPECT_EQ(EncodeCommandOutcome(outcome),
            absl::StrCat("2:10,1:e,", EncodeCommandResult(outcome.result)));
  EXPECT_EQ(EncodeCommandResult(model::CommandResult{}), "0:,0:,0:,0:,1:0,0:,0:,0:,");
}

TEST(EncodingTest, CommandResultsRoundTripWithOrWithoutTheCsr) {
  model::CommandResult result;
  result.thumbprint = "NEW1";
  result.problems = {"", "a,b"};
  result.previous_channel_serial = "OLD";
  result.channel_serial = "NEW";
  result.rolled_back = true;
  result.events = {{absl::InfinitePast(), 20053, "Information", std::string("x\0y", 3)}};
  result.detail = "rebound";
  result.csr_pem = "CSR\n";
  absl::StatusOr<model::CommandResult> decoded = DecodeCommandResult(EncodeCommandResult(result));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->thumbprint, result.thumbprint);
  EXPECT_EQ(decoded->problems, result.problems);
  EXPECT_EQ(decoded->previous_channel_serial, result.previous_channel_serial);
  EXPECT_EQ(decoded->channel_serial, result.channel_serial);
  EXPECT_TRUE(decoded->rolled_back);
  ASSERT_EQ(decoded->events.size(), 1u);
  EXPECT_EQ(decoded->events[0].time, absl::InfinitePast());
  EXPECT_EQ(decoded->events[0].message, result.events[0].message);
  EXPECT_EQ(decoded->detail, result.detail);
  EXPECT_EQ(decoded->csr_pem, result.csr_pem);

  absl::StatusOr<model::CommandResult> without_csr =
      DecodeCommandResult("1:T,0:,0:,0:,1:0,0:,1:d,");
  ASSERT_TRUE(without_csr.ok()) << without_csr.status();
  EXPECT_EQ(without_csr->detail, "d");
  EXPECT_EQ(without_csr->csr_pem, "");

  for (absl::string_view bad : {"", "1:T,0:,0:,0:,1:0,0:,", "1:T,0:,0:,0:,1:0,0:,1:d,0:,0:,",
                                "1:T,0:,0:,0:,1:x,0:,1:d,0:,"}) {
    EXPECT_EQ(DecodeCommandResult(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

TEST(EncodingTest, RenewalStepsAreStateTimeAndNote) {
  EXPECT_EQ(EncodeRenewalSteps({}), "");
  EXPECT_EQ(EncodeRenewalSteps({{model::RenewalState::kPlanned, absl::UnixEpoch(), "by alice"}}),
            "25:7:planned,1:0,8:by alice,,");
  const std::vector<RenewalStep> steps = {
      {model::RenewalState::kPlanned, absl::InfinitePast(), ""},
      {model::RenewalState::kPendingApproval, absl::FromUnixMicros(-3), "a,b\n3:x,"},
      {model::RenewalState::kRolledBack, absl::InfiniteFuture(), std::string("\0", 1)},
  };
  absl::StatusOr<std::vector<RenewalStep>> decoded = DecodeRenewalSteps(EncodeRenewalSteps(steps));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*decoded)[i].state, steps[i].state);
    EXPECT_EQ((*decoded)[i].at, steps[i].at);
    EXPECT_EQ((*decoded)[i].note, steps[i].note);
  }
}

TEST(EncodingTest, MalformedRenewalStepsAreDataLoss) {
  for (absl::string_view bad : {
           "x",
           "14:7:planned,1:0,,",        // 2 fields
           "20:7:planned,1:0,0:,0:,,",  // 4 fields
           "18:6:paused,1:0,2:no,,",    // no such state
           "19:7:planned,2:1s,1:x,,",   // time not a number
       }) {
    EXPECT_EQ(DecodeRenewalSteps(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace certfleet::controller::store
