#include "tools/certfleetctl/inspect.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/testing/test_pki.h"

namespace certfleet::ctl {
namespace {

namespace fs = std::filesystem;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr char kFqdn[] = "host1.example.com";
constexpr char kPassword[] = "pfx-Pa55word";

std::vector<std::string> Strings(const google::protobuf::Value& v) {
  std::vector<std::string> out;
  for (const auto& item : v.list_value().values()) out.push_back(item.string_value());
  return out;
}

class InspectTest : public ::testing::Test {
 protected:
  InspectTest() : pki_(TestPki::Create(kNow)) {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("inspect_test_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~InspectTest() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& contents) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  InspectOptions Options(std::vector<std::string> files) {
    InspectOptions options;
    options.files = std::move(files);
    options.now = kNow;
    options.output = InspectOptions::Output::kJson;
    return options;
  }

  // Runs inspect with JSON output; returns the exit status and fills `items`.
  int RunJson(const InspectOptions& options, google::protobuf::ListValue* items) {
    std::ostringstream out, err;
    int code = RunInspect(options, out, err);
    err_ = err.str();
    auto status = google::protobuf::util::JsonStringToMessage(out.str(), items);
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << out.str();
    return code;
  }

  static const google::protobuf::Struct& Item(const google::protobuf::ListValue& items, int i) {
    return items.values(i).struct_value();
  }
  static const google::protobuf::Value& Field(const google::protobuf::Struct& s,
                                              const std::string& name) {
    static const google::protobuf::Value* missing = new google::protobuf::Value();
    auto it = s.fields().find(name);
    EXPECT_TRUE(it != s.fields().end()) << "no field " << name;
    return it == s.fields().end() ? *missing : it->second;
  }

  std::string Pfx(const TestCert& leaf, common::crypto::Pkcs12Cipher cipher) {
    auto pfx = common::crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(),
                                           {pki_.issuing().cert.get(), pki_.root().cert.get()},
                                           kPassword, cipher);
    EXPECT_TRUE(pfx.ok()) << pfx.status();
    return pfx.ok() ? *pfx : "";
  }

  TestPki pki_;
  fs::path dir_;
  std::string err_;
};

TEST_F(InspectTest, CompliantPemWithItsKeyExitsZeroAndReportsEveryField) {
  auto spec = pki_.ScomLeafSpec(kFqdn);
  spec.serial = std::string("\x00\x80\x01\x02", 4);
  TestCert leaf = pki_.Issue(spec);
  std::string file = Write("leaf.pem", leaf.cert_pem + leaf.key_pem);
  InspectOptions options = Options({file});
  options.fqdn = kFqdn;
  options.ca_file = Write("ca.pem", pki_.root().cert_pem + pki_.issuing().cert_pem);
  options.require_key = true;

  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 0);
  ASSERT_EQ(items.values_size(), 1);
  const auto& cert = Item(items, 0);
  EXPECT_EQ(Field(cert, "file").string_value(), file);
  EXPECT_EQ(Field(cert, "subject").string_value(), "CN=host1.example.com");
  EXPECT_EQ(Field(cert, "issuer").string_value(), "CN=Test Enterprise CA,O=certfleet tests");
  EXPECT_THAT(Strings(Field(cert, "dns_names")), ElementsAre(kFqdn));
  EXPECT_EQ(Field(cert, "serial").string_value(), "00800102");
  EXPECT_EQ(Field(cert, "channel_serial").string_value(), "02018000");
  EXPECT_EQ(Field(cert, "thumbprint").string_value(), common::crypto::Sha1Hex(leaf.der));
  EXPECT_EQ(Field(cert, "sha256").string_value(), common::crypto::Sha256Hex(leaf.der));
  EXPECT_EQ(Field(cert, "not_before").string_value(), "2026-02-28T12:00:00Z");
  EXPECT_EQ(Field(cert, "not_after").string_value(), "2027-03-01T12:00:00Z");
  EXPECT_EQ(Field(cert, "key_algorithm").string_value(), "RSA");
  EXPECT_EQ(Field(cert, "key_bits").number_value(), 2048);
  EXPECT_EQ(Field(cert, "signature_hash").string_value(), "SHA256");
  EXPECT_THAT(Strings(Field(cert, "key_usage")),
              ElementsAre("digitalSignature", "keyEncipherment"));
  EXPECT_THAT(Strings(Field(cert, "extended_key_usage")),
              ElementsAre("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"));
  EXPECT_FALSE(Field(cert, "is_ca").bool_value());
  EXPECT_TRUE(Field(cert, "has_private_key").bool_value());
  EXPECT_THAT(Strings(Field(cert, "problems")), IsEmpty());
  EXPECT_TRUE(Field(cert, "compliant").bool_value());
}

TEST_F(InspectTest, PfxReportsTheLeafWithItsKeyFirstAndTheChainAsCaCertificates) {
  for (auto cipher :
       {common::crypto::Pkcs12Cipher::kLegacyRc2, common::crypto::Pkcs12Cipher::kTripleDes,
        common::crypto::Pkcs12Cipher::kAes256}) {
    TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
    InspectOptions options = Options({Write("leaf.pfx", Pfx(leaf, cipher))});
    options.password = kPassword;
    google::protobuf::ListValue items;
    EXPECT_EQ(RunJson(options, &items), 1);
    ASSERT_EQ(items.values_size(), 3);
    EXPECT_EQ(Field(Item(items, 0), "thumbprint").string_value(),
              common::crypto::Sha1Hex(leaf.der));
    EXPECT_TRUE(Field(Item(items, 0), "has_private_key").bool_value());
    EXPECT_TRUE(Field(Item(items, 0), "compliant").bool_value());
    for (int i = 1; i < 3; ++i) {
      EXPECT_TRUE(Field(Item(items, i), "is_ca").bool_value());
      EXPECT_FALSE(Field(Item(items, i), "has_private_key").bool_value());
      EXPECT_THAT(Strings(Field(Item(items, i), "problems")),
                  ElementsAre("MISSING_SERVER_AUTH_EKU", "MISSING_CLIENT_AUTH_EKU",
                              "MISSING_KEY_USAGE", "IS_CA"));
    }
  }
}

TEST_F(InspectTest, WrongPfxPasswordIsAnErrorEntryWithoutThePassword) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  std::string file = Write("leaf.pfx", Pfx(leaf, common::crypto::Pkcs12Cipher::kAes256));
  InspectOptions options = Options({file});
  options.password = "Wr0ng-guess";
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 2);
  ASSERT_EQ(items.values_size(), 1);
  EXPECT_EQ(Field(Item(items, 0), "file").string_value(), file);
  std::string error = Field(Item(items, 0), "error").string_value();
  EXPECT_TRUE(absl::StrContains(error, "wrong password")) << error;
  EXPECT_FALSE(absl::StrContains(error, "Wr0ng-guess")) << error;
}

TEST_F(InspectTest, UnreadableFilesAreErrorEntriesAndTheOtherFilesAreStillReported) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  std::string garbage = Write("garbage.bin", "\x01\x02 not a certificate");
  std::string truncated = Write("truncated.der", leaf.der.substr(0, leaf.der.size() / 2));
  std::string missing = (dir_ / "missing.pem").string();
  std::string good = Write("leaf.der", leaf.der);
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(Options({garbage, missing, good, truncated}), &items), 2);
  ASSERT_EQ(items.values_size(), 4);
  EXPECT_EQ(Field(Item(items, 0), "file").string_value(), garbage);
  EXPECT_TRUE(absl::StrContains(Field(Item(items, 0), "error").string_value(),
                                "not a PEM, DER or PKCS#12 certificate file"));
  EXPECT_EQ(Field(Item(items, 1), "file").string_value(), missing);
  EXPECT_TRUE(absl::StrContains(Field(Item(items, 1), "error").string_value(), "No such file"));
  EXPECT_EQ(Field(Item(items, 2), "file").string_value(), good);
  EXPECT_TRUE(Field(Item(items, 2), "compliant").bool_value());
  EXPECT_TRUE(absl::StrContains(Field(Item(items, 3), "error").string_value(),
                                "not a PEM, DER or PKCS#12"));
}

TEST_F(InspectTest, ProblemsWithoutUnreadableFilesExitOne) {
  auto spec = pki_.ScomLeafSpec(kFqdn);
  spec.not_before = kNow - absl::Hours(24 * 400);
  spec.not_after = kNow - absl::Hours(24);
  std::string expired = Write("expired.pem", pki_.Issue(spec).cert_pem);
  std::string good = Write("good.pem", pki_.Issue(pki_.ScomLeafSpec(kFqdn)).cert_pem);
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(Options({good, expired}), &items), 1);
  ASSERT_EQ(items.values_size(), 2);
  EXPECT_THAT(Strings(Field(Item(items, 1), "problems")), ElementsAre("EXPIRED"));
  EXPECT_FALSE(Field(Item(items, 1), "compliant").bool_value());
}

TEST_F(InspectTest, ExpiresSoonFollowsWarnDays) {
  auto spec = pki_.ScomLeafSpec(kFqdn);
  spec.not_after = kNow + absl::Hours(24 * 20);
  InspectOptions options = Options({Write("soon.pem", pki_.Issue(spec).cert_pem)});
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 1);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("EXPIRES_SOON"));
  options.warn_days = 10;
  EXPECT_EQ(RunJson(options, &items), 0);
}

TEST_F(InspectTest, SubjectMismatchIsJudgedOnlyWithAnFqdn) {
  InspectOptions options =
      Options({Write("leaf.pem", pki_.Issue(pki_.ScomLeafSpec(kFqdn)).cert_pem)});
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 0);
  options.fqdn = "HOST1.example.COM";
  EXPECT_EQ(RunJson(options, &items), 0);
  options.fqdn = "host2.example.com";
  EXPECT_EQ(RunJson(options, &items), 1);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("SUBJECT_MISMATCH"));
}

TEST_F(InspectTest, ChainIsJudgedOnlyWithACaFileAndUsesTheFilesOtherCertificates) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  std::string alone = Write("leaf.pem", leaf.cert_pem);
  std::string with_chain = Write("chain.pem", leaf.cert_pem + pki_.issuing().cert_pem);
  InspectOptions options = Options({alone});
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 0);

  options.ca_file = Write("root.pem", pki_.root().cert_pem);
  EXPECT_EQ(RunJson(options, &items), 1);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("CHAIN_UNTRUSTED"));

  options.files = {with_chain};
  RunJson(options, &items);
  ASSERT_EQ(items.values_size(), 2);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), IsEmpty());
  EXPECT_THAT(Strings(Field(Item(items, 1), "problems")),
              ElementsAre("MISSING_SERVER_AUTH_EKU", "MISSING_CLIENT_AUTH_EKU", "MISSING_KEY_USAGE",
                          "IS_CA"));

  TestPki other = TestPki::Create(kNow, "Other CA");
  options.ca_file = Write("other.pem", other.root().cert_pem);
  EXPECT_EQ(RunJson(options, &items), 1);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("CHAIN_UNTRUSTED"));
}

TEST_F(InspectTest, UnreadableCaFileFailsTheCommandWithExitTwo) {
  InspectOptions options =
      Options({Write("leaf.pem", pki_.Issue(pki_.ScomLeafSpec(kFqdn)).cert_pem)});
  options.ca_file = (dir_ / "no-such-ca.pem").string();
  std::ostringstream out, err;
  EXPECT_EQ(RunInspect(options, out, err), 2);
  EXPECT_TRUE(absl::StrContains(err.str(), "no-such-ca.pem")) << err.str();
  EXPECT_EQ(out.str(), "");
}

TEST_F(InspectTest, NoPrivateKeyIsJudgedForBareCertificatesOnlyWithRequireKey) {
  InspectOptions options = Options({Write("leaf.cer", pki_.Issue(pki_.ScomLeafSpec(kFqdn)).der)});
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(options, &items), 0);
  EXPECT_FALSE(Field(Item(items, 0), "has_private_key").bool_value());
  options.require_key = true;
  EXPECT_EQ(RunJson(options, &items), 1);
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("NO_PRIVATE_KEY"));
}

TEST_F(InspectTest, PemWhoseKeyBelongsToAnotherCertificateHasNoPrivateKey) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  TestCert other = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(Options({Write("mixed.pem", leaf.cert_pem + other.key_pem)}), &items), 1);
  EXPECT_FALSE(Field(Item(items, 0), "has_private_key").bool_value());
  EXPECT_THAT(Strings(Field(Item(items, 0), "problems")), ElementsAre("NO_PRIVATE_KEY"));
}

TEST_F(InspectTest, KeyOnlyFileIsAnError) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  google::protobuf::ListValue items;
  EXPECT_EQ(RunJson(Options({Write("key.pem", leaf.key_pem)}), &items), 2);
  EXPECT_TRUE(absl::StrContains(Field(Item(items, 0), "error").string_value(), "no certificate"));
}

TEST_F(InspectTest, TableShowsOneRowPerCertificateAndAnErrorRowPerUnreadableFile) {
  auto spec = pki_.ScomLeafSpec(kFqdn);
  spec.signature_digest = "SHA1";
  std::string weak = Write("weak.pem", pki_.Issue(spec).cert_pem);
  std::string good = Write("good.pem", pki_.Issue(pki_.ScomLeafSpec(kFqdn)).cert_pem);
  std::string garbage = Write("garbage.txt", "hello");
  InspectOptions options = Options({weak, good, garbage});
  options.output = InspectOptions::Output::kTable;
  std::ostringstream out, err;
  EXPECT_EQ(RunInspect(options, out, err), 2);
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << out.str();
  EXPECT_THAT(lines[0], ::testing::MatchesRegex("FILE +SUBJECT +SERIAL +NOT AFTER +PROBLEMS"));
  EXPECT_TRUE(absl::StartsWith(lines[1], weak));
  EXPECT_TRUE(absl::StrContains(lines[1], "CN=host1.example.com"));
  EXPECT_TRUE(absl::StrContains(lines[1], "2027-03-01T12:00:00Z"));
  EXPECT_TRUE(absl::EndsWith(lines[1], "WEAK_SIGNATURE_HASH"));
  EXPECT_TRUE(absl::EndsWith(lines[2], " -"));
  EXPECT_TRUE(absl::StartsWith(lines[3], garbage));
  EXPECT_TRUE(absl::StrContains(lines[3], "error: not a PEM, DER or PKCS#12"));
}

TEST_F(InspectTest, JsonForNoCertificatesIsAnEmptyArray) {
  EXPECT_EQ(RenderJson({}), "[]\n");
  EXPECT_EQ(InspectExitCode({}), 0);
}

TEST(ReadPasswordFile, StripsExactlyOneTrailingNewline) {
  std::string path = ::testing::TempDir() + "/inspect_test_password";
  for (auto [contents, expected] :
       std::vector<std::pair<std::string, std::string>>{{"secret\n", "secret"},
                                                        {"secret\r\n", "secret"},
                                                        {"secret", "secret"},
                                                        {"secret\n\n", "secret\n"},
                                                        {" spaced secret \n", " spaced secret "}}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
    auto password = ReadPasswordFile(path);
    ASSERT_TRUE(password.ok()) << password.status();
    EXPECT_EQ(*password, expected);
  }
  std::remove(path.c_str());
}

TEST(ReadPasswordFile, MissingFileIsNotFound) {
  EXPECT_EQ(ReadPasswordFile("/nonexistent/password").status().code(), absl::StatusCode::kNotFound);
}

// A path in the test temp directory unique to this process: ctest runs tests in parallel.
std::string TempPath(absl::string_view name) {
  return absl::StrCat(::testing::TempDir(), "/certfleetctl_binary_", ::getpid(), "_", name);
}

// The real binary, as an operator runs it.
class CertfleetctlBinaryTest : public ::testing::Test {
 protected:
  struct Result {
    int exit_code;
    std::string out;
    std::string err;
  };

  Result Run(const std::string& args) {
    std::string base = TempPath("test");
    std::string command =
        absl::StrCat("'", CERTFLEETCTL_BIN, "' ", args, " >", base, ".out 2>", base, ".err");
    int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ostringstream out, err;
    out << std::ifstream(base + ".out").rdbuf();
    err << std::ifstream(base + ".err").rdbuf();
    result.out = out.str();
    result.err = err.str();
    return result;
  }
};

TEST_F(CertfleetctlBinaryTest, GarbageAndMissingFilesExitTwoWithAnErrorPerFile) {
  std::string garbage = TempPath("garbage.bin");
  std::ofstream(garbage, std::ios::binary) << "garbage";
  std::string missing = TempPath("missing.pem");
  Result r = Run(absl::StrCat("inspect --output json '", garbage, "' '", missing, "'"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  google::protobuf::ListValue items;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &items).ok()) << r.out;
  ASSERT_EQ(items.values_size(), 2);
  EXPECT_TRUE(items.values(0).struct_value().fields().contains("error"));
  EXPECT_TRUE(items.values(1).struct_value().fields().contains("error"));

  Result table = Run(absl::StrCat("inspect '", garbage, "'"));
  EXPECT_EQ(table.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(table.out, "error: not a PEM, DER or PKCS#12")) << table.out;
  std::remove(garbage.c_str());
}

TEST_F(CertfleetctlBinaryTest, PasswordFileOpensAPfxAndThePasswordIsNeverPrinted) {
  auto pki = TestPki::Create(absl::Now());
  TestCert leaf = pki.Issue(pki.ScomLeafSpec(kFqdn));
  auto pfx = common::crypto::BuildPkcs12(leaf.key.get(), leaf.cert.get(), {}, kPassword,
                                         common::crypto::Pkcs12Cipher::kLegacyRc2);
  ASSERT_TRUE(pfx.ok());
  std::string pfx_path = TempPath("leaf.pfx");
  std::string pw_path = TempPath("pw");
  std::ofstream(pfx_path, std::ios::binary) << *pfx;
  std::ofstream(pw_path, std::ios::binary) << kPassword << "\n";
  Result r = Run(absl::StrCat("inspect -o json --fqdn ", kFqdn, " --password-file '", pw_path,
                              "' '", pfx_path, "'"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"has_private_key\":true")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out + r.err, kPassword));

  std::ofstream(pw_path, std::ios::binary | std::ios::trunc) << "wrong\n";
  Result wrong = Run(absl::StrCat("inspect --password-file '", pw_path, "' '", pfx_path, "'"));
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(wrong.out, "wrong password")) << wrong.out;
  std::remove(pfx_path.c_str());
  std::remove(pw_path.c_str());
}

TEST_F(CertfleetctlBinaryTest, BadFlagsPrintTheUsageAndExitTwo) {
  Result r = Run("inspect --frobnicate x.pem");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "frobnicate")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err + r.out, "Usage")) << r.err;
  EXPECT_EQ(Run("inspect").exit_code, 2);
  EXPECT_EQ(Run("inspect --output yaml x.pem").exit_code, 2);
  EXPECT_EQ(Run("inspect --warn-days -3 x.pem").exit_code, 2);
}

TEST_F(CertfleetctlBinaryTest, HelpExplainsWhenNoPrivateKeyIsJudged) {
  Result r = Run("inspect --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "NO_PRIVATE_KEY is judged")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "--require-key"));
}

}  // namespace
}  // namespace certfleet::ctl
