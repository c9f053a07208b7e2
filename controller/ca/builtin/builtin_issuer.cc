#include "controller/ca/builtin/builtin_issuer.h"

#include <openssl/err.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/issue.h"
#include "common/crypto/parse.h"
#include "common/logging/log.h"
#include "common/model/profile.h"
#include "common/status/status_macros.h"
#include "controller/renewal/csr_policy.h"

namespace certfleet::controller::ca {
namespace {

using common::crypto::EvpPkeyPtr;
using common::crypto::X509Ptr;

constexpr size_t kSerialBytes = 16;
// A random serial may, with negligible probability, repeat one already recorded; the store
// refuses it (AlreadyExists) and we sign again with a new one.
constexpr int kSerialAttempts = 3;

std::string RandomSerial() {
  std::string serial = common::crypto::RandomBytes(kSerialBytes);
  serial[0] = static_cast<char>((serial[0] & 0x7F) | 0x40);
  return serial;
}

// Releases a renewal id held in an in-flight set when it goes out of scope.
class InFlight {
 public:
  InFlight(absl::Mutex& mu, absl::flat_hash_set<std::string>& set, std::string id)
      : mu_(mu), set_(set), id_(std::move(id)) {
    absl::MutexLock lock(&mu_);
    auto free = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !set_.contains(id_); };
    mu_.Await(absl::Condition(&free));
    set_.insert(id_);
  }
  ~InFlight() {
    absl::MutexLock lock(&mu_);
    set_.erase(id_);
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  absl::Mutex& mu_;
  absl::flat_hash_set<std::string>& set_;
  std::string id_;
};

}  // namespace

absl::StatusOr<IssuanceResult> BuiltinIssuer::Submit(const IssuanceRequest& request) {
  return Issue(request, kName);
}

absl::StatusOr<IssuanceResult> BuiltinIssuer::Poll(const IssuanceRequest& request) {
  return Issue(request, kName);
}

absl::StatusOr<IssuanceResult> BuiltinIssuer::Issue(const IssuanceRequest& request,
                                                    absl::string_view issuer_name) {
  if (request.renewal_id.empty()) {
    return absl::InvalidArgumentError("an issuance request needs a renewal id");
  }
  if (absl::Status valid = common::model::ValidateProfile(request.profile); !valid.ok()) {
    return absl::FailedPreconditionError(valid.message());
  }
  if (absl::Status policy = renewal::CheckCsr(request.csr_pem, request.fqdn, request.profile);
      !policy.ok()) {
    IssuanceResult rejected;
    rejected.kind = IssuanceResult::Kind::kRejected;
    rejected.reason = absl::StrCat("CSR refused by policy: ", policy.message());
    return rejected;
  }
  InFlight hold(mu_, in_flight_, request.renewal_id);
  return IssueOnce(request, issuer_name);
}

absl::StatusOr<IssuanceResult> BuiltinIssuer::IssueOnce(const IssuanceRequest& request,
                                                        absl::string_view issuer_name) {
  const absl::Time now = deps_.clock.Now();
  CF_ASSIGN_OR_RETURN(common::crypto::X509ReqPtr csr, common::crypto::CsrFromPem(request.csr_pem));
  CF_ASSIGN_OR_RETURN(common::crypto::CsrInfo csr_info, common::crypto::InspectCsr(csr.get()));
  EvpPkeyPtr key = common::crypto::CsrPublicKey(csr.get());
  if (key == nullptr) {
    return absl::InternalError(
        absl::StrCat("reading the CSR's public key: ", common::crypto::DrainOpenSslErrors()));
  }

  IssuanceResult issued;
  issued.kind = IssuanceResult::Kind::kIssued;

  // What this renewal already got for this key (a retry after a crash, a second Poll).
  CF_ASSIGN_OR_RETURN(std::vector<store::IssuanceRecord> recorded,
                      deps_.store.ListIssuances(request.renewal_id),
                      "listing the issuances of renewal ", request.renewal_id);
  for (auto it = recorded.rbegin(); it != recorded.rend(); ++it) {
    if (it->not_after <= now) continue;
    auto cert = common::crypto::CertificateFromPem(it->certificate_pem);
    if (!cert.ok()) {
      return absl::DataLossError(absl::StrCat("the recorded certificate ", it->serial,
                                              " of renewal ", request.renewal_id,
                                              " cannot be read: ", cert.status().message()));
    }
    const EVP_PKEY* recorded_key = X509_get0_pubkey(cert->get());
    const bool same_key = recorded_key != nullptr && EVP_PKEY_eq(recorded_key, key.get()) == 1;
    ERR_clear_error();
    if (same_key) {
      issued.chain_pem = it->certificate_pem + deps_.pki.IssuingChainPem();
      return issued;
    }
  }

  CF_ASSIGN_OR_RETURN(std::vector<X509Ptr> issuing_chain,
                      common::crypto::CertificatesFromPem(deps_.pki.IssuingChainPem()),
                      "the issuing CA");
  CF_ASSIGN_OR_RETURN(common::model::CertificateInfo issuing_info,
                      common::crypto::DescribeCertificate(issuing_chain.front().get(), false),
                      "the issuing CA");
  if (issuing_info.not_after <= now) {
    return absl::FailedPreconditionError(absl::StrCat("the controller's issuing CA expired at ",
                                                      absl::FormatTime(issuing_info.not_after),
                                                      "; it cannot sign"));
  }

  const common::model::CertificateProfile& profile = request.profile;
  common::crypto::CertificateSpec spec;
  spec.subject_cn = request.fqdn;
  spec.dns_names.push_back(request.fqdn);
  for (const std::string& name : csr_info.dns_names) {
    const bool seen =
        std::any_of(spec.dns_names.begin(), spec.dns_names.end(),
                    [&](const std::string& n) { return absl::EqualsIgnoreCase(n, name); });
    if (!seen) spec.dns_names.push_back(name);
  }
  spec.key_usage = profile.key_usage;
  spec.extended_key_usage = profile.extended_key_usage;
  spec.not_before = now - kBackdate;
  spec.not_after = std::min(spec.not_before + profile.validity, issuing_info.not_after);
  spec.signature_digest = profile.signature_hash;
  spec.template_name = profile.template_name;

  for (int attempt = 1;; ++attempt) {
    spec.serial = RandomSerial();
    CF_ASSIGN_OR_RETURN(X509Ptr cert, deps_.pki.Sign(spec, key.get()), "signing");
    CF_ASSIGN_OR_RETURN(common::model::CertificateInfo info,
                        common::crypto::DescribeCertificate(cert.get(), false),
                        "reading the signed certificate");
    store::IssuanceRecord record;
    record.serial = info.serial;
    record.issuer = std::string(issuer_name);
    record.renewal_id = request.renewal_id;
    record.agent_id = request.agent_id;
    record.fqdn = request.fqdn;
    record.thumbprint = info.thumbprint;
    record.not_before = info.not_before;
    record.not_after = info.not_after;
    record.issued_at = now;
    record.certificate_pem = common::crypto::CertificateToPem(cert.get());
    absl::Status stored = deps_.store.RecordIssuance(record);
    if (stored.code() == absl::StatusCode::kAlreadyExists && attempt < kSerialAttempts) {
      common::LogWarning("issuer ", issuer_name, ": serial ", record.serial,
                         " is already recorded; signing again with a new serial");
      continue;
    }
    CF_RETURN_IF_ERROR(stored, "recording the issuance of serial ", record.serial);
    common::LogInfo("issuer ", issuer_name, ": issued serial ", record.serial, " for ",
                    request.fqdn, " (renewal ", request.renewal_id, ", until ",
                    absl::FormatTime(record.not_after), ")");
    issued.chain_pem = record.certificate_pem + deps_.pki.IssuingChainPem();
    return issued;
  }
}

}  // namespace certfleet::controller::ca
