#include "tests/testing/test_pki.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"

namespace certfleet::testing {
namespace {

using common::crypto::CertificateSpec;
using common::crypto::EvpPkeyPtr;
using common::crypto::X509Ptr;

[[noreturn]] void Die(absl::string_view what, absl::string_view detail) {
  std::fprintf(stderr, "TestPki: %.*s: %.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// The directory of the on-disk key cache, or "" when it is off or unsafe to use.
std::string KeyCacheDir() {
  const char* env = std::getenv("CERTFLEET_TEST_KEY_CACHE");
  if (env != nullptr && std::string(env) == "off") return "";
  std::string dir;
  if (env != nullptr && *env != '\0') {
    dir = env;
  } else {
    const char* tmp = std::getenv("TMPDIR");
    dir = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/certfleet-test-keys-",
                       ::geteuid());
  }
  ::mkdir(dir.c_str(), 0700);
  struct stat st;
  // Only a real directory of ours that nobody else can write to.
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 0077) != 0) {
    return "";
  }
  return dir;
}

EvpPkeyPtr ReadCachedKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::ostringstream pem;
  pem << in.rdbuf();
  auto key = common::crypto::PrivateKeyFromPem(pem.str());
  return key.ok() ? *std::move(key) : nullptr;
}

void WriteCachedKey(const std::string& path, EVP_PKEY* key) {
  // Write then rename, so a concurrent test process never reads half a key.
  std::string tmp = absl::StrCat(path, ".", ::getpid(), ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string pem = common::crypto::PrivateKeyToPem(key);
  bool ok = ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size());
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
}

// Process-wide pool of RSA keys per size; index i of a size is always the same key within a
// process. Keys are also cached on disk (see test_pki.h) so that the many short test processes
// ctest starts do not each pay for key generation.
class RsaKeyPool {
 public:
  static RsaKeyPool& Get() {
    static RsaKeyPool* pool = new RsaKeyPool(KeyCacheDir());
    return *pool;
  }

  EvpPkeyPtr Key(int bits, size_t index) {
    absl::MutexLock lock(&mu_);
    std::vector<EvpPkeyPtr>& keys = keys_[bits];
    while (keys.size() <= index) keys.push_back(LoadOrGenerate(bits, keys.size()));
    return common::crypto::CopyKey(keys[index].get());
  }

 private:
  explicit RsaKeyPool(std::string cache_dir) : cache_dir_(std::move(cache_dir)) {}

  EvpPkeyPtr LoadOrGenerate(int bits, size_t index) const {
    std::string path =
        cache_dir_.empty() ? "" : absl::StrCat(cache_dir_, "/rsa-", bits, "-", index, ".pem");
    if (!path.empty()) {
      EvpPkeyPtr key = ReadCachedKey(path);
      if (key != nullptr && EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA &&
          EVP_PKEY_get_bits(key.get()) == bits) {
        return key;
      }
    }
    EvpPkeyPtr key(EVP_RSA_gen(static_cast<unsigned int>(bits)));
    if (key == nullptr) Die("RSA key generation failed", common::crypto::DrainOpenSslErrors());
    if (!path.empty()) WriteCachedKey(path, key.get());
    return key;
  }

  const std::string cache_dir_;
  absl::Mutex mu_;
  std::map<int, std::vector<EvpPkeyPtr>> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

struct TestPki::KeyCursor {
  absl::Mutex mu;
  std::map<int, size_t> next ABSL_GUARDED_BY(mu);
};

TestCert MakeTestCert(X509Ptr cert, EvpPkeyPtr key) {
  TestCert out;
  out.cert_pem = common::crypto::CertificateToPem(cert.get());
  out.der = common::crypto::CertificateToDer(cert.get());
  if (key != nullptr) out.key_pem = common::crypto::PrivateKeyToPem(key.get());
  out.cert = std::move(cert);
  out.key = std::move(key);
  return out;
}

TestPki::TestPki(absl::Time now, std::shared_ptr<KeyCursor> cursor)
    : now_(now), cursor_(std::move(cursor)) {}

TestPki TestPki::Create(absl::Time now, std::string name) {
  TestPki pki(now, std::make_shared<KeyCursor>());

  CertificateSpec root;
  root.subject_cn = name + " Root";
  root.subject_o = "certfleet tests";
  root.is_ca = true;
  root.key_usage =
      common::model::kKeyCertSign | common::model::kCrlSign | common::model::kDigitalSignature;
  root.not_before = now - absl::Hours(24 * 30);
  root.not_after = now + absl::Hours(24 * 365 * 10);
  EvpPkeyPtr root_key = pki.NewRsaKey(2048);
  auto root_cert = common::crypto::IssueCertificate(root, root_key.get(), nullptr, root_key.get());
  if (!root_cert.ok()) Die("issuing the root", root_cert.status().ToString());
  pki.root_ = MakeTestCert(*std::move(root_cert), std::move(root_key));

  CertificateSpec issuing = root;
  issuing.subject_cn = name;
  issuing.not_after = now + absl::Hours(24 * 365 * 5);
  EvpPkeyPtr issuing_key = pki.NewRsaKey(2048);
  auto issuing_cert = common::crypto::IssueCertificate(issuing, issuing_key.get(),
                                                       pki.root_.cert.get(), pki.root_.key.get());
  if (!issuing_cert.ok()) Die("issuing the issuing CA", issuing_cert.status().ToString());
  pki.issuing_ = MakeTestCert(*std::move(issuing_cert), std::move(issuing_key));
  return pki;
}

TestCert TestPki::Issue(const CertificateSpec& spec) const {
  EvpPkeyPtr key = NewRsaKey(2048);
  return Issue(spec, key.get());
}

TestCert TestPki::Issue(const CertificateSpec& spec, EVP_PKEY* key) const {
  auto cert = common::crypto::IssueCertificate(spec, key, issuing_.cert.get(), issuing_.key.get());
  if (!cert.ok()) Die("issuing a test certificate", cert.status().ToString());
  return MakeTestCert(*std::move(cert), common::crypto::CopyKey(key));
}

CertificateSpec TestPki::ScomLeafSpec(absl::string_view fqdn) const {
  CertificateSpec spec;
  spec.subject_cn = std::string(fqdn);
  spec.dns_names = {std::string(fqdn)};
  spec.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  spec.extended_key_usage = {std::string(common::model::kServerAuthOid),
                             std::string(common::model::kClientAuthOid)};
  spec.not_before = now_ - absl::Hours(24);
  spec.not_after = now_ + absl::Hours(24 * 365);
  spec.signature_digest = "SHA256";
  return spec;
}

std::string TestPki::ChainPem() const { return issuing_.cert_pem + root_.cert_pem; }

EvpPkeyPtr TestPki::NewRsaKey(int bits) const {
  size_t index;
  {
    absl::MutexLock lock(&cursor_->mu);
    index = cursor_->next[bits]++;
  }
  return RsaKeyPool::Get().Key(bits, index);
}

EvpPkeyPtr TestPki::NewEcKey() {
  auto key = common::crypto::GenerateEcKey();
  if (!key.ok()) Die("EC key generation failed", key.status().ToString());
  return *std::move(key);
}

}  // namespace certfleet::testing
