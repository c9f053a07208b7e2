#include "controller/rpc/peer_identity.h"

#include <string>

#include "common/crypto/describe.h"
#include "common/crypto/parse.h"

namespace certfleet::controller::rpc {

absl::StatusOr<common::model::PeerIdentity> PeerIdentityOf(const grpc::ServerContextBase& context) {
  auto auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError(
        "a client certificate issued by this controller is required for this call");
  }
  auto pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) {
    return absl::UnauthenticatedError("the client presented no certificate");
  }
  auto cert =
      common::crypto::CertificateFromPem(std::string(pem.front().data(), pem.front().size()));
  if (!cert.ok()) return absl::UnauthenticatedError("the client certificate cannot be read");
  auto info = common::crypto::DescribeCertificate(cert->get(), false);
  if (!info.ok()) return absl::UnauthenticatedError("the client certificate cannot be read");
  for (const auto& uri : info->uris) {
    if (auto id = common::model::ParseIdentityUri(uri)) return *id;
  }
  return absl::UnauthenticatedError("the client certificate carries no certfleet identity");
}

}  // namespace certfleet::controller::rpc
