#include "controller/notify/webhook_notifier.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "nlohmann/json.hpp"

namespace certfleet::controller::notify {
namespace {

// The longest a wait sleeps before looking at the clock again: how soon a worker notices that
// an injected clock was moved forward. A real clock needs no polling; this bounds the cost.
constexpr absl::Duration kPollSlice = absl::Milliseconds(50);
// The longest curl_multi_poll blocks; Shutdown wakes it at once with curl_multi_wakeup.
constexpr int kCurlPollMs = 1000;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

size_t DiscardBody(char*, size_t size, size_t count, void*) { return size * count; }

// `url` reduced to what may be logged ("https://hooks.example:443"), or an error for anything
// that is not an http(s) URL with a host. Never echoes the URL: it may hold a token.
absl::StatusOr<std::string> DisplayUrl(absl::string_view name, const std::string& url) {
  const auto invalid = [name](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("webhook \"", name, "\": url ", why));
  };
  std::unique_ptr<CURLU, CurlUrlDeleter> parsed(curl_url());
  if (parsed == nullptr) return absl::ResourceExhaustedError("libcurl: out of memory");
  if (url.empty()) return invalid("is empty");
  if (curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return invalid("is not an absolute URL");
  }
  char* raw = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK) {
    return invalid("has no scheme");
  }
  CurlString scheme(raw);
  const std::string scheme_text = absl::AsciiStrToLower(scheme.get());
  if (scheme_text != "http" && scheme_text != "https") {
    return invalid(absl::StrCat("has scheme \"", scheme_text, "\"; expected http or https"));
  }
  raw = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK || raw == nullptr ||
      raw[0] == '\0') {
    if (raw != nullptr) curl_free(raw);
    return invalid("has no host");
  }
  CurlString host(raw);
  raw = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_PORT, &raw, CURLU_DEFAULT_PORT) != CURLUE_OK) {
    return invalid("has no usable port");
  }
  CurlString port(raw);
  return absl::StrCat(scheme_text, "://", host.get(), ":", port.get());
}

absl::Status ValidateOptions(const WebhookOptions& options) {
  const auto invalid = [&options](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("webhook \"", options.name, "\": ", why));
  };
  if (options.name.empty()) return absl::InvalidArgumentError("webhook: name is empty");
  if (options.timeout <= absl::ZeroDuration()) return invalid("timeout must be > 0");
  if (options.max_attempts < 1) return invalid("max_attempts must be >= 1");
  if (options.initial_backoff < absl::ZeroDuration()) {
    return invalid("initial_backoff must be >= 0");
  }
  if (options.max_backoff < options.initial_backoff) {
    return invalid("max_backoff must be >= initial_backoff");
  }
  if (options.max_queue < 1) return invalid("max_queue must be >= 1");
  for (const std::string& type : options.events) {
    if (type.empty()) return invalid("events lists an empty event type");
  }
  return absl::OkStatus();
}

std::string HmacSha256Hex(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &length) == nullptr) {
    // A built-in digest failing is a broken OpenSSL installation, not bad input.
    std::fprintf(stderr, "certfleet: OpenSSL HMAC-SHA256 failed\n");
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(length)));
}

// Header values must not break the header block; event types are ours, but be safe.
std::string HeaderSafe(absl::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  return out;
}

std::string RequestBody(const Event& event, const std::string& delivery_id, int attempt) {
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
  for (const auto& [key, value] : event.fields) fields[key] = value;
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body["type"] = event.type;
  body["at"] = common::FormatRfc3339(event.at);
  body["subject"] = event.subject;
  body["summary"] = event.summary;
  body["fields"] = std::move(fields);
  body["delivery_id"] = delivery_id;
  body["attempt"] = attempt;
  // `replace` turns bytes that are not UTF-8 into U+FFFD instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

absl::Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (code != CURLE_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("libcurl initialisation failed: ", curl_easy_strerror(code)));
  }
  return absl::OkStatus();
}

}  // namespace

// One easy handle in one multi handle, so that a transfer can be interrupted at once
// (curl_multi_wakeup) and connections are reused between requests. Post runs on the worker
// thread only; Wakeup may be called from any thread.
class WebhookNotifier::Transport {
 public:
  struct Result {
    Outcome outcome = Outcome::kRetry;
    std::string detail;  // for logs: "HTTP 503", "Connection refused", ...
  };

  static absl::StatusOr<std::unique_ptr<Transport>> Create(const WebhookOptions& options) {
    CF_RETURN_IF_ERROR(InitCurlOnce(), "webhook \"", options.name, "\"");
    std::unique_ptr<Transport> transport(new Transport(curl_multi_init(), curl_easy_init()));
    if (transport->multi_ == nullptr || transport->easy_ == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("webhook \"", options.name, "\": libcurl handles could not be created"));
    }
    CURL* easy = transport->easy_;
    const long timeout_ms = static_cast<long>(absl::ToInt64Milliseconds(options.timeout));
    const std::string user_agent = absl::StrCat("certfleet/", CERTFLEET_VERSION);
    const std::pair<const char*, CURLcode> settings[] = {
        {"URL", curl_easy_setopt(easy, CURLOPT_URL, options.url.c_str())},
        {"NOSIGNAL", curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L)},
        {"TIMEOUT_MS", curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, std::max(timeout_ms, 1L))},
        {"CONNECTTIMEOUT_MS",
         curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, std::max(timeout_ms, 1L))},
        {"FOLLOWLOCATION", curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L)},
        {"PROTOCOLS_STR", curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https")},
        {"POST", curl_easy_setopt(easy, CURLOPT_POST, 1L)},
        {"USERAGENT", curl_easy_setopt(easy, CURLOPT_USERAGENT, user_agent.c_str())},
        {"WRITEFUNCTION", curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &DiscardBody)},
        {"ERRORBUFFER", curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transport->error_)},
    };
    for (const auto& [option, code] : settings) {
      if (code != CURLE_OK) {
        return absl::FailedPreconditionError(absl::StrCat("webhook \"", options.name,
                                                          "\": libcurl refused CURLOPT_", option,
                                                          ": ", curl_easy_strerror(code)));
      }
    }
    return transport;
  }

  ~Transport() {
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Interrupts a curl_multi_poll in progress (or the next one). Thread-safe.
  void Wakeup() { curl_multi_wakeup(multi_); }

  // POSTs `body` with `headers`; gives up with kAborted as soon as `abort` is set.
  Result Post(const std::string& body, const std::vector<std::string>& headers,
              const std::atomic<bool>& abort) {
    SlistPtr list;
    for (const std::string& header : headers) {
      curl_slist* longer = curl_slist_append(list.get(), header.c_str());
      if (longer == nullptr) return {Outcome::kRetry, "libcurl: out of memory"};
      list.release();
      list.reset(longer);
    }
    error_[0] = '\0';
    if (curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, list.get()) != CURLE_OK ||
        curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(body.size())) != CURLE_OK ||
        curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body.data()) != CURLE_OK) {
      return {Outcome::kRetry, "libcurl refused the request options"};
    }
    if (curl_multi_add_handle(multi_, easy_) != CURLM_OK) {
      return {Outcome::kRetry, "libcurl refused to start the transfer"};
    }
    bool aborted = false;
    CURLMcode multi_code = CURLM_OK;
    int running = 1;
    while (true) {
      if (abort.load()) {
        aborted = true;
        break;
      }
      multi_code = curl_multi_perform(multi_, &running);
      if (multi_code != CURLM_OK || running == 0) break;
      multi_code = curl_multi_poll(multi_, nullptr, 0, kCurlPollMs, nullptr);
      if (multi_code != CURLM_OK) break;
    }
    bool finished = false;
    CURLcode code = CURLE_OK;
    if (!aborted && multi_code == CURLM_OK) {
      int left = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
        if (message->msg == CURLMSG_DONE && message->easy_handle == easy_) {
          finished = true;
          code = message->data.result;
        }
      }
    }
    curl_multi_remove_handle(multi_, easy_);
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));

    if (aborted) return {Outcome::kAborted, "shutting down"};
    if (multi_code != CURLM_OK) {
      return {Outcome::kRetry, absl::StrCat("libcurl: ", curl_multi_strerror(multi_code))};
    }
    if (!finished) return {Outcome::kRetry, "libcurl: the transfer did not finish"};
    if (code != CURLE_OK) {
      return {Outcome::kRetry,
              error_[0] != '\0' ? std::string(error_) : std::string(curl_easy_strerror(code))};
    }
    long status = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    const std::string detail = absl::StrCat("HTTP ", status);
    if (status >= 200 && status < 300) return {Outcome::kDelivered, detail};
    if (status >= 400 && status < 500 && status != 408 && status != 429) {
      return {Outcome::kFinal, detail};
    }
    if (status >= 300 && status < 400) {
      return {Outcome::kRetry, absl::StrCat(detail, " (redirects are not followed)")};
    }
    return {Outcome::kRetry, detail};
  }

 private:
  Transport(CURLM* multi, CURL* easy) : multi_(multi), easy_(easy) {}

  CURLM* const multi_;
  CURL* const easy_;
  char error_[CURL_ERROR_SIZE] = {};
};

absl::StatusOr<std::unique_ptr<WebhookNotifier>> WebhookNotifier::Create(WebhookOptions options,
                                                                         WebhookDeps deps) {
  CF_RETURN_IF_ERROR(ValidateOptions(options));
  CF_ASSIGN_OR_RETURN(std::string display_url, DisplayUrl(options.name, options.url));
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, Transport::Create(options));
  common::LogInfo("webhook ", options.name, ": delivering ",
                  options.events.empty() ? "every event type" : absl::StrJoin(options.events, ", "),
                  " to ", display_url, options.hmac_key.empty() ? ", unsigned" : ", signed");
  return std::unique_ptr<WebhookNotifier>(new WebhookNotifier(
      std::move(options), std::move(deps), std::move(display_url), std::move(transport)));
}

WebhookNotifier::WebhookNotifier(WebhookOptions options, WebhookDeps deps, std::string display_url,
                                 std::unique_ptr<Transport> transport)
    : options_(std::move(options)),
      display_url_(std::move(display_url)),
      clock_(deps.clock),
      random_(std::move(deps.random)),
      transport_(std::move(transport)) {
  if (random_ == nullptr) {
    random_ = [gen = std::make_shared<absl::BitGen>()] { return absl::Uniform<uint64_t>(*gen); };
  }
  worker_ = std::thread([this] { WorkerLoop(); });
}

WebhookNotifier::~WebhookNotifier() {
  Shutdown(absl::ZeroDuration());
  OPENSSL_cleanse(options_.hmac_key.data(), options_.hmac_key.size());
}

bool WebhookNotifier::Subscribed(const std::string& type) const {
  return options_.events.empty() ||
         std::find(options_.events.begin(), options_.events.end(), type) != options_.events.end();
}

void WebhookNotifier::Notify(const Event& event) {
  if (!Subscribed(event.type)) return;
  absl::MutexLock lock(&mu_);
  if (draining_) {
    ++stats_.dropped;
    common::LogDebug("webhook ", options_.name, ": ", event.type, " event for ", event.subject,
                     " dropped: the webhook is shut down");
    return;
  }
  if (queue_.size() >= options_.max_queue) {
    queue_.pop_front();
    ++stats_.dropped;
    ++overflow_dropped_;
    if (!overflowing_) {
      overflowing_ = true;
      common::LogWarning("webhook ", options_.name, ": queue full (", options_.max_queue,
                         " events); dropping the oldest events until it drains");
    }
  }
  queue_.push_back(event);
}

WebhookStats WebhookNotifier::Stats() const {
  absl::MutexLock lock(&mu_);
  WebhookStats stats = stats_;
  stats.queued = queue_.size() + (in_flight_ ? 1 : 0);
  return stats;
}

void WebhookNotifier::Shutdown(absl::Duration grace) {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    const absl::Time deadline = clock_.Now() + grace;
    while (!worker_done_) {
      const absl::Duration left = deadline - clock_.Now();
      if (left <= absl::ZeroDuration()) break;
      mu_.AwaitWithTimeout(absl::Condition(&worker_done_), std::min(left, kPollSlice));
    }
    stop_ = true;
  }
  abort_.store(true);
  transport_->Wakeup();
  worker_.join();
  const WebhookStats stats = Stats();
  common::LogInfo("webhook ", options_.name, ": stopped; ", stats.delivered, " delivered, ",
                  stats.dropped, " dropped, ", stats.failed_attempts, " failed attempts");
}

void WebhookNotifier::WorkerLoop() {
  const auto has_work = [](WebhookNotifier* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return self->stop_ || self->draining_ || !self->queue_.empty();
  };
  while (true) {
    Event event;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(+has_work, this));
      if (stop_ || queue_.empty()) break;  // the grace is over, or drained after Shutdown
      event = std::move(queue_.front());
      queue_.pop_front();
      in_flight_ = true;
      if (queue_.empty() && overflowing_) {
        common::LogInfo("webhook ", options_.name, ": queue drained; ", overflow_dropped_,
                        " events were dropped while it was full");
        overflowing_ = false;
        overflow_dropped_ = 0;
      }
    }
    Deliver(event);
  }
  absl::MutexLock lock(&mu_);
  if (!queue_.empty()) {
    common::LogWarning("webhook ", options_.name, ": shutdown dropped ", queue_.size(),
                       " undelivered events");
  }
  stats_.dropped += queue_.size();
  queue_.clear();
  worker_done_ = true;
}

void WebhookNotifier::Deliver(const Event& event) {
  const std::string delivery_id = NewDeliveryId();
  const std::string what = absl::StrCat("webhook ", options_.name, ": ", event.type, " event for ",
                                        event.subject, " (delivery ", delivery_id, ")");
  for (int attempt = 1;; ++attempt) {
    const std::string body = RequestBody(event, delivery_id, attempt);
    std::vector<std::string> headers = {
        "Content-Type: application/json",
        absl::StrCat("X-Certfleet-Event: ", HeaderSafe(event.type)),
        absl::StrCat("X-Certfleet-Delivery: ", delivery_id),
        "Expect:",  // no "100-continue" round trip for larger bodies
    };
    if (!options_.hmac_key.empty()) {
      headers.push_back(
          absl::StrCat("X-Certfleet-Signature: sha256=", HmacSha256Hex(options_.hmac_key, body)));
    }
    const Transport::Result result = transport_->Post(body, headers, abort_);

    absl::MutexLock lock(&mu_);
    switch (result.outcome) {
      case Outcome::kDelivered:
        ++stats_.delivered;
        common::LogDebug(what, " delivered to ", display_url_, " on attempt ", attempt);
        in_flight_ = false;
        return;
      case Outcome::kAborted:
        ++stats_.dropped;
        common::LogWarning(what, " dropped: shutdown interrupted attempt ", attempt);
        in_flight_ = false;
        return;
      case Outcome::kFinal:
        ++stats_.failed_attempts;
        ++stats_.dropped;
        common::LogWarning(what, " refused by ", display_url_, " with ", result.detail,
                           "; dropped without retrying");
        in_flight_ = false;
        return;
      case Outcome::kRetry:
        ++stats_.failed_attempts;
        break;
    }
    if (attempt >= options_.max_attempts) {
      ++stats_.dropped;
      common::LogWarning(what, " dropped after ", attempt, " attempts to ", display_url_,
                         "; last: ", result.detail);
      in_flight_ = false;
      return;
    }
    const absl::Duration wait = Backoff(attempt);
    common::LogDebug(what, " attempt ", attempt, " to ", display_url_, " failed (", result.detail,
                     "); retrying in ", absl::FormatDuration(wait));
    if (!WaitUntil(clock_.Now() + wait)) {
      ++stats_.dropped;
      common::LogWarning(what, " dropped: shutdown during the wait before attempt ", attempt + 1);
      in_flight_ = false;
      return;
    }
  }
}

bool WebhookNotifier::WaitUntil(absl::Time deadline) {
  while (!stop_) {
    const absl::Duration left = deadline - clock_.Now();
    if (left <= absl::ZeroDuration()) return true;
    mu_.AwaitWithTimeout(absl::Condition(&stop_), std::min(left, kPollSlice));
  }
  return false;
}

absl::Duration WebhookNotifier::Backoff(int failed_attempts) {
  absl::Duration ceiling = options_.initial_backoff;
  for (int i = 1; i < failed_attempts && ceiling < options_.max_backoff; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, options_.max_backoff);
  // 53 random bits -> a double uniform in [0, 1).
  const double fraction = static_cast<double>(random_() >> 11) * 0x1.0p-53;
  return ceiling * fraction;
}

std::string WebhookNotifier::NewDeliveryId() {
  // A version 4 (random) UUID.
  uint64_t high = random_();
  uint64_t low = random_();
  high = (high & ~uint64_t{0xf000}) | uint64_t{0x4000};
  low = (low & ~(uint64_t{0xc} << 60)) | (uint64_t{0x8} << 60);
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", high >> 32, (high >> 16) & 0xffff,
                         high & 0xffff, low >> 48, low & 0xffffffffffffULL);
}

}  // namespace certfleet::controller::notify
