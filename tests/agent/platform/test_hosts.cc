#include "tests/agent/platform/test_hosts.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/platform/lab/lab_host_platform.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "gtest/gtest.h"

namespace certfleet::testing {
namespace {

// Ends the test binary: the test environment itself is broken.
void Require(bool ok, absl::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "test host setup failed: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

void Require(const absl::Status& status) { Require(status.ok(), status.ToString()); }

using agent::platform::HostEvent;
using agent::platform::HostPlatform;
using agent::platform::LabHostPlatform;
using agent::platform::MemoryHostPlatform;
using agent::platform::RestartFault;
using agent::platform::StoreName;

class LabTestHost final : public TestHost {
 public:
  LabTestHost(std::string dir, std::unique_ptr<LabHostPlatform> lab)
      : dir_(std::move(dir)), lab_(std::move(lab)) {}
  ~LabTestHost() override {
    lab_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  HostPlatform& platform() override { return *lab_; }
  void AppendEvent(const HostEvent& event) override { Require(lab_->AppendEvent(event)); }
  void SetRestartFault(const RestartFault& fault) override {
    Require(lab_->SetRestartFault(fault));
  }
  void AddUnreadableEntry(StoreName store, absl::string_view id) override {
    std::ofstream out(absl::StrCat(lab_->StoreDirectory(store), "/", id));
    out << "this is not a certificate\n";
    Require(out.good(), "writing an unreadable entry");
  }

 private:
  const std::string dir_;
  std::unique_ptr<LabHostPlatform> lab_;
};

class MemoryTestHost final : public TestHost {
 public:
  explicit MemoryTestHost(std::unique_ptr<MemoryHostPlatform> memory)
      : memory_(std::move(memory)) {}

  HostPlatform& platform() override { return *memory_; }
  void AppendEvent(const HostEvent& event) override { memory_->AppendEvent(event); }
  void SetRestartFault(const RestartFault& fault) override { memory_->SetRestartFault(fault); }
  void AddUnreadableEntry(StoreName store, absl::string_view id) override {
    memory_->AddUnreadableEntry(store, id, "not a PEM, DER or PKCS#12 certificate file");
  }

 private:
  std::unique_ptr<MemoryHostPlatform> memory_;
};

}  // namespace

std::string MakeTempDirectory() {
  std::string pattern = absl::StrCat(::testing::TempDir(), "/certfleet-lab-XXXXXX");
  char* dir = ::mkdtemp(pattern.data());
  Require(dir != nullptr, absl::StrCat("mkdtemp ", pattern));
  return pattern;
}

std::vector<Backend> AllBackends() {
  return {
      Backend{
          "lab",
          [](const TestHostOptions& options, common::Clock& clock) -> std::unique_ptr<TestHost> {
            std::string dir = MakeTempDirectory();
            agent::platform::LabOptions lab;
            lab.root = absl::StrCat(dir, "/host");
            lab.fqdn = options.fqdn;
            lab.max_restart_time = options.max_restart_time;
            auto platform = LabHostPlatform::Open(lab, {clock});
            Require(platform.status());
            return std::make_unique<LabTestHost>(std::move(dir), std::move(*platform));
          }},
      Backend{
          "memory",
          [](const TestHostOptions& options, common::Clock& clock) -> std::unique_ptr<TestHost> {
            agent::platform::MemoryOptions memory;
            memory.fqdn = options.fqdn;
            memory.max_restart_time = options.max_restart_time;
            return std::make_unique<MemoryTestHost>(
                std::make_unique<MemoryHostPlatform>(memory, agent::platform::MemoryDeps{clock}));
          }},
  };
}

std::string BackendName(const Backend& backend) { return backend.name; }

void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

}  // namespace certfleet::testing
