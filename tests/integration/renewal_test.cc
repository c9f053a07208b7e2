// Renewals end to end with the real binaries: key and CSR on the host, CSR policy, the builtin
// issuer and the manual approval queue (approve, deny, fulfill), install, verified rebind, and
// controller restarts and kills in the middle of a job.

#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/csr.h"
#include "common/crypto/encoding.h"
#include "common/crypto/issue.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"

namespace certfleet::testing {
namespace {

using google::protobuf::Struct;

Struct Object(const std::string& json) {
  Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

std::string RegistrySerial(const LabHost& h) {
  Struct s = Object(ReadText(h.root() + "/Registry/Machine Settings.json"));
  return Str(s, "ChannelCertificateSerialNumber");
}

class RenewalTest : public FleetTest {
 protected:
  void SetUpHost() {
    host_ = std::make_unique<LabHost>(dir_ + "/host", "scom-gw1.corp.example");
    host_->Trust(*pki_);
    auto spec = pki_->ScomLeafSpec(host_->fqdn());
    spec.not_after = absl::Now() + absl::Hours(24 * 10);
    old_ = pki_->Issue(spec);
    host_->AddToMy(old_, "expiring");
    host_->Bind(old_);
    auto info = common::crypto::DescribeCertificate(old_.cert.get(), true);
    old_serial_ = info->channel_serial;
    StartAgent(*host_, CreateToken());
    ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)))
        << controller_->Log();
  }

  Struct Renewal(const std::string& id) {
    return Object(Ctl({"renewals", "show", id, "--output", "json"}).out);
  }
  bool WaitState(const std::string& id, const std::string& state,
                 absl::Duration timeout = absl::Seconds(60)) {
    return WaitFor([&] { return Str(Renewal(id), "state") == state; }, timeout);
  }
  std::string StartRenewal(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"renew", "--agent", host_->fqdn(), "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Str(Object(r.out), "id");
  }
  std::vector<std::string> Steps(const Struct& r) {
    std::vector<std::string> out;
    for (const auto& v : r.fields().at("steps").list_value().values()) {
      out.push_back(Str(v.struct_value(), "state"));
    }
    return out;
  }

  std::unique_ptr<LabHost> host_;
  TestCert old_;
  std::string old_serial_;
};

TEST_F(RenewalTest, AnExpiringHostIsRenewedThroughTheBuiltinIssuerAndRebound) {
  SetUpHost();
  RunResult r = Ctl({"renew", "--agent", host_->fqdn(), "--wait", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << controller_->Log();
  Struct renewal = Object(r.out);
  EXPECT_EQ(Str(renewal, "state"), "done");
  EXPECT_EQ(Steps(renewal),
            (std::vector<std::string>{"planned", "csr_requested", "csr_received", "policy_checked",
                                      "submitted", "issued", "install_sent", "installed",
                                      "bind_sent", "verified", "done"}));
  EXPECT_TRUE(absl::StrContains(r.out, "20053")) << r.out;

  // The host is bound to the new certificate; it chains to the controller's CA.
  std::string leaf_pem = Str(renewal, "certificate_pem");
  auto leaf = common::crypto::CertificateFromPem(leaf_pem);
  ASSERT_TRUE(leaf.ok());
  auto info = common::crypto::DescribeCertificate(leaf->get(), false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(RegistrySerial(*host_), info->channel_serial);
  EXPECT_NE(RegistrySerial(*host_), old_serial_);
  EXPECT_GE(info->serial.size(), 32u);  // at least 16 bytes
  WriteText(dir_ + "/leaf.pem", leaf_pem);
  RunResult verify =
      RunCommand({"/usr/bin/openssl", "verify", "-CAfile", state_dir() + "/ca/root.pem",
                  "-untrusted", state_dir() + "/ca/issuing.pem", dir_ + "/leaf.pem"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // The host's key stayed on the host: no private key ever reached the controller.
  for (const char* f : {"/controller.db", "/controller.db-wal"}) {
    if (fs::exists(state_dir() + f)) {
      EXPECT_FALSE(absl::StrContains(ReadText(state_dir() + f), "PRIVATE KEY")) << f;
    }
  }
  // The inventory shows the new certificate bound and compliant.
  EXPECT_TRUE(WaitFor(
      [&] {
        ListValue rows =
            ParseArray(Ctl({"certs", "list", "--agent", host_->fqdn(), "--output", "json"}).out);
        for (const auto& v : rows.values()) {
          const Struct& c = v.struct_value();
          if (Str(c, "thumbprint") == info->thumbprint) {
            return c.fields().at("bound").bool_value() && c.fields().at("compliant").bool_value();
          }
        }
        return false;
      },
      absl::Seconds(30)));
  // renewals list knows the job.
  RunResult list = Ctl({"renewals", "list", "--output", "json"});
  EXPECT_EQ(ParseArray(list.out).values_size(), 1);
}

TEST_F(RenewalTest, TheManualQueueWaitsForAnOfficerAcrossAControllerRestart) {
  SetUpHost();
  std::string id = StartRenewal({"--issuer", "manual"});
  ASSERT_TRUE(WaitState(id, "pending_approval")) << Ctl({"renewals", "show", id}).out;
  std::string request = Str(Renewal(id), "approval_request_id");
  ASSERT_FALSE(request.empty());

  controller_->Signal(SIGTERM);
  ASSERT_EQ(controller_->Wait(absl::Seconds(30)), 0);
  StartController(address_);

  RunResult pending = Ctl({"requests", "list", "--state", "pending", "--output", "json"});
  ASSERT_EQ(ParseArray(pending.out).values_size(), 1) << pending.out;
  RunResult csr = Ctl({"requests", "export", request});
  EXPECT_TRUE(absl::StrContains(csr.out, "BEGIN CERTIFICATE REQUEST")) << csr.out;
  RunResult approve = Ctl({"requests", "approve", request, "--reason", "change 4711"});
  ASSERT_EQ(approve.exit_code, 0) << approve.err;
  EXPECT_TRUE(WaitState(id, "done")) << Ctl({"renewals", "show", id}).out << controller_->Log();
  EXPECT_NE(RegistrySerial(*host_), old_serial_);
  // Deciding twice is refused.
  EXPECT_EQ(Ctl({"requests", "deny", request, "--reason", "late"}).exit_code, 1);
}

TEST_F(RenewalTest, ADeniedRequestFailsTheRenewalWithTheOfficersReason) {
  SetUpHost();
  std::string id = StartRenewal({"--issuer", "manual"});
  ASSERT_TRUE(WaitState(id, "pending_approval"));
  std::string request = Str(Renewal(id), "approval_request_id");
  ASSERT_EQ(Ctl({"requests", "deny", request, "--reason", "not in a change window"}).exit_code, 0);
  ASSERT_TRUE(WaitState(id, "failed"));
  EXPECT_TRUE(absl::StrContains(Str(Renewal(id), "failure_reason"), "not in a change window"));
  EXPECT_EQ(RegistrySerial(*host_), old_serial_);
}

TEST_F(RenewalTest, ACertificateSignedElsewhereFulfilsARequestWhenItMatchesTheCsr) {
  SetUpHost();
  std::string id = StartRenewal({"--issuer", "manual"});
  ASSERT_TRUE(WaitState(id, "pending_approval"));
  std::string request = Str(Renewal(id), "approval_request_id");
  std::string csr_pem = Ctl({"requests", "export", request}).out;
  auto csr = common::crypto::CsrFromPem(csr_pem);
  ASSERT_TRUE(csr.ok());
  auto pub = common::crypto::CsrPublicKey(csr->get());

  // A certificate for another key is refused.
  TestCert wrong = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  WriteText(dir_ + "/wrong.pem", wrong.cert_pem + pki_->ChainPem());
  RunResult refused = Ctl({"requests", "fulfill", request, "--cert", dir_ + "/wrong.pem"});
  EXPECT_EQ(refused.exit_code, 1);

  // The enterprise CA (trusted by the host) signs the CSR's key.
  TestCert right = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()), pub.get());
  WriteText(dir_ + "/right.pem", right.cert_pem + pki_->ChainPem());
  RunResult ok = Ctl({"requests", "fulfill", request, "--cert", dir_ + "/right.pem"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  ASSERT_TRUE(WaitState(id, "done")) << Ctl({"renewals", "show", id}).out;
  auto info = common::crypto::DescribeCertificate(right.cert.get(), true);
  EXPECT_EQ(RegistrySerial(*host_), info->channel_serial);
}

TEST_F(RenewalTest, AJobKilledWithTheControllerAtAnyMomentCompletesWithOneIssuance) {
  SetUpHost();
  // Kill points spread over the whole job (it takes a few hundred milliseconds here).
  for (int delay_ms : {20, 60, 120, 200, 350, 600}) {
    SCOPED_TRACE(delay_ms);
    std::string id = StartRenewal();
    absl::SleepFor(absl::Milliseconds(delay_ms));
    controller_->Signal(SIGKILL);
    controller_->Wait(absl::Seconds(10));
    StartController(address_);
    ASSERT_TRUE(WaitState(id, "done", absl::Seconds(90)))
        << Ctl({"renewals", "show", id}).out << controller_->Log();
    RunResult count =
        RunCommand({"/usr/bin/sqlite3", state_dir() + "/controller.db",
                    absl::StrCat("SELECT count(*) FROM issuances WHERE renewal_id = '", id, "';")});
    EXPECT_EQ(std::string(absl::StripAsciiWhitespace(count.out)), "1") << count.err;
  }
}

TEST_F(RenewalTest, AnAgentKilledDuringTheRebindEndsTheJobRolledBack) {
  SetUpHost();
  WriteText(host_->root() + "/Faults/HealthService.json",
            "{\"restart\": \"hang\", \"hang_seconds\": 120}");
  std::string id = StartRenewal();
  ASSERT_TRUE(WaitState(id, "bind_sent")) << Ctl({"renewals", "show", id}).out;
  absl::SleepFor(absl::Milliseconds(500));
  agents_[0]->Signal(SIGKILL);
  agents_[0]->Wait(absl::Seconds(10));
  fs::remove(host_->root() + "/Faults/HealthService.json");
  StartAgent(*host_, "");
  ASSERT_TRUE(WaitState(id, "rolled_back")) << Ctl({"renewals", "show", id}).out;
  EXPECT_EQ(RegistrySerial(*host_), old_serial_);
}

TEST_F(RenewalTest, ACommandIssuerFromTheConfigFileSignsThroughTheShippedOpensslCaHelper) {
  // An `openssl ca` directory as docs/issuers.md tells an operator to make it.
  const std::string ca = dir_ + "/corp-ca";
  fs::create_directories(ca + "/private");
  fs::create_directories(ca + "/newcerts");
  WriteText(ca + "/index.txt", "");
  WriteText(ca + "/index.txt.attr", "unique_subject = no\n");
  RunResult made =
      RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout",
                  ca + "/private/ca.key", "-out", ca + "/ca.pem", "-subj", "/CN=Corp openssl CA",
                  "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                  "keyUsage=critical,keyCertSign,cRLSign"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  WriteText(dir_ + "/controller.yaml",
            absl::StrCat("default_issuer: corp-ca\n"
                         "issuers:\n"
                         "  - name: corp-ca\n"
                         "    command: [",
                         CERTFLEET_SOURCE_DIR, "/deploy/issuers/openssl-ca/openssl-ca-issue.sh]\n",
                         "    environment: {CA_DIR: ", ca, "}\n"));
  controller_->Signal(SIGTERM);
  ASSERT_EQ(controller_->Wait(absl::Seconds(30)), 0);
  extra_controller_args_ = {"--config", dir_ + "/controller.yaml"};
  StartController(address_);
  SetUpHost();

  RunResult r = Ctl({"renew", "--agent", host_->fqdn(), "--wait", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << controller_->Log();
  Struct renewal = Object(r.out);
  EXPECT_EQ(Str(renewal, "issuer"), "corp-ca");
  auto leaf = common::crypto::CertificateFromPem(Str(renewal, "certificate_pem"));
  ASSERT_TRUE(leaf.ok());
  auto info = common::crypto::DescribeCertificate(leaf->get(), false);
  EXPECT_EQ(info->issuer, "CN=Corp openssl CA");
  EXPECT_EQ(RegistrySerial(*host_), info->channel_serial);
}

TEST_F(RenewalTest, BadRenewalRequestsAreClearErrors) {
  SetUpHost();
  RunResult profile = Ctl({"renew", "--agent", host_->fqdn(), "--profile", "nope"});
  EXPECT_EQ(profile.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(profile.err, "no profile 'nope'")) << profile.err;
  RunResult issuer = Ctl({"renew", "--agent", host_->fqdn(), "--issuer", "acme"});
  EXPECT_EQ(issuer.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(issuer.err, "no issuer 'acme'")) << issuer.err;
  RunResult agent = Ctl({"renew", "--agent", "ghost.corp.example"});
  EXPECT_EQ(agent.exit_code, 1);
  std::string id = StartRenewal({"--issuer", "manual"});
  RunResult twice = Ctl({"renew", "--agent", host_->fqdn()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(twice.err, id)) << twice.err;
}

}  // namespace
}  // namespace certfleet::testing
