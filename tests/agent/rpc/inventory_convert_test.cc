#include "agent/rpc/inventory_convert.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::agent::rpc {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

inventory::ScannedCertificate Cert(const std::string& store, char thumb) {
  inventory::ScannedCertificate c;
  c.store = store;
  c.location = std::string(1, thumb) + ".pem";
  c.info.subject = "CN=host1.example.com";
  c.info.subject_cn = "host1.example.com";
  c.info.thumbprint = std::string(40, thumb);
  c.info.sha256 = std::string(64, thumb);
  c.info.serial = "0A";
  c.info.channel_serial = "0A";
  c.info.not_before = kNow - absl::Hours(24);
  c.info.not_after = kNow + absl::Hours(24 * 365);
  c.info.key_algorithm = "RSA";
  c.info.key_bits = 2048;
  return c;
}

// A host with A and B in My (B bound) and R in Root.
inventory::HostInventory Host() {
  inventory::HostInventory host;
  host.certificates = {Cert("My", 'A'), Cert("My", 'B'), Cert("Root", 'C')};
  host.certificates[1].bound = true;
  host.channel_serial = "0A";
  host.bound_thumbprint = std::string(40, 'B');
  host.service = platform::ServiceState::kRunning;
  return host;
}

std::vector<std::string> Thumbprints(const certfleet::v1::Inventory& msg) {
  std::vector<std::string> out;
  for (const auto& c : msg.certificates()) {
    out.push_back(c.store() + "/" + c.certificate().thumbprint().substr(0, 1));
  }
  return out;
}

TEST(InventoryKey, IsStoreSlashThumbprint) {
  EXPECT_EQ(InventoryKey(Cert("Root", 'C')), "Root/" + std::string(40, 'C'));
}

TEST(InventoryTracker, TheFirstMessageIsFullWithGenerationOne) {
  InventoryTracker tracker;
  auto msg = tracker.Next(Host(), false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->full());
  EXPECT_EQ(msg->generation(), 1u);
  EXPECT_EQ(msg->base_generation(), 0u);
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/A", "My/B", "Root/C"));
  EXPECT_THAT(msg->removed(), IsEmpty());
  EXPECT_EQ(msg->binding().channel_serial(), "0A");
  EXPECT_EQ(msg->binding().bound_thumbprint(), std::string(40, 'B'));
  EXPECT_EQ(msg->service().state(), "running");
  EXPECT_TRUE(msg->certificates(1).bound());
}

TEST(InventoryTracker, AnEmptyHostStillGetsAFullFirstMessage) {
  InventoryTracker tracker;
  auto msg = tracker.Next(inventory::HostInventory{}, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->full());
  EXPECT_EQ(msg->generation(), 1u);
  EXPECT_THAT(msg->certificates(), IsEmpty());
}

TEST(InventoryTracker, AnUnchangedScanYieldsNothing) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  EXPECT_FALSE(tracker.Next(Host(), false).has_value());
  EXPECT_FALSE(tracker.Next(Host(), false).has_value());
}

TEST(InventoryTracker, OneChangedCertificateYieldsADeltaWithOnlyThatCertificate) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.certificates[0].problems = {"EXPIRES_SOON"};
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_FALSE(msg->full());
  EXPECT_EQ(msg->base_generation(), 1u);
  EXPECT_EQ(msg->generation(), 2u);
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/A"));
  EXPECT_THAT(msg->removed(), IsEmpty());
}

TEST(InventoryTracker, DeltasChainEachOnThePreviousGeneration) {
  InventoryTracker tracker;
  inventory::HostInventory host = Host();
  ASSERT_TRUE(tracker.Next(host, false).has_value());
  host.certificates[0].problems = {"EXPIRES_SOON"};
  ASSERT_TRUE(tracker.Next(host, false).has_value());
  ASSERT_FALSE(tracker.Next(host, false).has_value());  // nothing sent: no generation used
  host.certificates[2].location = "moved.pem";
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->base_generation(), 2u);
  EXPECT_EQ(msg->generation(), 3u);
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("Root/C"));
}

TEST(InventoryTracker, ARemovedCertificateIsListedAsStoreSlashThumbprint) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.certificates.erase(host.certificates.begin());  // My/A is gone
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_FALSE(msg->full());
  EXPECT_THAT(msg->removed(), ElementsAre("My/" + std::string(40, 'A')));
  EXPECT_THAT(msg->certificates(), IsEmpty());
}

TEST(InventoryTracker, ACertificateMovedToAnotherStoreIsRemovedThereAndAddedHere) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.certificates[0].store = "CA";
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("CA/A"));
  EXPECT_THAT(msg->removed(), ElementsAre("My/" + std::string(40, 'A')));
}

TEST(InventoryTracker, AnAddedCertificateAloneIsInTheDelta) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.certificates.push_back(Cert("My", 'D'));
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/D"));
  EXPECT_THAT(msg->removed(), IsEmpty());
}

TEST(InventoryTracker, ABindingChangeAloneYieldsADelta) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.channel_serial = "0B";
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_FALSE(msg->full());
  EXPECT_EQ(msg->generation(), 2u);
  EXPECT_THAT(msg->certificates(), IsEmpty());
  EXPECT_THAT(msg->removed(), IsEmpty());
  EXPECT_EQ(msg->binding().channel_serial(), "0B");
}

TEST(InventoryTracker, ABindingDriftChangeAloneYieldsADelta) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.drift = {"RENEWED_NOT_ACTIVE"};
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_THAT(msg->binding().drift(), ElementsAre("RENEWED_NOT_ACTIVE"));
}

TEST(InventoryTracker, AServiceStateChangeAloneYieldsADelta) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.service = platform::ServiceState::kStopped;
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->service().state(), "stopped");
  EXPECT_THAT(msg->certificates(), IsEmpty());
}

TEST(InventoryTracker, AStoreErrorAloneYieldsADelta) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.errors.push_back({"My", "bad.pem", "not a certificate"});
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  ASSERT_EQ(msg->store_errors_size(), 1);
  EXPECT_EQ(msg->store_errors(0).location(), "bad.pem");
}

TEST(InventoryTracker, OnlyEventsNewerThanTheLastSentAreInADelta) {
  InventoryTracker tracker;
  inventory::HostInventory host = Host();
  host.recent_events = {{kNow - absl::Minutes(2), 20053, "Information", "loaded"}};
  ASSERT_TRUE(tracker.Next(host, false).has_value());
  host.recent_events.push_back({kNow - absl::Minutes(1), 20049, "Error", "no key"});
  auto msg = tracker.Next(host, false);
  ASSERT_TRUE(msg.has_value());
  ASSERT_EQ(msg->recent_events_size(), 1);
  EXPECT_EQ(msg->recent_events(0).id(), 20049);
  EXPECT_FALSE(tracker.Next(host, false).has_value());
}

// The lab host may hold one certificate in two files of a store (host.cer and host.pem); the
// controller keys rows by store and thumbprint, so the certificate is reported once.
TEST(InventoryTracker, TheSameCertificateTwiceInAStoreIsReportedOnceAndThenSettles) {
  InventoryTracker tracker;
  inventory::HostInventory host = Host();
  inventory::ScannedCertificate copy = Cert("My", 'A');
  copy.location = "A-copy.cer";
  host.certificates.insert(host.certificates.begin() + 1, copy);
  auto full = tracker.Next(host, false);
  ASSERT_TRUE(full.has_value());
  EXPECT_THAT(Thumbprints(*full), ElementsAre("My/A", "My/B", "Root/C"));
  EXPECT_EQ(full->certificates(0).location(), "A.pem");  // the first, all else equal
  EXPECT_FALSE(tracker.Next(host, false).has_value());
  EXPECT_FALSE(tracker.Next(host, false).has_value());
}

TEST(InventoryTracker, OfTwoCopiesOfACertificateTheBoundOneIsReported) {
  InventoryTracker tracker;
  inventory::HostInventory host = Host();
  inventory::ScannedCertificate copy = Cert("My", 'B');
  copy.location = "B-copy.cer";
  copy.problems = {"NO_PRIVATE_KEY"};
  host.certificates.insert(host.certificates.begin() + 1, copy);  // before the bound B.pem
  auto full = tracker.Next(host, false);
  ASSERT_TRUE(full.has_value());
  EXPECT_THAT(Thumbprints(*full), ElementsAre("My/A", "My/B", "Root/C"));
  EXPECT_EQ(full->certificates(1).location(), "B.pem");
  EXPECT_TRUE(full->certificates(1).bound());
}

TEST(InventoryTracker, OfTwoUnboundCopiesTheOneWithAPrivateKeyIsReported) {
  InventoryTracker tracker;
  inventory::HostInventory host = Host();
  inventory::ScannedCertificate with_key = Cert("My", 'A');
  with_key.location = "A-with-key.pem";
  with_key.info.has_private_key = true;
  host.certificates.insert(host.certificates.begin() + 1, with_key);
  auto full = tracker.Next(host, false);
  ASSERT_TRUE(full.has_value());
  ASSERT_EQ(full->certificates_size(), 3);
  EXPECT_EQ(full->certificates(0).location(), "A-with-key.pem");
  EXPECT_FALSE(tracker.Next(host, false).has_value());
}

TEST(InventoryTracker, ForceFullSendsEverythingAgainAsAFullMessage) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  auto msg = tracker.Next(Host(), true);
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->full());
  EXPECT_EQ(msg->generation(), 2u);
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/A", "My/B", "Root/C"));
  EXPECT_THAT(msg->removed(), IsEmpty());
  // And the deltas go on from it.
  EXPECT_FALSE(tracker.Next(Host(), false).has_value());
}

TEST(InventoryTracker, AFullMessageAfterARemovalDoesNotListRemovals) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  inventory::HostInventory host = Host();
  host.certificates.pop_back();
  auto msg = tracker.Next(host, true);
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->full());
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/A", "My/B"));
  EXPECT_THAT(msg->removed(), IsEmpty());
  // The removed certificate is not reported again later.
  auto next = tracker.Next(host, false);
  EXPECT_FALSE(next.has_value());
}

TEST(InventoryTracker, ResetMakesTheNextMessageFullEvenWhenNothingChanged) {
  InventoryTracker tracker;
  ASSERT_TRUE(tracker.Next(Host(), false).has_value());
  tracker.Reset();
  auto msg = tracker.Next(Host(), false);
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->full());
  EXPECT_THAT(Thumbprints(*msg), ElementsAre("My/A", "My/B", "Root/C"));
}

}  // namespace
}  // namespace certfleet::agent::rpc
