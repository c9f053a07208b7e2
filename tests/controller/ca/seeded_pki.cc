#include "tests/controller/ca/seeded_pki.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/files/file_util.h"
#include "common/status/status_macros.h"
#include "gtest/gtest.h"

namespace certfleet::testing {

TempDir::TempDir() {
  std::string pattern = ::testing::TempDir() + "/certfleet_test.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

absl::Status SeedControllerCa(const std::string& state_dir, const TestPki& ca) {
  const std::string dir = state_dir + "/ca";
  CF_RETURN_IF_ERROR(common::MakeDirectories(dir, 0700));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/root.key", ca.root().key_pem, 0600));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/issuing.key", ca.issuing().key_pem, 0600));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/root.pem", ca.root().cert_pem, 0644));
  CF_RETURN_IF_ERROR(
      common::WriteFileAtomically(dir + "/issuing.pem", ca.issuing().cert_pem, 0644));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<controller::ca::ControllerPki>> LoadSeededControllerPki(
    const std::string& state_dir, const TestPki& ca, common::Clock& clock,
    std::vector<std::string> server_names) {
  CF_RETURN_IF_ERROR(SeedControllerCa(state_dir, ca));
  controller::ca::ControllerPkiOptions options;
  options.state_dir = state_dir;
  options.server_names = std::move(server_names);
  return controller::ca::ControllerPki::LoadOrCreate(options, clock);
}

}  // namespace certfleet::testing
