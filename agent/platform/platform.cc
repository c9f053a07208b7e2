// Definitions shared by every HostPlatform backend: store names, the ReadSince selection rule
// and channel serial validation.

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/platform/binding_registry.h"
#include "agent/platform/certificate_store.h"
#include "agent/platform/event_log.h"
#include "common/crypto/encoding.h"

namespace certfleet::agent::platform {

absl::string_view StoreNameText(StoreName store) {
  switch (store) {
    case StoreName::kMy:
      return "My";
    case StoreName::kCa:
      return "CA";
    case StoreName::kRoot:
      return "Root";
  }
  return "Unknown";
}

std::optional<StoreName> StoreNameFromText(absl::string_view text) {
  for (StoreName store : {StoreName::kMy, StoreName::kCa, StoreName::kRoot}) {
    if (absl::EqualsIgnoreCase(text, StoreNameText(store))) return store;
  }
  return std::nullopt;
}

std::vector<HostEvent> SelectEventsSince(std::vector<HostEvent> events, absl::Time since,
                                         size_t max_events) {
  events.erase(std::remove_if(events.begin(), events.end(),
                              [since](const HostEvent& e) { return e.time < since; }),
               events.end());
  std::stable_sort(events.begin(), events.end(),
                   [](const HostEvent& a, const HostEvent& b) { return a.time < b.time; });
  if (events.size() > max_events) {
    events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(max_events));
  }
  return events;
}

absl::StatusOr<std::string> NormalizeChannelSerial(absl::string_view hex) {
  absl::StatusOr<std::string> bytes = common::crypto::HexDecode(hex);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ChannelCertificateSerialNumber '", hex, "' is not even-length hex"));
  }
  if (bytes->empty()) {
    return absl::InvalidArgumentError("ChannelCertificateSerialNumber is empty");
  }
  return common::crypto::HexUpper(*bytes);
}

}  // namespace certfleet::agent::platform
