#include "common/crypto/encoding.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common::crypto {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Digest(const EVP_MD* md, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) {
    // A built-in digest failing is a broken OpenSSL installation, not bad input.
    std::fprintf(stderr, "certfleet: OpenSSL digest failed\n");
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string HexUpper(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

absl::StatusOr<std::string> HexDecode(absl::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  size_t i = 0;
  while (i < hex.size()) {
    if (hex[i] == ' ') {
      ++i;
      continue;
    }
    if (i + 1 >= hex.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", hex, "' is not hex: odd number of digits"));
    }
    int hi = HexValue(hex[i]);
    int lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", hex, "' is not hex"));
    }
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return out;
}

std::string Sha1Hex(absl::string_view data) { return HexUpper(Digest(EVP_sha1(), data)); }

std::string Sha256Hex(absl::string_view data) { return HexUpper(Digest(EVP_sha256(), data)); }

std::string Sha256(absl::string_view data) { return Digest(EVP_sha256(), data); }

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "certfleet: OpenSSL CSPRNG failed\n");
    std::abort();
  }
  return out;
}

std::string Base64UrlEncode(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

}  // namespace certfleet::common::crypto
