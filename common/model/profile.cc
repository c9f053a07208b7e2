#include "common/model/profile.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace certfleet::common::model {

CertificateProfile ScomProfile() {
  CertificateProfile p;
  p.name = "scom";
  return p;
}

absl::Status ValidateProfile(const CertificateProfile& p) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("profile '", p.name, "': ", why));
  };
  if (p.name.empty()) return absl::InvalidArgumentError("profile: name is empty");
  if (p.key_algorithm != "RSA") return bad("key_algorithm must be RSA (SCOM needs RSA keys)");
  if (p.key_bits != 2048 && p.key_bits != 3072 && p.key_bits != 4096) {
    return bad("key_bits must be 2048, 3072 or 4096");
  }
  if (p.signature_hash != "SHA256" && p.signature_hash != "SHA384" &&
      p.signature_hash != "SHA512") {
    return bad("signature_hash must be SHA256, SHA384 or SHA512");
  }
  if ((p.key_usage & kDigitalSignature) == 0 || (p.key_usage & kKeyEncipherment) == 0) {
    return bad("key_usage must include digitalSignature and keyEncipherment");
  }
  auto has = [&](absl::string_view oid) {
    return std::find(p.extended_key_usage.begin(), p.extended_key_usage.end(), oid) !=
           p.extended_key_usage.end();
  };
  if (!has(kServerAuthOid) || !has(kClientAuthOid)) {
    return bad("extended_key_usage must include server and client authentication");
  }
  if (p.validity < absl::Hours(24) || p.validity > absl::Hours(24 * 365 * 5)) {
    return bad("validity must be between 1 day and 5 years");
  }
  for (const auto& n : p.extra_dns_names) {
    if (n.empty() || n.size() > 253 || n.find_first_of(" ,/\\") != std::string::npos) {
      return bad(absl::StrCat("'", n, "' is not a DNS name"));
    }
  }
  return absl::OkStatus();
}

}  // namespace certfleet::common::model
