#include "agent/platform/memory/memory_host_platform.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/status/status_macros.h"

namespace certfleet::agent::platform {
namespace {

namespace crypto = common::crypto;

}  // namespace

class MemoryHostPlatform::Store final : public CertificateStore {
 public:
  explicit Store(MemoryHostPlatform& host) : host_(host) {}

  absl::StatusOr<std::vector<StoredCertificate>> List(StoreName store) override {
    absl::MutexLock lock(&host_.mu_);
    const std::map<std::string, CertificateEntry>& entries = host_.StoreLocked(store);
    std::vector<StoredCertificate> out;
    out.reserve(entries.size());
    for (const auto& [id, entry] : entries) {
      StoredCertificate stored;
      stored.id = id;
      stored.error = entry.error;
      if (entry.error.empty()) {
        stored.der = entry.der;
        stored.has_private_key = !entry.key_pem.empty();
      }
      out.push_back(std::move(stored));
    }
    return out;
  }

  absl::StatusOr<std::string> Add(StoreName store, absl::string_view der,
                                  const std::optional<std::string>& private_key_pem) override {
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(der);
    if (!cert.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adding to store ", StoreNameText(store),
                       ": not a DER certificate: ", cert.status().message()));
    }
    std::string key_pem;
    if (private_key_pem.has_value()) {
      if (store != StoreName::kMy) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a private key can be linked only in store My, not ", StoreNameText(store)));
      }
      absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(*private_key_pem);
      if (!key.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("not a private key: ", key.status().message()));
      }
      if (!crypto::KeyMatchesCertificate(key->get(), cert->get())) {
        return absl::InvalidArgumentError("the private key does not match the certificate");
      }
      key_pem = crypto::PrivateKeyToPem(key->get());
    }
    std::string canonical = crypto::CertificateToDer(cert->get());
    std::string id = crypto::Sha1Hex(canonical);

    absl::MutexLock lock(&host_.mu_);
    std::map<std::string, CertificateEntry>& entries = host_.StoreLocked(store);
    auto it = entries.find(id);
    if (it != entries.end() && it->second.error.empty()) {
      if (it->second.key_pem.empty()) it->second.key_pem = std::move(key_pem);
      return id;
    }
    // An unreadable entry that happens to carry the thumbprint as its id is replaced.
    entries[id] = CertificateEntry{std::move(canonical), std::move(key_pem), ""};
    return id;
  }

  absl::Status Remove(StoreName store, absl::string_view id) override {
    absl::MutexLock lock(&host_.mu_);
    std::map<std::string, CertificateEntry>& entries = host_.StoreLocked(store);
    auto it = entries.find(std::string(id));
    if (it == entries.end()) {
      return absl::NotFoundError(
          absl::StrCat("no entry '", id, "' in store ", StoreNameText(store)));
    }
    entries.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<KeyContainer>> ListKeyContainers() override {
    absl::MutexLock lock(&host_.mu_);
    std::vector<KeyContainer> out;
    out.reserve(host_.key_containers_.size());
    for (const auto& [id, entry] : host_.key_containers_) {
      out.push_back(KeyContainer{id, entry.public_key_der, ""});
    }
    return out;
  }

  absl::StatusOr<std::string> AddKeyContainer(absl::string_view private_key_pem) override {
    absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(private_key_pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adding a key container: not a private key: ", key.status().message()));
    }
    std::string public_der = crypto::PublicKeyDer(key->get());
    std::string id = crypto::Sha1Hex(public_der);
    std::string pem = crypto::PrivateKeyToPem(key->get());
    absl::MutexLock lock(&host_.mu_);
    host_.key_containers_.try_emplace(id, KeyEntry{std::move(pem), std::move(public_der)});
    return id;
  }

  absl::Status LinkKey(absl::string_view certificate_id, absl::string_view container_id) override {
    absl::MutexLock lock(&host_.mu_);
    auto cert_it = host_.my_.find(std::string(certificate_id));
    if (cert_it == host_.my_.end()) {
      return absl::NotFoundError(absl::StrCat("no certificate '", certificate_id, "' in store My"));
    }
    if (!cert_it->second.error.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("certificate '", certificate_id,
                       "' in store My is not readable: ", cert_it->second.error));
    }
    auto key_it = host_.key_containers_.find(std::string(container_id));
    if (key_it == host_.key_containers_.end()) {
      return absl::NotFoundError(absl::StrCat("no key container '", container_id, "'"));
    }
    // Both parse: they were validated when they were added.
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(cert_it->second.der);
    absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(key_it->second.key_pem);
    if (!cert.ok() || !key.ok()) {
      return absl::InternalError("a stored certificate or key no longer parses");
    }
    if (!crypto::KeyMatchesCertificate(key->get(), cert->get())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key container '", container_id, "' does not match certificate '", certificate_id, "'"));
    }
    cert_it->second.key_pem = std::move(key_it->second.key_pem);
    host_.key_containers_.erase(key_it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> LinkedPrivateKeyPem(absl::string_view certificate_id) override {
    absl::MutexLock lock(&host_.mu_);
    auto it = host_.my_.find(std::string(certificate_id));
    if (it == host_.my_.end()) {
      return absl::NotFoundError(absl::StrCat("no certificate '", certificate_id, "' in store My"));
    }
    if (it->second.key_pem.empty()) {
      return absl::NotFoundError(
          absl::StrCat("certificate '", certificate_id, "' in store My has no linked private key"));
    }
    return it->second.key_pem;
  }

 private:
  MemoryHostPlatform& host_;
};

class MemoryHostPlatform::Registry final : public BindingRegistry {
 public:
  explicit Registry(MemoryHostPlatform& host) : host_(host) {}

  absl::StatusOr<MachineSettings> Read() override {
    absl::MutexLock lock(&host_.mu_);
    return host_.settings_;
  }

  absl::Status Write(const MachineSettings& settings) override {
    MachineSettings normalized = settings;
    if (settings.channel_certificate_serial.has_value()) {
      CF_ASSIGN_OR_RETURN(normalized.channel_certificate_serial,
                          NormalizeChannelSerial(*settings.channel_certificate_serial));
    }
    absl::MutexLock lock(&host_.mu_);
    host_.settings_ = std::move(normalized);
    return absl::OkStatus();
  }

 private:
  MemoryHostPlatform& host_;
};

class MemoryHostPlatform::Log final : public EventLog {
 public:
  explicit Log(MemoryHostPlatform& host) : host_(host) {}

  absl::StatusOr<std::vector<HostEvent>> ReadSince(absl::Time since, size_t max_events) override {
    std::vector<HostEvent> events;
    {
      absl::MutexLock lock(&host_.mu_);
      for (const HostEvent& event : host_.events_) {
        if (event.time >= since) events.push_back(event);
      }
    }
    return SelectEventsSince(std::move(events), since, max_events);
  }

 private:
  MemoryHostPlatform& host_;
};

class MemoryHostPlatform::Service final : public ServiceControl {
 public:
  explicit Service(MemoryHostPlatform& host) : host_(host) {}

  absl::StatusOr<ServiceState> State() override {
    absl::MutexLock lock(&host_.mu_);
    return host_.state_;
  }

  absl::Status Restart() override {
    absl::MutexLock restart_lock(&host_.restart_mu_);
    RestartFault fault;
    {
      absl::MutexLock lock(&host_.mu_);
      if (host_.fault_.times != 0) fault = host_.fault_;
      if (host_.fault_.times > 0 && --host_.fault_.times == 0) host_.fault_ = RestartFault{};
    }
    RestartOutcome outcome = host_.emulator_->Restart(fault);
    absl::MutexLock lock(&host_.mu_);
    host_.state_ = outcome.state;
    if (outcome.event.has_value()) host_.AppendEventLocked(std::move(*outcome.event));
    return outcome.status;
  }

 private:
  MemoryHostPlatform& host_;
};

MemoryHostPlatform::MemoryHostPlatform(const MemoryOptions& options, const MemoryDeps& deps)
    : options_(options), clock_(deps.clock) {
  store_ = std::make_unique<Store>(*this);
  registry_ = std::make_unique<Registry>(*this);
  log_ = std::make_unique<Log>(*this);
  emulator_ = std::make_unique<HealthServiceEmulator>(
      HealthServiceEmulator::Deps{*store_, *registry_, clock_}, options_.fqdn,
      options_.max_restart_time);
  service_ = std::make_unique<Service>(*this);
}

MemoryHostPlatform::~MemoryHostPlatform() = default;

CertificateStore& MemoryHostPlatform::Certificates() { return *store_; }
BindingRegistry& MemoryHostPlatform::Binding() { return *registry_; }
ServiceControl& MemoryHostPlatform::HealthService() { return *service_; }
EventLog& MemoryHostPlatform::Events() { return *log_; }

void MemoryHostPlatform::AppendEvent(const HostEvent& event) {
  absl::MutexLock lock(&mu_);
  AppendEventLocked(event);
}

void MemoryHostPlatform::AppendEventLocked(HostEvent event) {
  events_.push_back(std::move(event));
  if (events_.size() > options_.max_events_kept) {
    events_.erase(
        events_.begin(),
        events_.begin() + static_cast<std::ptrdiff_t>(events_.size() - options_.max_events_kept));
  }
}

void MemoryHostPlatform::SetRestartFault(const RestartFault& fault) {
  absl::MutexLock lock(&mu_);
  fault_ = fault;
}

void MemoryHostPlatform::SetServiceState(ServiceState state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void MemoryHostPlatform::AddUnreadableEntry(StoreName store, absl::string_view id,
                                            absl::string_view error) {
  absl::MutexLock lock(&mu_);
  StoreLocked(store)[std::string(id)] =
      CertificateEntry{"", "", error.empty() ? "unreadable entry" : std::string(error)};
}

std::map<std::string, MemoryHostPlatform::CertificateEntry>& MemoryHostPlatform::StoreLocked(
    StoreName store) {
  switch (store) {
    case StoreName::kMy:
      return my_;
    case StoreName::kCa:
      return ca_;
    case StoreName::kRoot:
      return root_;
  }
  return my_;
}

}  // namespace certfleet::agent::platform
