#include "common/rpc/certificate_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/crypto/describe.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::rpc {
namespace {

using ::testing::ElementsAre;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

model::CertificateInfo LeafInfo() {
  auto pki = certfleet::testing::TestPki::Create(kNow);
  auto spec = pki.ScomLeafSpec("host1.example.com");
  spec.subject_o = "Example";
  spec.template_name = "SCOM";
  auto leaf = pki.Issue(spec);
  auto info = crypto::DescribeCertificate(leaf.cert.get(), true);
  EXPECT_TRUE(info.ok()) << info.status();
  return *info;
}

TEST(ToProto, CopiesEveryFieldAndNamesTheKeyUsageBits) {
  model::CertificateInfo info = LeafInfo();
  certfleet::v1::Certificate proto;
  ToProto(info, {}, &proto);
  EXPECT_EQ(proto.subject(), "CN=host1.example.com,O=Example");
  EXPECT_EQ(proto.issuer(), info.issuer);
  EXPECT_THAT(proto.dns_names(), ElementsAre("host1.example.com"));
  EXPECT_EQ(proto.serial(), info.serial);
  EXPECT_EQ(proto.channel_serial(), info.channel_serial);
  EXPECT_EQ(proto.thumbprint(), info.thumbprint);
  EXPECT_EQ(proto.sha256(), info.sha256);
  EXPECT_EQ(proto.not_before().seconds(), absl::ToUnixSeconds(info.not_before));
  EXPECT_EQ(proto.not_after().seconds(), absl::ToUnixSeconds(info.not_after));
  EXPECT_EQ(proto.key_algorithm(), "RSA");
  EXPECT_EQ(proto.key_bits(), 2048);
  EXPECT_EQ(proto.signature_hash(), "SHA256");
  EXPECT_THAT(proto.key_usage(), ElementsAre("digitalSignature", "keyEncipherment"));
  EXPECT_THAT(proto.extended_key_usage(), ElementsAre("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"));
  EXPECT_FALSE(proto.is_ca());
  EXPECT_TRUE(proto.has_private_key());
  EXPECT_EQ(proto.template_name(), "SCOM");
  EXPECT_TRUE(proto.problems().empty());
  EXPECT_TRUE(proto.compliant());
}

TEST(ToProto, IsNotCompliantWhenThereAreProblems) {
  certfleet::v1::Certificate proto;
  ToProto(LeafInfo(), {"EXPIRED", "IS_CA"}, &proto);
  EXPECT_THAT(proto.problems(), ElementsAre("EXPIRED", "IS_CA"));
  EXPECT_FALSE(proto.compliant());
}

TEST(ToProto, KeepsSubSecondTimesBeforeTheEpoch) {
  model::CertificateInfo info = LeafInfo();
  info.not_before = absl::FromUnixMillis(-1500);
  certfleet::v1::Certificate proto;
  ToProto(info, {}, &proto);
  EXPECT_EQ(proto.not_before().seconds(), -2);
  EXPECT_EQ(proto.not_before().nanos(), 500000000);
}

TEST(FromProto, RoundTripsWhatToProtoWrote) {
  model::CertificateInfo info = LeafInfo();
  certfleet::v1::Certificate proto;
  ToProto(info, {}, &proto);
  auto back = FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->subject, info.subject);
  EXPECT_EQ(back->subject_cn, "host1.example.com");
  EXPECT_EQ(back->issuer, info.issuer);
  EXPECT_EQ(back->dns_names, info.dns_names);
  EXPECT_EQ(back->serial, info.serial);
  EXPECT_EQ(back->channel_serial, info.channel_serial);
  EXPECT_EQ(back->thumbprint, info.thumbprint);
  EXPECT_EQ(back->sha256, info.sha256);
  EXPECT_EQ(back->not_before, info.not_before);
  EXPECT_EQ(back->not_after, info.not_after);
  EXPECT_EQ(back->key_algorithm, info.key_algorithm);
  EXPECT_EQ(back->key_bits, info.key_bits);
  EXPECT_EQ(back->signature_hash, info.signature_hash);
  EXPECT_TRUE(back->has_key_usage);
  EXPECT_EQ(back->key_usage, info.key_usage);
  EXPECT_EQ(back->extended_key_usage, info.extended_key_usage);
  EXPECT_EQ(back->is_ca, info.is_ca);
  EXPECT_EQ(back->template_name, info.template_name);
  EXPECT_EQ(back->has_private_key, info.has_private_key);
}

TEST(FromProto, RecoversAnEscapedCommonName) {
  model::CertificateInfo info = LeafInfo();
  certfleet::v1::Certificate proto;
  ToProto(info, {}, &proto);
  proto.set_subject("CN=Smith\\, John+UID=7,O=Example");
  auto back = FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->subject_cn, "Smith, John");
}

class FromProtoRejects : public ::testing::Test {
 protected:
  FromProtoRejects() { ToProto(LeafInfo(), {}, &proto_); }
  absl::StatusCode Code() { return FromProto(proto_).status().code(); }
  certfleet::v1::Certificate proto_;
};

TEST_F(FromProtoRejects, AThumbprintThatIsNot40HexDigits) {
  proto_.set_thumbprint("ABC");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
  proto_.set_thumbprint(std::string(40, 'G'));
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FromProtoRejects, AnOddLengthOrEmptySerial) {
  proto_.set_serial("ABC");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
  proto_.set_serial("");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
  proto_.set_serial("ZZ");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FromProtoRejects, NotAfterBeforeNotBefore) {
  proto_.mutable_not_after()->set_seconds(proto_.not_before().seconds() - 1);
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FromProtoRejects, OutOfRangeTimestamps) {
  proto_.mutable_not_after()->set_nanos(-1);
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FromProtoRejects, AnUnknownKeyUsageName) {
  proto_.add_key_usage("everything");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FromProtoRejects, AMalformedSha256OrChannelSerial) {
  proto_.set_sha256("AB");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
  ToProto(LeafInfo(), {}, &proto_);
  proto_.set_channel_serial("ABC");
  EXPECT_EQ(Code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::common::rpc
