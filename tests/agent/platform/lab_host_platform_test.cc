// LabHostPlatform beyond the conformance suite: the on-disk layout contract of ARCHITECTURE.md
// ("Lab host layout"), written by hand here exactly as tools and tests write it.

#include "agent/platform/lab/lab_host_platform.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/scom/channel_serial.h"
#include "common/time/format.h"
#include "gtest/gtest.h"
#include "tests/agent/platform/test_hosts.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::platform {
namespace {

using certfleet::testing::FakeClock;
using certfleet::testing::TestCert;
using certfleet::testing::TestPki;

constexpr absl::string_view kFqdn = "host1.example.com";

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

void WriteText(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

class LabHostPlatformTest : public ::testing::Test {
 protected:
  LabHostPlatformTest()
      : clock_(Now()),
        pki_(TestPki::Create(Now())),
        dir_(certfleet::testing::MakeTempDirectory()),
        root_(absl::StrCat(dir_, "/host")) {}

  ~LabHostPlatformTest() override {
    lab_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }

  void Open() {
    LabOptions options;
    options.root = root_;
    options.fqdn = std::string(kFqdn);
    auto lab = LabHostPlatform::Open(options, {clock_});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
  }

  std::string Path(absl::string_view relative) const { return absl::StrCat(root_, "/", relative); }

  std::vector<StoredCertificate> List(StoreName name) {
    auto list = lab_->Certificates().List(name);
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? *list : std::vector<StoredCertificate>{};
  }

  std::string ChannelSerial(const TestCert& cert) {
    auto info = common::crypto::DescribeCertificate(cert.cert.get(), false);
    auto channel = common::scom::ChannelSerialFromDisplay(info->serial);
    return *channel;
  }

  FakeClock clock_;
  TestPki pki_;
  const std::string dir_;
  const std::string root_;
  std::unique_ptr<LabHostPlatform> lab_;
};

TEST_F(LabHostPlatformTest, OpenCreatesTheLayoutDirectories) {
  for (const char* dir : {"LocalMachine/My", "LocalMachine/CA", "LocalMachine/Root", "MachineKeys",
                          "Registry", "EventLog", "Services", "Faults"}) {
    EXPECT_TRUE(std::filesystem::is_directory(Path(dir))) << dir;
  }
  EXPECT_EQ(ModeOf(Path("MachineKeys")), 0700u);
  EXPECT_EQ(lab_->Name(), "lab");
  EXPECT_EQ(lab_->Fqdn(), kFqdn);
}

TEST_F(LabHostPlatformTest, OpenRejectsMissingOptions) {
  LabOptions no_root;
  no_root.fqdn = "h.example.com";
  EXPECT_EQ(LabHostPlatform::Open(no_root, {clock_}).status().code(),
            absl::StatusCode::kInvalidArgument);
  LabOptions no_fqdn;
  no_fqdn.root = root_;
  EXPECT_EQ(LabHostPlatform::Open(no_fqdn, {clock_}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LabHostPlatformTest, OpenOverAFileIsFailedPrecondition) {
  const std::string file = absl::StrCat(dir_, "/a-file");
  WriteText(file, "x");
  LabOptions options;
  options.root = file;
  options.fqdn = "h.example.com";
  EXPECT_EQ(LabHostPlatform::Open(options, {clock_}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LabHostPlatformTest, ReadsAHostWrittenByHandPerTheLayoutContract) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  TestCert spare = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  WriteText(Path("LocalMachine/My/host1.pem"), leaf.cert_pem + leaf.key_pem);
  WriteText(Path("LocalMachine/My/spare.cer"), spare.der);
  WriteText(Path("LocalMachine/CA/issuing.crt"), pki_.issuing().cert_pem);
  WriteText(Path("LocalMachine/Root/root.der"), pki_.root().der);
  WriteText(Path("MachineKeys/spare-key.pem"), spare.key_pem);
  WriteText(Path("Registry/Machine Settings.json"),
            absl::StrCat("{\"ChannelCertificateSerialNumber\": \"", ChannelSerial(leaf),
                         "\", \"SomethingElse\": 1}"));
  WriteText(Path("EventLog/Operations Manager.log"),
            "2026-03-01T11:00:00Z\t21020\tWarning\tThe certificate is expiring\n");

  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 2u);
  EXPECT_EQ(my[0].id, "host1.pem");
  EXPECT_EQ(my[0].der, leaf.der);
  EXPECT_TRUE(my[0].has_private_key);
  EXPECT_EQ(my[1].id, "spare.cer");
  EXPECT_EQ(my[1].der, spare.der);
  EXPECT_FALSE(my[1].has_private_key);
  ASSERT_EQ(List(StoreName::kCa).size(), 1u);
  EXPECT_EQ(List(StoreName::kCa)[0].der, pki_.issuing().der);
  ASSERT_EQ(List(StoreName::kRoot).size(), 1u);
  EXPECT_EQ(List(StoreName::kRoot)[0].id, "root.der");

  auto containers = lab_->Certificates().ListKeyContainers();
  ASSERT_TRUE(containers.ok());
  ASSERT_EQ(containers->size(), 1u);
  EXPECT_EQ((*containers)[0].id, "spare-key.pem");
  EXPECT_EQ((*containers)[0].public_key_der, common::crypto::PublicKeyDer(spare.key.get()));

  auto settings = lab_->Binding().Read();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->channel_certificate_serial, ChannelSerial(leaf));

  auto events = lab_->Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].id, 21020);
  EXPECT_EQ((*events)[0].level, "Warning");
  EXPECT_EQ((*events)[0].message, "The certificate is expiring");
  EXPECT_EQ((*events)[0].time, Now() - absl::Hours(1));

  // The emulated HealthService loads the hand-written binding and appends one line.
  ASSERT_TRUE(lab_->HealthService().Restart().ok());
  std::vector<std::string> lines =
      absl::StrSplit(ReadText(Path("EventLog/Operations Manager.log")), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  std::vector<std::string> fields = absl::StrSplit(lines[1], absl::MaxSplits('\t', 3));
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0], "2026-03-01T12:00:00Z");
  EXPECT_EQ(fields[1], "20053");
  EXPECT_EQ(fields[2], "Information");
  EXPECT_TRUE(absl::StrContains(fields[3], "loaded")) << fields[3];
  EXPECT_TRUE(absl::StrContains(ReadText(Path("Services/HealthService.json")), "running"));
}

TEST_F(LabHostPlatformTest, FilesThatAreNotCertificatesAreListedWithAnError) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  TestCert other = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  WriteText(Path("LocalMachine/My/a-garbage.pem"), "hello, not a certificate");
  WriteText(Path("LocalMachine/My/b-empty.der"), "");
  WriteText(Path("LocalMachine/My/c-two-certs.pem"), leaf.cert_pem + other.cert_pem);
  WriteText(Path("LocalMachine/My/d-wrong-key.pem"), leaf.cert_pem + other.key_pem);
  WriteText(Path("LocalMachine/My/e-key-only.pem"), leaf.key_pem);
  WriteText(Path("LocalMachine/My/f-good.pem"), leaf.cert_pem);
  WriteText(Path("LocalMachine/My/.hidden.pem"), "ignored");
  std::filesystem::create_directory(Path("LocalMachine/My/subdir"));

  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_NE(my[i].error, "") << my[i].id;
    EXPECT_EQ(my[i].der, "") << my[i].id;
    EXPECT_FALSE(my[i].has_private_key) << my[i].id;
  }
  EXPECT_EQ(my[0].id, "a-garbage.pem");
  EXPECT_TRUE(absl::StrContains(my[2].error, "2 certificates")) << my[2].error;
  EXPECT_TRUE(absl::StrContains(my[3].error, "does not match")) << my[3].error;
  EXPECT_EQ(my[5].id, "f-good.pem");
  EXPECT_EQ(my[5].error, "");

  WriteText(Path("MachineKeys/not-a-key.pem"), "garbage");
  auto containers = lab_->Certificates().ListKeyContainers();
  ASSERT_TRUE(containers.ok());
  ASSERT_EQ(containers->size(), 1u);
  EXPECT_NE((*containers)[0].error, "");

  // A garbage entry can be removed like any other.
  EXPECT_TRUE(lab_->Certificates().Remove(StoreName::kMy, "a-garbage.pem").ok());
  EXPECT_EQ(List(StoreName::kMy).size(), 5u);
}

TEST_F(LabHostPlatformTest, FileRewrittenInPlaceIsReadAgain) {
  TestCert first = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  TestCert second = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  WriteText(Path("LocalMachine/My/host.pem"), first.cert_pem);
  ASSERT_EQ(List(StoreName::kMy).size(), 1u);
  EXPECT_EQ(List(StoreName::kMy)[0].der, first.der);
  WriteText(Path("LocalMachine/My/host.pem"), second.cert_pem + second.key_pem);
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_EQ(my[0].der, second.der);
  EXPECT_TRUE(my[0].has_private_key);
  WriteText(Path("LocalMachine/My/host.pem"), second.cert_pem);
  EXPECT_FALSE(List(StoreName::kMy)[0].has_private_key);
}

TEST_F(LabHostPlatformTest, IdsThatEscapeTheStoreAreInvalid) {
  EXPECT_EQ(lab_->Certificates().Remove(StoreName::kMy, "../Root/root.der").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lab_->Certificates().LinkKey("..", "x.pem").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LabHostPlatformTest, CorruptMachineSettingsIsDataLossNamingTheFile) {
  WriteText(Path("Registry/Machine Settings.json"), "{\"ChannelCertificateSerialNumber\": ");
  auto settings = lab_->Binding().Read();
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(settings.status().message(), "Machine Settings.json"))
      << settings.status();

  WriteText(Path("Registry/Machine Settings.json"),
            "{\"ChannelCertificateSerialNumber\": \"not hex\"}");
  EXPECT_EQ(lab_->Binding().Read().status().code(), absl::StatusCode::kDataLoss);
  WriteText(Path("Registry/Machine Settings.json"), "[1, 2]");
  EXPECT_EQ(lab_->Binding().Read().status().code(), absl::StatusCode::kDataLoss);

  // A restart cannot read its binding either; the error keeps its code.
  EXPECT_EQ(lab_->HealthService().Restart().code(), absl::StatusCode::kDataLoss);

  // Writing the values repairs the file.
  MachineSettings repaired;
  repaired.channel_certificate_serial = "0A0B";
  ASSERT_TRUE(lab_->Binding().Write(repaired).ok());
  EXPECT_EQ(lab_->Binding().Read()->channel_certificate_serial, "0A0B");
}

TEST_F(LabHostPlatformTest, WritingTheBindingKeepsOtherValuesAndLeavesNoTemporaryFile) {
  WriteText(Path("Registry/Machine Settings.json"), "{\"SomethingElse\": \"kept\"}");
  MachineSettings settings;
  settings.channel_certificate_serial = "563caf";
  ASSERT_TRUE(lab_->Binding().Write(settings).ok());
  const std::string text = ReadText(Path("Registry/Machine Settings.json"));
  EXPECT_TRUE(absl::StrContains(text, "\"SomethingElse\": \"kept\"")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\"ChannelCertificateSerialNumber\": \"563CAF\"")) << text;
  EXPECT_FALSE(absl::StrContains(text, "ChannelCertificateHash")) << text;
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(Path("Registry"))) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(LabHostPlatformTest, FilesHoldingKeysAreWrittenOwnerOnly) {
  TestCert with_key = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  TestCert linked_later = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  CertificateStore& store = lab_->Certificates();

  auto container = store.AddKeyContainer(linked_later.key_pem);
  ASSERT_TRUE(container.ok());
  EXPECT_EQ(ModeOf(Path(absl::StrCat("MachineKeys/", *container))), 0600u);

  auto keyed = store.Add(StoreName::kMy, with_key.der, with_key.key_pem);
  ASSERT_TRUE(keyed.ok());
  EXPECT_EQ(ModeOf(Path(absl::StrCat("LocalMachine/My/", *keyed))), 0600u);

  auto bare = store.Add(StoreName::kMy, linked_later.der, std::nullopt);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(ModeOf(Path(absl::StrCat("LocalMachine/My/", *bare))), 0644u);
  ASSERT_TRUE(store.LinkKey(*bare, *container).ok());
  EXPECT_EQ(ModeOf(Path(absl::StrCat("LocalMachine/My/", *bare))), 0600u);
  EXPECT_FALSE(std::filesystem::exists(Path(absl::StrCat("MachineKeys/", *container))));
}

TEST_F(LabHostPlatformTest, LinkingAKeyToADerFileKeepsItsIdAndMakesItAPemWithTheKey) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  WriteText(Path("LocalMachine/My/host1.der"), leaf.der);
  WriteText(Path("MachineKeys/host1.key"), leaf.key_pem);
  ASSERT_TRUE(lab_->Certificates().LinkKey("host1.der", "host1.key").ok());
  const std::string text = ReadText(Path("LocalMachine/My/host1.der"));
  EXPECT_TRUE(absl::StrContains(text, "-----BEGIN CERTIFICATE-----"));
  EXPECT_TRUE(absl::StrContains(text, "PRIVATE KEY-----"));
  std::vector<StoredCertificate> my = List(StoreName::kMy);
  ASSERT_EQ(my.size(), 1u);
  EXPECT_EQ(my[0].id, "host1.der");
  EXPECT_TRUE(my[0].has_private_key);
}

TEST_F(LabHostPlatformTest, AddedCertificatesAreNamedByThumbprint) {
  auto id = lab_->Certificates().Add(StoreName::kRoot, pki_.root().der, std::nullopt);
  ASSERT_TRUE(id.ok());
  auto info = common::crypto::DescribeCertificate(pki_.root().cert.get(), false);
  EXPECT_EQ(*id, absl::StrCat(info->thumbprint, ".pem"));
  EXPECT_TRUE(std::filesystem::exists(Path(absl::StrCat("LocalMachine/Root/", *id))));
}

TEST_F(LabHostPlatformTest, StateSurvivesReopening) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  ASSERT_TRUE(lab_->Certificates().Add(StoreName::kMy, leaf.der, leaf.key_pem).ok());
  MachineSettings settings;
  settings.channel_certificate_serial = ChannelSerial(leaf);
  ASSERT_TRUE(lab_->Binding().Write(settings).ok());
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_EQ(List(StoreName::kMy).size(), 1u);
  EXPECT_TRUE(List(StoreName::kMy)[0].has_private_key);
  EXPECT_EQ(lab_->Binding().Read()->channel_certificate_serial, ChannelSerial(leaf));
}

TEST_F(LabHostPlatformTest, FaultFileWrittenByHandIsObeyedAndCountedDown) {
  WriteText(Path("Faults/HealthService.json"), "{\"restart\": \"fail\", \"times\": 2}");
  EXPECT_EQ(lab_->HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(ReadText(Path("Faults/HealthService.json")), "\"times\": 1"));
  EXPECT_TRUE(absl::StrContains(ReadText(Path("Services/HealthService.json")), "stopped"));
  EXPECT_EQ(*lab_->HealthService().State(), ServiceState::kStopped);
  EXPECT_EQ(lab_->HealthService().Restart().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(std::filesystem::exists(Path("Faults/HealthService.json")));
  EXPECT_TRUE(lab_->HealthService().Restart().ok());
  EXPECT_EQ(*lab_->HealthService().State(), ServiceState::kRunning);
}

TEST_F(LabHostPlatformTest, HangFaultFileUsesHangSeconds) {
  WriteText(Path("Faults/HealthService.json"), "{\"restart\": \"hang\", \"hang_seconds\": 7}");
  EXPECT_EQ(lab_->HealthService().Restart().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(clock_.Now(), Now() + absl::Seconds(7));
}

TEST_F(LabHostPlatformTest, CorruptFaultOrServiceFileIsDataLoss) {
  WriteText(Path("Faults/HealthService.json"), "{\"restart\": \"explode\"}");
  EXPECT_EQ(lab_->HealthService().Restart().code(), absl::StatusCode::kDataLoss);
  WriteText(Path("Services/HealthService.json"), "not json");
  auto state = lab_->HealthService().State();
  EXPECT_EQ(state.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(state.status().message(), "HealthService.json"));
}

TEST_F(LabHostPlatformTest, UnparsableEventLinesAreSkipped) {
  WriteText(Path("EventLog/Operations Manager.log"),
            "garbage line\n"
            "2026-03-01T11:00:00Z\tnot-a-number\tError\tx\n"
            "2026-03-01T11:00:01Z\t20066\tError\n"
            "2026-03-01T11:00:02.5Z\t20053\tInformation\tloaded\r\n"
            "\n"
            "2026-03-01T11:00:03+01:00\t20049\tError\tan offset is accepted\n");
  auto events = lab_->Events().ReadSince(absl::InfinitePast(), 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].id, 20049);  // 10:00:03 UTC
  EXPECT_EQ((*events)[1].id, 20053);
  EXPECT_EQ((*events)[1].message, "loaded");
  EXPECT_EQ((*events)[1].time, Now() - absl::Hours(1) + absl::Milliseconds(2500));
}

}  // namespace
}  // namespace certfleet::agent::platform
