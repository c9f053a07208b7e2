#pragma once

// A two-level PKI (root CA -> issuing CA -> leaves) made at test time, so tests never depend on
// certificate files in the tree. Typical use:
//
//   auto pki = TestPki::Create(absl::Now());
//   TestCert leaf = pki.Issue(pki.ScomLeafSpec("host1.example.com"));
//   // leaf.cert_pem / leaf.key_pem / leaf.der, pki.ChainPem() for the CA files
//
// Keys: RSA key generation costs tens to hundreds of milliseconds, so keys come from a pool.
// Within one TestPki every key is distinct (the root, the issuing CA and each Issue() get the
// pool's 1st, 2nd, 3rd... key of that size); a second TestPki reuses the same pool keys. So never
// assume two certificates of *different* TestPki objects have different keys; within one
// TestPki they always do. The pool lives in the process and, because ctest runs every test in
// its own process, also on disk: $CERTFLEET_TEST_KEY_CACHE, else $TMPDIR (or /tmp)
// /certfleet-test-keys-<uid>, a 0700 directory of ours (anything else is not used). Set
// CERTFLEET_TEST_KEY_CACHE=off to generate every key afresh. Only test keys live there.
//
// Thread-safety: a TestPki may be used from several threads at once.

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/issue.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::testing {

struct TestCert {
  common::crypto::X509Ptr cert;
  common::crypto::EvpPkeyPtr key;
  std::string cert_pem;  // one CERTIFICATE block
  std::string key_pem;   // PKCS#8 "PRIVATE KEY"
  std::string der;       // DER of the certificate
};

class TestPki {
 public:
  // A root CA "<name> Root" (now-30d .. now+10y) and an issuing CA "<name>" (now-30d .. now+5y)
  // signed by it, both RSA-2048 / SHA-256, O="certfleet tests". Crashes the test binary if
  // OpenSSL fails (a broken test environment, not a test outcome).
  static TestPki Create(absl::Time now, std::string name = "Test Enterprise CA");

  TestPki(TestPki&&) = default;
  TestPki& operator=(TestPki&&) = default;

  const TestCert& root() const { return root_; }
  const TestCert& issuing() const { return issuing_; }
  absl::Time now() const { return now_; }

  // A certificate per `spec`, signed by the issuing CA, for a new (pooled, distinct within this
  // PKI) RSA-2048 key. Crashes on an invalid spec; tests that want the error call
  // common::crypto::IssueCertificate themselves.
  TestCert Issue(const common::crypto::CertificateSpec& spec) const;
  // The same for `key` (not taken; the TestCert holds its own reference).
  TestCert Issue(const common::crypto::CertificateSpec& spec, EVP_PKEY* key) const;

  // A spec SCOM accepts for `fqdn`: CN=fqdn, SAN DNS fqdn, KeyUsage digitalSignature +
  // keyEncipherment, EKU serverAuth + clientAuth, now-1d .. now+365d, SHA-256.
  common::crypto::CertificateSpec ScomLeafSpec(absl::string_view fqdn) const;

  // The issuing CA then the root, as PEM.
  std::string ChainPem() const;

  // The next pooled RSA key of `bits` (any size OpenSSL accepts, e.g. 1024 for weak-key tests),
  // distinct from every other key this PKI handed out.
  common::crypto::EvpPkeyPtr NewRsaKey(int bits = 2048) const;
  // A new EC P-256 key (cheap; not pooled).
  static common::crypto::EvpPkeyPtr NewEcKey();

 private:
  struct KeyCursor;

  TestPki(absl::Time now, std::shared_ptr<KeyCursor> cursor);

  absl::Time now_;
  std::shared_ptr<KeyCursor> cursor_;  // shared_ptr: KeyCursor is incomplete here
  TestCert root_;
  TestCert issuing_;
};

// A TestCert for `cert` and `key` (key may be null), filling the PEM and DER fields.
TestCert MakeTestCert(common::crypto::X509Ptr cert, common::crypto::EvpPkeyPtr key);

}  // namespace certfleet::testing
