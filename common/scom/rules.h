#pragma once

// SCOM's rules for a usable authentication certificate (../shared/SCOM.md, "What a usable
// certificate is"), as problem codes.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/certificate.h"

namespace certfleet::common::scom {

struct EvaluationOptions {
  absl::Time now;
  // EXPIRES_SOON when the certificate ends within this long of `now`.
  absl::Duration warn_within = absl::Hours(24 * 30);
  // SUBJECT_MISMATCH is judged only when set.
  std::optional<std::string> fqdn;
  // CHAIN_UNTRUSTED is judged only when set (the caller verified the chain).
  std::optional<bool> chain_trusted;
  // NO_PRIVATE_KEY is judged only when true (inspect of a bare certificate file does not
  // judge it; a host store does).
  bool require_private_key = true;
};

// The name SCOM compares with the computer's FQDN: the first SAN DNS name if there is one,
// else the subject CN.
std::string NameForMatch(const model::CertificateInfo& info);

// True when NameForMatch(info) equals `fqdn`, ignoring ASCII case.
bool SubjectMatches(const model::CertificateInfo& info, absl::string_view fqdn);

// Every problem of `info`, in model::Problem declaration order. Empty = compliant.
// - EXPIRED / NOT_YET_VALID / EXPIRES_SOON against options.now
// - KEY_NOT_RSA, KEY_TOO_SMALL (< 2048 bits)
// - WEAK_SIGNATURE_HASH (MD5, SHA1 or unknown)
// - MISSING_SERVER_AUTH_EKU / MISSING_CLIENT_AUTH_EKU
// - MISSING_KEY_USAGE: no digitalSignature or no keyEncipherment (an absent extension allows
//   every usage, so it is not a problem)
// - SUBJECT_MISMATCH, NO_PRIVATE_KEY, CHAIN_UNTRUSTED as the options say
// - IS_CA: a CA certificate is not an authentication certificate
std::vector<model::Problem> Evaluate(const model::CertificateInfo& info,
                                     const EvaluationOptions& options);

// The problem names of `problems` ("EXPIRED", ...).
std::vector<std::string> ProblemNames(const std::vector<model::Problem>& problems);

}  // namespace certfleet::common::scom
