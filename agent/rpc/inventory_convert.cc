#include "agent/rpc/inventory_convert.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/certificate_convert.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::agent::rpc {
namespace {

using google::protobuf::util::TimeUtil;

void ToProto(const inventory::ScannedCertificate& c, certfleet::v1::HostCertificate* out) {
  common::rpc::ToProto(c.info, c.problems, out->mutable_certificate());
  out->set_store(c.store);
  out->set_location(c.location);
  out->set_bound(c.bound);
  for (const auto& d : c.drift) out->add_drift(d);
}

std::string ServiceText(platform::ServiceState s) {
  switch (s) {
    case platform::ServiceState::kRunning:
      return "running";
    case platform::ServiceState::kStopped:
      return "stopped";
    case platform::ServiceState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace

std::string InventoryKey(const inventory::ScannedCertificate& c) {
  return absl::StrCat(c.store, "/", c.info.thumbprint);
}

std::optional<certfleet::v1::Inventory> InventoryTracker::Next(const inventory::HostInventory& scan,
                                                               bool force_full) {
  certfleet::v1::Inventory msg;
  const bool full = force_full || !sent_any_;

  std::map<std::string, std::string> current;
  bool changed = full;
  // One row per key: a lab store may hold one certificate in two files. A second row would be
  // re-sent as "changed" on every scan, and the controller refuses a full inventory with two
  // rows of one key. The bound entry wins, else one with a private key, else the first.
  std::map<std::string, const inventory::ScannedCertificate*> chosen;
  auto rank = [](const inventory::ScannedCertificate& c) {
    return (c.bound ? 2 : 0) + (c.info.has_private_key ? 1 : 0);
  };
  for (const auto& c : scan.certificates) {
    auto [it, inserted] = chosen.emplace(InventoryKey(c), &c);
    if (!inserted && rank(c) > rank(*it->second)) it->second = &c;
  }
  for (const auto& c : scan.certificates) {
    std::string key = InventoryKey(c);
    if (chosen[key] != &c) continue;
    certfleet::v1::HostCertificate hc;
    ToProto(c, &hc);
    std::string bytes = hc.SerializeAsString();
    auto it = last_certificates_.find(key);
    if (full || it == last_certificates_.end() || it->second != bytes) {
      *msg.add_certificates() = std::move(hc);
      changed = true;
    }
    current.emplace(std::move(key), std::move(bytes));
  }
  if (!full) {
    for (const auto& [key, bytes] : last_certificates_) {
      if (!current.count(key)) {
        msg.add_removed(key);
        changed = true;
      }
    }
  }

  auto* binding = msg.mutable_binding();
  binding->set_channel_serial(scan.channel_serial);
  binding->set_bound_thumbprint(scan.bound_thumbprint);
  for (const auto& d : scan.drift) binding->add_drift(d);
  std::string binding_bytes = binding->SerializeAsString();
  if (binding_bytes != last_binding_) changed = true;

  msg.mutable_service()->set_name("HealthService");
  msg.mutable_service()->set_state(ServiceText(scan.service));
  std::string service_bytes = msg.service().SerializeAsString();
  if (service_bytes != last_service_) changed = true;

  for (const auto& e : scan.errors) {
    auto* err = msg.add_store_errors();
    err->set_store(e.store);
    err->set_location(e.location);
    err->set_error(e.error);
  }
  std::string errors_bytes;
  for (const auto& e : msg.store_errors()) errors_bytes += e.SerializeAsString();
  if (errors_bytes != last_errors_) changed = true;

  absl::Time newest = last_event_time_;
  for (const auto& e : scan.recent_events) {
    if (!full && e.time <= last_event_time_) continue;
    auto* ev = msg.add_recent_events();
    *ev->mutable_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(e.time));
    ev->set_id(e.id);
    ev->set_level(e.level);
    ev->set_message(e.message);
    newest = std::max(newest, e.time);
    changed = true;
  }

  if (!changed) return std::nullopt;
  msg.set_full(full);
  if (!full) msg.set_base_generation(generation_);
  msg.set_generation(++generation_);
  sent_any_ = true;
  last_certificates_ = std::move(current);
  last_binding_ = std::move(binding_bytes);
  last_service_ = std::move(service_bytes);
  last_errors_ = std::move(errors_bytes);
  last_event_time_ = newest;
  return msg;
}

}  // namespace certfleet::agent::rpc
