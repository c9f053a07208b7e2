#include "controller/metrics/metrics_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "httplib.h"

namespace certfleet::controller::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";
// Scrapes are rare and short; two threads let a slow scrape not block the next one.
constexpr size_t kServerThreads = 2;
// How long a connection may sit without sending its request (or the rest of it).
constexpr time_t kIdleSeconds = 1;

struct HostPort {
  std::string host;
  int port = 0;
};

absl::StatusOr<HostPort> ParseListen(absl::string_view listen) {
  const auto invalid = [listen](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\": ", why));
  };
  HostPort result;
  absl::string_view port_text;
  if (absl::StartsWith(listen, "[")) {
    const size_t close = listen.find("]:");
    if (close == absl::string_view::npos) return invalid("expected [IPV6]:PORT");
    result.host = std::string(listen.substr(1, close - 1));
    if (result.host.empty()) return invalid("empty IPv6 address");
    port_text = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == absl::string_view::npos) return invalid("expected HOST:PORT");
    const absl::string_view host = listen.substr(0, colon);
    if (absl::StrContains(host, ':')) return invalid("an IPv6 address needs brackets");
    result.host = host.empty() ? "0.0.0.0" : std::string(host);
    port_text = listen.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5) return invalid("expected a port in 0..65535");
  for (char c : port_text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return invalid("expected a port in 0..65535");
    }
  }
  if (!absl::SimpleAtoi(port_text, &result.port) || result.port > 65535) {
    return invalid("expected a port in 0..65535");
  }
  for (char c : result.host) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || absl::ascii_iscntrl(c)) {
      return invalid("the host contains spaces or control characters");
    }
  }
  return result;
}

}  // namespace

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(absl::string_view listen,
                                                                    Registry& registry) {
  CF_ASSIGN_OR_RETURN(HostPort address, ParseListen(listen));

  auto server = std::make_unique<httplib::Server>();
  // httplib's default sets SO_REUSEPORT, which would let a second server share a port that is
  // already in use; SO_REUSEADDR alone only allows rebinding over TIME_WAIT.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  server->set_tcp_nodelay(true);
  // One request per connection, and little patience with idle or silent clients: httplib's
  // keep-alive wait does not notice stop(), so these bound how long Shutdown can take.
  server->set_keep_alive_max_count(1);
  server->set_keep_alive_timeout(kIdleSeconds);
  server->set_read_timeout(kIdleSeconds, 0);
  server->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.Render(), kContentType);
  });

  errno = 0;
  int port = address.port;
  bool bound = false;
  if (address.port == 0) {
    port = server->bind_to_any_port(address.host);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(address.host, address.port);
  }
  if (!bound) {
    const int error = errno;
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", listen,
                     error != 0 ? absl::StrCat(": ", std::strerror(error)) : std::string()));
  }

  std::unique_ptr<MetricsServer> result(new MetricsServer(std::move(server), port));
  auto listen_returned = std::make_shared<absl::Notification>();
  httplib::Server* raw = result->server_.get();
  result->thread_ = std::thread([raw, listen_returned] {
    raw->listen_after_bind();
    listen_returned->Notify();
  });
  // httplib's stop() does nothing until the listen loop runs, so wait for it: Shutdown must not
  // race the start.
  while (!raw->is_running()) {
    if (listen_returned->HasBeenNotified()) {
      result->thread_.join();
      {
        absl::MutexLock lock(&result->mu_);
        result->shut_down_ = true;
      }
      return absl::UnavailableError(
          absl::StrCat("cannot listen for metrics on ", listen, ": the listen loop ended"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  common::LogInfo("metrics: serving /metrics on ", listen, " (port ", port, ")");
  return result;
}

MetricsServer::~MetricsServer() { Shutdown(); }

void MetricsServer::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace certfleet::controller::metrics
