#include "controller/ca/command/command_issuer.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files/file_util.h"
#include "common/model/profile.h"
#include "controller/ca/command/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/controller/renewal/test_csr.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::ScomCsrPem;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using Kind = IssuanceResult::Kind;

constexpr absl::string_view kFqdn = "scom1.corp.example.com";

CommandIssuerOptions WithPollInterval(absl::Duration d) {
  CommandIssuerOptions options;
  options.poll_interval = d;
  return options;
}
CommandIssuerOptions WithRetryAfter(absl::Duration d) {
  CommandIssuerOptions options;
  options.retry_after = d;
  return options;
}
CommandIssuerOptions WithTimeout(absl::Duration d) {
  CommandIssuerOptions options;
  options.timeout = d;
  return options;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more either).
bool ProcessGone(pid_t pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

class CommandIssuerTest : public ::testing::Test {
 protected:
  CommandIssuerTest()
      : clock_(absl::Now()), pki_(TestPki::Create(absl::Now())), key_(pki_.NewRsaKey(2048)) {
    request_.renewal_id = "ren-42";
    request_.agent_id = "agent-7";
    request_.fqdn = std::string(kFqdn);
    request_.csr_pem = ScomCsrPem(key_.get(), kFqdn);
    request_.profile = common::model::ScomProfile();
    request_.profile.validity = absl::Hours(24 * 90);
    leaf_ = pki_.Issue(pki_.ScomLeafSpec(kFqdn), key_.get());
    chain_path_ = dir_.path() + "/chain.pem";
    EXPECT_TRUE(
        common::WriteFileAtomically(chain_path_, leaf_.cert_pem + pki_.ChainPem(), 0644).ok());
  }

  // An executable /bin/sh script in the test directory.
  std::string Script(absl::string_view name, absl::string_view body) {
    std::string path = absl::StrCat(dir_.path(), "/", name);
    EXPECT_TRUE(
        common::WriteFileAtomically(path, absl::StrCat("#!/bin/sh\n", body, "\n"), 0755).ok());
    return path;
  }

  std::unique_ptr<CommandIssuer> Issuer(const std::string& program,
                                        CommandIssuerOptions options = {}) {
    options.name = "test-ca";
    options.argv = {program};
    auto issuer = CommandIssuer::Create(options, {.clock = clock_});
    EXPECT_TRUE(issuer.ok()) << issuer.status();
    return issuer.ok() ? std::move(*issuer) : nullptr;
  }

  TempDir dir_;
  FakeClock clock_;
  TestPki pki_;
  common::crypto::EvpPkeyPtr key_;
  TestCert leaf_;
  std::string chain_path_;
  IssuanceRequest request_;
};

TEST_F(CommandIssuerTest, IssuesTheChainTheProgramPrints) {
  auto issuer = Issuer(Script("ok.sh", absl::StrCat("cat >/dev/null\ncat '", chain_path_, "'")));
  auto result = issuer->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kIssued);
  EXPECT_EQ(result->chain_pem, leaf_.cert_pem + pki_.ChainPem());
  EXPECT_EQ(issuer->Name(), "test-ca");
}

TEST_F(CommandIssuerTest, PutsTheLeafFirstWhenTheProgramPrintsItLast) {
  std::string reversed = dir_.path() + "/reversed.pem";
  ASSERT_TRUE(common::WriteFileAtomically(reversed, pki_.ChainPem() + leaf_.cert_pem, 0644).ok());
  auto result = Issuer(Script("ok.sh", absl::StrCat("cat '", reversed, "'")))->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->chain_pem, leaf_.cert_pem + pki_.ChainPem());
}

TEST_F(CommandIssuerTest, PassesTheCsrOnStdinAndTheMetadataInTheEnvironmentOnly) {
  ASSERT_EQ(::setenv("CERTFLEET_TEST_CONTROLLER_SECRET", "hunter2", 1), 0);
  CommandIssuerOptions options;
  options.environment = {{"CA_DIR", "/srv/ca"}};
  auto issuer =
      Issuer(Script("env.sh", absl::StrCat("cat >'", dir_.path(), "/stdin.pem'\nenv >'",
                                           dir_.path(), "/env.txt'\ncat '", chain_path_, "'")),
             options);
  request_.profile.template_name = "SCOMCert";
  ASSERT_TRUE(issuer->Submit(request_).ok());
  ::unsetenv("CERTFLEET_TEST_CONTROLLER_SECRET");

  EXPECT_EQ(ReadFile(dir_.path() + "/stdin.pem"), request_.csr_pem);
  std::vector<std::string> env =
      absl::StrSplit(ReadFile(dir_.path() + "/env.txt"), '\n', absl::SkipEmpty());
  EXPECT_THAT(env, Contains("CERTFLEET_OPERATION=SUBMIT"));
  EXPECT_THAT(env, Contains("CERTFLEET_RENEWAL_ID=ren-42"));
  EXPECT_THAT(env, Contains("CERTFLEET_AGENT_ID=agent-7"));
  EXPECT_THAT(env, Contains(absl::StrCat("CERTFLEET_FQDN=", kFqdn)));
  EXPECT_THAT(env, Contains("CERTFLEET_PROFILE=scom"));
  EXPECT_THAT(env, Contains("CERTFLEET_TEMPLATE=SCOMCert"));
  EXPECT_THAT(env, Contains("CERTFLEET_VALIDITY_DAYS=90"));
  EXPECT_THAT(env, Contains("CERTFLEET_SIGNATURE_HASH=SHA256"));
  EXPECT_THAT(env, Contains("CA_DIR=/srv/ca"));
  EXPECT_THAT(env, Not(Contains(HasSubstr("CERTFLEET_COOKIE"))));
  EXPECT_THAT(env, Not(Contains(HasSubstr("hunter2"))));
}

TEST_F(CommandIssuerTest, PendingThenPollThenIssued) {
  auto issuer = Issuer(Script("pending.sh", absl::StrCat(R"(
cat >/dev/null
case "$CERTFLEET_OPERATION" in
  SUBMIT) echo "req-1234"; exit 1 ;;
  POLL) [ "$CERTFLEET_COOKIE" = "req-1234" ] || { echo "unknown cookie" >&2; exit 2; }
        cat ')",
                                                         chain_path_, R"('; exit 0 ;;
esac
exit 4)")),
                       WithPollInterval(absl::Seconds(42)));
  auto submitted = issuer->Submit(request_);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->kind, Kind::kPending);
  EXPECT_EQ(submitted->cookie, "req-1234");
  EXPECT_EQ(submitted->retry_after, absl::Seconds(42));

  request_.cookie = submitted->cookie;
  auto polled = issuer->Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->kind, Kind::kIssued);
  EXPECT_EQ(polled->chain_pem, leaf_.cert_pem + pki_.ChainPem());
}

TEST_F(CommandIssuerTest, PollWithoutACookieIsRefused) {
  auto issuer = Issuer(Script("x.sh", "exit 0"));
  EXPECT_EQ(issuer->Poll(request_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandIssuerTest, PendingWithADelayTakesTheDelayFromTheFirstLine) {
  auto result = Issuer(Script("delay.sh", "printf '120\\nreq 77\\n'; exit 5"))->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kPending);
  EXPECT_EQ(result->retry_after, absl::Seconds(120));
  EXPECT_EQ(result->cookie, "req 77");
}

TEST_F(CommandIssuerTest, PendingWithoutACookieOrWithABadDelayIsAnError) {
  EXPECT_EQ(Issuer(Script("a.sh", "exit 1"))->Submit(request_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto bad_delay = Issuer(Script("b.sh", "printf 'soon\\ncookie\\n'; exit 5"))->Submit(request_);
  EXPECT_EQ(bad_delay.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(bad_delay.status().message(), HasSubstr("number of seconds"));
}

TEST_F(CommandIssuerTest, RejectedCarriesTheReasonFromStdoutElseStderr) {
  auto out =
      Issuer(Script("r1.sh", "echo 'template SCOMCert: access denied'; exit 2"))->Submit(request_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->kind, Kind::kRejected);
  EXPECT_EQ(out->reason, "template SCOMCert: access denied");

  auto err = Issuer(Script("r2.sh", "echo '  denied by officer  ' >&2; exit 2"))->Submit(request_);
  ASSERT_TRUE(err.ok()) << err.status();
  EXPECT_EQ(err->kind, Kind::kRejected);
  EXPECT_EQ(err->reason, "denied by officer");
}

TEST_F(CommandIssuerTest, UnreachableMeansRetryLater) {
  auto result = Issuer(Script("u.sh", "echo 'RPC server unavailable 0x800706ba' >&2; exit 3"),
                       WithRetryAfter(absl::Minutes(7)))
                    ->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kRetryLater);
  EXPECT_EQ(result->reason, "RPC server unavailable 0x800706ba");
  EXPECT_EQ(result->retry_after, absl::Minutes(7));
}

TEST_F(CommandIssuerTest, UnconfiguredIsAFailedPreconditionWithTheHelpersWords) {
  auto result = Issuer(Script("c.sh", "echo 'no CA directory' >&2; exit 4"))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("'test-ca' is not configured: no CA directory"));
}

TEST_F(CommandIssuerTest, AnExitStatusOutsideTheContractIsAnError) {
  auto result = Issuer(Script("s.sh", "echo 'syntax error' >&2; exit 7"))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("exited with status 7"));
  EXPECT_THAT(result.status().message(), HasSubstr("syntax error"));
}

TEST_F(CommandIssuerTest, AnIssuedCertificateForAnotherKeyIsRefused) {
  std::string other = dir_.path() + "/other.pem";
  ASSERT_TRUE(common::WriteFileAtomically(
                  other, pki_.Issue(pki_.ScomLeafSpec(kFqdn)).cert_pem + pki_.ChainPem(), 0644)
                  .ok());
  auto result = Issuer(Script("o.sh", absl::StrCat("cat '", other, "'")))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("request's public key"));
}

TEST_F(CommandIssuerTest, AnIssuedCertificateForAnotherHostIsRefused) {
  std::string other = dir_.path() + "/other.pem";
  ASSERT_TRUE(
      common::WriteFileAtomically(
          other, pki_.Issue(pki_.ScomLeafSpec("dc01.corp.example.com"), key_.get()).cert_pem, 0644)
          .ok());
  auto result = Issuer(Script("o.sh", absl::StrCat("cat '", other, "'")))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("dc01.corp.example.com"));
}

TEST_F(CommandIssuerTest, ExitZeroWithoutACertificateIsAnError) {
  auto result = Issuer(Script("e.sh", "echo done"))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("cannot use"));
}

TEST_F(CommandIssuerTest, AHangingProgramIsKilledWithItsProcessGroupAndRetriedLater) {
  std::string pid_file = dir_.path() + "/child.pid";
  auto issuer = Issuer(Script("hang.sh", absl::StrCat("sleep 60 &\necho $! >'", pid_file,
                                                      "'\necho 'contacting CA' >&2\nsleep 60")),
                       WithTimeout(absl::Milliseconds(500)));
  const absl::Time start = absl::Now();
  auto result = issuer->Submit(request_);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kRetryLater);
  EXPECT_THAT(result->reason, HasSubstr("timed out after 500ms"));
  EXPECT_THAT(result->reason, HasSubstr("contacting CA"));
  EXPECT_LT(took, absl::Seconds(10));
  pid_t child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)), &child));
  // The background sleep was in the helper's process group: killed too.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!ProcessGone(child) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(ProcessGone(child)) << "pid " << child;
}

TEST_F(CommandIssuerTest, AProgramThatCannotStartIsAFailedPrecondition) {
  std::string path = Script("gone.sh", "exit 0");
  auto issuer = Issuer(path);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto gone = issuer->Submit(request_);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(gone.status().message(), HasSubstr("cannot start"));
  EXPECT_THAT(gone.status().message(), HasSubstr(path));

  std::string bad_interpreter = dir_.path() + "/interp.sh";
  ASSERT_TRUE(
      common::WriteFileAtomically(bad_interpreter, "#!/nonexistent/shell\nexit 0\n", 0755).ok());
  auto interp = Issuer(bad_interpreter)->Submit(request_);
  EXPECT_EQ(interp.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(interp.status().message(), HasSubstr("cannot start"));
}

TEST_F(CommandIssuerTest, HugeOutputIsCutOffAndTheProgramKilled) {
  const absl::Time start = absl::Now();
  auto result = Issuer(Script("huge.sh", "exec cat /dev/zero"))->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("more than 1048576 bytes"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(CommandIssuerTest, AProgramKilledByASignalIsRetriedLaterEvenIfTheControllerBlocksIt) {
  // The controller blocks SIGTERM in every thread; the helper must not inherit that mask.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  auto result = Issuer(Script("sig.sh", "kill -TERM $$\nsleep 5\nexit 0"))->Submit(request_);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kRetryLater);
  EXPECT_THAT(result->reason, HasSubstr("terminated by signal 15"));
}

TEST_F(CommandIssuerTest, CreateRefusesUnsafeOrBrokenConfigurations) {
  std::string ok = Script("ok.sh", "exit 0");
  auto create = [&](std::string name, std::vector<std::string> argv,
                    std::map<std::string, std::string> environment = {},
                    absl::Duration timeout = absl::Seconds(60)) {
    CommandIssuerOptions options;
    options.name = std::move(name);
    options.argv = std::move(argv);
    options.environment = std::move(environment);
    options.timeout = timeout;
    return CommandIssuer::Create(std::move(options), {.clock = clock_}).status();
  };
  EXPECT_EQ(create("", {ok}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(create("builtin", {ok}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(create("x", {}).code(), absl::StatusCode::kInvalidArgument);
  absl::Status relative = create("x", {"openssl", "ca"});
  EXPECT_EQ(relative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(relative.message(), HasSubstr("absolute path"));
  EXPECT_EQ(create("x", {ok}, {{"CERTFLEET_FQDN", "x"}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(create("x", {ok}, {{"A B", "x"}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(create("x", {ok}, {}, absl::ZeroDuration()).code(), absl::StatusCode::kInvalidArgument);
  std::string plain = dir_.path() + "/plain.txt";
  ASSERT_TRUE(common::WriteFileAtomically(plain, "not a program", 0644).ok());
  EXPECT_EQ(create("x", {plain}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(create("x", {dir_.path() + "/missing"}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SubprocessTest, AProgramThatDoesNotReadItsInputNeitherBlocksNorKillsTheCaller) {
  SubprocessSpec spec;
  spec.argv = {"/bin/true"};
  spec.stdin_data = std::string(4 << 20, 'x');  // far more than a pipe holds
  auto result = RunSubprocess(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->end, SubprocessResult::End::kExited);
  EXPECT_EQ(result->exit_code, 0);
}

TEST(SubprocessTest, PassesArgumentsVerbatimWithoutAShell) {
  SubprocessSpec spec;
  spec.argv = {"/bin/echo", "$HOME", "a b", "`id`;", "*"};
  auto result = RunSubprocess(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->out, "$HOME a b `id`; *\n");
}

TEST(SubprocessTest, GivesTheProgramNoOtherFileDescriptors) {
  SubprocessSpec spec;
  spec.argv = {"/bin/ls", "/proc/self/fd"};
  auto result = RunSubprocess(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<std::string> fds = absl::StrSplit(result->out, '\n', absl::SkipEmpty());
  // 0, 1, 2 and the directory ls itself opened.
  EXPECT_LE(fds.size(), 4u) << result->out;
}

}  // namespace
}  // namespace certfleet::controller::ca
