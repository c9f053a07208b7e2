#pragma once

// The controller's Prometheus endpoint: plain HTTP (cpp-httplib) serving a Registry.
//
//   CF_ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                       MetricsServer::Start("127.0.0.1:9464", registry));
//
// GET /metrics answers 200 with Registry::Render() and Content-Type
// "text/plain; version=0.0.4; charset=utf-8"; every other path answers 404. The endpoint has
// no authentication and no TLS: bind it to an address only the scraper can reach.

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "controller/metrics/registry.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace certfleet::controller::metrics {

// Thread-safe. Requests are served on the server's own threads (one listener, a small pool),
// which call Registry::Render.
class MetricsServer {
 public:
  // Listens on `listen`, "HOST:PORT": an IPv4 address or host name, or a bracketed IPv6
  // address ("[::1]:9464"); an empty HOST means every IPv4 interface; PORT 0 picks a free port
  // (see port()). `registry` must outlive the server. Returns when the server accepts
  // connections.
  // Errors: InvalidArgument naming `listen` when it is not HOST:PORT with a port in 0..65535;
  // Unavailable naming `listen` when it cannot be bound (in use, not a local address, name not
  // resolved).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen,
                                                              Registry& registry);

  // Calls Shutdown().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the chosen one when `listen` asked for port 0).
  int port() const { return port_; }

  // Stops accepting, waits for requests in progress, and joins the server's threads. Each
  // connection carries one request, and a client that connects but does not send its request
  // within 1 s is dropped, so Shutdown waits at most about that long for idle clients.
  // Idempotent; safe to call from any thread but not from a request handler.
  void Shutdown();

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, int port);

  const std::unique_ptr<httplib::Server> server_;
  const int port_;
  std::thread thread_;  // runs the listen loop; set once by Start
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace certfleet::controller::metrics
