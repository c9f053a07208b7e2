// Host commands through the real binaries: import, repair, rebind with 20053 verification and
// rollback, trust, remove; delivery across offline agents, controller restarts, a cut
// connection and a killed agent; secrets kept out of logs and the database.

#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"

namespace certfleet::testing {
namespace {

using google::protobuf::Struct;

Struct ParseObject(const std::string& json) {
  Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << "not a JSON object: " << json;
  return s;
}

std::string Thumbprint(const TestCert& c) { return common::crypto::Sha1Hex(c.der); }

std::string ChannelSerial(const TestCert& c) {
  auto info = common::crypto::DescribeCertificate(c.cert.get(), true);
  return info.ok() ? info->channel_serial : "";
}

// Reads ChannelCertificateSerialNumber back from the lab registry file.
std::string BoundSerial(const LabHost& h) {
  std::string json = ReadText(h.root() + "/Registry/Machine Settings.json");
  Struct s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok()) return "<corrupt>";
  return Str(s, "ChannelCertificateSerialNumber");
}

int CountEvents(const LabHost& h, int id) {
  std::string log = ReadText(h.root() + "/EventLog/Operations Manager.log");
  int n = 0;
  for (size_t pos = 0; (pos = log.find(absl::StrCat("\t", id, "\t"), pos)) != std::string::npos;
       ++pos) {
    ++n;
  }
  return n;
}

class CommandsTest : public FleetTest {
 protected:
  // A host trusting the enterprise CA, bound to a good certificate, with its agent connected.
  void SetUpHost() {
    host_ = std::make_unique<LabHost>(dir_ + "/host", "scom-ms1.corp.example");
    host_->Trust(*pki_);
    old_ = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
    host_->AddToMy(old_, "old");
    host_->Bind(old_);
    StartAgent(*host_, CreateToken());
    ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)))
        << controller_->Log();
  }

  // `certfleetctl cmd <args> --agent <host> --wait --output json`.
  RunResult Cmd(std::vector<std::string> args) {
    args.insert(args.begin(), "cmd");
    args.insert(args.begin() + 2, {"--agent", host_->fqdn(), "--wait", "--output", "json"});
    return Ctl(args);
  }

  std::unique_ptr<LabHost> host_;
  TestCert old_;
};

TEST_F(CommandsTest, RepairImportRebindTrustAndRemoveDoWhatAnAdministratorDoesByHand) {
  SetUpHost();
  // A certificate whose key sits unlinked in MachineKeys: repair links it.
  TestCert unlinked = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  host_->AddToMy(unlinked, "unlinked", /*linked=*/false);
  RunResult repair = Cmd({"repair", "--thumbprint", Thumbprint(unlinked)});
  ASSERT_EQ(repair.exit_code, 0) << repair.err << repair.out;
  EXPECT_EQ(Str(ParseObject(repair.out), "state"), "succeeded");
  EXPECT_TRUE(
      absl::StrContains(ReadText(host_->root() + "/LocalMachine/My/unlinked.pem"), "PRIVATE KEY"));

  // Import a PFX exported the way Windows Server 2012 R2 does (RC2-40), with its password.
  TestCert renewed = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  auto pfx = common::crypto::BuildPkcs12(renewed.key.get(), renewed.cert.get(), {}, "S3cret-pfx!",
                                         common::crypto::Pkcs12Cipher::kLegacyRc2);
  ASSERT_TRUE(pfx.ok());
  WriteText(dir_ + "/renewed.pfx", *pfx);
  WriteText(dir_ + "/pfx-password", "S3cret-pfx!\n");
  RunResult import =
      Cmd({"import", dir_ + "/renewed.pfx", "--password-file", dir_ + "/pfx-password"});
  ASSERT_EQ(import.exit_code, 0) << import.err << import.out;
  Struct imported = ParseObject(import.out);
  EXPECT_EQ(imported.fields().at("result").struct_value().fields().at("thumbprint").string_value(),
            Thumbprint(renewed));

  // Rebind to it: the registry now names it, and the evidence holds a 20053.
  RunResult rebind =
      Cmd({"rebind", "--thumbprint", Thumbprint(renewed), "--verify-timeout", "20s"});
  ASSERT_EQ(rebind.exit_code, 0) << rebind.err << rebind.out;
  Struct rebound = ParseObject(rebind.out);
  EXPECT_EQ(Str(rebound, "state"), "succeeded");
  EXPECT_TRUE(absl::StrContains(rebind.out, "20053")) << rebind.out;
  EXPECT_EQ(BoundSerial(*host_), ChannelSerial(renewed));

  // The bound certificate cannot be removed; the old one can.
  RunResult refuse = Cmd({"remove", "--thumbprint", Thumbprint(renewed)});
  EXPECT_EQ(refuse.exit_code, 1);
  EXPECT_EQ(Str(ParseObject(refuse.out), "error_code"), "FAILED_PRECONDITION") << refuse.out;
  RunResult remove = Cmd({"remove", "--thumbprint", Thumbprint(old_)});
  EXPECT_EQ(remove.exit_code, 0) << remove.err << remove.out;
  EXPECT_FALSE(fs::exists(host_->root() + "/LocalMachine/My/old.pem"));

  // Trust a new root.
  TestPki other = TestPki::Create(absl::Now(), "Other Enterprise CA");
  WriteText(dir_ + "/other-root.pem", other.root().cert_pem);
  RunResult trust = Cmd({"trust", dir_ + "/other-root.pem"});
  EXPECT_EQ(trust.exit_code, 0) << trust.err << trust.out;
  bool found = false;
  for (const auto& e : fs::directory_iterator(host_->root() + "/LocalMachine/Root")) {
    if (absl::StrContains(ReadText(e.path()), other.root().cert_pem.substr(30, 40))) found = true;
  }
  EXPECT_TRUE(found);

  // cmd list and show know all of it; the inventory caught up.
  RunResult list = Ctl({"cmd", "list", "--agent", host_->fqdn(), "--output", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(ParseArray(list.out).values_size(), 6);
  EXPECT_TRUE(WaitFor(
      [&] {
        RunResult certs = Ctl({"certs", "list", "--agent", host_->fqdn(), "--output", "json"});
        ListValue rows = ParseArray(certs.out);
        for (const auto& v : rows.values()) {
          if (Str(v.struct_value(), "thumbprint") == Thumbprint(renewed)) {
            return v.struct_value().fields().at("bound").bool_value();
          }
        }
        return false;
      },
      absl::Seconds(30)));

  // The PFX password is nowhere: not in cmd show, not in any log, not in the database.
  RunResult show = Ctl({"cmd", "show", Str(imported, "id"), "--output", "json"});
  EXPECT_FALSE(absl::StrContains(show.out, "S3cret-pfx!"));
  EXPECT_FALSE(absl::StrContains(controller_->Log(), "S3cret-pfx!"));
  EXPECT_FALSE(absl::StrContains(agents_[0]->Log(), "S3cret-pfx!"));
  for (const char* f : {"/controller.db", "/controller.db-wal"}) {
    if (fs::exists(state_dir() + f)) {
      EXPECT_FALSE(absl::StrContains(ReadText(state_dir() + f), "S3cret-pfx!")) << f;
    }
  }
  for (const char* f : {"/journal.db", "/journal.db-wal"}) {
    std::string path = host_->root() + "-agent" + f;
    if (fs::exists(path)) {
      EXPECT_FALSE(absl::StrContains(ReadText(path), "S3cret-pfx!")) << f;
    }
  }
}

TEST_F(CommandsTest, ARebindToACertificateTheHealthServiceRejectsRollsBack) {
  SetUpHost();
  auto spec = pki_->ScomLeafSpec(host_->fqdn());
  spec.extended_key_usage = {std::string(common::model::kServerAuthOid)};
  TestCert server_only = pki_->Issue(spec);
  host_->AddToMy(server_only, "server-only");
  RunResult rebind = Cmd({"rebind", "--thumbprint", Thumbprint(server_only)});
  EXPECT_EQ(rebind.exit_code, 1);
  Struct r = ParseObject(rebind.out);
  EXPECT_EQ(Str(r, "state"), "failed");
  EXPECT_TRUE(absl::StrContains(rebind.out, "20050")) << rebind.out;
  EXPECT_TRUE(r.fields().at("result").struct_value().fields().at("rolled_back").bool_value());
  EXPECT_EQ(BoundSerial(*host_), ChannelSerial(old_));
}

TEST_F(CommandsTest, AWrongPfxPasswordIsAClearFailure) {
  SetUpHost();
  TestCert c = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  auto pfx = common::crypto::BuildPkcs12(c.key.get(), c.cert.get(), {}, "right-one",
                                         common::crypto::Pkcs12Cipher::kAes256);
  ASSERT_TRUE(pfx.ok());
  WriteText(dir_ + "/c.pfx", *pfx);
  WriteText(dir_ + "/wrong", "Wr0ng-Passw0rd");
  RunResult r = Cmd({"import", dir_ + "/c.pfx", "--password-file", dir_ + "/wrong"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Str(ParseObject(r.out), "error_code"), "INVALID_ARGUMENT") << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "password")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out + controller_->Log() + agents_[0]->Log(), "Wr0ng-Passw0rd"));
}

TEST_F(CommandsTest, APfxForAnotherHostIsRefused) {
  SetUpHost();
  TestCert other = pki_->Issue(pki_->ScomLeafSpec("someone-else.corp.example"));
  auto pfx = common::crypto::BuildPkcs12(other.key.get(), other.cert.get(), {}, "pw",
                                         common::crypto::Pkcs12Cipher::kTripleDes);
  ASSERT_TRUE(pfx.ok());
  WriteText(dir_ + "/other.pfx", *pfx);
  WriteText(dir_ + "/pw", "pw");
  RunResult r = Cmd({"import", dir_ + "/other.pfx", "--password-file", dir_ + "/pw"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Str(ParseObject(r.out), "error_code"), "FAILED_PRECONDITION") << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "someone-else.corp.example")) << r.out;
}

TEST_F(CommandsTest, ACommandForAnOfflineAgentWaitsAcrossAControllerRestart) {
  SetUpHost();
  agents_[0]->Signal(SIGTERM);
  ASSERT_EQ(agents_[0]->Wait(absl::Seconds(60)), 0);
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 0; }, absl::Seconds(30)));

  TestCert extra = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  host_->AddToMy(extra, "extra");
  RunResult created = Ctl({"cmd", "remove", "--agent", host_->fqdn(), "--thumbprint",
                           Thumbprint(extra), "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = Str(ParseObject(created.out), "id");
  EXPECT_EQ(Str(ParseObject(created.out), "state"), "queued");

  controller_->Signal(SIGTERM);
  ASSERT_EQ(controller_->Wait(absl::Seconds(30)), 0);
  StartController(address_);
  EXPECT_EQ(Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state"), "queued");

  StartAgent(*host_, "");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state") ==
               "succeeded";
      },
      absl::Seconds(60)))
      << Ctl({"cmd", "show", id}).out;
  EXPECT_FALSE(fs::exists(host_->root() + "/LocalMachine/My/extra.pem"));
}

TEST_F(CommandsTest, CancelAndDeadlineEndCommandsThatNeverRan) {
  SetUpHost();
  agents_[0]->Signal(SIGTERM);
  ASSERT_EQ(agents_[0]->Wait(absl::Seconds(60)), 0);
  RunResult a = Ctl({"cmd", "scan", "--agent", host_->fqdn(), "--output", "json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  std::string cancel_id = Str(ParseObject(a.out), "id");
  RunResult cancelled = Ctl({"cmd", "cancel", cancel_id, "--output", "json"});
  EXPECT_EQ(Str(ParseObject(cancelled.out), "state"), "cancelled") << cancelled.out;
  RunResult again = Ctl({"cmd", "cancel", cancel_id});
  EXPECT_EQ(again.exit_code, 1);

  RunResult b =
      Ctl({"cmd", "scan", "--agent", host_->fqdn(), "--timeout", "1s", "--output", "json"});
  std::string expiring_id = Str(ParseObject(b.out), "id");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Str(ParseObject(Ctl({"cmd", "show", expiring_id, "--output", "json"}).out),
                   "state") == "expired";
      },
      absl::Seconds(15)));
  RunResult expired_list = Ctl({"cmd", "list", "--state", "expired", "--output", "json"});
  EXPECT_EQ(ParseArray(expired_list.out).values_size(), 1);
}

TEST_F(CommandsTest, AKilledAgentNeverLeavesTheHostBoundToNothing) {
  SetUpHost();
  TestCert next = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  host_->AddToMy(next, "next");
  // The HealthService restart hangs; the agent is killed while it waits.
  WriteText(host_->root() + "/Faults/HealthService.json",
            "{\"restart\": \"hang\", \"hang_seconds\": 120}");
  RunResult created = Ctl({"cmd", "rebind", "--agent", host_->fqdn(), "--thumbprint",
                           Thumbprint(next), "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = Str(ParseObject(created.out), "id");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state") ==
               "running";
      },
      absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(500));
  agents_[0]->Signal(SIGKILL);
  agents_[0]->Wait(absl::Seconds(10));
  // Mid-rebind, the registry names the new certificate; the service never confirmed it.
  EXPECT_EQ(BoundSerial(*host_), ChannelSerial(next));

  fs::remove(host_->root() + "/Faults/HealthService.json");
  StartAgent(*host_, "");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state") ==
               "failed";
      },
      absl::Seconds(60)))
      << Ctl({"cmd", "show", id}).out << agents_.back()->Log();
  RunResult show = Ctl({"cmd", "show", id, "--output", "json"});
  Struct r = ParseObject(show.out);
  EXPECT_EQ(Str(r, "error_code"), "ABORTED") << show.out;
  EXPECT_TRUE(r.fields().at("result").struct_value().fields().at("rolled_back").bool_value());
  // Bound to the old certificate again, and the HealthService confirmed it.
  EXPECT_EQ(BoundSerial(*host_), ChannelSerial(old_));
  EXPECT_GE(CountEvents(*host_, 20053), 1);
}

TEST_F(CommandsTest, AConnectionCutDuringACommandDeliversTheResultOnceAndRunsItOnce) {
  SetUpHost();
  TestCert next = pki_->Issue(pki_->ScomLeafSpec(host_->fqdn()));
  host_->AddToMy(next, "next");
  // The restart takes 4 s; the controller goes away meanwhile and comes back.
  WriteText(host_->root() + "/Faults/HealthService.json",
            "{\"restart\": \"hang\", \"hang_seconds\": 4, \"times\": 1}");
  RunResult created = Ctl({"cmd", "rebind", "--agent", host_->fqdn(), "--thumbprint",
                           Thumbprint(next), "--verify-timeout", "30s", "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = Str(ParseObject(created.out), "id");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state") ==
               "running";
      },
      absl::Seconds(30)));
  controller_->Signal(SIGKILL);
  controller_->Wait(absl::Seconds(10));
  StartController(address_);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string s = Str(ParseObject(Ctl({"cmd", "show", id, "--output", "json"}).out), "state");
        return s == "succeeded" || s == "failed";
      },
      absl::Seconds(60)))
      << Ctl({"cmd", "show", id}).out;
  RunResult show = Ctl({"cmd", "show", id, "--output", "json"});
  // The hung restart ended without a verdict: the agent rolled back, exactly once.
  Struct r = ParseObject(show.out);
  EXPECT_EQ(Str(r, "state"), "failed") << show.out;
  EXPECT_EQ(BoundSerial(*host_), ChannelSerial(old_));
  // One command, one rollback restart: a single 20053 from the restore.
  EXPECT_EQ(CountEvents(*host_, 20053), 1)
      << ReadText(host_->root() + "/EventLog/Operations Manager.log");
}

}  // namespace
}  // namespace certfleet::testing
