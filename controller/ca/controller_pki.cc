#include "controller/ca/controller_pki.h"

#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/issue.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::ca {
namespace {

using common::crypto::CertificateSpec;
using common::crypto::EvpPkeyPtr;
using common::crypto::X509Ptr;

constexpr absl::Duration kDay = absl::Hours(24);

bool LooksLikeIp(absl::string_view name) {
  if (name.find(':') != absl::string_view::npos) return true;
  return !name.empty() && std::all_of(name.begin(), name.end(),
                                      [](char c) { return absl::ascii_isdigit(c) || c == '.'; });
}

std::string HostName() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

absl::StatusOr<std::pair<X509Ptr, EvpPkeyPtr>> LoadPair(const std::string& cert_path,
                                                        const std::string& key_path) {
  CF_ASSIGN_OR_RETURN(std::string cert_pem, common::ReadFileToString(cert_path));
  CF_ASSIGN_OR_RETURN(std::string key_pem, common::ReadFileToString(key_path));
  auto cert = common::crypto::CertificateFromPem(cert_pem);
  if (!cert.ok()) {
    return absl::DataLossError(absl::StrCat(cert_path, " is corrupt: ", cert.status().message()));
  }
  auto key = common::crypto::PrivateKeyFromPem(key_pem);
  if (!key.ok()) {
    return absl::DataLossError(absl::StrCat(key_path, " is corrupt (not a private key)"));
  }
  if (!common::crypto::KeyMatchesCertificate(key->get(), cert->get())) {
    return absl::DataLossError(
        absl::StrCat(key_path, " does not hold the private key of ", cert_path));
  }
  return std::make_pair(std::move(*cert), std::move(*key));
}

}  // namespace

ControllerPki::ControllerPki(ControllerPkiOptions options, common::Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

absl::StatusOr<std::unique_ptr<ControllerPki>> ControllerPki::LoadOrCreate(
    const ControllerPkiOptions& options, common::Clock& clock) {
  auto pki = std::unique_ptr<ControllerPki>(new ControllerPki(options, clock));
  CF_RETURN_IF_ERROR(pki->Load());
  return pki;
}

absl::Status ControllerPki::Load() {
  const std::string ca_dir = options_.state_dir + "/ca";
  CF_RETURN_IF_ERROR(common::MakeDirectories(ca_dir, 0700));
  const std::string root_cert = ca_dir + "/root.pem", root_key = ca_dir + "/root.key";
  const std::string iss_cert = ca_dir + "/issuing.pem", iss_key = ca_dir + "/issuing.key";
  const absl::Time now = clock_.Now();

  if (!common::FileExists(root_cert)) {
    common::LogInfo("creating the controller's root and issuing CAs in ", ca_dir);
    CF_ASSIGN_OR_RETURN(EvpPkeyPtr rk, common::crypto::GenerateRsaKey(3072));
    CertificateSpec rs;
    rs.subject_cn = "certfleet Root CA";
    rs.subject_o = "certfleet";
    rs.is_ca = true;
    rs.key_usage = common::model::kKeyCertSign | common::model::kCrlSign;
    rs.not_before = now - absl::Hours(1);
    rs.not_after = now + 10 * 365 * kDay;
    CF_ASSIGN_OR_RETURN(X509Ptr root,
                        common::crypto::IssueCertificate(rs, rk.get(), nullptr, rk.get()));
    CF_ASSIGN_OR_RETURN(EvpPkeyPtr ik, common::crypto::GenerateRsaKey(3072));
    CertificateSpec is = rs;
    is.subject_cn = "certfleet Issuing CA";
    is.path_len = 0;
    is.not_after = now + 5 * 365 * kDay;
    CF_ASSIGN_OR_RETURN(X509Ptr issuing,
                        common::crypto::IssueCertificate(is, ik.get(), root.get(), rk.get()));
    // Keys first: a certificate without its key on disk would be unusable.
    CF_RETURN_IF_ERROR(
        common::WriteFileAtomically(root_key, common::crypto::PrivateKeyToPem(rk.get()), 0600));
    CF_RETURN_IF_ERROR(
        common::WriteFileAtomically(iss_key, common::crypto::PrivateKeyToPem(ik.get()), 0600));
    CF_RETURN_IF_ERROR(common::WriteFileAtomically(
        iss_cert, common::crypto::CertificateToPem(issuing.get()), 0644));
    CF_RETURN_IF_ERROR(
        common::WriteFileAtomically(root_cert, common::crypto::CertificateToPem(root.get()), 0644));
  }
  CF_ASSIGN_OR_RETURN(auto root_pair, LoadPair(root_cert, root_key));
  CF_ASSIGN_OR_RETURN(auto iss_pair, LoadPair(iss_cert, iss_key));
  root_ = std::move(root_pair.first);
  issuing_ = std::move(iss_pair.first);
  issuing_key_ = std::move(iss_pair.second);
  if (X509_check_issued(root_.get(), issuing_.get()) != X509_V_OK) {
    return absl::DataLossError(absl::StrCat(iss_cert, " was not issued by ", root_cert));
  }
  root_pem_ = common::crypto::CertificateToPem(root_.get());
  issuing_pem_ = common::crypto::CertificateToPem(issuing_.get());
  root_pin_ = common::crypto::Sha256Hex(common::crypto::CertificateToDer(root_.get()));

  CF_RETURN_IF_ERROR(EnsureServerCertificate());

  const std::string admin_dir = options_.state_dir + "/admin";
  if (!common::FileExists(admin_dir + "/client.key")) {
    CF_ASSIGN_OR_RETURN(IssuedCredential admin,
                        IssueOperator(common::model::Role::kAdmin, "admin"));
    CF_RETURN_IF_ERROR(WriteCredentialDir(admin_dir, admin));
    common::LogInfo("wrote admin credentials for certfleetctl to ", admin_dir);
  }
  return absl::OkStatus();
}

absl::Status ControllerPki::EnsureServerCertificate() {
  const std::string tls_dir = options_.state_dir + "/tls";
  CF_RETURN_IF_ERROR(common::MakeDirectories(tls_dir, 0700));
  const std::string cert_path = tls_dir + "/server.pem", key_path = tls_dir + "/server.key";
  const absl::Time now = clock_.Now();

  std::vector<std::string> dns = {"localhost"};
  std::vector<std::string> ips = {"127.0.0.1", "::1"};
  std::string host = HostName();
  if (!host.empty() && host != "localhost") dns.push_back(host);
  for (const auto& n : options_.server_names) {
    auto& list = LooksLikeIp(n) ? ips : dns;
    if (std::find(list.begin(), list.end(), n) == list.end()) list.push_back(n);
  }

  bool reissue = !common::FileExists(cert_path) || !common::FileExists(key_path);
  if (!reissue) {
    auto pair = LoadPair(cert_path, key_path);
    if (!pair.ok()) return pair.status();
    auto info = common::crypto::DescribeCertificate(pair->first.get(), true);
    if (!info.ok()) return absl::DataLossError(absl::StrCat(cert_path, " is corrupt"));
    for (const auto& n : dns) {
      if (std::find(info->dns_names.begin(), info->dns_names.end(), n) == info->dns_names.end()) {
        reissue = true;
      }
    }
    if (info->not_after - now < 30 * kDay) reissue = true;
    if (X509_check_issued(issuing_.get(), pair->first.get()) != X509_V_OK) reissue = true;
    // IP addresses are compared by a fresh issue; cheap enough, and rare.
    if (!reissue) {
      for (const auto& ip : ips) {
        if (X509_check_ip_asc(pair->first.get(), ip.c_str(), 0) != 1) reissue = true;
      }
    }
    if (!reissue) {
      server_key_pem_ = common::crypto::PrivateKeyToPem(pair->second.get());
    }
  }
  if (reissue) {
    common::LogInfo("issuing the controller's TLS server certificate");
    CF_ASSIGN_OR_RETURN(EvpPkeyPtr key, common::crypto::GenerateEcKey());
    CertificateSpec spec;
    spec.subject_cn = dns.size() > 1 ? dns[1] : dns[0];
    spec.subject_o = "certfleet";
    spec.dns_names = dns;
    spec.ip_addresses = ips;
    spec.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
    spec.extended_key_usage = {std::string(common::model::kServerAuthOid)};
    spec.not_before = now - absl::Hours(1);
    spec.not_after = now + 365 * kDay;
    CF_ASSIGN_OR_RETURN(X509Ptr cert, common::crypto::IssueCertificate(
                                          spec, key.get(), issuing_.get(), issuing_key_.get()));
    server_key_pem_ = common::crypto::PrivateKeyToPem(key.get());
    CF_RETURN_IF_ERROR(common::WriteFileAtomically(key_path, server_key_pem_, 0600));
    CF_RETURN_IF_ERROR(
        common::WriteFileAtomically(cert_path, common::crypto::CertificateToPem(cert.get()), 0644));
  }
  CF_ASSIGN_OR_RETURN(std::string leaf_pem, common::ReadFileToString(cert_path));
  CF_ASSIGN_OR_RETURN(X509Ptr leaf, common::crypto::CertificateFromPem(leaf_pem));
  server_chain_pem_ = common::crypto::CertificateToPem(leaf.get()) + issuing_pem_ + root_pem_;
  return absl::OkStatus();
}

absl::StatusOr<IssuedCredential> ControllerPki::IssueAgentIdentity(absl::string_view csr_pem,
                                                                   absl::string_view agent_id,
                                                                   absl::string_view fqdn) {
  CF_ASSIGN_OR_RETURN(auto csr, common::crypto::CsrFromPem(csr_pem), "agent CSR");
  CF_ASSIGN_OR_RETURN(common::crypto::CsrInfo info, common::crypto::InspectCsr(csr.get()),
                      "agent CSR");
  if (info.key_algorithm == "RSA" ? info.key_bits < 2048
                                  : (info.key_algorithm != "EC" || info.key_bits < 256)) {
    return absl::InvalidArgumentError(absl::StrCat("agent CSR key ", info.key_algorithm, " ",
                                                   info.key_bits,
                                                   " is too weak (RSA >= 2048 or EC P-256)"));
  }
  EvpPkeyPtr pub = common::crypto::CsrPublicKey(csr.get());
  const absl::Time now = clock_.Now();
  CertificateSpec spec;
  spec.subject_cn = std::string(fqdn);
  spec.subject_o = "certfleet agents";
  spec.uris = {common::model::AgentIdentityUri(agent_id)};
  spec.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  spec.extended_key_usage = {std::string(common::model::kClientAuthOid)};
  // Backdated for clock skew, by a tenth of the lifetime at most: the agent renews at about half
  // the validity period, which a long backdate would distort for short (test) lifetimes.
  spec.not_before = now - std::min(absl::Minutes(5), options_.agent_identity_lifetime / 10);
  spec.not_after = now + options_.agent_identity_lifetime;
  CF_ASSIGN_OR_RETURN(X509Ptr cert, common::crypto::IssueCertificate(
                                        spec, pub.get(), issuing_.get(), issuing_key_.get()));
  IssuedCredential out;
  out.chain_pem = common::crypto::CertificateToPem(cert.get()) + issuing_pem_;
  CF_ASSIGN_OR_RETURN(auto described, common::crypto::DescribeCertificate(cert.get(), false));
  out.serial = described.serial;
  out.not_after = spec.not_after;
  return out;
}

absl::StatusOr<IssuedCredential> ControllerPki::IssueOperator(common::model::Role role,
                                                              absl::string_view name) {
  if (!common::model::ParseIdentityUri(common::model::OperatorIdentityUri(role, name))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "operator name '", name, "' must be 1-253 characters of letters, digits, - _ . @"));
  }
  CF_ASSIGN_OR_RETURN(EvpPkeyPtr key, common::crypto::GenerateEcKey());
  const absl::Time now = clock_.Now();
  CertificateSpec spec;
  spec.subject_cn = std::string(name);
  spec.subject_o = absl::StrCat("certfleet operators (", common::model::RoleName(role), ")");
  spec.uris = {common::model::OperatorIdentityUri(role, name)};
  spec.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  spec.extended_key_usage = {std::string(common::model::kClientAuthOid)};
  spec.not_before = now - absl::Minutes(5);
  spec.not_after = now + options_.operator_lifetime;
  CF_ASSIGN_OR_RETURN(X509Ptr cert, common::crypto::IssueCertificate(
                                        spec, key.get(), issuing_.get(), issuing_key_.get()));
  IssuedCredential out;
  out.chain_pem = common::crypto::CertificateToPem(cert.get()) + issuing_pem_;
  out.key_pem = common::crypto::PrivateKeyToPem(key.get());
  out.not_after = spec.not_after;
  return out;
}

absl::StatusOr<X509Ptr> ControllerPki::Sign(const CertificateSpec& spec,
                                            EVP_PKEY* subject_public_key) {
  return common::crypto::IssueCertificate(spec, subject_public_key, issuing_.get(),
                                          issuing_key_.get());
}

absl::Status ControllerPki::WriteCredentialDir(const std::string& dir,
                                               const IssuedCredential& credential) {
  CF_RETURN_IF_ERROR(common::MakeDirectories(dir, 0700));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/client.key", credential.key_pem, 0600));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/client.pem", credential.chain_pem, 0644));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/ca.pem", root_pem_, 0644));
  return absl::OkStatus();
}

}  // namespace certfleet::controller::ca
