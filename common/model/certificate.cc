#include "common/model/certificate.h"

#include <utility>

namespace certfleet::common::model {
namespace {

constexpr std::pair<Problem, absl::string_view> kProblemNames[] = {
    {Problem::kExpired, "EXPIRED"},
    {Problem::kNotYetValid, "NOT_YET_VALID"},
    {Problem::kExpiresSoon, "EXPIRES_SOON"},
    {Problem::kKeyNotRsa, "KEY_NOT_RSA"},
    {Problem::kKeyTooSmall, "KEY_TOO_SMALL"},
    {Problem::kWeakSignatureHash, "WEAK_SIGNATURE_HASH"},
    {Problem::kMissingServerAuthEku, "MISSING_SERVER_AUTH_EKU"},
    {Problem::kMissingClientAuthEku, "MISSING_CLIENT_AUTH_EKU"},
    {Problem::kMissingKeyUsage, "MISSING_KEY_USAGE"},
    {Problem::kSubjectMismatch, "SUBJECT_MISMATCH"},
    {Problem::kNoPrivateKey, "NO_PRIVATE_KEY"},
    {Problem::kChainUntrusted, "CHAIN_UNTRUSTED"},
    {Problem::kIsCa, "IS_CA"},
};

constexpr std::pair<Drift, absl::string_view> kDriftNames[] = {
    {Drift::kBindingNotFound, "BINDING_NOT_FOUND"},
    {Drift::kBoundWithoutPrivateKey, "BOUND_WITHOUT_PRIVATE_KEY"},
    {Drift::kRenewedNotActive, "RENEWED_NOT_ACTIVE"},
    {Drift::kNotBound, "NOT_BOUND"},
};

constexpr std::pair<uint32_t, absl::string_view> kKeyUsageNames[] = {
    {kDigitalSignature, "digitalSignature"},
    {kNonRepudiation, "nonRepudiation"},
    {kKeyEncipherment, "keyEncipherment"},
    {kDataEncipherment, "dataEncipherment"},
    {kKeyAgreement, "keyAgreement"},
    {kKeyCertSign, "keyCertSign"},
    {kCrlSign, "cRLSign"},
};

}  // namespace

absl::string_view ProblemName(Problem problem) {
  for (const auto& [p, name] : kProblemNames) {
    if (p == problem) return name;
  }
  return "UNKNOWN";
}

std::optional<Problem> ProblemFromName(absl::string_view name) {
  for (const auto& [p, n] : kProblemNames) {
    if (n == name) return p;
  }
  return std::nullopt;
}

const std::vector<Problem>& AllProblems() {
  static const auto* all = [] {
    auto* v = new std::vector<Problem>();
    for (const auto& [p, name] : kProblemNames) v->push_back(p);
    return v;
  }();
  return *all;
}

absl::string_view DriftName(Drift drift) {
  for (const auto& [d, name] : kDriftNames) {
    if (d == drift) return name;
  }
  return "UNKNOWN";
}

std::optional<Drift> DriftFromName(absl::string_view name) {
  for (const auto& [d, n] : kDriftNames) {
    if (n == name) return d;
  }
  return std::nullopt;
}

bool IsThumbprint(absl::string_view text) {
  if (text.size() != 40) return false;
  for (char c : text) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

std::vector<std::string> KeyUsageNames(uint32_t key_usage) {
  std::vector<std::string> out;
  for (const auto& [bit, name] : kKeyUsageNames) {
    if (key_usage & bit) out.emplace_back(name);
  }
  return out;
}

}  // namespace certfleet::common::model

namespace certfleet::common::model {

std::optional<uint32_t> KeyUsageFromNames(const std::vector<std::string>& names) {
  uint32_t bits = 0;
  for (const auto& n : names) {
    bool found = false;
    for (const auto& [bit, name] : kKeyUsageNames) {
      if (name == n) {
        bits |= bit;
        found = true;
      }
    }
    if (!found) return std::nullopt;
  }
  return bits;
}

}  // namespace certfleet::common::model
