#include "tests/controller/renewal/test_csr.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>

#include "common/model/certificate.h"

namespace certfleet::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "test_csr: %s: %s\n", what, common::crypto::DrainOpenSslErrors().c_str());
  std::abort();
}

std::string DerLength(size_t length) {
  if (length < 0x80) return std::string(1, static_cast<char>(length));
  std::string octets;
  for (size_t n = length; n > 0; n >>= 8)
    octets.insert(octets.begin(), static_cast<char>(n & 0xff));
  return std::string(1, static_cast<char>(0x80 | octets.size())) + octets;
}

std::string BmpDer(absl::string_view ascii) {
  std::string content;
  for (char c : ascii) {
    content.push_back('\0');
    content.push_back(c);
  }
  return "\x1e" + DerLength(content.size()) + content;
}

}  // namespace

common::crypto::CsrOptions ScomCsrOptions(absl::string_view fqdn,
                                          std::vector<std::string> extra_dns) {
  common::crypto::CsrOptions options;
  options.subject_cn = std::string(fqdn);
  options.dns_names = {std::string(fqdn)};
  for (std::string& name : extra_dns) options.dns_names.push_back(std::move(name));
  options.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  options.extended_key_usage = {std::string(common::model::kServerAuthOid),
                                std::string(common::model::kClientAuthOid)};
  return options;
}

std::string CsrPem(EVP_PKEY* key, const common::crypto::CsrOptions& options) {
  auto csr = common::crypto::BuildCsr(key, options);
  if (!csr.ok()) {
    std::fprintf(stderr, "BuildCsr: %s\n", csr.status().ToString().c_str());
    std::abort();
  }
  return common::crypto::CsrToPem(csr->get());
}

std::string ScomCsrPem(EVP_PKEY* key, absl::string_view fqdn) {
  return CsrPem(key, ScomCsrOptions(fqdn));
}

std::string CustomCsrPem(EVP_PKEY* key, absl::string_view cn,
                         const std::vector<std::pair<std::string, std::string>>& extensions,
                         const std::vector<RawAttribute>& attributes) {
  common::crypto::X509ReqPtr req(X509_REQ_new());
  if (req == nullptr || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) Die("req");
  if (!cn.empty()) {
    const std::string text(cn);
    if (X509_NAME_add_entry_by_NID(
            X509_REQ_get_subject_name(req.get()), NID_commonName, MBSTRING_UTF8,
            reinterpret_cast<const unsigned char*>(text.c_str()), -1, -1, 0) != 1) {
      Die("CN");
    }
  }
  if (X509_REQ_set_pubkey(req.get(), key) != 1) Die("pubkey");
  if (!extensions.empty()) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
    for (const auto& [name, value] : extensions) {
      X509_EXTENSION* ext = X509V3_EXT_nconf(nullptr, &ctx, name.c_str(), value.c_str());
      if (ext == nullptr) Die(name.c_str());
      sk_X509_EXTENSION_push(exts, ext);
    }
    if (X509_REQ_add_extensions(req.get(), exts) != 1) Die("add extensions");
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  for (const RawAttribute& attribute : attributes) {
    if (X509_REQ_add1_attr_by_txt(req.get(), attribute.oid.c_str(), attribute.type,
                                  reinterpret_cast<const unsigned char*>(attribute.der.data()),
                                  static_cast<int>(attribute.der.size())) != 1) {
      Die(attribute.oid.c_str());
    }
  }
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) Die("sign");
  return common::crypto::CsrToPem(req.get());
}

std::string NameValuePairDer(absl::string_view name, absl::string_view value) {
  const std::string content = BmpDer(name) + BmpDer(value);
  return "\x30" + DerLength(content.size()) + content;
}

std::string TamperCsrPem(absl::string_view pem, absl::string_view from, absl::string_view to) {
  auto csr = common::crypto::CsrFromPem(pem);
  if (!csr.ok() || from.size() != to.size()) std::abort();
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(csr->get(), &der);
  if (len <= 0) Die("i2d");
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  size_t at = bytes.find(std::string(from));
  if (at == std::string::npos) {
    std::fprintf(stderr, "TamperCsrPem: '%s' not in the request\n", std::string(from).c_str());
    std::abort();
  }
  bytes.replace(at, to.size(), std::string(to));
  common::crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio(bio.get(), "CERTIFICATE REQUEST", "",
                    reinterpret_cast<const unsigned char*>(bytes.data()),
                    static_cast<long>(bytes.size())) <= 0) {
    Die("PEM_write_bio");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace certfleet::testing
