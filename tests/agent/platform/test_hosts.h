#pragma once

// Fresh hosts of every HostPlatform backend, for suites that must hold for all of them (the
// conformance suite here, the inventory tests). Each backend also gets the few test hooks the
// interfaces do not have: writing an event as another writer would, injecting a restart fault,
// and planting an unreadable store entry.

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/platform/certificate_store.h"
#include "agent/platform/health_service_emulator.h"
#include "agent/platform/host_platform.h"
#include "common/time/clock.h"

namespace certfleet::testing {

// A host under test. Not thread-safe itself; its platform is.
class TestHost {
 public:
  virtual ~TestHost() = default;
  virtual agent::platform::HostPlatform& platform() = 0;
  // Appends an event to the host's event log.
  virtual void AppendEvent(const agent::platform::HostEvent& event) = 0;
  // Injects `fault` into the next restarts.
  virtual void SetRestartFault(const agent::platform::RestartFault& fault) = 0;
  // Plants an entry `id` in `store` that is not a certificate.
  virtual void AddUnreadableEntry(agent::platform::StoreName store, absl::string_view id) = 0;
};

struct TestHostOptions {
  std::string fqdn = "host1.example.com";
  absl::Duration max_restart_time = absl::Minutes(2);
};

// Makes a fresh, empty host. Crashes the test (a broken environment) when it cannot.
using TestHostFactory =
    std::function<std::unique_ptr<TestHost>(const TestHostOptions& options, common::Clock& clock)>;

struct Backend {
  std::string name;  // "lab", "memory"
  TestHostFactory make;
};

// Every backend: lab (over a fresh temporary directory, removed with the host), memory.
std::vector<Backend> AllBackends();

// For INSTANTIATE_TEST_SUITE_P's name generator.
std::string BackendName(const Backend& backend);
// How gtest prints a Backend parameter.
void PrintTo(const Backend& backend, std::ostream* os);

// A fresh empty directory under the test temporary directory. The caller removes it.
std::string MakeTempDirectory();

}  // namespace certfleet::testing
