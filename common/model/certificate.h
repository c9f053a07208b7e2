#pragma once

// Plain structs for certificates and SCOM's judgement of them. Domain code works on these;
// only rpc/ adapters and tools/ convert them to and from proto (common/rpc/convert.h).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::common::model {

// Why SCOM's HealthService would refuse a certificate, or why an operator should act.
// The names (ProblemName) are part of the CLI and wire contract.
enum class Problem {
  kExpired,
  kNotYetValid,
  kExpiresSoon,
  kKeyNotRsa,
  kKeyTooSmall,
  kWeakSignatureHash,
  kMissingServerAuthEku,
  kMissingClientAuthEku,
  kMissingKeyUsage,
  kSubjectMismatch,
  kNoPrivateKey,
  kChainUntrusted,
  kIsCa,
};

// "EXPIRED", "NOT_YET_VALID", ...
absl::string_view ProblemName(Problem problem);
// The inverse of ProblemName; nullopt for an unknown name.
std::optional<Problem> ProblemFromName(absl::string_view name);
// Every problem, in declaration order.
const std::vector<Problem>& AllProblems();

// How a host's binding differs from what SCOM needs.
enum class Drift {
  kBindingNotFound,         // ChannelCertificateSerialNumber names no certificate in My
  kBoundWithoutPrivateKey,  // the bound certificate has no linked private key
  kRenewedNotActive,        // a newer valid compliant certificate for the host is not bound
  kNotBound,                // no ChannelCertificateSerialNumber at all
};

// "BINDING_NOT_FOUND", "BOUND_WITHOUT_PRIVATE_KEY", "RENEWED_NOT_ACTIVE", "NOT_BOUND".
absl::string_view DriftName(Drift drift);
std::optional<Drift> DriftFromName(absl::string_view name);

// Key Usage bits, as in RFC 5280 (bit 0 = digitalSignature).
enum KeyUsageBit : uint32_t {
  kDigitalSignature = 1u << 0,
  kNonRepudiation = 1u << 1,
  kKeyEncipherment = 1u << 2,
  kDataEncipherment = 1u << 3,
  kKeyAgreement = 1u << 4,
  kKeyCertSign = 1u << 5,
  kCrlSign = 1u << 6,
};

inline constexpr absl::string_view kServerAuthOid = "1.3.6.1.5.5.7.3.1";
inline constexpr absl::string_view kClientAuthOid = "1.3.6.1.5.5.7.3.2";

// Everything certfleet reads from one certificate. See proto certfleet.v1.Certificate for the
// meaning of each field.
struct CertificateInfo {
  std::string subject;  // RFC 2253 style, e.g. "CN=host.example.com,O=Example"
  std::string subject_cn;
  std::string issuer;
  std::vector<std::string> dns_names;
  std::vector<std::string> uris;
  std::string serial;          // display form: uppercase hex of the INTEGER content bytes
  std::string channel_serial;  // the serial's bytes reversed, uppercase hex
  std::string thumbprint;      // SHA-1, uppercase hex
  std::string sha256;          // uppercase hex
  absl::Time not_before;
  absl::Time not_after;
  std::string key_algorithm;  // "RSA", "EC", "ED25519", "DSA", ...
  int key_bits = 0;
  std::string signature_hash;                   // "SHA256", "SHA1", "MD5", ...
  bool has_key_usage = false;                   // the extension is present
  uint32_t key_usage = 0;                       // KeyUsageBit mask
  std::vector<std::string> extended_key_usage;  // dotted OIDs
  bool is_ca = false;
  std::string template_name;  // AD CS template name or OID when present
  bool has_private_key = false;
};

// True for 40 hexadecimal digits (a SHA-1 thumbprint), either case.
bool IsThumbprint(absl::string_view text);

// Names of the key usage bits that are set, e.g. {"digitalSignature", "keyEncipherment"}.
std::vector<std::string> KeyUsageNames(uint32_t key_usage);
// The inverse of KeyUsageNames; nullopt when a name is unknown.
std::optional<uint32_t> KeyUsageFromNames(const std::vector<std::string>& names);

}  // namespace certfleet::common::model
