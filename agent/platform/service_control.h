#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace certfleet::agent::platform {

enum class ServiceState { kRunning, kStopped, kUnknown };

// The HealthService ("Microsoft Monitoring Agent").
//
// Thread-safety: implementations are safe to call from several threads.
class ServiceControl {
 public:
  virtual ~ServiceControl() = default;

  virtual absl::StatusOr<ServiceState> State() = 0;

  // Stops and starts the service. The service then loads the bound certificate and records
  // the outcome in the event log (20053 or a failure event), as SCOM's HealthService does.
  // Unavailable when the restart itself failed; DeadlineExceeded when it did not finish.
  virtual absl::Status Restart() = 0;
};

}  // namespace certfleet::agent::platform
