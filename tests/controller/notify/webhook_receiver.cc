#include "tests/controller/notify/webhook_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/time/format.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace certfleet::controller::notify {
namespace {

// A loopback TCP socket bound to an ephemeral port; its port through `port`.
absl::StatusOr<int> BindLoopback(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", std::strerror(error)));
  }
  *port = ntohs(address.sin_port);
  return fd;
}

}  // namespace

std::string ReceivedRequest::Header(absl::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? "" : it->second;
}

WebhookReceiver::WebhookReceiver(Responder responder) : responder_(std::move(responder)) {}

absl::StatusOr<std::unique_ptr<WebhookReceiver>> WebhookReceiver::Start(Responder responder) {
  std::unique_ptr<WebhookReceiver> receiver(new WebhookReceiver(std::move(responder)));
  receiver->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *receiver->server_;
  server.new_task_queue = [] { return new httplib::ThreadPool(4); };
  server.set_tcp_nodelay(true);
  WebhookReceiver* self = receiver.get();
  server.Post("/hook", [self](const httplib::Request& request, httplib::Response& response) {
    ReceivedRequest received;
    received.method = request.method;
    received.path = request.path;
    received.body = request.body;
    received.received_at = absl::Now();
    for (const auto& [name, value] : request.headers) {
      received.headers[absl::AsciiStrToLower(name)] = value;
    }
    int index = 0;
    {
      absl::MutexLock lock(&self->mu_);
      index = static_cast<int>(self->requests_.size());
      self->requests_.push_back(std::move(received));
    }
    const Answer answer = self->responder_ ? self->responder_(index) : Answer{};
    if (answer.delay > absl::ZeroDuration()) {
      self->released_.WaitForNotificationWithTimeout(answer.delay);
    }
    response.status = answer.status;
    response.set_content("{}", "application/json");
  });
  receiver->port_ = server.bind_to_any_port("127.0.0.1");
  if (receiver->port_ <= 0) return absl::UnavailableError("receiver: cannot bind 127.0.0.1:0");
  receiver->thread_ = std::thread([&server] { server.listen_after_bind(); });
  while (!server.is_running()) absl::SleepFor(absl::Milliseconds(1));
  return receiver;
}

WebhookReceiver::~WebhookReceiver() {
  released_.Notify();
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string WebhookReceiver::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/hook");
}

std::vector<ReceivedRequest> WebhookReceiver::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::vector<ReceivedRequest> WebhookReceiver::WaitForRequests(size_t count,
                                                              absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto enough = [this, count]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return requests_.size() >= count; };
  mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  return requests_;
}

ClosingListener::ClosingListener(int fd, int port) : fd_(fd), port_(port) {
  thread_ = std::thread([this] {
    while (true) {
      const int connection = accept(fd_, nullptr, nullptr);
      if (connection < 0) {
        if (errno == EINTR) continue;
        return;  // shut down
      }
      ++connections_;
      char buffer[256];
      (void)recv(connection, buffer, sizeof(buffer), 0);
      close(connection);
    }
  });
}

absl::StatusOr<std::unique_ptr<ClosingListener>> ClosingListener::Start() {
  int port = 0;
  absl::StatusOr<int> fd = BindLoopback(&port);
  if (!fd.ok()) return fd.status();
  if (listen(*fd, 16) != 0) {
    close(*fd);
    return absl::InternalError("listen failed");
  }
  return std::unique_ptr<ClosingListener>(new ClosingListener(*fd, port));
}

ClosingListener::~ClosingListener() {
  shutdown(fd_, SHUT_RDWR);  // wakes accept()
  thread_.join();
  close(fd_);
}

std::string ClosingListener::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/hook");
}

absl::StatusOr<std::string> DeadPortUrl() {
  int port = 0;
  absl::StatusOr<int> fd = BindLoopback(&port);
  if (!fd.ok()) return fd.status();
  close(*fd);
  return absl::StrCat("http://127.0.0.1:", port, "/hook");
}

std::optional<ParsedBody> ParseBody(absl::string_view body) {
  const nlohmann::json json = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  for (const char* key : {"type", "at", "subject", "summary", "delivery_id"}) {
    if (!json.contains(key) || !json[key].is_string()) return std::nullopt;
  }
  if (!json.contains("attempt") || !json["attempt"].is_number_integer()) return std::nullopt;
  if (!json.contains("fields") || !json["fields"].is_object()) return std::nullopt;
  if (json.size() != 7) return std::nullopt;  // nothing but the documented keys
  ParsedBody parsed;
  parsed.event.type = json["type"].get<std::string>();
  absl::StatusOr<absl::Time> at = common::ParseRfc3339(json["at"].get<std::string>());
  if (!at.ok()) return std::nullopt;
  parsed.event.at = *at;
  parsed.event.subject = json["subject"].get<std::string>();
  parsed.event.summary = json["summary"].get<std::string>();
  for (const auto& [key, value] : json["fields"].items()) {
    if (!value.is_string()) return std::nullopt;
    parsed.event.fields[key] = value.get<std::string>();
  }
  parsed.delivery_id = json["delivery_id"].get<std::string>();
  parsed.attempt = json["attempt"].get<int>();
  return parsed;
}

std::string HmacSha256Hex(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(length)));
}

}  // namespace certfleet::controller::notify
