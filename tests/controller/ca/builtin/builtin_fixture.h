#pragma once

// A controller CA (seeded from a TestPki), a SqliteStore and a builtin issuer in a temporary
// directory, for the builtin and manual issuers' tests.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/openssl_types.h"
#include "common/model/profile.h"
#include "controller/ca/builtin/builtin_issuer.h"
#include "controller/ca/controller_pki.h"
#include "controller/ca/issuer.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "controller/store/store.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/controller/renewal/test_csr.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::testing {

inline constexpr absl::string_view kHostFqdn = "scom1.corp.example.com";
inline constexpr absl::string_view kOtherHostFqdn = "dc01.corp.example.com";

class BuiltinFixture : public ::testing::Test {
 protected:
  // `pki_start`: when the seeded CA's validity starts (a CA close to its end: start it early).
  explicit BuiltinFixture(absl::Time pki_start = absl::Now())
      : clock_(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))),  // whole seconds
        ca_(TestPki::Create(pki_start)),
        key_(ca_.NewRsaKey(2048)) {
    auto pki = LoadSeededControllerPki(dir_.path() + "/state", ca_, clock_);
    EXPECT_TRUE(pki.ok()) << pki.status();
    if (pki.ok()) pki_ = std::move(*pki);
    auto store = controller::store::SqliteStore::Open(
        {.path = db_path(), .busy_timeout = absl::Milliseconds(200)});
    EXPECT_TRUE(store.ok()) << store.status();
    if (store.ok()) store_ = std::move(*store);
    builtin_ = std::make_unique<controller::ca::BuiltinIssuer>(
        controller::ca::BuiltinIssuerDeps{*pki_, *store_, clock_});
    request_ = RequestFor(key_.get(), kHostFqdn);
  }

  std::string db_path() const { return dir_.path() + "/controller.db"; }

  controller::ca::IssuanceRequest RequestFor(EVP_PKEY* key, absl::string_view fqdn,
                                             absl::string_view renewal_id = "ren-1") {
    controller::ca::IssuanceRequest request;
    request.renewal_id = std::string(renewal_id);
    request.agent_id = "agent-1";
    request.fqdn = std::string(kHostFqdn);
    request.csr_pem = ScomCsrPem(key, fqdn);
    request.profile = common::model::ScomProfile();
    return request;
  }

  TempDir dir_;
  FakeClock clock_;
  TestPki ca_;
  common::crypto::EvpPkeyPtr key_;
  std::unique_ptr<controller::ca::ControllerPki> pki_;
  std::unique_ptr<controller::store::Store> store_;
  std::unique_ptr<controller::ca::BuiltinIssuer> builtin_;
  controller::ca::IssuanceRequest request_;
};

}  // namespace certfleet::testing
