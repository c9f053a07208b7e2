// The audit log through the real binaries: admin changes made with certfleetctl are recorded
// with the operator who made them and without their secrets; `audit verify` vouches for the
// chain, and names the entry someone changed in the database behind the controller's back.

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/parse.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"

namespace certfleet::testing {
namespace {

// The controller writes admin credentials for an operator named "admin" with the admin role.
constexpr char kAdminActor[] = "operator/admin/admin";

class AuditTest : public FleetTest {
 protected:
  // Runs `sql` with the sqlite3 shell on the controller's database while the controller runs,
  // as someone with the file (but not the audit key) would. RunCommand does not search PATH.
  RunResult Sqlite(const std::string& sql) {
    std::string shell;
    for (absl::string_view dir :
         absl::StrSplit(std::getenv("PATH") ? std::getenv("PATH") : "", ':')) {
      std::string candidate = absl::StrCat(dir, "/sqlite3");
      if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) {
        shell = candidate;
        break;
      }
    }
    if (shell.empty())
      return RunResult{.exit_code = 127, .out = "", .err = "no sqlite3 shell on PATH"};
    return RunCommand({shell, "-cmd", ".timeout 10000", state_dir() + "/controller.db", sql});
  }

  // `certfleetctl audit list --output json`, as objects.
  std::vector<Struct> Entries(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"audit", "list", "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Struct> out;
    const ListValue list = ParseArray(r.out);
    for (const auto& v : list.values()) out.push_back(v.struct_value());
    return out;
  }

  // The first entry with `action`; an empty Struct when none.
  static Struct Find(const std::vector<Struct>& entries, const std::string& action) {
    for (const Struct& e : entries) {
      if (Str(e, "action") == action) return e;
    }
    return Struct();
  }
};

TEST_F(AuditTest, AdminChangesAreRecordedWithTheOperatorAndNeverWithTheirSecrets) {
  LabHost host(dir_ + "/host", "scom-ms1.corp.example");
  host.Trust(*pki_);
  const std::string token = CreateToken({"--fqdn", host.fqdn(), "--label", "site=paris"});
  ASSERT_FALSE(token.empty());
  StartAgent(host, token);
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)))
      << controller_->Log();

  RunResult scan = Ctl({"cmd", "scan", "--agent", host.fqdn()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  const std::string scan_id(absl::StripAsciiWhitespace(scan.out));

  // An import with a password: the entry says "import", never the file or the password.
  TestCert cert = pki_->Issue(pki_->ScomLeafSpec(host.fqdn()));
  auto pfx = common::crypto::BuildPkcs12(cert.key.get(), cert.cert.get(), {}, "Audit-S3cret!",
                                         common::crypto::Pkcs12Cipher::kAes256);
  ASSERT_TRUE(pfx.ok());
  WriteText(dir_ + "/cert.pfx", *pfx);
  WriteText(dir_ + "/pfx-password", "Audit-S3cret!\n");
  RunResult import = Ctl({"cmd", "import", dir_ + "/cert.pfx", "--agent", host.fqdn(),
                          "--password-file", dir_ + "/pfx-password"});
  ASSERT_EQ(import.exit_code, 0) << import.err;

  RunResult listed = Ctl({"audit", "list", "--output", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_FALSE(absl::StrContains(listed.out, token)) << "the join token is in the audit log";
  EXPECT_FALSE(absl::StrContains(listed.out, "Audit-S3cret!")) << "the PFX password is in it";

  std::vector<Struct> entries = Entries();
  Struct created = Find(entries, "token.create");
  EXPECT_EQ(Str(created, "actor"), kAdminActor) << listed.out;
  EXPECT_EQ(Str(created, "target"), host.fqdn());
  EXPECT_TRUE(absl::StrContains(Str(created, "details"), "\"labels\":\"site=paris\""))
      << Str(created, "details");
  EXPECT_EQ(Str(created, "hash").size(), 64u) << "hex HMAC-SHA256";

  Struct command = Find(entries, "command.create");
  EXPECT_EQ(Str(command, "actor"), kAdminActor) << listed.out;
  EXPECT_EQ(Str(command, "target"), scan_id);
  EXPECT_TRUE(absl::StrContains(Str(command, "details"), "\"kind\":\"scan\""))
      << Str(command, "details");
  bool import_recorded = false;
  for (const Struct& e : entries) {
    if (Str(e, "action") == "command.create" &&
        absl::StrContains(Str(e, "details"), "\"kind\":\"import\"")) {
      import_recorded = true;
    }
  }
  EXPECT_TRUE(import_recorded) << listed.out;

  // The table lists the same entries; --since and --limit narrow them.
  RunResult table = Ctl({"audit", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(absl::StrContains(table.out, "token.create")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, kAdminActor)) << table.out;
  EXPECT_EQ(Entries({"--limit", "1"}).size(), 1u);
  EXPECT_GE(Entries({"--since", "1h"}).size(), entries.size());
  EXPECT_TRUE(Entries({"--since", "2999-01-01T00:00:00Z"}).empty());
  RunResult bad_since = Ctl({"audit", "list", "--since", "yesterday"});
  EXPECT_EQ(bad_since.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad_since.err, "--since")) << bad_since.err;

  RunResult verify = Ctl({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.out, "audit log intact: ")) << verify.out;
}

TEST_F(AuditTest, VerifyNamesAnEntryChangedInTheDatabaseWhileTheControllerRuns) {
  CreateToken({"--fqdn", "web1.corp.example"});
  CreateToken({"--fqdn", "web2.corp.example"});
  CreateToken({"--fqdn", "web3.corp.example"});
  RunResult intact = Ctl({"audit", "verify"});
  ASSERT_EQ(intact.exit_code, 0) << intact.out << intact.err;
  EXPECT_TRUE(absl::StrContains(intact.out, "audit log intact: 3 entries")) << intact.out;

  // Someone with the database file (but not the key) rewrites what entry 2 says.
  RunResult tamper =
      Sqlite("UPDATE audit_log SET details = '{\"fqdn\":\"elsewhere\"}' WHERE seq = 2");
  ASSERT_EQ(tamper.exit_code, 0) << tamper.err;

  RunResult verify = Ctl({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.out, "entry 2: hash does not match its content"))
      << verify.out;
  RunResult json = Ctl({"audit", "verify", "--output", "json"});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(json.out, "\"first_bad_seq\":\"2\"")) << json.out;
}

TEST_F(AuditTest, RemovingTheNewestEntriesIsDetected) {
  CreateToken({"--fqdn", "web1.corp.example"});
  CreateToken({"--fqdn", "web2.corp.example"});
  CreateToken({"--fqdn", "web3.corp.example"});
  RunResult tamper = Sqlite("DELETE FROM audit_log WHERE seq > 1");
  ASSERT_EQ(tamper.exit_code, 0) << tamper.err;
  RunResult verify = Ctl({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.out, "entries 2 to 3 are missing")) << verify.out;
}

}  // namespace
}  // namespace certfleet::testing
