#pragma once

// Webhooks: each event becomes an HTTP POST of a JSON document to an operator's URL (a chat
// bridge, an incident tool, a ticketing system).
//
// The request (libcurl):
//
//   POST <url>
//   Content-Type: application/json
//   X-Certfleet-Event: certificate.expiring
//   X-Certfleet-Delivery: 1b4e28ba-2fa1-41d2-883f-0016d3cca427
//   X-Certfleet-Signature: sha256=<hex HMAC-SHA256 of the body under hmac_key>   (key set only)
//
//   {"type":"certificate.expiring","at":"2026-11-22T02:21:11Z","subject":"ms1.corp.example",
//    "summary":"...","fields":{"agent_id":"...","not_after":"..."},
//    "delivery_id":"1b4e28ba-2fa1-41d2-883f-0016d3cca427","attempt":1}
//
// "at" is RFC 3339 UTC with whole seconds. A receiver verifies the signature over the exact
// bytes of the body, and de-duplicates on delivery_id, which stays the same across the attempts
// at one event while "attempt" counts 1, 2, ...
//
// Outcomes: a 2xx answer is delivered. 408, 429, 5xx, any other non-4xx answer (redirects are
// not followed), connection errors and timeouts are retried after a capped exponential backoff
// with full jitter: before attempt n+1 the worker waits a uniformly random time in
// [0, min(max_backoff, initial_backoff * 2^(n-1))), measured on the injected clock. Any other
// 4xx is final. An event that fails finally, or max_attempts times, is dropped and counted.
//
// One worker thread per webhook delivers events one at a time, in the order they were
// notified (a retried event holds back the ones behind it). The queue is bounded: when
// max_queue events wait, the oldest is dropped for the newest, counted, and a warning is logged
// once per overflow episode (until the queue drains).
//
// Proxies: libcurl's default applies, so the http_proxy, https_proxy, all_proxy and no_proxy
// environment variables of the controller process route webhook traffic; an administrator who
// needs a proxy sets them in the service's environment, and one who does not leaves them unset.
// Certificates of https URLs are verified against the system's trust store.
//
// Secrets: hmac_key is never logged; URLs appear in logs and errors only as scheme://host:port,
// since webhook URLs often carry a token in their path or query.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/notify/notifier.h"

namespace certfleet::controller::notify {

struct WebhookOptions {
  std::string name;                 // names the webhook in logs, errors and metrics; not empty
  std::string url;                  // http:// or https://
  std::vector<std::string> events;  // event types delivered; empty = all
  std::string hmac_key;             // secret; empty = requests are not signed
  absl::Duration timeout = absl::Seconds(5);          // per attempt, connecting included; > 0
  int max_attempts = 5;                               // >= 1
  absl::Duration initial_backoff = absl::Seconds(1);  // >= 0
  absl::Duration max_backoff = absl::Seconds(60);     // >= initial_backoff
  size_t max_queue = 10000;                           // events waiting; >= 1
};

struct WebhookDeps {
  common::Clock& clock;  // decides backoff and the shutdown deadline
  // Uniformly distributed 64-bit values, for delivery ids and jitter. Called only from the
  // webhook's worker thread. Null: an absl::BitGen seeded by the operating system.
  std::function<uint64_t()> random = nullptr;
};

struct WebhookStats {
  uint64_t delivered = 0;        // events answered with a 2xx
  uint64_t failed_attempts = 0;  // requests that did not get a 2xx (each attempt counts)
  uint64_t dropped = 0;          // events given up: final failure, attempts exhausted, queue
                                 // overflow, shutdown, or notified after shutdown
  uint64_t queued = 0;           // events accepted and not yet delivered or dropped

  friend bool operator==(const WebhookStats&, const WebhookStats&) = default;
};

// Thread-safe. Notify never blocks on the network; Shutdown and the destructor block at most
// for the grace they are given (plus the time to abort a request in progress, a few
// milliseconds).
class WebhookNotifier final : public Notifier {
 public:
  // Starts the webhook's worker thread. InvalidArgument naming the webhook (and the field) for
  // an empty name, a URL that is not http:// or https:// with a host, or an option out of the
  // ranges in WebhookOptions; FailedPrecondition when libcurl cannot be set up (e.g. built
  // without https).
  static absl::StatusOr<std::unique_ptr<WebhookNotifier>> Create(WebhookOptions options,
                                                                 WebhookDeps deps);

  // Shutdown(absl::ZeroDuration()): whatever has not been delivered yet is dropped and counted.
  // Call Shutdown with a grace first to drain.
  ~WebhookNotifier() override;
  WebhookNotifier(const WebhookNotifier&) = delete;
  WebhookNotifier& operator=(const WebhookNotifier&) = delete;

  // Queues `event` if its type is subscribed (see WebhookOptions::events). After Shutdown began
  // the event is dropped and counted.
  void Notify(const Event& event) override;

  // Stops accepting events, keeps delivering (retries included) until the queue is empty or
  // `grace` has passed on the clock, then aborts the request in progress, drops and counts what
  // is left, and joins the worker. Idempotent: later calls return at once.
  void Shutdown(absl::Duration grace);

  // Counters since creation.
  WebhookStats Stats() const;

  const std::string& name() const { return options_.name; }

 private:
  class Transport;  // libcurl handles, used by the worker thread
  enum class Outcome { kDelivered, kRetry, kFinal, kAborted };

  WebhookNotifier(WebhookOptions options, WebhookDeps deps, std::string display_url,
                  std::unique_ptr<Transport> transport);

  void WorkerLoop();
  // Delivers one event with retries. Called by the worker, without mu_. The final counter
  // update and clearing in_flight_ happen in one critical section, so Stats() never shows an
  // event both as finished and as queued.
  void Deliver(const Event& event);
  // Waits until `deadline` on the clock or until stop_; false when stopped.
  bool WaitUntil(absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewDeliveryId();
  absl::Duration Backoff(int failed_attempts);
  bool Subscribed(const std::string& type) const;

  WebhookOptions options_;         // fixed after construction; the destructor wipes hmac_key
  const std::string display_url_;  // scheme://host:port, safe to log
  common::Clock& clock_;
  std::function<uint64_t()> random_;  // worker thread only
  const std::unique_ptr<Transport> transport_;
  std::atomic<bool> abort_{false};  // set once the grace is over; read by the transfer loop

  mutable absl::Mutex mu_;
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;  // the worker holds an event outside queue_
  bool draining_ ABSL_GUARDED_BY(mu_) = false;   // Shutdown began: no new events
  bool stop_ ABSL_GUARDED_BY(mu_) = false;       // the grace is over: abandon everything
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
  bool overflowing_ ABSL_GUARDED_BY(mu_) = false;  // warned about this overflow episode
  uint64_t overflow_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  WebhookStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex shutdown_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // serializes Shutdown
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  std::thread worker_;
};

}  // namespace certfleet::controller::notify
