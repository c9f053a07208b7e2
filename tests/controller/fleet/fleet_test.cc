#include "controller/fleet/fleet.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "controller/fleet/agent_channel.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::controller::fleet {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

// An agent stream as the fleet sees it: records what it is told.
class FakeChannel final : public AgentChannel {
 public:
  void SendCommand(const common::model::Command&) override {}
  void SendCancel(absl::string_view) override {}
  void SendCommandAck(absl::string_view) override {}
  void Close(const absl::Status& reason) override {
    codes.push_back(reason.code());
    if (on_close) on_close();
  }

  std::vector<absl::StatusCode> codes;
  std::function<void()> on_close;  // runs inside Close
};

store::CertificateRecord Cert(const std::string& store_name, char thumb, absl::Time not_after) {
  store::CertificateRecord c;
  c.store = store_name;
  c.location = std::string(1, thumb) + ".pem";
  c.info.subject = "CN=host1.example.com";
  c.info.subject_cn = "host1.example.com";
  c.info.thumbprint = std::string(40, thumb);
  c.info.sha256 = std::string(64, thumb);
  c.info.serial = "0A";
  c.info.channel_serial = "0A";
  c.info.not_before = kNow - absl::Hours(24);
  c.info.not_after = not_after;
  c.info.key_algorithm = "RSA";
  c.info.key_bits = 2048;
  return c;
}

store::CertificateFilter ForAgent(const std::string& agent_id) {
  store::CertificateFilter filter;
  filter.agent_id = agent_id;
  return filter;
}

class FleetTest : public ::testing::Test {
 protected:
  FleetTest() : clock_(kNow) {}

  void SetUp() override {
    auto store = store::SqliteStore::Open({.path = dir_.path() + "/controller.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    for (const char* id : {"agent-1", "agent-2"}) {
      store::AgentRecord agent;
      agent.id = id;
      agent.fqdn = std::string(id) + ".example.com";
      agent.enrolled_at = kNow - absl::Hours(1);
      ASSERT_TRUE(store_->CreateAgent(agent).ok());
    }
    fleet_ = std::make_unique<Fleet>(*store_, clock_);
  }

  // Thumbprints of the stored certificates of `agent_id`, in store order.
  std::vector<std::string> StoredKeys(const std::string& agent_id) {
    auto rows = store_->ListCertificates(ForAgent(agent_id));
    EXPECT_TRUE(rows.ok()) << rows.status();
    std::vector<std::string> keys;
    if (rows.ok()) {
      for (const auto& r : *rows) keys.push_back(r.Key());
    }
    return keys;
  }

  uint64_t StoredGeneration(const std::string& agent_id) {
    auto agent = store_->GetAgent(agent_id);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? agent->inventory_generation : 0;
  }

  // A full inventory of generation 1 with My/AAAA... and My/BBBB... for agent-1.
  void SendFirstFullInventory() {
    InventoryReport full;
    full.generation = 1;
    full.full = true;
    full.certificates = {Cert("My", 'A', kNow + absl::Hours(24 * 90)),
                         Cert("My", 'B', kNow + absl::Hours(24 * 200))};
    full.binding.channel_serial = "0A";
    auto outcome = fleet_->ApplyInventory("agent-1", full);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    ASSERT_FALSE(outcome->resync);
  }

  const std::string kKeyA = "My/" + std::string(40, 'A');
  const std::string kKeyB = "My/" + std::string(40, 'B');
  const std::string kKeyC = "My/" + std::string(40, 'C');

  FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Fleet> fleet_;
};

// --- Sessions ---

TEST_F(FleetTest, NoAgentIsConnectedBeforeAnyAttach) {
  EXPECT_FALSE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), nullptr);
  EXPECT_EQ(fleet_->ConnectedCount(), 0u);
}

TEST_F(FleetTest, AnAttachedAgentIsConnectedUntilItsSessionDetaches) {
  auto channel = std::make_shared<FakeChannel>();
  uint64_t session = fleet_->Attach("agent-1", channel);
  EXPECT_TRUE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), channel);
  EXPECT_FALSE(fleet_->IsConnected("agent-2"));
  EXPECT_EQ(fleet_->ConnectedCount(), 1u);

  fleet_->Detach("agent-1", session);
  EXPECT_FALSE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), nullptr);
  EXPECT_EQ(fleet_->ConnectedCount(), 0u);
  EXPECT_THAT(channel->codes, IsEmpty());
}

TEST_F(FleetTest, ConnectedCountCountsAgentsNotStreams) {
  fleet_->Attach("agent-1", std::make_shared<FakeChannel>());
  fleet_->Attach("agent-2", std::make_shared<FakeChannel>());
  fleet_->Attach("agent-1", std::make_shared<FakeChannel>());
  EXPECT_EQ(fleet_->ConnectedCount(), 2u);
}

TEST_F(FleetTest, ASecondAttachClosesTheFirstStreamWithAborted) {
  auto first = std::make_shared<FakeChannel>();
  auto second = std::make_shared<FakeChannel>();
  uint64_t s1 = fleet_->Attach("agent-1", first);
  uint64_t s2 = fleet_->Attach("agent-1", second);
  EXPECT_NE(s1, s2);
  EXPECT_THAT(first->codes, ElementsAre(absl::StatusCode::kAborted));
  EXPECT_THAT(second->codes, IsEmpty());
  EXPECT_TRUE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), second);
}

TEST_F(FleetTest, AStaleDetachDoesNotRemoveTheNewerSession) {
  auto second = std::make_shared<FakeChannel>();
  uint64_t s1 = fleet_->Attach("agent-1", std::make_shared<FakeChannel>());
  uint64_t s2 = fleet_->Attach("agent-1", second);

  fleet_->Detach("agent-1", s1);
  EXPECT_TRUE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), second);
  EXPECT_EQ(fleet_->ConnectedCount(), 1u);

  fleet_->Detach("agent-1", s2);
  EXPECT_FALSE(fleet_->IsConnected("agent-1"));
}

TEST_F(FleetTest, AReplacedStreamMayDetachFromInsideItsClose) {
  auto first = std::make_shared<FakeChannel>();
  uint64_t s1 = fleet_->Attach("agent-1", first);
  // The fleet's lock is not held while Close runs, so this does not deadlock.
  first->on_close = [&] { fleet_->Detach("agent-1", s1); };
  auto second = std::make_shared<FakeChannel>();
  fleet_->Attach("agent-1", second);
  EXPECT_THAT(first->codes, ElementsAre(absl::StatusCode::kAborted));
  EXPECT_EQ(fleet_->ChannelOf("agent-1"), second);
}

TEST_F(FleetTest, DetachOfAnUnknownAgentOrSessionChangesNothing) {
  uint64_t session = fleet_->Attach("agent-1", std::make_shared<FakeChannel>());
  fleet_->Detach("agent-2", session);
  fleet_->Detach("agent-1", session + 100);
  EXPECT_TRUE(fleet_->IsConnected("agent-1"));
  EXPECT_EQ(fleet_->ConnectedCount(), 1u);
}

TEST_F(FleetTest, CloseAllClosesEveryAttachedStreamWithUnavailable) {
  auto replaced = std::make_shared<FakeChannel>();
  auto a = std::make_shared<FakeChannel>();
  auto b = std::make_shared<FakeChannel>();
  fleet_->Attach("agent-1", replaced);
  fleet_->Attach("agent-1", a);
  fleet_->Attach("agent-2", b);

  fleet_->CloseAll();
  EXPECT_THAT(a->codes, ElementsAre(absl::StatusCode::kUnavailable));
  EXPECT_THAT(b->codes, ElementsAre(absl::StatusCode::kUnavailable));
  // Closed once already, when it was replaced; not again.
  EXPECT_THAT(replaced->codes, ElementsAre(absl::StatusCode::kAborted));
}

TEST_F(FleetTest, StreamsClosedByCloseAllMayDetachFromInsideTheirClose) {
  auto a = std::make_shared<FakeChannel>();
  auto b = std::make_shared<FakeChannel>();
  uint64_t s1 = fleet_->Attach("agent-1", a);
  uint64_t s2 = fleet_->Attach("agent-2", b);
  a->on_close = [&] { fleet_->Detach("agent-1", s1); };
  b->on_close = [&] { fleet_->Detach("agent-2", s2); };
  fleet_->CloseAll();
  EXPECT_EQ(fleet_->ConnectedCount(), 0u);
}

TEST_F(FleetTest, CloseAllWithNoStreamIsHarmless) {
  fleet_->CloseAll();
  EXPECT_EQ(fleet_->ConnectedCount(), 0u);
}

// --- Hello ---

TEST_F(FleetTest, RecordHelloStoresPlatformVersionAndLastSeen) {
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(fleet_->RecordHello("agent-1", "lab", "0.2.0").ok());
  auto agent = store_->GetAgent("agent-1");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->platform, "lab");
  EXPECT_EQ(agent->version, "0.2.0");
  EXPECT_EQ(agent->last_seen, kNow + absl::Minutes(5));
}

TEST_F(FleetTest, RecordHelloOfAnUnknownAgentIsNotFound) {
  EXPECT_EQ(fleet_->RecordHello("agent-9", "lab", "0.2.0").code(), absl::StatusCode::kNotFound);
}

// --- Inventory ---

TEST_F(FleetTest, AFullInventoryIsStoredWithItsGenerationAndBinding) {
  InventoryReport full;
  full.generation = 1;
  full.full = true;
  full.certificates = {Cert("My", 'A', kNow + absl::Hours(24 * 90)),
                       Cert("Root", 'B', kNow + absl::Hours(24 * 900))};
  full.binding.channel_serial = "0A";
  full.binding.drift = {"RENEWED_NOT_ACTIVE"};
  auto outcome = fleet_->ApplyInventory("agent-1", full);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->generation, 1u);
  EXPECT_FALSE(outcome->resync);

  EXPECT_THAT(StoredKeys("agent-1"), ElementsAre(kKeyA, "Root/" + std::string(40, 'B')));
  auto rows = store_->ListCertificates(ForAgent("agent-1"));
  ASSERT_TRUE(rows.ok());
  for (const auto& row : *rows) EXPECT_EQ(row.agent_id, "agent-1");  // filled in by the fleet
  auto agent = store_->GetAgent("agent-1");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->inventory_generation, 1u);
  EXPECT_EQ(agent->channel_serial, "0A");
  EXPECT_THAT(agent->drift, ElementsAre("RENEWED_NOT_ACTIVE"));
  EXPECT_EQ(agent->last_seen, kNow);
  EXPECT_THAT(StoredKeys("agent-2"), IsEmpty());
}

TEST_F(FleetTest, ADeltaOnTheStoredGenerationUpsertsAndRemovesRows) {
  SendFirstFullInventory();
  InventoryReport delta;
  delta.generation = 2;
  delta.base_generation = 1;
  store::CertificateRecord b = Cert("My", 'B', kNow + absl::Hours(24 * 200));
  b.bound = true;
  delta.certificates = {b, Cert("My", 'C', kNow + absl::Hours(24 * 300))};
  delta.removed = {kKeyA};
  delta.binding.channel_serial = "0A";
  auto outcome = fleet_->ApplyInventory("agent-1", delta);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->generation, 2u);
  EXPECT_FALSE(outcome->resync);

  EXPECT_THAT(StoredKeys("agent-1"), ElementsAre(kKeyB, kKeyC));
  auto rows = store_->ListCertificates(ForAgent("agent-1"));
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_TRUE((*rows)[0].bound);
  EXPECT_EQ(StoredGeneration("agent-1"), 2u);
}

TEST_F(FleetTest, ADeltaOnAnotherBaseAsksForAFullInventoryAndChangesNothing) {
  SendFirstFullInventory();
  InventoryReport delta;
  delta.generation = 6;
  delta.base_generation = 5;
  delta.certificates = {Cert("My", 'C', kNow + absl::Hours(24 * 300))};
  delta.removed = {kKeyA};
  delta.binding.channel_serial = "FF";
  auto outcome = fleet_->ApplyInventory("agent-1", delta);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->resync);

  EXPECT_THAT(StoredKeys("agent-1"), ElementsAre(kKeyA, kKeyB));
  EXPECT_EQ(StoredGeneration("agent-1"), 1u);
  auto agent = store_->GetAgent("agent-1");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->channel_serial, "0A");

  // The full inventory the agent then sends puts things right.
  InventoryReport full;
  full.generation = 7;
  full.full = true;
  full.certificates = {Cert("My", 'C', kNow + absl::Hours(24 * 300))};
  auto after = fleet_->ApplyInventory("agent-1", full);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->resync);
  EXPECT_THAT(StoredKeys("agent-1"), ElementsAre(kKeyC));
  EXPECT_EQ(StoredGeneration("agent-1"), 7u);
}

TEST_F(FleetTest, ADeltaBeforeAnyFullInventoryAsksForResync) {
  InventoryReport delta;
  delta.generation = 4;
  delta.base_generation = 3;
  delta.certificates = {Cert("My", 'C', kNow + absl::Hours(24 * 300))};
  auto outcome = fleet_->ApplyInventory("agent-1", delta);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->resync);
  EXPECT_THAT(StoredKeys("agent-1"), IsEmpty());
}

TEST_F(FleetTest, RowsOfAnotherAgentAreInvalidArgumentAndNothingIsStored) {
  SendFirstFullInventory();
  store::CertificateRecord foreign = Cert("My", 'C', kNow + absl::Hours(24 * 300));
  foreign.agent_id = "agent-2";

  InventoryReport full;
  full.generation = 2;
  full.full = true;
  full.certificates = {Cert("My", 'D', kNow + absl::Hours(24 * 300)), foreign};
  EXPECT_EQ(fleet_->ApplyInventory("agent-1", full).status().code(),
            absl::StatusCode::kInvalidArgument);

  InventoryReport delta;
  delta.generation = 2;
  delta.base_generation = 1;
  delta.certificates = {foreign};
  delta.removed = {kKeyA};
  EXPECT_EQ(fleet_->ApplyInventory("agent-1", delta).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(StoredKeys("agent-1"), ElementsAre(kKeyA, kKeyB));
  EXPECT_THAT(StoredKeys("agent-2"), IsEmpty());
  EXPECT_EQ(StoredGeneration("agent-1"), 1u);
}

TEST_F(FleetTest, AnInventoryOfAnUnknownAgentIsNotFound) {
  InventoryReport full;
  full.generation = 1;
  full.full = true;
  full.certificates = {Cert("My", 'A', kNow + absl::Hours(24 * 90))};
  EXPECT_EQ(fleet_->ApplyInventory("agent-9", full).status().code(), absl::StatusCode::kNotFound);

  InventoryReport delta;
  delta.generation = 2;
  delta.base_generation = 1;
  EXPECT_EQ(fleet_->ApplyInventory("agent-9", delta).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace certfleet::controller::fleet
