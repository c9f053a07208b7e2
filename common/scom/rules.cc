#include "common/scom/rules.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace certfleet::common::scom {
namespace {

bool HasEku(const model::CertificateInfo& info, absl::string_view oid) {
  return std::find(info.extended_key_usage.begin(), info.extended_key_usage.end(), oid) !=
         info.extended_key_usage.end();
}

bool WeakHash(absl::string_view hash) {
  // Anything SCOM's SHA-256 guidance does not cover is treated as weak, including "".
  return !(hash == "SHA256" || hash == "SHA384" || hash == "SHA512");
}

}  // namespace

std::string NameForMatch(const model::CertificateInfo& info) {
  if (!info.dns_names.empty()) return info.dns_names.front();
  return info.subject_cn;
}

bool SubjectMatches(const model::CertificateInfo& info, absl::string_view fqdn) {
  std::string name = NameForMatch(info);
  return !name.empty() && absl::EqualsIgnoreCase(name, fqdn);
}

std::vector<model::Problem> Evaluate(const model::CertificateInfo& info,
                                     const EvaluationOptions& options) {
  using model::Problem;
  std::vector<Problem> problems;
  if (options.now > info.not_after) {  // RFC 5280: valid through notAfter inclusive
    problems.push_back(Problem::kExpired);
  } else if (options.now < info.not_before) {
    problems.push_back(Problem::kNotYetValid);
  } else if (info.not_after - options.now < options.warn_within) {
    problems.push_back(Problem::kExpiresSoon);
  }
  if (info.key_algorithm != "RSA") {
    problems.push_back(Problem::kKeyNotRsa);
  } else if (info.key_bits < 2048) {
    problems.push_back(Problem::kKeyTooSmall);
  }
  if (WeakHash(info.signature_hash)) problems.push_back(Problem::kWeakSignatureHash);
  // SCOM needs both purposes named explicitly; a certificate without the extension does not
  // name them (the HealthService logs 20050 for it).
  if (!HasEku(info, model::kServerAuthOid)) problems.push_back(Problem::kMissingServerAuthEku);
  if (!HasEku(info, model::kClientAuthOid)) problems.push_back(Problem::kMissingClientAuthEku);
  constexpr uint32_t kNeeded = model::kDigitalSignature | model::kKeyEncipherment;
  if (info.has_key_usage && (info.key_usage & kNeeded) != kNeeded) {
    problems.push_back(Problem::kMissingKeyUsage);
  }
  if (options.fqdn.has_value() && !SubjectMatches(info, *options.fqdn)) {
    problems.push_back(Problem::kSubjectMismatch);
  }
  if (options.require_private_key && !info.has_private_key) {
    problems.push_back(Problem::kNoPrivateKey);
  }
  if (options.chain_trusted.has_value() && !*options.chain_trusted) {
    problems.push_back(Problem::kChainUntrusted);
  }
  if (info.is_ca) problems.push_back(Problem::kIsCa);
  return problems;
}

std::vector<std::string> ProblemNames(const std::vector<model::Problem>& problems) {
  std::vector<std::string> names;
  names.reserve(problems.size());
  for (model::Problem p : problems) names.emplace_back(model::ProblemName(p));
  return names;
}

}  // namespace certfleet::common::scom
