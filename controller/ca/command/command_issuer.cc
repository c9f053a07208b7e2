#include "controller/ca/command/command_issuer.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "controller/ca/command/subprocess.h"
#include "controller/renewal/csr_policy.h"

namespace certfleet::controller::ca {
namespace {

constexpr absl::string_view kReservedPrefix = "CERTFLEET_";
constexpr absl::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Reasons keep the end of a program's output, where tools print their final error.
constexpr size_t kReasonChars = 2000;
// A pending delay longer than this is taken as this (a typo must not park a renewal for years).
constexpr int64_t kMaxDelaySeconds = 7 * 24 * 3600;

// Exit statuses of the contract.
enum ExitCode : int {
  kExitIssued = 0,
  kExitPending = 1,
  kExitRejected = 2,
  kExitUnreachable = 3,
  kExitUnconfigured = 4,
  kExitPendingWithDelay = 5,
};

bool ValidVariableName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string Trimmed(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t.size() <= kReasonChars) return std::string(t);
  return absl::StrCat("...", t.substr(t.size() - kReasonChars));
}

// stdout when it says something, else stderr.
std::string Reason(const SubprocessResult& run) {
  std::string out = Trimmed(run.out);
  return out.empty() ? Trimmed(run.err) : out;
}

std::string WithStderr(absl::string_view message, const SubprocessResult& run) {
  std::string err = Trimmed(run.err);
  return err.empty() ? std::string(message) : absl::StrCat(message, ": ", err);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CommandIssuer>> CommandIssuer::Create(CommandIssuerOptions options,
                                                                     CommandIssuerDeps deps) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("command issuer '", options.name, "': ", why));
  };
  if (options.name.empty()) return absl::InvalidArgumentError("command issuer: name is empty");
  if (options.name == "builtin" || options.name == "manual") {
    return bad("the name is reserved for a built-in issuer");
  }
  if (options.argv.empty() || options.argv[0].empty()) return bad("argv is empty");
  if (options.argv[0][0] != '/') {
    return bad(absl::StrCat("the program '", options.argv[0],
                            "' must be an absolute path (no PATH search)"));
  }
  for (const auto& [name, value] : options.environment) {
    if (!ValidVariableName(name)) return bad(absl::StrCat("'", name, "' is not a variable name"));
    if (absl::StartsWith(name, kReservedPrefix)) {
      return bad(absl::StrCat("variable ", name, ": CERTFLEET_* variables are set by certfleet"));
    }
  }
  if (options.timeout <= absl::ZeroDuration()) return bad("timeout must be positive");
  if (options.max_output_bytes == 0) return bad("max_output_bytes must be positive");
  struct stat st {};
  if (::stat(options.argv[0].c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::access(options.argv[0].c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "command issuer '", options.name, "': ", options.argv[0], " is not an executable file"));
  }
  return std::unique_ptr<CommandIssuer>(new CommandIssuer(std::move(options), deps));
}

absl::StatusOr<IssuanceResult> CommandIssuer::Submit(const IssuanceRequest& request) {
  return Run(request, "SUBMIT");
}

absl::StatusOr<IssuanceResult> CommandIssuer::Poll(const IssuanceRequest& request) {
  if (request.cookie.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("issuer '", options_.name, "': Poll needs the cookie of a pending answer"));
  }
  return Run(request, "POLL");
}

absl::StatusOr<IssuanceResult> CommandIssuer::Run(const IssuanceRequest& request,
                                                  absl::string_view operation) {
  const std::string& name = options_.name;
  SubprocessSpec spec;
  spec.argv = options_.argv;
  spec.stdin_data = request.csr_pem;
  spec.timeout = options_.timeout;
  spec.max_output_bytes = options_.max_output_bytes;
  const char* path = ::getenv("PATH");
  const char* tmpdir = ::getenv("TMPDIR");
  if (options_.environment.count("PATH") == 0) {
    spec.env.push_back(absl::StrCat("PATH=", path != nullptr ? path : kDefaultPath));
  }
  if (tmpdir != nullptr && options_.environment.count("TMPDIR") == 0) {
    spec.env.push_back(absl::StrCat("TMPDIR=", tmpdir));
  }
  for (const auto& [key, value] : options_.environment) {
    spec.env.push_back(absl::StrCat(key, "=", value));
  }
  const int64_t days = std::max<int64_t>(1, absl::ToInt64Hours(request.profile.validity) / 24);
  spec.env.push_back(absl::StrCat("CERTFLEET_OPERATION=", operation));
  spec.env.push_back(absl::StrCat("CERTFLEET_RENEWAL_ID=", request.renewal_id));
  spec.env.push_back(absl::StrCat("CERTFLEET_AGENT_ID=", request.agent_id));
  spec.env.push_back(absl::StrCat("CERTFLEET_FQDN=", request.fqdn));
  spec.env.push_back(absl::StrCat("CERTFLEET_PROFILE=", request.profile.name));
  spec.env.push_back(absl::StrCat("CERTFLEET_TEMPLATE=", request.profile.template_name));
  spec.env.push_back(absl::StrCat("CERTFLEET_VALIDITY_DAYS=", days));
  spec.env.push_back(absl::StrCat("CERTFLEET_SIGNATURE_HASH=", request.profile.signature_hash));
  if (operation == "POLL") spec.env.push_back(absl::StrCat("CERTFLEET_COOKIE=", request.cookie));

  common::LogInfo("issuer ", name, ": ", operation, " for renewal ", request.renewal_id, " (",
                  request.fqdn, "): running ", spec.argv[0]);
  CF_ASSIGN_OR_RETURN(SubprocessResult run, RunSubprocess(spec), "issuer '", name, "'");

  IssuanceResult result;
  switch (run.end) {
    case SubprocessResult::End::kTimedOut:
      common::LogWarning("issuer ", name, ": ", spec.argv[0], " timed out after ",
                         absl::FormatDuration(options_.timeout), "; its process group was killed");
      result.kind = IssuanceResult::Kind::kRetryLater;
      result.reason = WithStderr(
          absl::StrCat(spec.argv[0], " timed out after ", absl::FormatDuration(options_.timeout)),
          run);
      result.retry_after = options_.retry_after;
      return result;
    case SubprocessResult::End::kOutputTooLarge:
      return absl::FailedPreconditionError(
          absl::StrCat("issuer '", name, "': ", spec.argv[0], " wrote more than ",
                       options_.max_output_bytes, " bytes of output and was killed"));
    case SubprocessResult::End::kSignaled:
      common::LogWarning("issuer ", name, ": ", spec.argv[0], " was terminated by signal ",
                         run.signal);
      result.kind = IssuanceResult::Kind::kRetryLater;
      result.reason =
          WithStderr(absl::StrCat(spec.argv[0], " was terminated by signal ", run.signal), run);
      result.retry_after = options_.retry_after;
      return result;
    case SubprocessResult::End::kExited:
      break;
  }
  common::LogInfo("issuer ", name, ": ", spec.argv[0], " exited with status ", run.exit_code,
                  " for renewal ", request.renewal_id);

  switch (run.exit_code) {
    case kExitIssued: {
      absl::StatusOr<std::string> chain = renewal::CheckIssuedChain(
          run.out, request.csr_pem, request.fqdn, request.profile, deps_.clock.Now());
      if (!chain.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "issuer '", name, "': ", spec.argv[0],
            " reported a certificate certfleet cannot use: ", chain.status().message()));
      }
      result.kind = IssuanceResult::Kind::kIssued;
      result.chain_pem = *std::move(chain);
      return result;
    }
    case kExitPending:
    case kExitPendingWithDelay: {
      absl::string_view cookie = run.out;
      result.retry_after = options_.poll_interval;
      if (run.exit_code == kExitPendingWithDelay) {
        std::pair<absl::string_view, absl::string_view> lines =
            absl::StrSplit(run.out, absl::MaxSplits('\n', 1));
        int64_t seconds = 0;
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(lines.first), &seconds) || seconds < 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("issuer '", name, "': ", spec.argv[0],
                           " exited with 5 (pending with a delay) but its first line is not a "
                           "number of seconds"));
        }
        result.retry_after = absl::Seconds(std::min(seconds, kMaxDelaySeconds));
        cookie = lines.second;
      }
      cookie = absl::StripAsciiWhitespace(cookie);
      if (cookie.empty()) {
        return absl::FailedPreconditionError(absl::StrCat("issuer '", name, "': ", spec.argv[0],
                                                          " exited with ", run.exit_code,
                                                          " (pending) without a cookie on stdout"));
      }
      result.kind = IssuanceResult::Kind::kPending;
      result.cookie = std::string(cookie);
      return result;
    }
    case kExitRejected:
      result.kind = IssuanceResult::Kind::kRejected;
      result.reason = Reason(run);
      if (result.reason.empty()) result.reason = absl::StrCat("rejected by ", spec.argv[0]);
      return result;
    case kExitUnreachable:
      result.kind = IssuanceResult::Kind::kRetryLater;
      result.reason = Reason(run);
      if (result.reason.empty()) result.reason = "the CA is unreachable";
      result.retry_after = options_.retry_after;
      return result;
    case kExitUnconfigured:
      return absl::FailedPreconditionError(
          absl::StrCat("issuer '", name, "' is not configured",
                       Reason(run).empty() ? "" : absl::StrCat(": ", Reason(run))));
    default:
      return absl::FailedPreconditionError(
          WithStderr(absl::StrCat("issuer '", name, "': ", spec.argv[0], " exited with status ",
                                  run.exit_code, ", which the issuer contract does not define"),
                     run));
  }
}

}  // namespace certfleet::controller::ca
