#pragma once

// Test helpers for everything built on a ControllerPki.
//
// ControllerPki::LoadOrCreate on an empty directory makes two RSA-3072 keys, which costs
// seconds per test process. Tests that do not test that first start hand it an existing CA
// instead, as an operator may: the root and issuing CA of a TestPki (pooled keys) written to
// DIR/ca. LoadOrCreate then takes them and only makes the server and admin credentials.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "controller/ca/controller_pki.h"
#include "tests/testing/test_pki.h"

namespace certfleet::testing {

// A fresh directory (0700) under the test temp directory, removed with its content at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Crashes the test binary when the directory cannot be made (a broken test environment).
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `ca`'s root and issuing CA as STATE_DIR/ca/{root,issuing}.{pem,key}.
absl::Status SeedControllerCa(const std::string& state_dir, const TestPki& ca);

// SeedControllerCa, then ControllerPki::LoadOrCreate on `state_dir`.
absl::StatusOr<std::unique_ptr<controller::ca::ControllerPki>> LoadSeededControllerPki(
    const std::string& state_dir, const TestPki& ca, common::Clock& clock,
    std::vector<std::string> server_names = {});

}  // namespace certfleet::testing
