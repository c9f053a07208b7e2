// The contract of HostPlatform (agent/platform/*.h) that every backend must keep. Each test runs
// against every backend of AllBackends() on a fresh, empty host.

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/platform/health_service_emulator.h"
#include "agent/platform/host_platform.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/scom/channel_serial.h"
#include "gtest/gtest.h"
#include "tests/agent/platform/test_hosts.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::platform {
namespace {

using certfleet::testing::Backend;
using certfleet::testing::FakeClock;
using certfleet::testing::TestCert;
using certfleet::testing::TestHost;
using certfleet::testing::TestHostOptions;
using certfleet::testing::TestPki;
namespace crypto = common::crypto;
namespace model = common::model;

constexpr absl::string_view kFqdn = "host1.example.com";

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

std::string DisplaySerial(const TestCert& cert) {
  auto info = crypto::DescribeCertificate(cert.cert.get(), false);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? info->serial : "";
}

std::string ChannelSerial(const TestCert& cert) {
  auto channel = common::scom::ChannelSerialFromDisplay(DisplaySerial(cert));
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : "";
}

std::string PublicKeyOfPem(absl::string_view key_pem) {
  auto key = crypto::PrivateKeyFromPem(key_pem);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? crypto::PublicKeyDer(key->get()) : "";
}

class PlatformConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  PlatformConformanceTest() : clock_(Now()), pki_(TestPki::Create(Now())) {}

  void SetUp() override { host_ = GetParam().make(TestHostOptions{}, clock_); }

  HostPlatform& platform() { return host_->platform(); }
  CertificateStore& store() { return platform().Certificates(); }

  std::vector<StoredCertificate> List(StoreName name) {
    auto list = store().List(name);
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? *list : std::vector<StoredCertificate>{};
  }

  std::string Add(StoreName name, const TestCert& cert, bool with_key) {
    auto id = store().Add(name, cert.der,
                          with_key ? std::optional<std::string>(cert.key_pem) : std::nullopt);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  void Bind(absl::string_view channel_serial) {
    MachineSettings settings;
    settings.channel_certificate_serial = std::string(channel_serial);
    ASSERT_TRUE(platform().Binding().Write(settings).ok());
  }

  // Root in Root, the issuing CA in CA (the root only when `trust_root`), `leaf` in My (with
  // its key when `with_key`) and bound.
  void InstallBound(const TestCert& leaf, bool with_key, bool trust_root = true) {
    if (trust_root) Add(StoreName::kRoot, pki_.root(), false);
    Add(StoreName::kCa, pki_.issuing(), false);
    Add(StoreName::kMy, leaf, with_key);
    Bind(ChannelSerial(leaf));
  }

  // Restarts the HealthService, expects success, and returns the events it wrote.
  std::vector<HostEvent> RestartAndReadEvents() {
    const absl::Time before = clock_.Now();
    absl::Status restarted = platform().HealthService().Restart();
    EXPECT_TRUE(restarted.ok()) << restarted;
    auto events = platform().Events().ReadSince(before, 100);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<HostEvent>{};
  }

  // The id of the one event a restart wrote (0 when it did not write exactly one).
  int RestartEventId() {
    std::vector<HostEvent> events = RestartAndReadEvents();
    EXPECT_EQ(events.size(), 1u);
    return events.size() == 1 ? events[0].id : 0;
  }

  crypto::CertificateSpec LeafSpec() const { return pki_.ScomLeafSpec(kFqdn); }

  FakeClock clock_;
  TestPki pki_;
  std::unique_ptr<TestHost> host_;
};

// --- certificate stores ---

TEST_P(PlatformConformanceTest, NewHostHasEmptyStoresAndNoKeyContainers) {
  for (StoreName name : {StoreName::kMy, StoreName::kCa, StoreName::kRoot}) {
    EXPECT_TRUE(List(name).empty()) << StoreNameText(name);
  }
  auto containers = store().ListKeyContainers();
  ASSERT_TRUE(containers.ok()) << containers.status();
  EXPECT_TRUE(containers->empty());
}

TEST_P(PlatformConformanceTest, AddedCertificateIsListedWithItsDer) {
  std::string id = Add(StoreName::kRoot, pki_.root(), false);
  std::vector<StoredCertificate> root = List(StoreName::kRoot);
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].id, id);
  EXPECT_EQ(root[0].der, pki_.root().der);
  EXPECT_FALSE(root[0].has_private_key);
  EXPECT_EQ(root[0].error, "");
  EXPECT_TRUE(List(StoreName::kMy).empty());
  EXPECT_TRUE(List(StoreName::kCa).empty());
}

TEST_P(PlatformConformanceTest, CertificateAddedToMyWithItsKeyHasTheKeyLinked) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string id = Add(StoreName::kMy, leaf, true);
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_TRUE(my[0].has_private_key);
  auto key_pem = store().LinkedPrivateKeyPem(id);
  ASSERT_TRUE(key_pem.ok()) << key_pem.status();
  EXPECT_EQ(PublicKeyOfPem(*key_pem), PublicKeyOfPem(leaf.key_pem));
}

TEST_P(PlatformConformanceTest, AddingTheSameCertificateTwiceReturnsTheExistingEntry) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string first = Add(StoreName::kMy, leaf, false);
  std::string second = Add(StoreName::kMy, leaf, false);
  EXPECT_EQ(first, second);
  EXPECT_EQ(List(StoreName::kMy).size(), 1u);
}

TEST_P(PlatformConformanceTest, AddingADuplicateWithAKeyLinksItWhenNoneWasLinked) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string first = Add(StoreName::kMy, leaf, false);
  std::string second = Add(StoreName::kMy, leaf, true);
  EXPECT_EQ(first, second);
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_TRUE(my[0].has_private_key);
}

TEST_P(PlatformConformanceTest, AddRejectsBytesThatAreNotACertificate) {
  auto id = store().Add(StoreName::kMy, "definitely not DER", std::nullopt);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  EXPECT_TRUE(List(StoreName::kMy).empty());
}

TEST_P(PlatformConformanceTest, AddRejectsAKeyOutsideMy) {
  TestCert leaf = pki_.Issue(LeafSpec());
  auto id = store().Add(StoreName::kCa, leaf.der, leaf.key_pem);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  EXPECT_TRUE(List(StoreName::kCa).empty());
}

TEST_P(PlatformConformanceTest, AddRejectsAKeyThatDoesNotMatchTheCertificate) {
  TestCert leaf = pki_.Issue(LeafSpec());
  TestCert other = pki_.Issue(LeafSpec());
  auto id = store().Add(StoreName::kMy, leaf.der, other.key_pem);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  auto garbage_key = store().Add(StoreName::kMy, leaf.der, std::string("not a key"));
  EXPECT_EQ(garbage_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(List(StoreName::kMy).empty());
}

TEST_P(PlatformConformanceTest, ListIsSortedById) {
  for (int i = 0; i < 4; ++i) Add(StoreName::kCa, pki_.Issue(LeafSpec()), false);
  std::vector<StoredCertificate> ca = List(StoreName::kCa);
  ASSERT_EQ(ca.size(), 4u);
  for (size_t i = 1; i < ca.size(); ++i) EXPECT_LT(ca[i - 1].id, ca[i].id);
}

TEST_P(PlatformConformanceTest, RemoveDeletesTheEntryAndItsLinkedKey) {
  TestCert leaf = pki_.Issue(LeafSpec());
  TestCert other = pki_.Issue(LeafSpec());
  std::string id = Add(StoreName::kMy, leaf, true);
  Add(StoreName::kMy, other, false);
  ASSERT_TRUE(store().Remove(StoreName::kMy, id).ok());
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_EQ(my[0].der, other.der);
  EXPECT_EQ(store().LinkedPrivateKeyPem(id).status().code(), absl::StatusCode::kNotFound);
  // Adding it again without a key does not bring the old key back.
  std::string again = Add(StoreName::kMy, leaf, false);
  EXPECT_EQ(store().LinkedPrivateKeyPem(again).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(PlatformConformanceTest, RemovingAnUnknownIdIsNotFound) {
  EXPECT_EQ(store().Remove(StoreName::kRoot, "no-such-entry.pem").code(),
            absl::StatusCode::kNotFound);
  std::string id = Add(StoreName::kRoot, pki_.root(), false);
  EXPECT_EQ(store().Remove(StoreName::kCa, id).code(), absl::StatusCode::kNotFound);
}

// --- key containers ---

TEST_P(PlatformConformanceTest, KeyContainerIsListedWithItsPublicKey) {
  TestCert leaf = pki_.Issue(LeafSpec());
  auto id = store().AddKeyContainer(leaf.key_pem);
  ASSERT_TRUE(id.ok()) << id.status();
  auto containers = store().ListKeyContainers();
  ASSERT_TRUE(containers.ok()) << containers.status();
  ASSERT_EQ(containers->size(), 1u);
  EXPECT_EQ((*containers)[0].id, *id);
  EXPECT_EQ((*containers)[0].public_key_der, crypto::PublicKeyDer(leaf.key.get()));
  EXPECT_EQ((*containers)[0].error, "");
}

TEST_P(PlatformConformanceTest, AddingTheSameKeyContainerTwiceKeepsOne) {
  TestCert leaf = pki_.Issue(LeafSpec());
  auto first = store().AddKeyContainer(leaf.key_pem);
  auto second = store().AddKeyContainer(leaf.key_pem);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(store().ListKeyContainers()->size(), 1u);
}

TEST_P(PlatformConformanceTest, AddKeyContainerRejectsAnythingButAPrivateKey) {
  EXPECT_EQ(store().AddKeyContainer("not a key").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().AddKeyContainer(pki_.root().cert_pem).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store().ListKeyContainers()->empty());
}

TEST_P(PlatformConformanceTest, LinkKeyMovesTheMatchingContainerToTheCertificate) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string cert_id = Add(StoreName::kMy, leaf, false);
  auto container = store().AddKeyContainer(leaf.key_pem);
  ASSERT_TRUE(container.ok());

  ASSERT_TRUE(store().LinkKey(cert_id, *container).ok());

  EXPECT_TRUE(store().ListKeyContainers()->empty());
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_EQ(my[0].id, cert_id);
  EXPECT_TRUE(my[0].has_private_key);
  auto key_pem = store().LinkedPrivateKeyPem(cert_id);
  ASSERT_TRUE(key_pem.ok()) << key_pem.status();
  EXPECT_EQ(PublicKeyOfPem(*key_pem), PublicKeyOfPem(leaf.key_pem));
}

TEST_P(PlatformConformanceTest, LinkKeyRejectsAContainerThatDoesNotMatch) {
  TestCert leaf = pki_.Issue(LeafSpec());
  TestCert other = pki_.Issue(LeafSpec());
  std::string cert_id = Add(StoreName::kMy, leaf, false);
  auto container = store().AddKeyContainer(other.key_pem);
  ASSERT_TRUE(container.ok());

  EXPECT_EQ(store().LinkKey(cert_id, *container).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(store().ListKeyContainers()->size(), 1u);
  EXPECT_FALSE(List(StoreName::kMy)[0].has_private_key);
}

TEST_P(PlatformConformanceTest, LinkKeyWithUnknownIdsIsNotFound) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string cert_id = Add(StoreName::kMy, leaf, false);
  auto container = store().AddKeyContainer(leaf.key_pem);
  ASSERT_TRUE(container.ok());
  EXPECT_EQ(store().LinkKey("no-such-cert.pem", *container).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().LinkKey(cert_id, "no-such-key.pem").code(), absl::StatusCode::kNotFound);
  // A certificate of another store is not in My.
  std::string root_id = Add(StoreName::kRoot, pki_.root(), false);
  if (root_id != cert_id) {
    EXPECT_EQ(store().LinkKey(root_id, *container).code(), absl::StatusCode::kNotFound);
  }
}

TEST_P(PlatformConformanceTest, LinkedPrivateKeyPemIsNotFoundWithoutAKey) {
  TestCert leaf = pki_.Issue(LeafSpec());
  std::string cert_id = Add(StoreName::kMy, leaf, false);
  EXPECT_EQ(store().LinkedPrivateKeyPem(cert_id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().LinkedPrivateKeyPem("absent.pem").status().code(), absl::StatusCode::kNotFound);
}

// --- binding registry ---

TEST_P(PlatformConformanceTest, AbsentBindingReadsAsNoValues) {
  auto settings = platform().Binding().Read();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_FALSE(settings->channel_certificate_serial.has_value());
  EXPECT_FALSE(settings->channel_certificate_hash.has_value());
}

TEST_P(PlatformConformanceTest, BindingRoundTripsAndIsStoredAsUppercaseHex) {
  MachineSettings settings;
  settings.channel_certificate_serial = "56 3c af 00";
  settings.channel_certificate_hash = "0123456789ABCDEF0123456789ABCDEF01234567";
  ASSERT_TRUE(platform().Binding().Write(settings).ok());
  auto read = platform().Binding().Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->channel_certificate_serial, "563CAF00");
  EXPECT_EQ(read->channel_certificate_hash, "0123456789ABCDEF0123456789ABCDEF01234567");
}

TEST_P(PlatformConformanceTest, WritingNoValueRemovesIt) {
  MachineSettings settings;
  settings.channel_certificate_serial = "563CAF";
  settings.channel_certificate_hash = "AB";
  ASSERT_TRUE(platform().Binding().Write(settings).ok());
  settings.channel_certificate_hash.reset();
  ASSERT_TRUE(platform().Binding().Write(settings).ok());
  auto read = platform().Binding().Read();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->channel_certificate_serial, "563CAF");
  EXPECT_FALSE(read->channel_certificate_hash.has_value());
  ASSERT_TRUE(platform().Binding().Write(MachineSettings{}).ok());
  EXPECT_FALSE(platform().Binding().Read()->channel_certificate_serial.has_value());
}

TEST_P(PlatformConformanceTest, WritingASerialThatIsNotEvenLengthHexIsInvalidArgument) {
  MachineSettings good;
  good.channel_certificate_serial = "0102";
  ASSERT_TRUE(platform().Binding().Write(good).ok());
  for (const char* bad : {"ABC", "XYZ1", "", "12-34"}) {
    MachineSettings settings;
    settings.channel_certificate_serial = bad;
    EXPECT_EQ(platform().Binding().Write(settings).code(), absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
  EXPECT_EQ(platform().Binding().Read()->channel_certificate_serial, "0102");
}

// --- the HealthService ---

TEST_P(PlatformConformanceTest, HealthServiceIsRunningOnANewHost) {
  auto state = platform().HealthService().State();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, ServiceState::kRunning);
}

TEST_P(PlatformConformanceTest, RestartWithACompliantBoundCertificateLogs20053) {
  TestCert leaf = pki_.Issue(LeafSpec());
  InstallBound(leaf, /*with_key=*/true);
  std::vector<HostEvent> events = RestartAndReadEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, kEventCertificateLoaded);
  EXPECT_EQ(events[0].level, "Information");
  EXPECT_EQ(events[0].time, Now());
  EXPECT_TRUE(absl::StrContains(events[0].message, DisplaySerial(leaf))) << events[0].message;
  EXPECT_EQ(*platform().HealthService().State(), ServiceState::kRunning);
}

TEST_P(PlatformConformanceTest, HighBitSerialBoundWithoutItsSignByteLoads) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.serial = std::string("\x00\x80\x11\x22\x33\x44\x55\x66\x77\x88", 10);
  TestCert leaf = pki_.Issue(spec);
  ASSERT_EQ(DisplaySerial(leaf), "00801122334455667788");
  Add(StoreName::kRoot, pki_.root(), false);
  Add(StoreName::kCa, pki_.issuing(), false);
  Add(StoreName::kMy, leaf, true);
  Bind("887766554433221180");  // the REG_BINARY without the trailing sign byte
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
  clock_.Advance(absl::Seconds(1));
  Bind("88776655443322118000");  // and with it, as MOMCertImport writes it
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
}

TEST_P(PlatformConformanceTest, RestartWithoutABindingLogs20066) {
  Add(StoreName::kMy, pki_.Issue(LeafSpec()), true);
  std::vector<HostEvent> events = RestartAndReadEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, kEventCertificateNotFound);
  EXPECT_EQ(events[0].level, "Error");
}

TEST_P(PlatformConformanceTest, RestartWithABindingToNoCertificateLogs20066) {
  TestCert leaf = pki_.Issue(LeafSpec());
  Add(StoreName::kRoot, pki_.root(), false);
  Add(StoreName::kMy, leaf, true);
  Bind("0102030405");
  EXPECT_EQ(RestartEventId(), kEventCertificateNotFound);
}

TEST_P(PlatformConformanceTest, RestartWithABoundCertificateInAnotherStoreLogs20066) {
  TestCert leaf = pki_.Issue(LeafSpec());
  Add(StoreName::kCa, leaf, false);
  Bind(ChannelSerial(leaf));
  EXPECT_EQ(RestartEventId(), kEventCertificateNotFound);
}

TEST_P(PlatformConformanceTest, RestartWithABoundCertificateWithoutKeyLogs20068) {
  InstallBound(pki_.Issue(LeafSpec()), /*with_key=*/false);
  EXPECT_EQ(RestartEventId(), kEventNoPrivateKey);
}

TEST_P(PlatformConformanceTest, RestartWithAnExpiredCertificateLogs20051) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.not_before = Now() - absl::Hours(24 * 400);
  spec.not_after = Now() - absl::Hours(24);
  InstallBound(pki_.Issue(spec), true);
  EXPECT_EQ(RestartEventId(), kEventNotTimeValid);
}

TEST_P(PlatformConformanceTest, RestartWithANotYetValidCertificateLogs20051) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.not_before = Now() + absl::Hours(1);
  spec.not_after = Now() + absl::Hours(24 * 365);
  InstallBound(pki_.Issue(spec), true);
  EXPECT_EQ(RestartEventId(), kEventNotTimeValid);
}

TEST_P(PlatformConformanceTest, RestartWithKeyUsageLackingKeyEnciphermentLogs20049) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.key_usage = model::kDigitalSignature;
  InstallBound(pki_.Issue(spec), true);
  EXPECT_EQ(RestartEventId(), kEventKeyUsage);
}

TEST_P(PlatformConformanceTest, RestartWithoutClientAuthEkuLogs20050) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.extended_key_usage = {std::string(model::kServerAuthOid)};
  InstallBound(pki_.Issue(spec), true);
  EXPECT_EQ(RestartEventId(), kEventEnhancedKeyUsage);
}

TEST_P(PlatformConformanceTest, RestartWithAnotherHostsCertificateLogs20052) {
  InstallBound(pki_.Issue(pki_.ScomLeafSpec("host2.example.com")), true);
  EXPECT_EQ(RestartEventId(), kEventSubjectMismatch);
}

TEST_P(PlatformConformanceTest, SubjectComparisonUsesTheFirstSanIgnoringCase) {
  crypto::CertificateSpec spec = LeafSpec();
  spec.subject_cn = "something-else";
  spec.dns_names = {"HOST1.Example.COM", "other.example.com"};
  InstallBound(pki_.Issue(spec), true);
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
}

TEST_P(PlatformConformanceTest, RestartWithAnUntrustedChainLogs20072) {
  InstallBound(pki_.Issue(LeafSpec()), true, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventChainUntrusted);
}

TEST_P(PlatformConformanceTest, IssuingCaInMyCompletesTheChain) {
  TestCert leaf = pki_.Issue(LeafSpec());
  Add(StoreName::kRoot, pki_.root(), false);
  Add(StoreName::kMy, pki_.issuing(), false);
  Add(StoreName::kMy, leaf, true);
  Bind(ChannelSerial(leaf));
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
}

TEST_P(PlatformConformanceTest, MissingKeyTakesPrecedenceOverEveryOtherDefect) {
  crypto::CertificateSpec spec = pki_.ScomLeafSpec("host2.example.com");
  spec.not_before = Now() - absl::Hours(24 * 400);
  spec.not_after = Now() - absl::Hours(24);
  spec.key_usage = model::kDigitalSignature;
  spec.extended_key_usage = {};
  InstallBound(pki_.Issue(spec), /*with_key=*/false, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventNoPrivateKey);
}

TEST_P(PlatformConformanceTest, ExpiryTakesPrecedenceOverUsageSubjectAndTrust) {
  crypto::CertificateSpec spec = pki_.ScomLeafSpec("host2.example.com");
  spec.not_before = Now() - absl::Hours(24 * 400);
  spec.not_after = Now() - absl::Hours(24);
  spec.key_usage = model::kDigitalSignature;
  InstallBound(pki_.Issue(spec), true, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventNotTimeValid);
}

TEST_P(PlatformConformanceTest, KeyUsageTakesPrecedenceOverEkuSubjectAndTrust) {
  crypto::CertificateSpec spec = pki_.ScomLeafSpec("host2.example.com");
  spec.key_usage = model::kDigitalSignature;
  spec.extended_key_usage = {};
  InstallBound(pki_.Issue(spec), true, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventKeyUsage);
}

TEST_P(PlatformConformanceTest, EkuTakesPrecedenceOverSubjectAndTrust) {
  crypto::CertificateSpec spec = pki_.ScomLeafSpec("host2.example.com");
  spec.extended_key_usage = {std::string(model::kClientAuthOid)};
  InstallBound(pki_.Issue(spec), true, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventEnhancedKeyUsage);
}

TEST_P(PlatformConformanceTest, SubjectTakesPrecedenceOverTrust) {
  InstallBound(pki_.Issue(pki_.ScomLeafSpec("host2.example.com")), true, /*trust_root=*/false);
  EXPECT_EQ(RestartEventId(), kEventSubjectMismatch);
}

TEST_P(PlatformConformanceTest, RestartUsesTheBindingWrittenBeforeIt) {
  TestCert old_leaf = pki_.Issue(LeafSpec());
  TestCert new_leaf = pki_.Issue(LeafSpec());
  InstallBound(old_leaf, true);
  Add(StoreName::kMy, new_leaf, false);
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
  Bind(ChannelSerial(new_leaf));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(RestartEventId(), kEventNoPrivateKey);
}

// --- fault injection ---

TEST_P(PlatformConformanceTest, FailingRestartIsUnavailableStopsTheServiceAndLogsNothing) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kFail;
  host_->SetRestartFault(fault);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*platform().HealthService().State(), ServiceState::kStopped);
  EXPECT_TRUE(platform().Events().ReadSince(absl::InfinitePast(), 100)->empty());
}

TEST_P(PlatformConformanceTest, HangingRestartWaitsOnTheClockThenExceedsTheDeadline) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kHang;
  fault.hang = absl::Seconds(30);
  host_->SetRestartFault(fault);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(clock_.Now(), Now() + absl::Seconds(30));
  EXPECT_EQ(*platform().HealthService().State(), ServiceState::kStopped);
  EXPECT_TRUE(platform().Events().ReadSince(absl::InfinitePast(), 100)->empty());
}

TEST_P(PlatformConformanceTest, HangingRestartIsBoundedByTheMaximumRestartTime) {
  RestartFault fault;
  fault.kind = RestartFault::Kind::kHang;
  fault.hang = absl::Hours(5);
  host_->SetRestartFault(fault);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(clock_.Now(), Now() + TestHostOptions{}.max_restart_time);
}

TEST_P(PlatformConformanceTest, NoEventRestartSucceedsAndLogsNothing) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kNoEvent;
  host_->SetRestartFault(fault);
  EXPECT_TRUE(platform().HealthService().Restart().ok());
  EXPECT_EQ(*platform().HealthService().State(), ServiceState::kRunning);
  EXPECT_TRUE(platform().Events().ReadSince(absl::InfinitePast(), 100)->empty());
}

TEST_P(PlatformConformanceTest, FaultLimitedToOneRestartAppliesOnce) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kFail;
  fault.times = 1;
  host_->SetRestartFault(fault);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
  EXPECT_EQ(*platform().HealthService().State(), ServiceState::kRunning);
}

TEST_P(PlatformConformanceTest, FaultAppliesUntilCleared) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kFail;
  host_->SetRestartFault(fault);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(platform().HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  host_->SetRestartFault(RestartFault{});
  EXPECT_EQ(RestartEventId(), kEventCertificateLoaded);
}

// --- event log ---

HostEvent Event(absl::Time time, int id, absl::string_view message = "m") {
  HostEvent event;
  event.time = time;
  event.id = id;
  event.level = "Information";
  event.message = std::string(message);
  return event;
}

TEST_P(PlatformConformanceTest, EventLogOfANewHostIsEmpty) {
  auto events = platform().Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_TRUE(events->empty());
}

TEST_P(PlatformConformanceTest, ReadSinceReturnsEventsAtOrAfterTheTimeOldestFirst) {
  const absl::Time t = Now();
  host_->AppendEvent(Event(t + absl::Seconds(20), 3));
  host_->AppendEvent(Event(t - absl::Seconds(5), 0));
  host_->AppendEvent(Event(t, 1));
  host_->AppendEvent(Event(t + absl::Seconds(10), 2, "tab\tinside"));
  auto events = platform().Events().ReadSince(t, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].id, 1);
  EXPECT_EQ((*events)[1].id, 2);
  EXPECT_EQ((*events)[1].message, "tab\tinside");
  EXPECT_EQ((*events)[2].id, 3);
  EXPECT_EQ((*events)[2].time, t + absl::Seconds(20));
}

TEST_P(PlatformConformanceTest, ReadSinceKeepsTheNewestMaxEvents) {
  for (int i = 0; i < 10; ++i) host_->AppendEvent(Event(Now() + absl::Seconds(i), i));
  auto events = platform().Events().ReadSince(absl::InfinitePast(), 3);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].id, 7);
  EXPECT_EQ((*events)[2].id, 9);
  EXPECT_TRUE(platform().Events().ReadSince(absl::InfinitePast(), 0)->empty());
}

TEST_P(PlatformConformanceTest, EventTimesKeepSubSecondPrecision) {
  const absl::Time t = Now() + absl::Milliseconds(250);
  host_->AppendEvent(Event(t, 7));
  auto events = platform().Events().ReadSince(t, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].time, t);
}

TEST_P(PlatformConformanceTest, NewlinesInMessagesDoNotSplitEvents) {
  host_->AppendEvent(Event(Now(), 5, "first line\nsecond line"));
  auto events = platform().Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].id, 5);
}

TEST_P(PlatformConformanceTest, RestartEventFollowsEarlierEvents) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  host_->AppendEvent(Event(Now() - absl::Minutes(1), 21020));
  EXPECT_TRUE(platform().HealthService().Restart().ok());
  auto events = platform().Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].id, 21020);
  EXPECT_EQ((*events)[1].id, kEventCertificateLoaded);
}

// --- thread-safety ---

TEST_P(PlatformConformanceTest, ConcurrentAddsListsAndRestartsKeepEveryCertificate) {
  InstallBound(pki_.Issue(LeafSpec()), true);
  std::vector<TestCert> leaves;
  for (int i = 0; i < 8; ++i) leaves.push_back(pki_.Issue(LeafSpec()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < leaves.size(); i += 2) {
        EXPECT_TRUE(store().Add(StoreName::kMy, leaves[i].der, leaves[i].key_pem).ok());
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(store().List(StoreName::kMy).ok());
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(platform().HealthService().Restart().ok());
  });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(List(StoreName::kMy).size(), leaves.size() + 1);
  auto events = platform().Events().ReadSince(absl::InfinitePast(), 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  for (const HostEvent& event : *events) EXPECT_EQ(event.id, kEventCertificateLoaded);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, PlatformConformanceTest,
                         ::testing::ValuesIn(certfleet::testing::AllBackends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return certfleet::testing::BackendName(info.param);
                         });

}  // namespace
}  // namespace certfleet::agent::platform
