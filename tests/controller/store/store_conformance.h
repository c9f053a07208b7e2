#pragma once

// The behaviour every Store implementation must have: one value-parameterized test suite,
// instantiated once per implementation, that covers every method and every status code of
// controller/store/store.h. To run it against an implementation (or a fake):
//
//   class MyStoreFactory : public StoreFactory { ... };
//   INSTANTIATE_TEST_SUITE_P(
//       MyStore, StoreConformanceTest,
//       ::testing::Values(StoreImplementation{
//           "MyStore", [] { return std::unique_ptr<StoreFactory>(new MyStoreFactory); }}),
//       StoreImplementationName);
//
// and link the cf_controller_store_conformance object library into the test executable.
//
// Besides store.h's contract the suite expects what any implementation should do with bad
// input (InvalidArgument for empty ids, hashes, FQDNs, stores, thumbprints, serials and command
// ids, malformed removed keys, duplicate certificates in a full inventory, a CommandFilter or
// RenewalFilter limit of 0), FQDNs compared ASCII case-insensitively (also for tokens bound to
// an FQDN), FQDNs ordered bytewise, times and durations kept to the microsecond (with
// absl::InfinitePast() and absl::InfiniteFuture() kept as they are), CreateCommand ignoring the
// progress fields (state, times, attempts, cancel_requested, outcome) of the record it is given,
// and issuances recorded whatever their agent (the log needs no agent row). It never depends on
// the order of records created at the same instant.

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "controller/store/store.h"
#include "gtest/gtest.h"

namespace certfleet::controller::store {

// Makes fresh, empty stores for one test. Destroyed at the end of the test, after the stores it
// made; it removes whatever they left behind (files, directories).
class StoreFactory {
 public:
  virtual ~StoreFactory() = default;
  // A new, empty store, independent of the others this factory made.
  virtual absl::StatusOr<std::unique_ptr<Store>> NewStore() = 0;
};

// One implementation under test.
struct StoreImplementation {
  std::string name;  // the instantiation's test-name suffix: letters, digits and '_'
  std::function<std::unique_ptr<StoreFactory>()> make_factory;
};

inline void PrintTo(const StoreImplementation& implementation, std::ostream* os) {
  *os << implementation.name;
}

// For INSTANTIATE_TEST_SUITE_P: names each instantiation after StoreImplementation::name.
std::string StoreImplementationName(const ::testing::TestParamInfo<StoreImplementation>& info);

class StoreConformanceTest : public ::testing::TestWithParam<StoreImplementation> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Store& store() { return *store_; }

  std::unique_ptr<StoreFactory> factory_;
  std::unique_ptr<Store> store_;
};

}  // namespace certfleet::controller::store
