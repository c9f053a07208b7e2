#pragma once

// The controller's own PKI: a root CA, an issuing CA, the TLS server certificate and the
// identities it hands to agents and operators. Created on the first start in an empty state
// directory, reused afterwards:
//
//   DIR/ca/root.pem  root.key  issuing.pem  issuing.key      (keys 0600, directory 0700)
//   DIR/tls/server.pem (leaf, issuing, root)  server.key
//   DIR/admin/ca.pem  client.pem  client.key                   (certfleetctl credentials)

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/issue.h"
#include "common/crypto/openssl_types.h"
#include "common/model/identity.h"
#include "common/time/clock.h"

namespace certfleet::controller::ca {

struct ControllerPkiOptions {
  std::string state_dir;
  // DNS names and IP addresses the server certificate must carry, besides localhost,
  // 127.0.0.1, ::1 and the machine's host name.
  std::vector<std::string> server_names;
  absl::Duration agent_identity_lifetime = absl::Hours(24 * 30);
  absl::Duration operator_lifetime = absl::Hours(24 * 365);
};

// Issued credentials: the certificate chain (leaf first) and, when the key was made here, the
// private key PEM (a secret).
struct IssuedCredential {
  std::string chain_pem;
  std::string key_pem;
  std::string serial;
  absl::Time not_after;
};

// Thread-safe after creation: signing methods may be called concurrently (they are blocking:
// call them from an executor, never from a gRPC callback thread).
class ControllerPki {
 public:
  // Loads the PKI from options.state_dir, creating whatever is missing (CAs, server
  // certificate, admin credentials). The server certificate is re-issued when it lacks one of
  // the requested names or ends within 30 days. DataLoss when existing files are corrupt or
  // do not belong together (the message names the file).
  static absl::StatusOr<std::unique_ptr<ControllerPki>> LoadOrCreate(
      const ControllerPkiOptions& options, common::Clock& clock);

  // The root certificate (PEM): what clients trust.
  const std::string& RootPem() const { return root_pem_; }
  // SHA-256 of the root certificate's DER, uppercase hex: the pin carried by join tokens.
  const std::string& RootPin() const { return root_pin_; }
  // Server chain (leaf, issuing, root) and key PEM for the TLS listener.
  const std::string& ServerChainPem() const { return server_chain_pem_; }
  const std::string& ServerKeyPem() const { return server_key_pem_; }

  // Signs an agent identity for the public key of `csr_pem` (already verified by the caller or
  // verified here: InvalidArgument when its signature is bad or the key is weak). The
  // certificate carries CN=<fqdn> and the URI SAN certfleet://agent/<agent_id>, EKU client
  // auth; it is valid from now less min(5 minutes, a tenth of agent_identity_lifetime) until
  // now + agent_identity_lifetime.
  absl::StatusOr<IssuedCredential> IssueAgentIdentity(absl::string_view csr_pem,
                                                      absl::string_view agent_id,
                                                      absl::string_view fqdn);

  // Makes a key and an operator credential with `role` for `name`.
  absl::StatusOr<IssuedCredential> IssueOperator(common::model::Role role, absl::string_view name);

  // Signs `spec` for `subject_public_key` with the issuing CA (the builtin issuer's signing
  // step). Errors as common::crypto::IssueCertificate.
  absl::StatusOr<common::crypto::X509Ptr> Sign(const common::crypto::CertificateSpec& spec,
                                               EVP_PKEY* subject_public_key);
  // The issuing CA then the root, PEM: what follows a leaf in an issued chain.
  std::string IssuingChainPem() const { return issuing_pem_ + root_pem_; }

  // Writes an operator credential set (ca.pem, client.pem, client.key 0600) to `dir`.
  absl::Status WriteCredentialDir(const std::string& dir, const IssuedCredential& credential);

 private:
  ControllerPki(ControllerPkiOptions options, common::Clock& clock);
  absl::Status Load();
  absl::Status EnsureServerCertificate();

  ControllerPkiOptions options_;
  common::Clock& clock_;
  common::crypto::X509Ptr root_;
  common::crypto::X509Ptr issuing_;
  common::crypto::EvpPkeyPtr issuing_key_;
  std::string root_pem_;
  std::string issuing_pem_;
  std::string root_pin_;
  std::string server_chain_pem_;
  std::string server_key_pem_;
};

}  // namespace certfleet::controller::ca
