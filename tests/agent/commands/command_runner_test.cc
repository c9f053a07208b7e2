// CommandRunner on every HostPlatform backend (lab, memory), with certificates made by TestPki
// at test time, a real journal in a temporary directory, and a FakeClock, so that waiting for
// the HealthService's verdict never sleeps.

#include "agent/commands/command_runner.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/journal/journal.h"
#include "agent/platform/health_service_emulator.h"
#include "agent/platform/host_platform.h"
#include "agent/platform/lab/lab_host_platform.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/platform/test_hosts.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::commands {
namespace {

using certfleet::testing::Backend;
using certfleet::testing::FakeClock;
using certfleet::testing::TestCert;
using certfleet::testing::TestHost;
using certfleet::testing::TestHostOptions;
using certfleet::testing::TestPki;
using journal::BindingSnapshot;
using journal::Journal;
using platform::HostEvent;
using platform::MachineSettings;
using platform::RestartFault;
using platform::StoredCertificate;
using platform::StoreName;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
namespace crypto = common::crypto;
namespace model = common::model;

constexpr absl::string_view kFqdn = "host1.example.com";

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

model::CertificateInfo InfoOf(const TestCert& cert) {
  auto info = crypto::DescribeCertificate(cert.cert.get(), false);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : model::CertificateInfo{};
}

std::string SerialOf(const TestCert& cert) { return InfoOf(cert).channel_serial; }
std::string ThumbprintOf(const TestCert& cert) { return InfoOf(cert).thumbprint; }

std::vector<int> IdsOf(const std::vector<model::EventRecord>& events) {
  std::vector<int> ids;
  for (const model::EventRecord& event : events) ids.push_back(event.id);
  return ids;
}

// A certificate store that lists one more certificate in My than the host has: what the
// runner sees when an operator deletes the certificate between the runner's check and the
// HealthService's restart.
class PhantomCertificateStore final : public platform::CertificateStore {
 public:
  explicit PhantomCertificateStore(platform::CertificateStore& real) : real_(real) {}
  void SetPhantom(std::optional<StoredCertificate> phantom) { phantom_ = std::move(phantom); }

  absl::StatusOr<std::vector<StoredCertificate>> List(StoreName store) override {
    auto list = real_.List(store);
    if (list.ok() && store == StoreName::kMy && phantom_.has_value()) list->push_back(*phantom_);
    return list;
  }
  absl::StatusOr<std::string> Add(StoreName store, absl::string_view der,
                                  const std::optional<std::string>& key) override {
    return real_.Add(store, der, key);
  }
  absl::Status Remove(StoreName store, absl::string_view id) override {
    return real_.Remove(store, id);
  }
  absl::StatusOr<std::vector<platform::KeyContainer>> ListKeyContainers() override {
    return real_.ListKeyContainers();
  }
  absl::StatusOr<std::string> AddKeyContainer(absl::string_view pem) override {
    return real_.AddKeyContainer(pem);
  }
  absl::Status LinkKey(absl::string_view certificate_id, absl::string_view container_id) override {
    return real_.LinkKey(certificate_id, container_id);
  }
  absl::StatusOr<std::string> LinkedPrivateKeyPem(absl::string_view certificate_id) override {
    return real_.LinkedPrivateKeyPem(certificate_id);
  }

 private:
  platform::CertificateStore& real_;
  std::optional<StoredCertificate> phantom_;
};

// The host as the runner sees it: the test host, with the phantom store in front.
class RunnerHost final : public platform::HostPlatform {
 public:
  explicit RunnerHost(platform::HostPlatform& real) : real_(real), store_(real.Certificates()) {}
  PhantomCertificateStore& store() { return store_; }

  std::string Name() const override { return real_.Name(); }
  std::string Fqdn() const override { return real_.Fqdn(); }
  platform::CertificateStore& Certificates() override { return store_; }
  platform::BindingRegistry& Binding() override { return real_.Binding(); }
  platform::ServiceControl& HealthService() override { return real_.HealthService(); }
  platform::EventLog& Events() override { return real_.Events(); }

 private:
  platform::HostPlatform& real_;
  PhantomCertificateStore store_;
};

// A fresh host with a journal and a runner, the host already bound to `old_` when the test
// calls BindOld().
class RunnerFixture {
 protected:
  RunnerFixture() : clock_(Now()), pki_(TestPki::Create(Now())) {}

  void SetUpHost(const Backend& backend) {
    TestHostOptions options;
    options.fqdn = std::string(kFqdn);
    host_ = backend.make(options, clock_);
    runner_host_ = std::make_unique<RunnerHost>(host_->platform());
    journal_dir_ = certfleet::testing::MakeTempDirectory();
    OpenJournal();
  }

  void TearDownHost() {
    runner_.reset();
    journal_.reset();
    runner_host_.reset();
    host_.reset();
    std::error_code ec;
    std::filesystem::remove_all(journal_dir_, ec);
  }

  // (Re)opens the journal and makes a new runner over it, as an agent start does.
  void OpenJournal() {
    runner_.reset();
    journal_.reset();
    auto journal = Journal::Open(journal_dir_ + "/journal.db");
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = std::move(*journal);
    CommandRunner::Options options;
    options.event_poll_interval = absl::Seconds(1);
    runner_ = std::make_unique<CommandRunner>(
        options, CommandRunner::Deps{*runner_host_, *journal_, clock_});
  }

  platform::HostPlatform& platform() { return host_->platform(); }

  std::string Add(StoreName store, const TestCert& cert, bool with_key) {
    auto id = platform().Certificates().Add(
        store, cert.der, with_key ? std::optional<std::string>(cert.key_pem) : std::nullopt);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  void TrustPki() {
    Add(StoreName::kRoot, pki_.root(), false);
    Add(StoreName::kCa, pki_.issuing(), false);
  }

  TestCert Leaf(const std::function<void(crypto::CertificateSpec&)>& change = nullptr) {
    crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
    if (change) change(spec);
    return pki_.Issue(spec);
  }

  void WriteBinding(std::optional<std::string> serial, std::optional<std::string> hash = {}) {
    MachineSettings settings;
    settings.channel_certificate_serial = std::move(serial);
    settings.channel_certificate_hash = std::move(hash);
    ASSERT_TRUE(platform().Binding().Write(settings).ok());
  }

  // A trusted PKI and `old_` in My with its key, bound and loaded (one 20053 in the log).
  void BindOld() {
    TrustPki();
    old_ = Leaf();
    Add(StoreName::kMy, old_, true);
    WriteBinding(SerialOf(old_), ThumbprintOf(old_));
    ASSERT_TRUE(platform().HealthService().Restart().ok());
    clock_.Advance(absl::Seconds(10));
  }

  std::optional<std::string> RegistrySerial() {
    auto settings = platform().Binding().Read();
    EXPECT_TRUE(settings.ok()) << settings.status();
    return settings.ok() ? settings->channel_certificate_serial : std::nullopt;
  }

  std::optional<std::string> RegistryHash() {
    auto settings = platform().Binding().Read();
    EXPECT_TRUE(settings.ok()) << settings.status();
    return settings.ok() ? settings->channel_certificate_hash : std::nullopt;
  }

  std::vector<HostEvent> AllEvents() {
    auto events = platform().Events().ReadSince(absl::InfinitePast(), 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<HostEvent>{};
  }

  int CountEvents(int id) {
    int n = 0;
    for (const HostEvent& event : AllEvents()) n += event.id == id ? 1 : 0;
    return n;
  }

  // Entries of `store` holding `cert` (by thumbprint).
  std::vector<StoredCertificate> Entries(StoreName store, const TestCert& cert) {
    std::vector<StoredCertificate> out;
    auto entries = platform().Certificates().List(store);
    EXPECT_TRUE(entries.ok()) << entries.status();
    if (!entries.ok()) return out;
    for (StoredCertificate& entry : *entries) {
      if (entry.error.empty() && entry.der == cert.der) out.push_back(std::move(entry));
    }
    return out;
  }
  bool InStore(StoreName store, const TestCert& cert) { return !Entries(store, cert).empty(); }
  bool InMyWithKey(const TestCert& cert) {
    for (const StoredCertificate& entry : Entries(StoreName::kMy, cert)) {
      if (entry.has_private_key) return true;
    }
    return false;
  }
  size_t StoreSize(StoreName store) {
    auto entries = platform().Certificates().List(store);
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.ok() ? entries->size() : 0;
  }
  size_t KeyContainerCount() {
    auto containers = platform().Certificates().ListKeyContainers();
    EXPECT_TRUE(containers.ok()) << containers.status();
    return containers.ok() ? containers->size() : 0;
  }

  static model::Command MakeCommand(absl::string_view id, model::CommandPayload payload) {
    model::Command command;
    command.id = std::string(id);
    command.agent_id = "agent-1";
    command.deadline = Now() + absl::Hours(24);
    command.payload = std::move(payload);
    return command;
  }

  model::CommandOutcome Execute(const model::Command& command) {
    return runner_->Execute(command, [this] { ++started_; });
  }

  model::CommandOutcome Rebind(absl::string_view id, const TestCert& cert) {
    model::RebindPayload payload;
    payload.thumbprint = ThumbprintOf(cert);
    return Execute(MakeCommand(id, payload));
  }

  model::CommandOutcome Import(absl::string_view id, std::string data, std::string password = "") {
    model::ImportPayload payload;
    payload.data = std::move(data);
    payload.password = std::move(password);
    return Execute(MakeCommand(id, payload));
  }

  // Every byte the journal holds on disk (database, WAL and shared-memory files).
  std::string JournalBytes() {
    std::string all;
    for (const auto& file : std::filesystem::directory_iterator(journal_dir_)) {
      std::ifstream in(file.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  // Leaves the journal as an agent that crashed in rebind `id` of `target` would have: started,
  // with the snapshot of the current registry, and at `step` (nullopt: before the snapshot).
  // `kind` kInstall: an install with bind, at the same steps.
  void CrashedRebind(absl::string_view id, const TestCert& target,
                     std::optional<journal::RebindStep> step,
                     std::optional<absl::Time> restart_time = std::nullopt,
                     model::CommandKind kind = model::CommandKind::kRebind) {
    ASSERT_TRUE(journal_->Receive(id, kind, Now() + absl::Hours(1)).ok());
    ASSERT_TRUE(journal_->MarkRunning(id).ok());
    if (!step.has_value()) return;
    auto settings = platform().Binding().Read();
    ASSERT_TRUE(settings.ok());
    ASSERT_TRUE(journal_
                    ->RecordSnapshot(id,
                                     BindingSnapshot{settings->channel_certificate_serial,
                                                     settings->channel_certificate_hash},
                                     ThumbprintOf(target), SerialOf(target))
                    .ok());
    if (*step == journal::RebindStep::kSnapshotTaken) return;
    ASSERT_TRUE(journal_->RecordValueWritten(id).ok());
    if (*step == journal::RebindStep::kValueWritten) return;
    ASSERT_TRUE(journal_->RecordRestarted(id, restart_time.value_or(clock_.Now())).ok());
  }

  // The "scom" profile with a second DNS name, an AD CS template and SHA-384.
  static model::CertificateProfile Profile() {
    model::CertificateProfile profile = model::ScomProfile();
    profile.extra_dns_names = {"scom-gw.example.com"};
    profile.template_name = "SCOMCert";
    profile.signature_hash = "SHA384";
    return profile;
  }

  model::CommandOutcome Renew(absl::string_view id,
                              const model::CertificateProfile& profile = Profile()) {
    return Execute(MakeCommand(id, model::RenewPayload{profile}));
  }

  // The certificate `pki` issues for the request of a renew: a SCOM leaf for `fqdn` with the
  // request's public key. The TestCert holds no private key.
  static TestCert IssueFor(const model::CommandOutcome& renewed, const TestPki& pki,
                           absl::string_view fqdn = kFqdn) {
    auto csr = crypto::CsrFromPem(renewed.result.csr_pem);
    EXPECT_TRUE(csr.ok()) << csr.status();
    if (!csr.ok()) return {};
    crypto::EvpPkeyPtr public_key = crypto::CsrPublicKey(csr->get());
    return pki.Issue(pki.ScomLeafSpec(fqdn), public_key.get());
  }

  // The leaf, the issuing CA and the root of `pki`, as an issuer returns them.
  static std::string ChainOf(const TestCert& leaf, const TestPki& pki) {
    return absl::StrCat(leaf.cert_pem, pki.ChainPem());
  }

  model::CommandOutcome Install(absl::string_view id, std::string chain_pem, bool bind) {
    model::InstallPayload payload;
    payload.chain_pem = std::move(chain_pem);
    payload.bind = bind;
    return Execute(MakeCommand(id, payload));
  }

  // The private key linked to `cert` in My, PEM ("" when none).
  std::string LinkedKeyPem(const TestCert& cert) {
    for (const StoredCertificate& entry : Entries(StoreName::kMy, cert)) {
      if (!entry.has_private_key) continue;
      auto pem = platform().Certificates().LinkedPrivateKeyPem(entry.id);
      EXPECT_TRUE(pem.ok()) << pem.status();
      if (pem.ok()) return *pem;
    }
    return "";
  }

  model::CommandOutcome JournaledOutcome(absl::string_view id) {
    auto entry = journal_->Find(id);
    EXPECT_TRUE(entry.ok() && entry->has_value());
    if (!entry.ok() || !entry->has_value() || !(*entry)->outcome.has_value()) {
      ADD_FAILURE() << "no journaled outcome for " << id;
      return {};
    }
    return *(*entry)->outcome;
  }

  FakeClock clock_;
  TestPki pki_;
  std::unique_ptr<TestHost> host_;
  std::unique_ptr<RunnerHost> runner_host_;
  std::string journal_dir_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<CommandRunner> runner_;
  TestCert old_;
  int started_ = 0;
};

class CommandRunnerTest : public RunnerFixture, public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SetUpHost(GetParam()); }
  void TearDown() override { TearDownHost(); }
};

// --- scan ---

TEST_P(CommandRunnerTest, ScanSucceeds) {
  model::CommandOutcome outcome = Execute(MakeCommand("s1", model::ScanPayload{}));
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded);
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_EQ(started_, 1);
}

// --- import ---

TEST_P(CommandRunnerTest, ImportOfAPfxPutsTheCertificateWithItsKeyIntoMyUnderEveryCipher) {
  TrustPki();
  int n = 0;
  for (crypto::Pkcs12Cipher cipher :
       {crypto::Pkcs12Cipher::kLegacyRc2, crypto::Pkcs12Cipher::kTripleDes,
        crypto::Pkcs12Cipher::kAes256}) {
    SCOPED_TRACE(n);
    TestCert leaf = Leaf();
    auto pfx = crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(), {}, "pfx-Pa55", cipher);
    ASSERT_TRUE(pfx.ok()) << pfx.status();

    model::CommandOutcome outcome = Import(absl::StrCat("i", n++), *pfx, "pfx-Pa55");

    EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
    EXPECT_EQ(outcome.result.thumbprint, ThumbprintOf(leaf));
    EXPECT_THAT(outcome.result.problems, IsEmpty());
    EXPECT_TRUE(InMyWithKey(leaf));
  }
}

TEST_P(CommandRunnerTest, ImportPutsIntermediatesIntoCaButNeverTrustsARootImplicitly) {
  TestCert leaf = Leaf();
  auto pfx = crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(),
                                 {pki_.issuing().cert.get(), pki_.root().cert.get()}, "pw-1234",
                                 crypto::Pkcs12Cipher::kAes256);
  ASSERT_TRUE(pfx.ok()) << pfx.status();

  model::CommandOutcome outcome = Import("i1", *pfx, "pw-1234");

  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_TRUE(InStore(StoreName::kCa, pki_.issuing()));
  EXPECT_EQ(StoreSize(StoreName::kRoot), 0u);
  EXPECT_THAT(outcome.result.problems, Contains("CHAIN_UNTRUSTED"));
  EXPECT_THAT(outcome.result.detail, HasSubstr("not trusted"));
}

TEST_P(CommandRunnerTest, ImportWithAWrongPfxPasswordIsInvalidArgumentAndNeverEchoesIt) {
  TestCert leaf = Leaf();
  auto pfx = crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(), {}, "right-Secret-9",
                                 crypto::Pkcs12Cipher::kTripleDes);
  ASSERT_TRUE(pfx.ok());

  model::CommandOutcome outcome = Import("i1", *pfx, "wrong-Secret-7");

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcome.error, HasSubstr("password"));
  EXPECT_THAT(outcome.error, Not(HasSubstr("wrong-Secret-7")));
  EXPECT_THAT(outcome.error, Not(HasSubstr("right-Secret-9")));
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
}

TEST_P(CommandRunnerTest, ImportOfAPasswordProtectedPfxWithoutPasswordIsInvalidArgument) {
  TestCert leaf = Leaf();
  auto pfx = crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(), {}, "needed-1",
                                 crypto::Pkcs12Cipher::kTripleDes);
  ASSERT_TRUE(pfx.ok());
  EXPECT_EQ(Import("i1", *pfx).code, absl::StatusCode::kInvalidArgument);
}

TEST_P(CommandRunnerTest, ImportOfAPfxForAnotherHostIsRefusedAndImportsNothing) {
  TestCert other = pki_.Issue(pki_.ScomLeafSpec("other.example.com"));
  auto pfx = crypto::BuildPkcs12(other.key.get(), other.cert.get(), {pki_.issuing().cert.get()},
                                 "pw-1234", crypto::Pkcs12Cipher::kAes256);
  ASSERT_TRUE(pfx.ok());

  model::CommandOutcome outcome = Import("i1", *pfx, "pw-1234");

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.error,
              HasSubstr("certificate is for other.example.com, this host is host1.example.com"));
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
  EXPECT_EQ(StoreSize(StoreName::kCa), 0u);
}

TEST_P(CommandRunnerTest, ImportOfAPemWithCertificateAndKey) {
  TrustPki();
  TestCert leaf = Leaf();
  model::CommandOutcome outcome =
      Import("i1", absl::StrCat(pki_.issuing().cert_pem, leaf.key_pem, leaf.cert_pem));
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_EQ(outcome.result.thumbprint, ThumbprintOf(leaf));
}

TEST_P(CommandRunnerTest, ImportOfABareCertificatePairsItWithItsMachineKeysContainer) {
  TrustPki();
  TestCert leaf = Leaf();
  TestCert unrelated = Leaf();
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(unrelated.key_pem).ok());
  auto container = platform().Certificates().AddKeyContainer(leaf.key_pem);
  ASSERT_TRUE(container.ok());

  model::CommandOutcome outcome = Import("i1", leaf.der);

  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_EQ(KeyContainerCount(), 1u) << "the matching container is now linked";
  EXPECT_THAT(outcome.result.detail, HasSubstr(*container));
  EXPECT_THAT(outcome.result.problems, IsEmpty());
}

TEST_P(CommandRunnerTest, ImportOfABareCertificateWithoutItsKeyOnTheHostIsNotFound) {
  TestCert leaf = Leaf();
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(Leaf().key_pem).ok());
  model::CommandOutcome outcome = Import("i1", leaf.cert_pem);
  EXPECT_EQ(outcome.code, absl::StatusCode::kNotFound);
  EXPECT_THAT(outcome.error, HasSubstr(ThumbprintOf(leaf)));
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
}

TEST_P(CommandRunnerTest, ImportingTheSameCertificateTwiceIsIdempotent) {
  TestCert leaf = Leaf();
  const std::string pem = absl::StrCat(leaf.cert_pem, leaf.key_pem);
  EXPECT_EQ(Import("i1", pem).state, model::CommandState::kSucceeded);
  EXPECT_EQ(Import("i2", pem).state, model::CommandState::kSucceeded);
  EXPECT_EQ(Entries(StoreName::kMy, leaf).size(), 1u);
  // And the bare certificate once its key is linked.
  EXPECT_EQ(Import("i3", leaf.der).state, model::CommandState::kSucceeded);
  EXPECT_EQ(Entries(StoreName::kMy, leaf).size(), 1u);
}

TEST_P(CommandRunnerTest, ImportOfSomethingThatIsNotACertificateIsInvalidArgument) {
  EXPECT_EQ(Import("i1", "hello").code, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Import("i2", pki_.ChainPem()).code, absl::StatusCode::kInvalidArgument)
      << "only CA certificates";
  TestCert leaf = Leaf();
  EXPECT_EQ(Import("i3", absl::StrCat(leaf.cert_pem, Leaf().key_pem)).code,
            absl::StatusCode::kInvalidArgument)
      << "a key matching no certificate";
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
}

TEST_P(CommandRunnerTest, TheJournalNeverHoldsThePasswordOrTheImportedData) {
  TestCert leaf = Leaf();
  auto pfx = crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(), {}, "Journal-Secret-42",
                                 crypto::Pkcs12Cipher::kTripleDes);
  ASSERT_TRUE(pfx.ok());
  ASSERT_EQ(Import("i1", *pfx, "Journal-Secret-42").state, model::CommandState::kSucceeded);
  ASSERT_EQ(Import("i2", *pfx, "Wrong-Secret-43").state, model::CommandState::kFailed);

  const std::string bytes = JournalBytes();
  ASSERT_FALSE(bytes.empty());
  EXPECT_FALSE(absl::StrContains(bytes, "Journal-Secret-42"));
  EXPECT_FALSE(absl::StrContains(bytes, "Wrong-Secret-43"));
  EXPECT_FALSE(absl::StrContains(bytes, pfx->substr(pfx->size() / 2, 64)));
  EXPECT_FALSE(absl::StrContains(bytes, "PRIVATE KEY"));
}

// --- repair ---

TEST_P(CommandRunnerTest, RepairLinksTheKeyContainerWhosePublicKeyMatches) {
  TrustPki();
  TestCert leaf = Leaf();
  Add(StoreName::kMy, leaf, false);
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(Leaf().key_pem).ok());
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(leaf.key_pem).ok());

  model::CommandOutcome outcome =
      Execute(MakeCommand("r1", model::RepairPayload{ThumbprintOf(leaf)}));

  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_EQ(KeyContainerCount(), 1u);
}

TEST_P(CommandRunnerTest, RepairWithoutAMatchingKeyContainerIsNotFound) {
  TestCert leaf = Leaf();
  Add(StoreName::kMy, leaf, false);
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(Leaf().key_pem).ok());
  model::CommandOutcome outcome =
      Execute(MakeCommand("r1", model::RepairPayload{ThumbprintOf(leaf)}));
  EXPECT_EQ(outcome.code, absl::StatusCode::kNotFound);
  EXPECT_EQ(outcome.error,
            absl::StrCat("no key container on this host matches certificate ", ThumbprintOf(leaf)));
  EXPECT_FALSE(InMyWithKey(leaf));
}

TEST_P(CommandRunnerTest, RepairOfACertificateNotInMyIsNotFound) {
  TestCert leaf = Leaf();
  ASSERT_TRUE(platform().Certificates().AddKeyContainer(leaf.key_pem).ok());
  model::CommandOutcome outcome =
      Execute(MakeCommand("r1", model::RepairPayload{ThumbprintOf(leaf)}));
  EXPECT_EQ(outcome.code, absl::StatusCode::kNotFound);
  EXPECT_THAT(outcome.error, HasSubstr("not in the Personal (My) store"));
}

TEST_P(CommandRunnerTest, RepairOfALinkedCertificateSucceedsAndSaysSo) {
  TestCert leaf = Leaf();
  Add(StoreName::kMy, leaf, true);
  // Thumbprints are accepted as operators paste them.
  std::string pasted = absl::AsciiStrToLower(ThumbprintOf(leaf));
  pasted.insert(2, " ");
  model::CommandOutcome outcome = Execute(MakeCommand("r1", model::RepairPayload{pasted}));
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_THAT(outcome.result.detail, HasSubstr("already"));
}

TEST_P(CommandRunnerTest, RepairOfAMalformedThumbprintIsInvalidArgument) {
  EXPECT_EQ(Execute(MakeCommand("r1", model::RepairPayload{"xyz"})).code,
            absl::StatusCode::kInvalidArgument);
}

// --- trust ---

TEST_P(CommandRunnerTest, TrustPutsARootIntoRootAndAnIntermediateIntoCa) {
  model::CommandOutcome root =
      Execute(MakeCommand("t1", model::TrustPayload{pki_.root().cert_pem}));
  model::CommandOutcome issuing =
      Execute(MakeCommand("t2", model::TrustPayload{pki_.issuing().der}));
  EXPECT_EQ(root.state, model::CommandState::kSucceeded) << root.error;
  EXPECT_EQ(issuing.state, model::CommandState::kSucceeded) << issuing.error;
  EXPECT_EQ(root.result.thumbprint, ThumbprintOf(pki_.root()));
  EXPECT_TRUE(InStore(StoreName::kRoot, pki_.root()));
  EXPECT_FALSE(InStore(StoreName::kCa, pki_.root()));
  EXPECT_TRUE(InStore(StoreName::kCa, pki_.issuing()));
  EXPECT_FALSE(InStore(StoreName::kRoot, pki_.issuing()));
}

TEST_P(CommandRunnerTest, TrustIsIdempotentAndTakesAWholeChain) {
  EXPECT_EQ(Execute(MakeCommand("t1", model::TrustPayload{pki_.ChainPem()})).state,
            model::CommandState::kSucceeded);
  EXPECT_EQ(Execute(MakeCommand("t2", model::TrustPayload{pki_.ChainPem()})).state,
            model::CommandState::kSucceeded);
  EXPECT_EQ(StoreSize(StoreName::kRoot), 1u);
  EXPECT_EQ(StoreSize(StoreName::kCa), 1u);
}

TEST_P(CommandRunnerTest, TrustOfACertificateThatIsNotACaIsInvalidArgument) {
  TestCert leaf = Leaf();
  model::CommandOutcome outcome = Execute(
      MakeCommand("t1", model::TrustPayload{absl::StrCat(pki_.root().cert_pem, leaf.cert_pem)}));
  EXPECT_EQ(outcome.code, absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcome.error, HasSubstr("not a CA"));
  EXPECT_EQ(StoreSize(StoreName::kRoot), 0u) << "nothing is trusted when any of it is refused";
  EXPECT_EQ(Execute(MakeCommand("t2", model::TrustPayload{"junk"})).code,
            absl::StatusCode::kInvalidArgument);
}

// --- remove ---

TEST_P(CommandRunnerTest, RemoveTakesACertificateOutOfMy) {
  BindOld();
  TestCert spare = Leaf();
  Add(StoreName::kMy, spare, true);
  model::CommandOutcome outcome =
      Execute(MakeCommand("x1", model::RemovePayload{ThumbprintOf(spare)}));
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_FALSE(InStore(StoreName::kMy, spare));
  EXPECT_TRUE(InStore(StoreName::kMy, old_));
}

TEST_P(CommandRunnerTest, RemoveRefusesTheBoundCertificate) {
  BindOld();
  model::CommandOutcome outcome =
      Execute(MakeCommand("x1", model::RemovePayload{ThumbprintOf(old_)}));
  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.error, HasSubstr("bound"));
  EXPECT_TRUE(InMyWithKey(old_));
}

TEST_P(CommandRunnerTest, RemoveRefusesTheBoundCertificateWhenTheValueLacksTheSignByte) {
  TestCert leaf = Leaf([](crypto::CertificateSpec& spec) {
    spec.serial = std::string("\x00\x9A\x01\x02\x03\x04\x05\x06", 8);
  });
  Add(StoreName::kMy, leaf, true);
  ASSERT_EQ(SerialOf(leaf), "0605040302019A00");
  WriteBinding("0605040302019A");
  EXPECT_EQ(Execute(MakeCommand("x1", model::RemovePayload{ThumbprintOf(leaf)})).code,
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(InStore(StoreName::kMy, leaf));
}

TEST_P(CommandRunnerTest, RemoveOfAnAbsentCertificateIsNotFound) {
  EXPECT_EQ(Execute(MakeCommand("x1", model::RemovePayload{ThumbprintOf(Leaf())})).code,
            absl::StatusCode::kNotFound);
}

// --- rebind ---

TEST_P(CommandRunnerTest, RebindBindsTheCertificateAndVerifiesIt) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_EQ(RegistrySerial(), SerialOf(target));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(target));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(target));
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.events[0].message, HasSubstr(ThumbprintOf(target)));
  EXPECT_EQ(started_, 1);
}

TEST_P(CommandRunnerTest, RebindOfTheBoundCertificateRunsTheVerifiedRestartAgain) {
  BindOld();
  model::CommandOutcome outcome = Rebind("b1", old_);
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_EQ(CountEvents(platform::kEventCertificateLoaded), 2);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, RebindOfACertificateNotInMyIsNotFoundAndTouchesNothing) {
  BindOld();
  const size_t events = AllEvents().size();
  model::CommandOutcome outcome = Rebind("b1", Leaf());
  EXPECT_EQ(outcome.code, absl::StatusCode::kNotFound);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(AllEvents().size(), events);
}

TEST_P(CommandRunnerTest, RebindWithoutAVerdictTimesOutAndRollsBack) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kNoEvent;
  fault.times = 1;
  host_->SetRestartFault(fault);
  const absl::Time start = clock_.Now();

  model::RebindPayload payload;
  payload.thumbprint = ThumbprintOf(target);
  payload.verify_timeout = absl::Seconds(30);
  model::CommandOutcome outcome = Execute(MakeCommand("b1", payload));

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(outcome.error, HasSubstr("no verdict"));
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_GE(clock_.Now() - start, absl::Seconds(30)) << "waited out the timeout on the clock";
  EXPECT_LT(clock_.Now() - start, absl::Seconds(40));
}

TEST_P(CommandRunnerTest, RebindWhoseRestartFailsRollsBack) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kFail;
  fault.times = 1;
  host_->SetRestartFault(fault);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kUnavailable);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.events[0].message, HasSubstr(ThumbprintOf(old_)));
}

TEST_P(CommandRunnerTest, RebindWhoseRestartHangsIsDeadlineExceededAndRollsBack) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kHang;
  fault.times = 1;
  host_->SetRestartFault(fault);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, RebindWhoseRollbackRestartFailsTooStillRestoresTheRegistry) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  RestartFault fault;
  fault.kind = RestartFault::Kind::kFail;
  host_->SetRestartFault(fault);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.code, absl::StatusCode::kUnavailable);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_THAT(outcome.result.detail, HasSubstr("failed too"));
}

TEST_P(CommandRunnerTest, RebindOfAHostThatWasNotBoundRestoresNoBindingOnFailure) {
  TrustPki();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, false);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), std::nullopt) << "as the rebind found it";
  EXPECT_EQ(RegistryHash(), std::nullopt);
  EXPECT_EQ(outcome.result.previous_channel_serial, "");
  EXPECT_THAT(IdsOf(outcome.result.events),
              ElementsAre(platform::kEventNoPrivateKey, platform::kEventCertificateNotFound));
}

TEST_P(CommandRunnerTest, ADuplicateRebindIsAnsweredFromTheJournalWithoutRestarting) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  model::CommandOutcome first = Rebind("b1", target);
  ASSERT_EQ(first.state, model::CommandState::kSucceeded) << first.error;
  const int loaded = CountEvents(platform::kEventCertificateLoaded);

  model::CommandOutcome second = Rebind("b1", target);
  // And after the agent restarted, from the journal on disk.
  OpenJournal();
  model::CommandOutcome third = Rebind("b1", target);

  for (const model::CommandOutcome& again : {second, third}) {
    EXPECT_EQ(again.state, first.state);
    EXPECT_EQ(again.result.channel_serial, first.result.channel_serial);
    EXPECT_EQ(IdsOf(again.result.events), IdsOf(first.result.events));
  }
  EXPECT_EQ(CountEvents(platform::kEventCertificateLoaded), loaded) << "no further restart";
  EXPECT_EQ(started_, 1) << "on_started runs once";
}

TEST_P(CommandRunnerTest, ADuplicateRemoveIsAnsweredWithTheFirstOutcome) {
  TestCert spare = Leaf();
  Add(StoreName::kMy, spare, true);
  model::Command remove = MakeCommand("x1", model::RemovePayload{ThumbprintOf(spare)});
  ASSERT_EQ(Execute(remove).state, model::CommandState::kSucceeded);
  // Run again, a remove of an absent certificate would be NotFound.
  EXPECT_EQ(Execute(remove).state, model::CommandState::kSucceeded);
}

TEST_P(CommandRunnerTest, ACommandPastItsDeadlineExpiresWithoutTouchingTheHost) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  const size_t events = AllEvents().size();
  model::RebindPayload payload;
  payload.thumbprint = ThumbprintOf(target);
  model::Command command = MakeCommand("b1", payload);
  command.deadline = clock_.Now() - absl::Seconds(1);

  model::CommandOutcome outcome = Execute(command);

  EXPECT_EQ(outcome.state, model::CommandState::kExpired);
  EXPECT_EQ(outcome.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(AllEvents().size(), events);
  EXPECT_EQ(started_, 0);
  EXPECT_EQ(JournaledOutcome("b1").state, model::CommandState::kExpired);
}

TEST_P(CommandRunnerTest, ACommandCancelledBeforeItStartsIsAnsweredCancelled) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  runner_->Cancel("b1");

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.state, model::CommandState::kCancelled);
  EXPECT_EQ(outcome.code, absl::StatusCode::kCancelled);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(started_, 0);
  EXPECT_EQ(JournaledOutcome("b1").state, model::CommandState::kCancelled);
}

TEST_P(CommandRunnerTest, CancellingAFinishedCommandChangesNothing) {
  ASSERT_EQ(Execute(MakeCommand("s1", model::ScanPayload{})).state,
            model::CommandState::kSucceeded);
  runner_->Cancel("s1");
  EXPECT_EQ(Execute(MakeCommand("s1", model::ScanPayload{})).state,
            model::CommandState::kSucceeded);
}

TEST_P(CommandRunnerTest, OutcomesStayUnreportedUntilTheControllerAcknowledges) {
  Execute(MakeCommand("s1", model::ScanPayload{}));
  Execute(MakeCommand("x1", model::RemovePayload{ThumbprintOf(Leaf())}));
  auto unreported = runner_->Unreported();
  ASSERT_TRUE(unreported.ok()) << unreported.status();
  ASSERT_EQ(unreported->size(), 2u);
  EXPECT_EQ((*unreported)[0].first, "s1");
  EXPECT_EQ((*unreported)[1].first, "x1");
  EXPECT_EQ((*unreported)[1].second.code, absl::StatusCode::kNotFound);

  ASSERT_TRUE(runner_->MarkReported("s1").ok());
  OpenJournal();
  unreported = runner_->Unreported();
  ASSERT_TRUE(unreported.ok());
  ASSERT_EQ(unreported->size(), 1u);
  EXPECT_EQ((*unreported)[0].first, "x1");
  EXPECT_EQ(runner_->MarkReported("never").code(), absl::StatusCode::kNotFound);
}

// --- recovery after a crash ---

TEST_P(CommandRunnerTest, RecoverAfterACrashBeforeTheSnapshotChangesNothing) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, std::nullopt);

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, RecoverAfterACrashAtSnapshotTakenRestoresTheSnapshot) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kSnapshotTaken);
  // The crash came after the value was written but before that was journaled.
  WriteBinding(SerialOf(target), ThumbprintOf(target));

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_EQ(outcome.error, "the agent stopped during the rebind; restored the previous binding");
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(old_));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
}

TEST_P(CommandRunnerTest, RecoverAfterACrashAtValueWrittenRestoresTheSnapshot) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kValueWritten);
  WriteBinding(SerialOf(target), ThumbprintOf(target));

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(old_));
}

TEST_P(CommandRunnerTest, RecoverAfterACrashAfterAVerifiedRestartKeepsTheNewBinding) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kValueWritten);
  WriteBinding(SerialOf(target), ThumbprintOf(target));
  const absl::Time restart = clock_.Now();
  ASSERT_TRUE(platform().HealthService().Restart().ok());
  ASSERT_TRUE(journal_->RecordRestarted("b1", restart).ok());
  clock_.Advance(absl::Minutes(5));
  const int loaded = CountEvents(platform::kEventCertificateLoaded);

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(target));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(target));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_EQ(CountEvents(platform::kEventCertificateLoaded), loaded) << "no further restart";
}

TEST_P(CommandRunnerTest, RecoverAfterACrashAfterARejectedRestartRestoresTheSnapshot) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, false);  // 20068 when loaded
  CrashedRebind("b1", target, journal::RebindStep::kValueWritten);
  WriteBinding(SerialOf(target), ThumbprintOf(target));
  const absl::Time restart = clock_.Now();
  ASSERT_TRUE(platform().HealthService().Restart().ok());
  ASSERT_TRUE(journal_->RecordRestarted("b1", restart).ok());

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events),
              ElementsAre(platform::kEventNoPrivateKey, platform::kEventCertificateLoaded));
}

TEST_P(CommandRunnerTest, RecoverAfterARestartWithoutAVerdictRestoresTheSnapshot) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kValueWritten);
  WriteBinding(SerialOf(target), ThumbprintOf(target));
  RestartFault fault;
  fault.kind = RestartFault::Kind::kNoEvent;
  fault.times = 1;
  host_->SetRestartFault(fault);
  const absl::Time restart = clock_.Now();
  ASSERT_TRUE(platform().HealthService().Restart().ok());
  ASSERT_TRUE(journal_->RecordRestarted("b1", restart).ok());

  ASSERT_TRUE(runner_->Recover().ok());

  EXPECT_EQ(JournaledOutcome("b1").code, absl::StatusCode::kAborted);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, RecoverNeverLeavesTheHostUnboundAtAnyStep) {
  for (journal::RebindStep step :
       {journal::RebindStep::kSnapshotTaken, journal::RebindStep::kValueWritten,
        journal::RebindStep::kRestarted}) {
    SCOPED_TRACE(journal::RebindStepName(step));
    TearDownHost();
    SetUpHost(GetParam());
    BindOld();
    TestCert target = Leaf();
    Add(StoreName::kMy, target, true);
    CrashedRebind("b1", target, step);
    if (step != journal::RebindStep::kSnapshotTaken) {
      WriteBinding(SerialOf(target), ThumbprintOf(target));
    }

    ASSERT_TRUE(runner_->Recover().ok());

    const std::optional<std::string> bound = RegistrySerial();
    ASSERT_TRUE(bound.has_value());
    EXPECT_TRUE(*bound == SerialOf(old_) || *bound == SerialOf(target)) << *bound;
    auto entry = journal_->Find("b1");
    ASSERT_TRUE(entry.ok() && entry->has_value());
    EXPECT_EQ((*entry)->phase, journal::Phase::kDone);
  }
}

TEST_P(CommandRunnerTest, RecoverLeavesACommandThatNeverStartedForItsRedelivery) {
  ASSERT_TRUE(journal_->Receive("s1", model::CommandKind::kScan, Now() + absl::Hours(1)).ok());
  ASSERT_TRUE(runner_->Recover().ok());
  auto entry = journal_->Find("s1");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->phase, journal::Phase::kReceived);
  EXPECT_EQ(Execute(MakeCommand("s1", model::ScanPayload{})).state,
            model::CommandState::kSucceeded);
  EXPECT_EQ(started_, 1);
}

TEST_P(CommandRunnerTest, RecoverChecksAnInterruptedImportOnTheHost) {
  TestCert imported = Leaf();
  TestCert missing = Leaf();
  Add(StoreName::kMy, imported, true);
  for (const auto& [id, cert] : {std::pair<std::string, const TestCert*>{"i1", &imported},
                                 std::pair<std::string, const TestCert*>{"i2", &missing}}) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kImport, Now()).ok());
    ASSERT_TRUE(journal_->MarkRunning(id).ok());
    ASSERT_TRUE(journal_->SetTarget(id, ThumbprintOf(*cert)).ok());
  }

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome done = JournaledOutcome("i1");
  EXPECT_EQ(done.state, model::CommandState::kSucceeded) << done.error;
  EXPECT_EQ(done.result.thumbprint, ThumbprintOf(imported));
  model::CommandOutcome interrupted = JournaledOutcome("i2");
  EXPECT_EQ(interrupted.code, absl::StatusCode::kAborted);
  EXPECT_THAT(interrupted.error, HasSubstr("interrupted"));
}

TEST_P(CommandRunnerTest, RecoverChecksAnInterruptedRemoveOnTheHost) {
  TestCert gone = Leaf();
  ASSERT_TRUE(journal_->Receive("x1", model::CommandKind::kRemove, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("x1").ok());
  ASSERT_TRUE(journal_->SetTarget("x1", ThumbprintOf(gone)).ok());
  ASSERT_TRUE(runner_->Recover().ok());
  EXPECT_EQ(JournaledOutcome("x1").state, model::CommandState::kSucceeded);
}

TEST_P(CommandRunnerTest, ExecuteOfACommandACrashLeftRunningSettlesItFirst) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kValueWritten);
  WriteBinding(SerialOf(target), ThumbprintOf(target));
  OpenJournal();  // a new agent that skipped Recover

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(started_, 0);
}

// --- renew ---

TEST_P(CommandRunnerTest, RenewGeneratesAKeyOnTheHostAndReturnsARequestWithTheProfilesFields) {
  model::CommandOutcome outcome = Renew("w1");

  ASSERT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_EQ(started_, 1);
  auto csr = crypto::CsrFromPem(outcome.result.csr_pem);
  ASSERT_TRUE(csr.ok()) << csr.status();
  auto info = crypto::InspectCsr(csr->get());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject_cn, kFqdn);
  EXPECT_THAT(info->dns_names, ElementsAre(kFqdn, "scom-gw.example.com"));
  EXPECT_EQ(info->key_algorithm, "RSA");
  EXPECT_EQ(info->key_bits, 2048);
  EXPECT_EQ(info->signature_digest, "SHA384");
  EXPECT_EQ(info->key_usage, model::kDigitalSignature | model::kKeyEncipherment);
  EXPECT_TRUE(info->key_usage_critical);
  EXPECT_THAT(info->extended_key_usage, ElementsAre(model::kServerAuthOid, model::kClientAuthOid));
  EXPECT_EQ(info->template_name, "SCOMCert");

  // The key is in a new key container of the host, and only there.
  auto containers = platform().Certificates().ListKeyContainers();
  ASSERT_TRUE(containers.ok()) << containers.status();
  ASSERT_EQ(containers->size(), 1u);
  crypto::EvpPkeyPtr requested = crypto::CsrPublicKey(csr->get());
  EXPECT_EQ((*containers)[0].public_key_der, crypto::PublicKeyDer(requested.get()));
  EXPECT_THAT(outcome.result.detail, HasSubstr((*containers)[0].id));
  EXPECT_THAT(outcome.result.detail, HasSubstr("RSA-2048"));
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
  EXPECT_THAT(outcome.result.csr_pem, Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(outcome.result.detail, Not(HasSubstr("PRIVATE KEY")));
  if (auto* lab = dynamic_cast<platform::LabHostPlatform*>(&platform())) {
    struct stat st {};
    const std::string path = absl::StrCat(lab->root(), "/MachineKeys/", (*containers)[0].id);
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

TEST_P(CommandRunnerTest, RenewDropsARepeatedFqdnAmongTheExtraNames) {
  model::CertificateProfile profile = model::ScomProfile();
  profile.extra_dns_names = {"HOST1.example.com", "alias.example.com", "alias.example.com"};
  model::CommandOutcome outcome = Renew("w1", profile);
  ASSERT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  auto csr = crypto::CsrFromPem(outcome.result.csr_pem);
  ASSERT_TRUE(csr.ok());
  auto info = crypto::InspectCsr(csr->get());
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->dns_names, ElementsAre(kFqdn, "alias.example.com"));
  EXPECT_EQ(info->signature_digest, "SHA256");
  EXPECT_EQ(info->template_name, "");
  EXPECT_THAT(info->extension_oids, Not(Contains(crypto::kTemplateNameExtensionOid)));
}

TEST_P(CommandRunnerTest, RenewWithAnInvalidProfileIsInvalidArgumentAndMakesNoKey) {
  model::CertificateProfile weak = Profile();
  weak.key_bits = 1024;
  model::CertificateProfile sha1 = Profile();
  sha1.signature_hash = "SHA1";
  model::CertificateProfile no_client_auth = Profile();
  no_client_auth.extended_key_usage = {std::string(model::kServerAuthOid)};
  int n = 0;
  for (const model::CertificateProfile& profile : {weak, sha1, no_client_auth}) {
    model::CommandOutcome outcome = Renew(absl::StrCat("w", n++), profile);
    EXPECT_EQ(outcome.state, model::CommandState::kFailed);
    EXPECT_EQ(outcome.code, absl::StatusCode::kInvalidArgument) << outcome.error;
    EXPECT_THAT(outcome.error, HasSubstr("profile 'scom'"));
    EXPECT_EQ(outcome.result.csr_pem, "");
  }
  EXPECT_EQ(KeyContainerCount(), 0u);
}

TEST_P(CommandRunnerTest, ADuplicateRenewIsAnsweredWithTheSameRequestAndNoSecondKey) {
  model::CommandOutcome first = Renew("w1");
  ASSERT_EQ(first.state, model::CommandState::kSucceeded) << first.error;

  model::CommandOutcome again = Renew("w1");
  OpenJournal();  // and after an agent restart
  model::CommandOutcome after_restart = Renew("w1");

  EXPECT_EQ(again.result.csr_pem, first.result.csr_pem);
  EXPECT_EQ(after_restart.result.csr_pem, first.result.csr_pem);
  EXPECT_EQ(after_restart.result.detail, first.result.detail);
  EXPECT_EQ(started_, 1);
  EXPECT_EQ(KeyContainerCount(), 1u);

  model::CommandOutcome second = Renew("w2");
  ASSERT_EQ(second.state, model::CommandState::kSucceeded) << second.error;
  EXPECT_NE(second.result.csr_pem, first.result.csr_pem);
  EXPECT_EQ(KeyContainerCount(), 2u);
}

// --- install ---

TEST_P(CommandRunnerTest, InstallLinksTheRenewedKeyAndPutsTheIntermediateIntoCa) {
  Add(StoreName::kRoot, pki_.root(), false);
  const std::optional<std::string> binding = RegistrySerial();
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert leaf = IssueFor(renewed, pki_);

  model::CommandOutcome outcome = Install("n1", ChainOf(leaf, pki_), /*bind=*/false);

  ASSERT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_EQ(outcome.result.thumbprint, ThumbprintOf(leaf));
  EXPECT_THAT(outcome.result.problems, IsEmpty());
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_EQ(KeyContainerCount(), 0u) << "the renewed key is now linked";
  EXPECT_TRUE(InStore(StoreName::kCa, pki_.issuing()));
  EXPECT_EQ(StoreSize(StoreName::kRoot), 1u) << "roots are never trusted implicitly";
  EXPECT_THAT(outcome.result.detail, HasSubstr("installed"));
  EXPECT_THAT(outcome.result.detail, HasSubstr("not trusted"));
  EXPECT_EQ(RegistrySerial(), binding) << "no bind asked for";
  EXPECT_THAT(outcome.result.events, IsEmpty());

  // The key that signed the request is the one linked, and it is nowhere in the journal or in
  // any outcome.
  const std::string key_pem = LinkedKeyPem(leaf);
  ASSERT_FALSE(key_pem.empty());
  auto key = crypto::PrivateKeyFromPem(key_pem);
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(crypto::KeyMatchesCertificate(key->get(), leaf.cert.get()));
  std::vector<std::string> lines = absl::StrSplit(key_pem, '\n');
  ASSERT_GT(lines.size(), 10u);
  const std::string bytes = JournalBytes();
  for (const std::string& line : {lines[3], lines[lines.size() / 2], lines[lines.size() - 4]}) {
    EXPECT_FALSE(absl::StrContains(bytes, line));
    for (const model::CommandOutcome& o : {renewed, outcome}) {
      EXPECT_FALSE(absl::StrContains(o.result.csr_pem, line));
      EXPECT_FALSE(absl::StrContains(o.result.detail, line));
    }
  }
  EXPECT_FALSE(absl::StrContains(bytes, "PRIVATE KEY"));
  EXPECT_TRUE(absl::StrContains(bytes, "CERTIFICATE REQUEST")) << "the request is journaled";
}

TEST_P(CommandRunnerTest, InstallWithBindRebindsToTheIssuedCertificateWithEvidence) {
  BindOld();
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert leaf = IssueFor(renewed, pki_);

  model::CommandOutcome outcome = Install("n1", ChainOf(leaf, pki_), /*bind=*/true);

  ASSERT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(leaf));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(leaf));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(leaf));
  ASSERT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.events[0].message, HasSubstr(ThumbprintOf(leaf)));
  EXPECT_THAT(outcome.result.problems, IsEmpty());
  EXPECT_THAT(outcome.result.detail, HasSubstr("installed"));
  EXPECT_THAT(outcome.result.detail, HasSubstr("event 20053"));
  EXPECT_TRUE(InMyWithKey(leaf));
  EXPECT_TRUE(InMyWithKey(old_)) << "the previous certificate stays";
  EXPECT_EQ(JournaledOutcome("n1").state, model::CommandState::kSucceeded);
}

TEST_P(CommandRunnerTest, InstallWithBindRollsBackWhenTheHostDoesNotTrustTheIssuer) {
  BindOld();
  TestPki other = TestPki::Create(Now(), "Untrusted CA");
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert leaf = IssueFor(renewed, other);

  model::CommandOutcome outcome = Install("n1", ChainOf(leaf, other), /*bind=*/true);

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.error, HasSubstr("event 20072"));
  EXPECT_THAT(outcome.error, HasSubstr("the previous binding was restored"));
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(old_));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(old_));
  ASSERT_THAT(IdsOf(outcome.result.events),
              ElementsAre(platform::kEventChainUntrusted, platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.events[1].message, HasSubstr(ThumbprintOf(old_)));
  EXPECT_THAT(outcome.result.problems, Contains("CHAIN_UNTRUSTED"));
  EXPECT_TRUE(InMyWithKey(leaf)) << "the rollback is of the binding; the certificate stays";
  EXPECT_EQ(JournaledOutcome("n1").code, absl::StatusCode::kFailedPrecondition);
}

TEST_P(CommandRunnerTest, InstallOfACertificateForAnotherHostIsRefusedAndChangesNothing) {
  BindOld();
  const size_t my = StoreSize(StoreName::kMy);
  const size_t ca = StoreSize(StoreName::kCa);
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert other = IssueFor(renewed, pki_, "other.example.com");

  model::CommandOutcome outcome = Install("n1", ChainOf(other, pki_), /*bind=*/true);

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.error,
              HasSubstr("certificate is for other.example.com, this host is host1.example.com"));
  EXPECT_EQ(StoreSize(StoreName::kMy), my);
  EXPECT_EQ(StoreSize(StoreName::kCa), ca);
  EXPECT_EQ(KeyContainerCount(), 1u);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, InstallWithoutAMatchingKeyOnTheHostIsNotFound) {
  BindOld();
  ASSERT_EQ(Renew("w1").state, model::CommandState::kSucceeded);
  TestCert unrelated = Leaf();  // its key is the PKI's, not the host's

  model::CommandOutcome outcome = Install("n1", ChainOf(unrelated, pki_), /*bind=*/true);

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kNotFound);
  EXPECT_THAT(outcome.error, HasSubstr("no key on this host matches the issued certificate"));
  EXPECT_EQ(outcome.result.thumbprint, ThumbprintOf(unrelated));
  EXPECT_FALSE(InStore(StoreName::kMy, unrelated));
  EXPECT_EQ(KeyContainerCount(), 1u);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
}

TEST_P(CommandRunnerTest, InstallOfSomethingThatIsNotAPemChainIsInvalidArgument) {
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert leaf = IssueFor(renewed, pki_);
  TestCert with_key = Leaf();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"text", "hello"},
      {"DER", leaf.der},
      {"a private key", absl::StrCat(with_key.cert_pem, with_key.key_pem)},
      {"CA first", absl::StrCat(pki_.ChainPem(), leaf.cert_pem)},
      {"a request", renewed.result.csr_pem},
  };
  int n = 0;
  for (const auto& [what, chain] : cases) {
    model::CommandOutcome outcome = Install(absl::StrCat("n", n++), chain, /*bind=*/false);
    EXPECT_EQ(outcome.code, absl::StatusCode::kInvalidArgument) << what << ": " << outcome.error;
  }
  EXPECT_EQ(StoreSize(StoreName::kMy), 0u);
  EXPECT_EQ(StoreSize(StoreName::kCa), 0u);
  EXPECT_EQ(KeyContainerCount(), 1u);
}

TEST_P(CommandRunnerTest, ADuplicateInstallIsAnsweredFromTheJournalAndARepeatChangesNothing) {
  BindOld();
  model::CommandOutcome renewed = Renew("w1");
  ASSERT_EQ(renewed.state, model::CommandState::kSucceeded) << renewed.error;
  TestCert leaf = IssueFor(renewed, pki_);
  model::CommandOutcome first = Install("n1", ChainOf(leaf, pki_), /*bind=*/true);
  ASSERT_EQ(first.state, model::CommandState::kSucceeded) << first.error;
  const int loaded = CountEvents(platform::kEventCertificateLoaded);

  model::CommandOutcome duplicate = Install("n1", ChainOf(leaf, pki_), /*bind=*/true);

  EXPECT_EQ(duplicate.state, model::CommandState::kSucceeded);
  EXPECT_EQ(duplicate.result.detail, first.result.detail);
  EXPECT_EQ(IdsOf(duplicate.result.events), IdsOf(first.result.events));
  EXPECT_EQ(started_, 2) << "the renew and the first install";
  EXPECT_EQ(CountEvents(platform::kEventCertificateLoaded), loaded) << "no second restart";

  // The same chain under a new id: the certificate is in My with its key already.
  model::CommandOutcome repeat = Install("n2", ChainOf(leaf, pki_), /*bind=*/false);
  EXPECT_EQ(repeat.state, model::CommandState::kSucceeded) << repeat.error;
  EXPECT_THAT(repeat.result.detail, HasSubstr("linked already"));
  EXPECT_EQ(Entries(StoreName::kMy, leaf).size(), 1u);
  EXPECT_EQ(Entries(StoreName::kCa, pki_.issuing()).size(), 1u);
}

// --- recovery of renew and install ---

TEST_P(CommandRunnerTest, RecoverFailsAnInterruptedRenewAndKeepsItsKeyContainer) {
  ASSERT_TRUE(journal_->Receive("w1", model::CommandKind::kRenew, Now() + absl::Hours(1)).ok());
  ASSERT_TRUE(journal_->MarkRunning("w1").ok());
  auto container = platform().Certificates().AddKeyContainer(Leaf().key_pem);
  ASSERT_TRUE(container.ok());
  ASSERT_TRUE(journal_->SetTarget("w1", *container).ok());

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("w1");
  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_THAT(outcome.error, HasSubstr("interrupted"));
  EXPECT_THAT(outcome.result.detail, HasSubstr(*container));
  EXPECT_EQ(outcome.result.csr_pem, "");
  EXPECT_EQ(KeyContainerCount(), 1u);

  // Its re-delivery is answered from the journal; a new renew makes a new key.
  EXPECT_EQ(Renew("w1").code, absl::StatusCode::kAborted);
  EXPECT_EQ(started_, 0);
  EXPECT_EQ(KeyContainerCount(), 1u);
  EXPECT_EQ(Renew("w2").state, model::CommandState::kSucceeded);
  EXPECT_EQ(KeyContainerCount(), 2u);
}

TEST_P(CommandRunnerTest, ExecuteOfARenewACrashLeftRunningFailsItWithoutANewKey) {
  ASSERT_TRUE(journal_->Receive("w1", model::CommandKind::kRenew, Now() + absl::Hours(1)).ok());
  ASSERT_TRUE(journal_->MarkRunning("w1").ok());
  OpenJournal();  // a new agent that skipped Recover

  model::CommandOutcome outcome = Renew("w1");

  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_THAT(outcome.result.detail, HasSubstr("no key container was journaled"));
  EXPECT_EQ(started_, 0);
  EXPECT_EQ(KeyContainerCount(), 0u);
}

TEST_P(CommandRunnerTest, RecoverChecksAnInterruptedInstallWithoutBindOnTheHost) {
  TrustPki();
  TestCert installed = Leaf();
  TestCert missing = Leaf();
  Add(StoreName::kMy, installed, true);
  for (const auto& [id, cert] : {std::pair<std::string, const TestCert*>{"n1", &installed},
                                 std::pair<std::string, const TestCert*>{"n2", &missing}}) {
    ASSERT_TRUE(journal_->Receive(id, model::CommandKind::kInstall, Now()).ok());
    ASSERT_TRUE(journal_->MarkRunning(id).ok());
    ASSERT_TRUE(journal_->SetTarget(id, ThumbprintOf(*cert)).ok());
  }
  ASSERT_TRUE(journal_->Receive("n3", model::CommandKind::kInstall, Now()).ok());
  ASSERT_TRUE(journal_->MarkRunning("n3").ok());

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome done = JournaledOutcome("n1");
  EXPECT_EQ(done.state, model::CommandState::kSucceeded) << done.error;
  EXPECT_EQ(done.result.thumbprint, ThumbprintOf(installed));
  EXPECT_THAT(done.result.problems, IsEmpty());
  model::CommandOutcome interrupted = JournaledOutcome("n2");
  EXPECT_EQ(interrupted.code, absl::StatusCode::kAborted);
  EXPECT_THAT(interrupted.error, HasSubstr("interrupted"));
  EXPECT_EQ(JournaledOutcome("n3").code, absl::StatusCode::kAborted);
}

TEST_P(CommandRunnerTest, RecoverOfAnInstallStoppedBeforeItsBindingChangedRestartsNothing) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("n1", target, journal::RebindStep::kSnapshotTaken, std::nullopt,
                model::CommandKind::kInstall);
  const size_t events = AllEvents().size();

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("n1");
  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_THAT(outcome.error, HasSubstr("before the binding was changed"));
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_THAT(outcome.result.detail, HasSubstr("is in My with its private key"));
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(AllEvents().size(), events) << "no restart";
}

TEST_P(CommandRunnerTest, RecoverOfAnInstallStoppedAfterWritingTheValueRestoresTheSnapshot) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("n1", target, journal::RebindStep::kValueWritten, std::nullopt,
                model::CommandKind::kInstall);
  WriteBinding(SerialOf(target), ThumbprintOf(target));

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("n1");
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_EQ(outcome.error, "the agent stopped during the install; restored the previous binding");
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(outcome.result.thumbprint, ThumbprintOf(target));
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
}

TEST_P(CommandRunnerTest, RecoverOfAnInstallStoppedAfterAVerifiedRestartKeepsTheNewBinding) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("n1", target, journal::RebindStep::kValueWritten, std::nullopt,
                model::CommandKind::kInstall);
  WriteBinding(SerialOf(target), ThumbprintOf(target));
  const absl::Time restart = clock_.Now();
  ASSERT_TRUE(platform().HealthService().Restart().ok());
  ASSERT_TRUE(journal_->RecordRestarted("n1", restart).ok());
  clock_.Advance(absl::Minutes(5));

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("n1");
  EXPECT_EQ(outcome.state, model::CommandState::kSucceeded) << outcome.error;
  EXPECT_EQ(RegistrySerial(), SerialOf(target));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_THAT(IdsOf(outcome.result.events), ElementsAre(platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.problems, IsEmpty());
  EXPECT_THAT(outcome.result.detail, HasSubstr("is in My with its private key"));
}

TEST_P(CommandRunnerTest,
       RecoverAfterACrashAtSnapshotTakenWithTheRegistryUntouchedRestartsNothing) {
  BindOld();
  TestCert target = Leaf();
  Add(StoreName::kMy, target, true);
  CrashedRebind("b1", target, journal::RebindStep::kSnapshotTaken);
  const size_t events = AllEvents().size();

  ASSERT_TRUE(runner_->Recover().ok());

  model::CommandOutcome outcome = JournaledOutcome("b1");
  EXPECT_EQ(outcome.code, absl::StatusCode::kAborted);
  EXPECT_FALSE(outcome.result.rolled_back);
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(old_));
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(AllEvents().size(), events);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, CommandRunnerTest,
                         ::testing::ValuesIn(certfleet::testing::AllBackends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return certfleet::testing::BackendName(info.param);
                         });

// --- a rollback per failure event: the target has exactly that defect ---

class RebindRollbackTest : public RunnerFixture,
                           public ::testing::TestWithParam<std::tuple<Backend, int>> {
 protected:
  void SetUp() override { SetUpHost(std::get<0>(GetParam())); }
  void TearDown() override { TearDownHost(); }

  // A certificate in My (as the runner sees it) that the HealthService rejects with `event`.
  TestCert TargetRejectedWith(int event) {
    const crypto::CertificateSpec good = pki_.ScomLeafSpec(kFqdn);
    TestCert target;
    bool with_key = true;
    switch (event) {
      case platform::kEventKeyUsage:
        target =
            Leaf([](crypto::CertificateSpec& spec) { spec.key_usage = model::kDigitalSignature; });
        break;
      case platform::kEventEnhancedKeyUsage:
        target = Leaf([](crypto::CertificateSpec& spec) {
          spec.extended_key_usage = {std::string(model::kServerAuthOid)};
        });
        break;
      case platform::kEventNotTimeValid:
        target = Leaf([](crypto::CertificateSpec& spec) {
          spec.not_before = Now() - absl::Hours(24 * 60);
          spec.not_after = Now() - absl::Hours(24);
        });
        break;
      case platform::kEventSubjectMismatch:
        target = pki_.Issue(pki_.ScomLeafSpec("other.example.com"));
        break;
      case platform::kEventCertificateNotFound: {
        // In My as the runner lists it, gone when the HealthService looks.
        target = Leaf();
        StoredCertificate phantom;
        phantom.id = "vanished.pem";
        phantom.der = target.der;
        phantom.has_private_key = true;
        runner_host_->store().SetPhantom(phantom);
        return target;
      }
      case platform::kEventNoPrivateKey:
        target = Leaf();
        with_key = false;
        break;
      case platform::kEventChainUntrusted: {
        TestPki other = TestPki::Create(Now(), "Untrusted CA");
        target = other.Issue(good, pki_.NewRsaKey().get());
        break;
      }
      default:
        ADD_FAILURE() << "no defect for event " << event;
    }
    Add(StoreName::kMy, target, with_key);
    return target;
  }
};

TEST_P(RebindRollbackTest, AFailureEventRestoresTheSnapshotWithTheEvidence) {
  const int event = std::get<1>(GetParam());
  BindOld();
  TestCert target = TargetRejectedWith(event);

  model::CommandOutcome outcome = Rebind("b1", target);

  EXPECT_EQ(outcome.state, model::CommandState::kFailed);
  EXPECT_EQ(outcome.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.error, HasSubstr(absl::StrCat("event ", event)));
  EXPECT_THAT(outcome.error, HasSubstr(ThumbprintOf(target)));
  EXPECT_TRUE(outcome.result.rolled_back);
  EXPECT_EQ(RegistrySerial(), SerialOf(old_));
  EXPECT_EQ(RegistryHash(), ThumbprintOf(old_));
  EXPECT_EQ(outcome.result.previous_channel_serial, SerialOf(old_));
  EXPECT_EQ(outcome.result.channel_serial, SerialOf(old_));
  // The rejection, then the rollback restart loading the previous certificate.
  ASSERT_THAT(IdsOf(outcome.result.events), ElementsAre(event, platform::kEventCertificateLoaded));
  EXPECT_THAT(outcome.result.events[1].message, HasSubstr(ThumbprintOf(old_)));
  EXPECT_EQ(JournaledOutcome("b1").code, absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, RebindRollbackTest,
                         ::testing::Combine(::testing::ValuesIn(certfleet::testing::AllBackends()),
                                            ::testing::Values(platform::kEventKeyUsage,
                                                              platform::kEventEnhancedKeyUsage,
                                                              platform::kEventNotTimeValid,
                                                              platform::kEventSubjectMismatch,
                                                              platform::kEventCertificateNotFound,
                                                              platform::kEventNoPrivateKey,
                                                              platform::kEventChainUntrusted)),
                         [](const ::testing::TestParamInfo<std::tuple<Backend, int>>& info) {
                           return absl::StrCat(
                               certfleet::testing::BackendName(std::get<0>(info.param)), "_",
                               std::get<1>(info.param));
                         });

}  // namespace
}  // namespace certfleet::agent::commands
