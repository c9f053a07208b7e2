#pragma once

#include <map>
#include <optional>
#include <string>

#include "agent/inventory/inventory.h"
#include "certfleet/v1/agent.pb.h"

namespace certfleet::agent::rpc {

// Turns scans into Inventory messages: a full one first, then only what changed.
// Not thread-safe.
class InventoryTracker {
 public:
  // The next message for `scan`: full when `force_full` or nothing was sent on this stream;
  // otherwise a delta against the last message, or nullopt when nothing changed.
  std::optional<certfleet::v1::Inventory> Next(const inventory::HostInventory& scan,
                                               bool force_full);
  // A new stream: the next message is full.
  void Reset() { sent_any_ = false; }

 private:
  bool sent_any_ = false;
  uint64_t generation_ = 0;
  std::map<std::string, std::string> last_certificates_;  // key -> serialized HostCertificate
  std::string last_binding_;
  std::string last_service_;
  std::string last_errors_;
  absl::Time last_event_time_ = absl::InfinitePast();
};

// The store/thumbprint key the controller uses for an inventory row.
std::string InventoryKey(const inventory::ScannedCertificate& c);

}  // namespace certfleet::agent::rpc
