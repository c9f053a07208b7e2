#pragma once

// Loopback HTTP endpoints for webhook tests: a cpp-httplib receiver that records requests and
// answers as the test scripts it, a listener that closes every connection without answering,
// and a port on which nothing listens. Everything binds 127.0.0.1 with an ephemeral port.

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "controller/notify/notifier.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace certfleet::controller::notify {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  absl::Time received_at;                      // real time

  // The value of header `name` (any case), or "" when absent.
  std::string Header(absl::string_view name) const;
};

// How the receiver answers one request.
struct Answer {
  int status = 200;
  // Waits this long (real time) before answering; the receiver's destructor cuts it short.
  absl::Duration delay = absl::ZeroDuration();
};

// Thread-safe.
class WebhookReceiver {
 public:
  // Decides the answer to request number `index` (0-based, in arrival order). Called on a
  // server thread.
  using Responder = std::function<Answer(int index)>;

  // Listens on 127.0.0.1 with an ephemeral port; answers 200 when `responder` is null.
  static absl::StatusOr<std::unique_ptr<WebhookReceiver>> Start(Responder responder = nullptr);
  ~WebhookReceiver();

  int port() const { return port_; }
  // http://127.0.0.1:<port>/hook
  std::string url() const;

  // Every request received so far, in arrival order (recorded before it is answered).
  std::vector<ReceivedRequest> requests() const;
  // Waits until at least `count` requests arrived or `timeout` passed; returns them all.
  std::vector<ReceivedRequest> WaitForRequests(size_t count, absl::Duration timeout) const;

 private:
  explicit WebhookReceiver(Responder responder);

  const Responder responder_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  absl::Notification released_;  // cuts delays short
  mutable absl::Mutex mu_;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
};

// Accepts connections on 127.0.0.1 and closes each one after reading the first bytes, without
// answering. Thread-safe.
class ClosingListener {
 public:
  static absl::StatusOr<std::unique_ptr<ClosingListener>> Start();
  ~ClosingListener();

  std::string url() const;
  int connections() const { return connections_.load(); }

 private:
  ClosingListener(int fd, int port);

  const int fd_;
  const int port_;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// A URL on 127.0.0.1 whose port had a socket a moment ago and has none now: connections are
// refused.
absl::StatusOr<std::string> DeadPortUrl();

// A webhook request body parsed back into its event, delivery id and attempt number; nullopt
// when `body` is not one.
struct ParsedBody {
  Event event;
  std::string delivery_id;
  int attempt = 0;
};
std::optional<ParsedBody> ParseBody(absl::string_view body);

// Lower-case hex HMAC-SHA256 of `data` under `key`, computed independently of the notifier.
std::string HmacSha256Hex(absl::string_view key, absl::string_view data);

}  // namespace certfleet::controller::notify
