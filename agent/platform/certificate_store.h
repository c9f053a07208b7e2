#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::agent::platform {

// The Windows certificate stores SCOM cares about (LocalMachine).
enum class StoreName { kMy, kCa, kRoot };

// "My", "CA", "Root".
absl::string_view StoreNameText(StoreName store);
// Inverse of StoreNameText (case-insensitive); nullopt for anything else.
std::optional<StoreName> StoreNameFromText(absl::string_view text);

// One entry of a certificate store as the host keeps it.
struct StoredCertificate {
  // Stable handle of the entry inside its store (lab: the file name). Unique per store.
  std::string id;
  // DER of the certificate; empty when `error` is set.
  std::string der;
  // My only: the certificate has a linked private key (lab: the PEM file also holds the key).
  bool has_private_key = false;
  // Set when the entry exists but is not a readable certificate; the entry is still listed so
  // that an operator sees it, and nothing else about it is trusted.
  std::string error;
};

// A private key on the host that is not linked to any certificate (lab: ROOT/MachineKeys/).
// What `certutil -repairstore` searches.
struct KeyContainer {
  std::string id;              // stable handle (lab: file name)
  std::string public_key_der;  // SubjectPublicKeyInfo DER; empty when `error` is set
  std::string error;
};

// LocalMachine certificate stores and key containers. Private keys stay inside the store:
// the interface hands out public keys and linking operations, never private key material,
// except LinkedPrivateKeyPem, which the agent uses only to prove possession locally.
//
// Thread-safety: implementations are safe to call from several threads.
class CertificateStore {
 public:
  virtual ~CertificateStore() = default;

  // Every entry of `store`, sorted by id. Unreadable entries carry `error`.
  // Unavailable when the store itself cannot be read.
  virtual absl::StatusOr<std::vector<StoredCertificate>> List(StoreName store) = 0;

  // Adds the certificate `der` to `store`, with `private_key_pem` linked when given (My only;
  // InvalidArgument elsewhere or when the key does not match the certificate). Adding a
  // certificate already present (same DER) returns the existing id and links the key if one
  // is given and none was linked. InvalidArgument when `der` is not a certificate.
  virtual absl::StatusOr<std::string> Add(StoreName store, absl::string_view der,
                                          const std::optional<std::string>& private_key_pem) = 0;

  // Removes entry `id` from `store` (its linked key goes with it). NotFound when absent.
  virtual absl::Status Remove(StoreName store, absl::string_view id) = 0;

  // The key containers not linked to a certificate, sorted by id.
  virtual absl::StatusOr<std::vector<KeyContainer>> ListKeyContainers() = 0;

  // Stores `private_key_pem` as a new unlinked key container and returns its id.
  // InvalidArgument when it is not a private key.
  virtual absl::StatusOr<std::string> AddKeyContainer(absl::string_view private_key_pem) = 0;

  // Links key container `container_id` to certificate `certificate_id` in My; the container
  // stops being listed as unlinked. NotFound for either id; InvalidArgument when the key does
  // not match the certificate's public key.
  virtual absl::Status LinkKey(absl::string_view certificate_id,
                               absl::string_view container_id) = 0;

  // The private key linked to certificate `certificate_id` in My, PEM. NotFound when the
  // certificate is absent or has no linked key. A secret: never log it.
  virtual absl::StatusOr<std::string> LinkedPrivateKeyPem(absl::string_view certificate_id) = 0;
};

}  // namespace certfleet::agent::platform
