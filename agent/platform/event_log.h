#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace certfleet::agent::platform {

// One event of the "Operations Manager" log, source "OpsMgr Connector".
struct HostEvent {
  absl::Time time;
  int id = 0;
  std::string level;  // "Information", "Warning", "Error"
  std::string message;
};

// Thread-safety: implementations are safe to call from several threads.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Events written at or after `since`, oldest first, at most `max_events` (the newest ones).
  // Lines that cannot be parsed are skipped. A missing log is empty, not an error.
  virtual absl::StatusOr<std::vector<HostEvent>> ReadSince(absl::Time since, size_t max_events) = 0;
};

// Added for implementers: the selection rule of ReadSince, shared so that every backend reads
// alike. Keeps the events at or after `since`, orders them oldest first (stable: events with
// the same time keep their order in `events`) and returns the newest `max_events` of them.
std::vector<HostEvent> SelectEventsSince(std::vector<HostEvent> events, absl::Time since,
                                         size_t max_events);

}  // namespace certfleet::agent::platform
