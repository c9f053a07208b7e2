#pragma once

// An issuer that runs a program: `openssl ca`, easy-rsa, or a bridge to `certreq -submit` on a
// Windows host for AD CS. The contract is certmonger's for CA helpers, with certfleet's
// variables (docs/issuers.md):
//
//   argv: as configured (never through a shell); stdin: the CSR (PEM); environment: PATH (and
//   TMPDIR when set) of the controller, the configured variables, and
//     CERTFLEET_OPERATION      SUBMIT or POLL
//     CERTFLEET_RENEWAL_ID     the renewal job (stable across SUBMIT and POLL)
//     CERTFLEET_AGENT_ID       the agent
//     CERTFLEET_FQDN           the host's registered FQDN
//     CERTFLEET_PROFILE        the profile's name
//     CERTFLEET_TEMPLATE       the profile's AD CS template name ("" when none)
//     CERTFLEET_VALIDITY_DAYS  the profile's validity in whole days (at least 1)
//     CERTFLEET_SIGNATURE_HASH the profile's hash: SHA256, SHA384 or SHA512
//     CERTFLEET_COOKIE         POLL only: the cookie of the previous pending answer
//   exit status and stdout:
//     0  issued: the PEM chain, leaf first (the leaf is found by its key if it is not first)
//     1  pending: stdout is the cookie (not empty)
//     2  rejected: stdout (else stderr) is the reason
//     3  the CA is unreachable: retry later; stdout (else stderr) says why
//     4  the helper is not configured: an error (FailedPrecondition)
//     5  pending with a delay: the first stdout line is the delay in seconds, the rest the cookie
//
//   CommandIssuerOptions options;
//   options.name = "openssl-ca";
//   options.argv = {"/usr/share/certfleet/issuers/openssl-ca/openssl-ca-issue.sh",
//                   "/var/lib/certfleet/openssl-ca"};
//   CF_ASSIGN_OR_RETURN(auto issuer, CommandIssuer::Create(std::move(options), {.clock = clock}));

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/ca/issuer.h"

namespace certfleet::controller::ca {

struct CommandIssuerOptions {
  // The issuer's name (Issuer::Name); not "builtin" or "manual".
  std::string name;
  // The program (absolute path) and its arguments.
  std::vector<std::string> argv;
  // Variables added to the program's environment (a CA directory, a passphrase file...). Names
  // are [A-Za-z_][A-Za-z0-9_]*, not CERTFLEET_*. Values may be secrets: they are never logged
  // and never appear in a status message.
  std::map<std::string, std::string> environment;
  // A run still going after this is killed (its whole process group): retry later.
  absl::Duration timeout = absl::Seconds(60);
  // Cap of stdout and of stderr each; a program that writes more is killed: an error.
  size_t max_output_bytes = size_t{1} << 20;
  // retry_after of a pending answer without a delay (exit 1).
  absl::Duration poll_interval = absl::Minutes(5);
  // retry_after of an unreachable CA (exit 3), a timeout, or a program killed by a signal.
  absl::Duration retry_after = absl::Minutes(5);
};

struct CommandIssuerDeps {
  // "Currently valid" of an issued certificate.
  common::Clock& clock;
};

// Thread-safe: each call runs its own process. Calls block for up to options.timeout: run them
// on an executor.
class CommandIssuer final : public Issuer {
 public:
  // InvalidArgument naming the field: an empty or reserved name, no argv, a relative program
  // path, a reserved or malformed variable name, a timeout or cap that is not positive.
  // FailedPrecondition when argv[0] is not an executable file.
  static absl::StatusOr<std::unique_ptr<CommandIssuer>> Create(CommandIssuerOptions options,
                                                               CommandIssuerDeps deps);

  std::string Name() const override { return options_.name; }

  // Runs the program with CERTFLEET_OPERATION=SUBMIT and maps its answer (the header comment).
  // An issued chain must parse, and its leaf must pass controller/renewal/csr_policy.h
  // CheckIssuedChain for the request (the CSR's key, the host's own names, the profile's
  // KeyUsage and ExtendedKeyUsage, valid now). Results: kIssued, kPending (retry_after = the
  // delay of exit 5, else options.poll_interval), kRejected, kRetryLater (exit 3, "timed out
  // after ...", "terminated by signal N"; retry_after = options.retry_after). Errors, all
  // FailedPrecondition (the helper or the CA it drives needs an operator): exit 4; an exit
  // status outside 0..5; an unusable issued chain; a pending answer without a cookie or with a
  // malformed delay; more output than the cap; a program that cannot be started. Reasons and
  // messages carry the program's trimmed stderr (its last 2000 characters).
  absl::StatusOr<IssuanceResult> Submit(const IssuanceRequest& request) override;

  // The same with CERTFLEET_OPERATION=POLL and CERTFLEET_COOKIE = request.cookie
  // (InvalidArgument when it is empty).
  absl::StatusOr<IssuanceResult> Poll(const IssuanceRequest& request) override;

 private:
  CommandIssuer(CommandIssuerOptions options, CommandIssuerDeps deps)
      : options_(std::move(options)), deps_(deps) {}

  absl::StatusOr<IssuanceResult> Run(const IssuanceRequest& request, absl::string_view operation);

  CommandIssuerOptions options_;
  CommandIssuerDeps deps_;
};

}  // namespace certfleet::controller::ca
