#include "agent/rpc/controller_pin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "gtest/gtest.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::rpc {
namespace {

using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr absl::Duration kTimeout = absl::Seconds(5);

// A TCP socket listening on 127.0.0.1 on a port the kernel picked; -1 on failure.
int ListenOnLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 8) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A TLS server on 127.0.0.1 that completes handshakes presenting `leaf` then `chain`, and
// nothing else, until destroyed.
class TlsServer {
 public:
  TlsServer(const TestCert& leaf, const std::vector<const TestCert*>& chain) {
    ::signal(SIGPIPE, SIG_IGN);  // as the binaries do; a peer may close first
    ctx_ = SSL_CTX_new(TLS_server_method());
    EXPECT_NE(ctx_, nullptr);
    EXPECT_EQ(SSL_CTX_use_certificate(ctx_, leaf.cert.get()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx_, leaf.key.get()), 1);
    for (const TestCert* c : chain) EXPECT_EQ(SSL_CTX_add1_chain_cert(ctx_, c->cert.get()), 1);
    listen_fd_ = ListenOnLoopback(&port_);
    EXPECT_GE(listen_fd_, 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listen_fd_);
    SSL_CTX_free(ctx_);
  }

  std::string Address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  void Serve() {
    while (!stop_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        char byte;
        SSL_read(ssl, &byte, 1);  // until the client's close_notify or EOF
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    }
  }

  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ControllerPinTest : public ::testing::Test {
 protected:
  ControllerPinTest()
      : pki_(TestPki::Create(kNow)), server_cert_(pki_.Issue(pki_.ScomLeafSpec("localhost"))) {}

  std::string RootPin() const { return common::crypto::Sha256Hex(pki_.root().der); }

  TestPki pki_;
  TestCert server_cert_;
};

TEST_F(ControllerPinTest, TheRootsPinReturnsThePemOfThatRoot) {
  TlsServer server(server_cert_, {&pki_.issuing(), &pki_.root()});
  auto pem = FetchPinnedCaPem(server.Address(), RootPin(), kTimeout);
  ASSERT_TRUE(pem.ok()) << pem.status();
  auto cert = common::crypto::CertificateFromPem(*pem);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(common::crypto::CertificateToDer(cert->get()), pki_.root().der);
}

TEST_F(ControllerPinTest, APinInLowercaseMatchesToo) {
  TlsServer server(server_cert_, {&pki_.issuing(), &pki_.root()});
  auto pem = FetchPinnedCaPem(server.Address(), absl::AsciiStrToLower(RootPin()), kTimeout);
  ASSERT_TRUE(pem.ok()) << pem.status();
  auto cert = common::crypto::CertificateFromPem(*pem);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(common::crypto::CertificateToDer(cert->get()), pki_.root().der);
}

TEST_F(ControllerPinTest, ThePinOfAnotherCertificateOfTheChainReturnsThatCertificate) {
  TlsServer server(server_cert_, {&pki_.issuing(), &pki_.root()});
  auto pem =
      FetchPinnedCaPem(server.Address(), common::crypto::Sha256Hex(pki_.issuing().der), kTimeout);
  ASSERT_TRUE(pem.ok()) << pem.status();
  auto cert = common::crypto::CertificateFromPem(*pem);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(common::crypto::CertificateToDer(cert->get()), pki_.issuing().der);
}

TEST_F(ControllerPinTest, ThePinOfAnotherControllersRootIsPermissionDenied) {
  TlsServer server(server_cert_, {&pki_.issuing(), &pki_.root()});
  TestPki other = TestPki::Create(kNow, "Other Controller");
  const std::string other_pin = common::crypto::Sha256Hex(other.root().der);
  ASSERT_NE(other_pin, RootPin());
  auto pem = FetchPinnedCaPem(server.Address(), other_pin, kTimeout);
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kPermissionDenied) << pem.status();
}

TEST_F(ControllerPinTest, AServerThatDoesNotPresentThePinnedRootIsPermissionDenied) {
  TlsServer server(server_cert_, {&pki_.issuing()});
  auto pem = FetchPinnedCaPem(server.Address(), RootPin(), kTimeout);
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kPermissionDenied) << pem.status();
}

TEST_F(ControllerPinTest, AClosedPortIsUnavailable) {
  int port = 0;
  int fd = ListenOnLoopback(&port);
  ASSERT_GE(fd, 0);
  ::close(fd);  // nobody listens there any more
  auto pem = FetchPinnedCaPem(absl::StrCat("127.0.0.1:", port), RootPin(), kTimeout);
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kUnavailable) << pem.status();
}

TEST_F(ControllerPinTest, AServerThatNeverAnswersTheHandshakeIsUnavailableWithinTheTimeout) {
  int port = 0;
  int fd = ListenOnLoopback(&port);  // the kernel accepts the connection; nobody speaks TLS
  ASSERT_GE(fd, 0);
  const absl::Time start = absl::Now();
  auto pem = FetchPinnedCaPem(absl::StrCat("127.0.0.1:", port), RootPin(), absl::Milliseconds(300));
  const absl::Duration took = absl::Now() - start;
  ::close(fd);
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kUnavailable) << pem.status();
  EXPECT_LT(took, absl::Seconds(3));
}

TEST_F(ControllerPinTest, AMalformedAddressIsInvalidArgument) {
  for (const char* address :
       {"", "127.0.0.1", ":7443", "127.0.0.1:", "127.0.0.1:port", "127.0.0.1:70000", "127.0.0.1:0",
        "127.0.0.1:-1", "127.0.0.1:7443x", "127.0.0.1: 7443"}) {
    auto pem = FetchPinnedCaPem(address, RootPin(), kTimeout);
    EXPECT_EQ(pem.status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << address << "': " << pem.status();
  }
}

}  // namespace
}  // namespace certfleet::agent::rpc
