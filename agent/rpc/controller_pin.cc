#include "agent/rpc/controller_pin.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"

namespace certfleet::agent::rpc {
namespace {

class Socket {
 public:
  Socket() = default;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd_ = -1;
};

// Connects a TCP socket to host:port within `timeout`; the socket is left blocking with
// send/receive timeouts set to what is left of `timeout`.
absl::Status ConnectWithTimeout(const std::string& host, const std::string& port,
                                absl::Duration timeout, Socket* out) {
  const absl::Time deadline = absl::Now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", host, "': ", ::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    Socket s;
    s.fd_ = fd;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    absl::Duration left = deadline - absl::Now();
    int ready = left > absl::ZeroDuration()
                    ? ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1)
                    : 0;
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready <= 0) {
      last_error = "timed out";
      continue;
    }
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last_error = std::strerror(err);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    absl::Duration rest = std::max(deadline - absl::Now(), absl::Milliseconds(100));
    timeval tv = absl::ToTimeval(rest);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ::freeaddrinfo(res);
    out->fd_ = fd;
    s.fd_ = -1;
    return absl::OkStatus();
  }
  ::freeaddrinfo(res);
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", host, ":", port, ": ", last_error));
}

}  // namespace

absl::StatusOr<std::string> FetchPinnedCaPem(absl::string_view address, absl::string_view ca_pin,
                                             absl::Duration timeout) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("controller address '", address, "' is not HOST:PORT"));
  }
  std::string host(address.substr(0, colon));
  std::string port(address.substr(colon + 1));
  // Digits only: getaddrinfo would take a service name, and wraps numbers past 65535 onto
  // another port; a typo must fail here, not be retried as a network error.
  bool digits = !port.empty() && port.size() <= 5;
  for (char ch : port) digits = digits && ch >= '0' && ch <= '9';
  int port_number = 0;
  if (!digits || !absl::SimpleAtoi(port, &port_number) || port_number < 1 || port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("controller address '", address, "' is not HOST:PORT (port 1-65535)"));
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  Socket sock;
  if (absl::Status s = ConnectWithTimeout(host, port, timeout, &sock); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the controller at ", address, ": ", s.message()));
  }

  common::crypto::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Verification happens below, against the pin, not against a trust store.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  common::crypto::SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl) return absl::InternalError("cannot create a TLS connection");
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  SSL_set_fd(ssl.get(), sock.fd_);
  ERR_clear_error();
  if (SSL_connect(ssl.get()) != 1) {
    return absl::UnavailableError(absl::StrCat("TLS handshake with ", address,
                                               " failed: ", common::crypto::DrainOpenSslErrors()));
  }
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
  const std::string pin = absl::AsciiStrToUpper(ca_pin);
  std::string found;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    if (common::crypto::Sha256Hex(common::crypto::CertificateToDer(cert)) == pin) {
      found = common::crypto::CertificateToPem(cert);
      break;
    }
  }
  SSL_shutdown(ssl.get());
  if (found.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the server at ", address,
        " does not present the CA the join token pins; it is not the controller that made the "
        "token"));
  }
  return found;
}

}  // namespace certfleet::agent::rpc
