#pragma once

#include <string>

#include "agent/platform/binding_registry.h"
#include "agent/platform/certificate_store.h"
#include "agent/platform/event_log.h"
#include "agent/platform/service_control.h"

namespace certfleet::agent::platform {

// The agent's only way to touch the host's OS, in the manner of LevelDB's Env: one interface
// per concern, one implementation per platform (lab, memory; later omi, windows).
//
// Thread-safety: every accessor is safe from several threads; the returned references live as
// long as the HostPlatform.
class HostPlatform {
 public:
  virtual ~HostPlatform() = default;

  // "lab", "memory", "omi", "windows".
  virtual std::string Name() const = 0;
  // The computer's FQDN as the HealthService compares it.
  virtual std::string Fqdn() const = 0;

  virtual CertificateStore& Certificates() = 0;
  virtual BindingRegistry& Binding() = 0;
  virtual ServiceControl& HealthService() = 0;
  virtual EventLog& Events() = 0;
};

}  // namespace certfleet::agent::platform
