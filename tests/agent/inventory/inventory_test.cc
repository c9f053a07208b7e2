// ScanHost over every HostPlatform backend, with certificates made by TestPki at test time.

#include "agent/inventory/inventory.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/platform/lab/lab_host_platform.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/scom/channel_serial.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/platform/test_hosts.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::inventory {
namespace {

using certfleet::testing::Backend;
using certfleet::testing::FakeClock;
using certfleet::testing::TestCert;
using certfleet::testing::TestHost;
using certfleet::testing::TestHostOptions;
using certfleet::testing::TestPki;
using platform::HostEvent;
using platform::MachineSettings;
using platform::StoreName;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace crypto = common::crypto;

constexpr absl::string_view kFqdn = "host1.example.com";

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

std::string ChannelSerialOf(const TestCert& cert) {
  auto info = crypto::DescribeCertificate(cert.cert.get(), false);
  EXPECT_TRUE(info.ok()) << info.status();
  auto channel = common::scom::ChannelSerialFromDisplay(info.ok() ? info->serial : "");
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : "";
}

std::string ThumbprintOf(const TestCert& cert) {
  auto info = crypto::DescribeCertificate(cert.cert.get(), false);
  return info.ok() ? info->thumbprint : "";
}

ScanOptions Options() {
  ScanOptions options;
  options.now = Now();
  return options;
}

class InventoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  InventoryTest() : clock_(Now()), pki_(TestPki::Create(Now())) {}

  void SetUp() override {
    TestHostOptions options;
    options.fqdn = std::string(kFqdn);
    host_ = GetParam().make(options, clock_);
  }

  platform::HostPlatform& platform() { return host_->platform(); }

  std::string Add(StoreName store, const TestCert& cert, bool with_key) {
    auto id = platform().Certificates().Add(
        store, cert.der, with_key ? std::optional<std::string>(cert.key_pem) : std::nullopt);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  void Bind(absl::string_view channel_serial) {
    MachineSettings settings;
    settings.channel_certificate_serial = std::string(channel_serial);
    ASSERT_TRUE(platform().Binding().Write(settings).ok());
  }

  void TrustPki() {
    Add(StoreName::kRoot, pki_.root(), false);
    Add(StoreName::kCa, pki_.issuing(), false);
  }

  // A leaf for the host valid from now-1d for `days`.
  TestCert Leaf(int days, absl::string_view fqdn = kFqdn) {
    crypto::CertificateSpec spec = pki_.ScomLeafSpec(fqdn);
    spec.not_after = Now() - absl::Hours(24) + absl::Hours(24 * days);
    return pki_.Issue(spec);
  }

  HostInventory Scan(const ScanOptions& options = Options()) {
    auto inventory = ScanHost(platform(), options);
    EXPECT_TRUE(inventory.ok()) << inventory.status();
    return inventory.ok() ? std::move(*inventory) : HostInventory{};
  }

  static const ScannedCertificate* Find(const HostInventory& inventory, const TestCert& cert,
                                        absl::string_view store = "My") {
    auto info = crypto::DescribeCertificate(cert.cert.get(), false);
    for (const ScannedCertificate& c : inventory.certificates) {
      if (c.store == store && info.ok() && c.info.thumbprint == info->thumbprint) return &c;
    }
    return nullptr;
  }

  FakeClock clock_;
  TestPki pki_;
  std::unique_ptr<TestHost> host_;
};

TEST_P(InventoryTest, BoundCompliantCertificateHasNoProblemsAndNoDrift) {
  TrustPki();
  TestCert leaf = Leaf(365);
  Add(StoreName::kMy, leaf, true);
  Bind(ChannelSerialOf(leaf));

  HostInventory inventory = Scan();

  ASSERT_EQ(inventory.certificates.size(), 3u);
  EXPECT_EQ(inventory.certificates[0].store, "My");
  EXPECT_EQ(inventory.certificates[1].store, "CA");
  EXPECT_EQ(inventory.certificates[2].store, "Root");
  const ScannedCertificate& my = inventory.certificates[0];
  EXPECT_TRUE(my.bound);
  EXPECT_THAT(my.problems, IsEmpty());
  EXPECT_THAT(my.drift, IsEmpty());
  EXPECT_TRUE(my.info.has_private_key);
  EXPECT_EQ(my.info.subject_cn, kFqdn);
  EXPECT_FALSE(my.location.empty());
  EXPECT_EQ(inventory.bound_thumbprint, ThumbprintOf(leaf));
  EXPECT_EQ(inventory.channel_serial, ChannelSerialOf(leaf));
  EXPECT_THAT(inventory.drift, IsEmpty());
  EXPECT_THAT(inventory.errors, IsEmpty());
  EXPECT_EQ(inventory.service, platform::ServiceState::kRunning);
  // CA certificates are described but not judged as authentication certificates.
  EXPECT_TRUE(inventory.certificates[1].info.is_ca);
  EXPECT_THAT(inventory.certificates[1].problems, IsEmpty());
  EXPECT_THAT(inventory.certificates[2].problems, IsEmpty());
  EXPECT_FALSE(inventory.certificates[2].bound);
}

TEST_P(InventoryTest, HighBitSerialIsBoundWhenTheRegistryValueLacksTheSignByte) {
  TrustPki();
  crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.serial = std::string("\x00\x9A\x01\x02\x03\x04\x05\x06", 8);
  TestCert leaf = pki_.Issue(spec);
  Add(StoreName::kMy, leaf, true);
  ASSERT_EQ(ChannelSerialOf(leaf),
            "060504030201"
            "9A00");
  Bind(
      "060504030201"
      "9A");

  HostInventory inventory = Scan();

  ASSERT_NE(Find(inventory, leaf), nullptr);
  EXPECT_TRUE(Find(inventory, leaf)->bound);
  EXPECT_EQ(Find(inventory, leaf)->info.serial, "009A010203040506");
  EXPECT_EQ(inventory.bound_thumbprint, ThumbprintOf(leaf));
  EXPECT_THAT(inventory.drift, IsEmpty());
}

TEST_P(InventoryTest, NoRegistryValueIsNotBound) {
  TrustPki();
  TestCert leaf = Leaf(365, "other.example.com");
  Add(StoreName::kMy, leaf, true);
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, ElementsAre("NOT_BOUND"));
  EXPECT_EQ(inventory.channel_serial, "");
  EXPECT_EQ(inventory.bound_thumbprint, "");
  EXPECT_FALSE(Find(inventory, leaf)->bound);
}

TEST_P(InventoryTest, RegistryValueMatchingNoCertificateIsBindingNotFound) {
  TrustPki();
  Add(StoreName::kMy, Leaf(365, "other.example.com"), true);
  Bind("0102030405");
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, ElementsAre("BINDING_NOT_FOUND"));
  EXPECT_EQ(inventory.channel_serial, "0102030405");
  EXPECT_EQ(inventory.bound_thumbprint, "");
}

TEST_P(InventoryTest, BoundCertificateWithoutKeyIsDriftOnHostAndCertificate) {
  TrustPki();
  TestCert leaf = Leaf(365);
  Add(StoreName::kMy, leaf, false);
  Bind(ChannelSerialOf(leaf));
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, ElementsAre("BOUND_WITHOUT_PRIVATE_KEY"));
  const ScannedCertificate* my = Find(inventory, leaf);
  ASSERT_NE(my, nullptr);
  EXPECT_TRUE(my->bound);
  EXPECT_THAT(my->drift, ElementsAre("BOUND_WITHOUT_PRIVATE_KEY"));
  EXPECT_THAT(my->problems, ElementsAre("NO_PRIVATE_KEY"));
}

TEST_P(InventoryTest, NewerCompliantCertificateThatIsNotBoundIsRenewedNotActive) {
  TrustPki();
  TestCert old_leaf = Leaf(100);
  TestCert new_leaf = Leaf(365);
  Add(StoreName::kMy, old_leaf, true);
  Add(StoreName::kMy, new_leaf, true);
  Bind(ChannelSerialOf(old_leaf));
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, ElementsAre("RENEWED_NOT_ACTIVE"));
  EXPECT_THAT(Find(inventory, new_leaf)->drift, ElementsAre("RENEWED_NOT_ACTIVE"));
  EXPECT_FALSE(Find(inventory, new_leaf)->bound);
  EXPECT_THAT(Find(inventory, old_leaf)->drift, IsEmpty());
  EXPECT_TRUE(Find(inventory, old_leaf)->bound);
}

TEST_P(InventoryTest, OlderUnboundCertificateIsNotRenewedNotActive) {
  TrustPki();
  TestCert old_leaf = Leaf(100);
  TestCert new_leaf = Leaf(365);
  Add(StoreName::kMy, old_leaf, true);
  Add(StoreName::kMy, new_leaf, true);
  Bind(ChannelSerialOf(new_leaf));
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, IsEmpty());
  EXPECT_THAT(Find(inventory, old_leaf)->drift, IsEmpty());
}

TEST_P(InventoryTest, CompliantCertificateIsRenewedNotActiveWhenNothingUsableIsBound) {
  TrustPki();
  TestCert usable = Leaf(100);
  Add(StoreName::kMy, usable, true);
  HostInventory not_bound = Scan();
  EXPECT_THAT(not_bound.drift, ElementsAre("NOT_BOUND", "RENEWED_NOT_ACTIVE"));
  EXPECT_THAT(Find(not_bound, usable)->drift, ElementsAre("RENEWED_NOT_ACTIVE"));

  // Bound to a later-ending certificate that has no key: the usable one is still better.
  TestCert keyless = Leaf(365);
  Add(StoreName::kMy, keyless, false);
  Bind(ChannelSerialOf(keyless));
  HostInventory bound_keyless = Scan();
  EXPECT_THAT(bound_keyless.drift, ElementsAre("BOUND_WITHOUT_PRIVATE_KEY", "RENEWED_NOT_ACTIVE"));
  EXPECT_THAT(Find(bound_keyless, usable)->drift, ElementsAre("RENEWED_NOT_ACTIVE"));
}

TEST_P(InventoryTest, CertificatesForOtherHostsOrWithProblemsAreNotRenewedNotActive) {
  TrustPki();
  TestCert bound = Leaf(100);
  TestCert other_host = Leaf(365, "host2.example.com");
  TestCert keyless = Leaf(365);
  Add(StoreName::kMy, bound, true);
  Add(StoreName::kMy, other_host, true);
  Add(StoreName::kMy, keyless, false);
  Bind(ChannelSerialOf(bound));
  HostInventory inventory = Scan();
  EXPECT_THAT(inventory.drift, IsEmpty());
  EXPECT_THAT(Find(inventory, other_host)->problems, ElementsAre("SUBJECT_MISMATCH"));
  EXPECT_THAT(Find(inventory, keyless)->problems, ElementsAre("NO_PRIVATE_KEY"));
}

TEST_P(InventoryTest, ChainIsUntrustedWhenRootLacksTheCa) {
  Add(StoreName::kCa, pki_.issuing(), false);
  TestCert leaf = Leaf(365);
  Add(StoreName::kMy, leaf, true);
  Bind(ChannelSerialOf(leaf));
  HostInventory inventory = Scan();
  EXPECT_THAT(Find(inventory, leaf)->problems, ElementsAre("CHAIN_UNTRUSTED"));
}

TEST_P(InventoryTest, IssuingCaInMyServesAsIntermediate) {
  Add(StoreName::kRoot, pki_.root(), false);
  Add(StoreName::kMy, pki_.issuing(), false);
  TestCert leaf = Leaf(365);
  Add(StoreName::kMy, leaf, true);
  HostInventory inventory = Scan();
  EXPECT_THAT(Find(inventory, leaf)->problems, IsEmpty());
}

TEST_P(InventoryTest, ExpiredCertificateIsExpiredButNotAlsoUntrusted) {
  TrustPki();
  crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.not_before = Now() - absl::Hours(24 * 20);
  spec.not_after = Now() - absl::Hours(24);
  TestCert expired = pki_.Issue(spec);
  Add(StoreName::kMy, expired, true);
  HostInventory inventory = Scan();
  EXPECT_THAT(Find(inventory, expired)->problems, ElementsAre("EXPIRED"));
}

TEST_P(InventoryTest, CertificateEndingWithinTheWarningWindowExpiresSoon) {
  TrustPki();
  TestCert leaf = Leaf(10);
  Add(StoreName::kMy, leaf, true);
  Bind(ChannelSerialOf(leaf));
  HostInventory inventory = Scan();
  EXPECT_THAT(Find(inventory, leaf)->problems, ElementsAre("EXPIRES_SOON"));
  ScanOptions narrow = Options();
  narrow.warn_within = absl::Hours(24);
  EXPECT_THAT(Find(Scan(narrow), leaf)->problems, IsEmpty());
}

TEST_P(InventoryTest, UnreadableEntriesSurfaceAsErrors) {
  TrustPki();
  host_->AddUnreadableEntry(StoreName::kMy, "garbage.pem");
  host_->AddUnreadableEntry(StoreName::kRoot, "broken.der");
  HostInventory inventory = Scan();
  ASSERT_EQ(inventory.errors.size(), 2u);
  EXPECT_EQ(inventory.errors[0].store, "My");
  EXPECT_EQ(inventory.errors[0].location, "garbage.pem");
  EXPECT_NE(inventory.errors[0].error, "");
  EXPECT_EQ(inventory.errors[1].store, "Root");
  EXPECT_EQ(inventory.errors[1].location, "broken.der");
  EXPECT_EQ(inventory.certificates.size(), 2u);
}

TEST_P(InventoryTest, RecentEventsHonourSinceAndMaximum) {
  for (int i = 0; i < 6; ++i) {
    host_->AppendEvent(HostEvent{Now() + absl::Seconds(i), 20000 + i, "Information", "m"});
  }
  ScanOptions options = Options();
  options.events_since = Now() + absl::Seconds(1);
  options.max_events = 3;
  HostInventory inventory = Scan(options);
  ASSERT_EQ(inventory.recent_events.size(), 3u);
  EXPECT_EQ(inventory.recent_events[0].id, 20003);
  EXPECT_EQ(inventory.recent_events[2].id, 20005);
}

TEST_P(InventoryTest, ServiceStateIsReported) {
  platform::RestartFault fault;
  fault.kind = platform::RestartFault::Kind::kFail;
  host_->SetRestartFault(fault);
  EXPECT_FALSE(platform().HealthService().Restart().ok());
  EXPECT_EQ(Scan().service, platform::ServiceState::kStopped);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, InventoryTest,
                         ::testing::ValuesIn(certfleet::testing::AllBackends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return certfleet::testing::BackendName(info.param);
                         });

// --- what only the lab shows ---

TEST(LabInventoryTest, CorruptRegistrySurfacesAsAnErrorWithoutFailingTheScan) {
  FakeClock clock(Now());
  const std::string dir = certfleet::testing::MakeTempDirectory();
  platform::LabOptions options;
  options.root = dir;
  options.fqdn = std::string(kFqdn);
  auto lab = platform::LabHostPlatform::Open(options, {clock});
  ASSERT_TRUE(lab.ok()) << lab.status();
  {
    std::ofstream out(absl::StrCat(dir, "/Registry/Machine Settings.json"));
    out << "{broken";
  }
  auto inventory = ScanHost(**lab, Options());
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  ASSERT_EQ(inventory->errors.size(), 1u);
  EXPECT_EQ(inventory->errors[0].store, "Registry");
  EXPECT_THAT(inventory->drift, IsEmpty());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// --- performance: a store of a thousand certificates, each parsed once ---

constexpr int kManyCertificates = 1000;

std::vector<TestCert> ManyLeaves(const TestPki& pki) {
  crypto::EvpPkeyPtr key = pki.NewRsaKey();
  std::vector<TestCert> leaves;
  leaves.reserve(kManyCertificates);
  for (int i = 0; i < kManyCertificates; ++i) {
    leaves.push_back(
        pki.Issue(pki.ScomLeafSpec(absl::StrCat("host", i, ".example.com")), key.get()));
  }
  return leaves;
}

absl::Duration TimeScan(platform::HostPlatform& host, HostInventory* inventory) {
  const absl::Time start = absl::Now();
  auto scanned = ScanHost(host, Options());
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(scanned.ok()) << scanned.status();
  if (scanned.ok()) *inventory = std::move(*scanned);
  return took;
}

TEST(InventoryPerformanceTest, ThousandCertificatesScanWellUnderASecond) {
  FakeClock clock(Now());
  TestPki pki = TestPki::Create(Now());
  std::vector<TestCert> leaves = ManyLeaves(pki);

  // Lab: files written by hand per the layout (Add checks for duplicates, so it is O(n)).
  const std::string dir = certfleet::testing::MakeTempDirectory();
  platform::LabOptions options;
  options.root = dir;
  options.fqdn = std::string(kFqdn);
  auto lab = platform::LabHostPlatform::Open(options, {clock});
  ASSERT_TRUE(lab.ok()) << lab.status();
  for (int i = 0; i < kManyCertificates; ++i) {
    std::ofstream out(absl::StrCat((*lab)->StoreDirectory(StoreName::kMy), "/leaf", i, ".pem"));
    out << leaves[i].cert_pem << leaves[i].key_pem;
  }
  {
    std::ofstream root(absl::StrCat((*lab)->StoreDirectory(StoreName::kRoot), "/root.pem"));
    root << pki.root().cert_pem;
    std::ofstream ca(absl::StrCat((*lab)->StoreDirectory(StoreName::kCa), "/ca.pem"));
    ca << pki.issuing().cert_pem;
  }
  // The first scan decodes every file (OpenSSL 3.0 takes about 0.15 ms per certificate and
  // 0.45 ms per RSA key); later scans decode only the files that changed.
  HostInventory lab_inventory;
  const absl::Duration lab_first = TimeScan(**lab, &lab_inventory);
  EXPECT_EQ(lab_inventory.certificates.size(), kManyCertificates + 2u);
  EXPECT_LT(lab_first, absl::Seconds(5)) << "first lab scan took " << lab_first;
  const absl::Duration lab_again = TimeScan(**lab, &lab_inventory);
  EXPECT_EQ(lab_inventory.certificates.size(), kManyCertificates + 2u);
  EXPECT_LT(lab_again, absl::Seconds(1)) << "lab scan took " << lab_again;
  std::cout << "lab scan of " << kManyCertificates << " certificates with keys: first " << lab_first
            << ", again " << lab_again << "\n";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  // Memory.
  platform::MemoryOptions memory_options;
  memory_options.fqdn = std::string(kFqdn);
  platform::MemoryHostPlatform memory(memory_options, {clock});
  for (const TestCert& leaf : leaves) {
    ASSERT_TRUE(memory.Certificates().Add(StoreName::kMy, leaf.der, leaf.key_pem).ok());
  }
  ASSERT_TRUE(memory.Certificates().Add(StoreName::kRoot, pki.root().der, std::nullopt).ok());
  ASSERT_TRUE(memory.Certificates().Add(StoreName::kCa, pki.issuing().der, std::nullopt).ok());
  HostInventory memory_inventory;
  const absl::Duration memory_took = TimeScan(memory, &memory_inventory);
  EXPECT_EQ(memory_inventory.certificates.size(), kManyCertificates + 2u);
  EXPECT_LT(memory_took, absl::Seconds(1)) << "memory scan took " << memory_took;
  std::cout << "memory scan of " << kManyCertificates << " certificates: " << memory_took << "\n";
  // Every leaf but host1's is for another host, and all chain to the trusted root.
  for (const ScannedCertificate& c : memory_inventory.certificates) {
    if (c.store != "My") continue;
    EXPECT_TRUE(std::find(c.problems.begin(), c.problems.end(), "CHAIN_UNTRUSTED") ==
                c.problems.end());
  }
}

}  // namespace
}  // namespace certfleet::agent::inventory
