#include "common/crypto/openssl_types.h"

#include <openssl/err.h>

#include <string>

namespace certfleet::common::crypto {

X509Ptr CopyCertificate(X509* cert) {
  if (cert != nullptr) X509_up_ref(cert);
  return X509Ptr(cert);
}

EvpPkeyPtr CopyKey(EVP_PKEY* key) {
  if (key != nullptr) EVP_PKEY_up_ref(key);
  return EvpPkeyPtr(key);
}

std::string Asn1StringToUtf8(const ASN1_STRING* s) {
  if (s == nullptr) return "";
  unsigned char* out = nullptr;
  int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) {
    ERR_clear_error();
    return "";
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return result;
}

std::string ObjectToDotted(const ASN1_OBJECT* object) {
  if (object == nullptr) return "";
  char buf[128];
  int len = OBJ_obj2txt(buf, sizeof(buf), object, /*no_name=*/1);
  if (len <= 0) return "";
  if (static_cast<size_t>(len) < sizeof(buf)) return std::string(buf, static_cast<size_t>(len));
  std::string big(static_cast<size_t>(len) + 1, '\0');
  OBJ_obj2txt(big.data(), static_cast<int>(big.size()), object, /*no_name=*/1);
  big.resize(static_cast<size_t>(len));
  return big;
}

std::string DrainOpenSslErrors() {
  std::string out;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

}  // namespace certfleet::common::crypto
