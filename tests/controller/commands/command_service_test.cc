// CommandService over a real SqliteStore in a temporary directory and a real Fleet, with a
// recording AgentChannel standing in for an agent's stream and a FakeClock for deadlines.

#include "controller/commands/command_service.h"

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "controller/fleet/agent_channel.h"
#include "controller/fleet/fleet.h"
#include "controller/store/records.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::controller::commands {
namespace {

using ::certfleet::testing::FakeClock;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
namespace model = common::model;
using model::CommandState;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

const std::string kThumbA(40, 'A');
const std::string kThumbB(40, 'B');

// An agent's stream as the service sees it: records every message it is asked to send, in
// order. Not thread-safe: the tests drive the service from one thread.
class RecordingChannel final : public fleet::AgentChannel {
 public:
  void SendCommand(const model::Command& command) override {
    commands.push_back(command);
    messages.push_back("command " + command.id);
  }
  void SendCancel(absl::string_view command_id) override {
    cancels.emplace_back(command_id);
    messages.push_back("cancel " + std::string(command_id));
  }
  void SendCommandAck(absl::string_view command_id) override {
    acks.emplace_back(command_id);
    messages.push_back("ack " + std::string(command_id));
  }
  void Close(const absl::Status& reason) override { closes.push_back(reason.code()); }

  // Ids of the commands sent, in order.
  std::vector<std::string> CommandIds() const {
    std::vector<std::string> ids;
    for (const auto& c : commands) ids.push_back(c.id);
    return ids;
  }

  std::vector<model::Command> commands;
  std::vector<std::string> cancels;
  std::vector<std::string> acks;
  std::vector<absl::StatusCode> closes;
  std::vector<std::string> messages;  // "command <id>", "cancel <id>", "ack <id>"
};

// A fresh directory, removed with its content at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cf-command-service-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

model::CommandPayload Scan() { return model::ScanPayload{}; }
model::CommandPayload Import(std::string data = "-----BEGIN CERTIFICATE-----",
                             std::string password = "s3cret") {
  return model::ImportPayload{std::move(data), std::move(password)};
}
model::CommandPayload Repair(std::string thumbprint) {
  return model::RepairPayload{std::move(thumbprint)};
}
model::CommandPayload Rebind(std::string thumbprint,
                             absl::Duration verify_timeout = absl::Seconds(60)) {
  return model::RebindPayload{std::move(thumbprint), verify_timeout};
}
model::CommandPayload Trust(std::string data) { return model::TrustPayload{std::move(data)}; }
model::CommandPayload Remove(std::string thumbprint) {
  return model::RemovePayload{std::move(thumbprint)};
}

CreateRequest Request(std::string agent, model::CommandPayload payload,
                      absl::Duration timeout = absl::Hours(1)) {
  CreateRequest request;
  request.agent = std::move(agent);
  request.payload = std::move(payload);
  request.timeout = timeout;
  request.created_by = "alice";
  return request;
}

model::CommandOutcome Succeeded(std::string thumbprint = "") {
  model::CommandOutcome outcome;
  outcome.state = CommandState::kSucceeded;
  outcome.code = absl::StatusCode::kOk;
  outcome.result.thumbprint = std::move(thumbprint);
  outcome.result.detail = "done";
  return outcome;
}

model::CommandOutcome Failed(absl::StatusCode code, std::string error) {
  model::CommandOutcome outcome;
  outcome.state = CommandState::kFailed;
  outcome.code = code;
  outcome.error = std::move(error);
  return outcome;
}

class CommandServiceTest : public ::testing::Test {
 protected:
  CommandServiceTest() : clock_(kNow) {}

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
    fleet_ = std::make_unique<fleet::Fleet>(*store_, clock_);
    service_ = std::make_unique<CommandService>(*store_, *fleet_, clock_);
  }

  // Attaches a new stream for `agent_id` and returns it.
  std::shared_ptr<RecordingChannel> Connect(const std::string& agent_id) {
    auto channel = std::make_shared<RecordingChannel>();
    sessions_[agent_id] = fleet_->Attach(agent_id, channel);
    return channel;
  }

  void Disconnect(const std::string& agent_id) { fleet_->Detach(agent_id, sessions_[agent_id]); }

  // Creates a command that must be accepted and returns its id ("" after a failure).
  std::string MustCreate(const CreateRequest& request) {
    auto record = service_->Create(request);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() ? record->command.id : "";
  }

  store::CommandRecord Stored(const std::string& id) {
    auto record = store_->GetCommand(id);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() ? *record : store::CommandRecord{};
  }

  // The stored payload of `id`, which must hold a T (a default T otherwise).
  template <typename T>
  T StoredPayload(const std::string& id) {
    store::CommandRecord record = Stored(id);
    const T* payload = std::get_if<T>(&record.command.payload);
    EXPECT_NE(payload, nullptr) << id << " holds another kind of payload";
    return payload != nullptr ? *payload : T{};
  }

  std::vector<store::CommandRecord> AllStored() {
    auto records = store_->ListCommands(store::CommandFilter{});
    EXPECT_TRUE(records.ok()) << records.status();
    return records.ok() ? *records : std::vector<store::CommandRecord>{};
  }

  // Creates a command for agent-1 (connected: it is sent) and reports it running.
  std::string RunningOnAgent1(model::CommandPayload payload = Scan(),
                              absl::Duration timeout = absl::Hours(1)) {
    std::string id = MustCreate(Request("agent-1", std::move(payload), timeout));
    EXPECT_TRUE(service_->OnCommandRunning("agent-1", id).ok());
    return id;
  }

  // Asserts that `payload` is a rejected request for agent-1 and that nothing was stored.
  void ExpectRejected(model::CommandPayload payload, absl::Duration timeout = absl::Hours(1)) {
    auto record = service_->Create(Request("agent-1", std::move(payload), timeout));
    EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument) << record.status();
    EXPECT_THAT(AllStored(), IsEmpty());
  }

  ScratchDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<fleet::Fleet> fleet_;
  std::unique_ptr<CommandService> service_;
  std::map<std::string, uint64_t> sessions_;
};

// --- Create: validation ---

TEST_F(CommandServiceTest, CreateRejectsAThumbprintThatIsNotFortyHexDigitsAndStoresNothing) {
  for (const std::string& bad :
       {std::string(""), std::string("ABC"), std::string(39, 'A'), std::string(41, 'A'),
        std::string(40, 'G'), std::string(39, 'A') + " "}) {
    SCOPED_TRACE("thumbprint '" + bad + "'");
    ExpectRejected(Repair(bad));
    ExpectRejected(Rebind(bad));
    ExpectRejected(Remove(bad));
  }
}

TEST_F(CommandServiceTest, CreateRejectsAnImportOrTrustWithoutDataAndStoresNothing) {
  ExpectRejected(Import(""));
  ExpectRejected(Trust(""));
}

TEST_F(CommandServiceTest, CreateRejectsAnImportOrTrustOverOneMebibyteAndStoresNothing) {
  ExpectRejected(Import(std::string((1 << 20) + 1, 'x')));
  ExpectRejected(Trust(std::string((1 << 20) + 1, 'x')));
}

TEST_F(CommandServiceTest, CreateAcceptsAnImportOfExactlyOneMebibyte) {
  std::string id = MustCreate(Request("agent-1", Import(std::string(1 << 20, 'x'))));
  EXPECT_EQ(StoredPayload<model::ImportPayload>(id).data.size(), size_t{1} << 20);
}

TEST_F(CommandServiceTest, CreateRejectsATimeoutThatIsNotPositiveOrOverSevenDays) {
  ExpectRejected(Scan(), absl::ZeroDuration());
  ExpectRejected(Scan(), -absl::Seconds(1));
  ExpectRejected(Scan(), CommandService::kMaxTimeout + absl::Microseconds(1));
}

TEST_F(CommandServiceTest, CreateAcceptsATimeoutOfExactlySevenDays) {
  std::string id = MustCreate(Request("agent-1", Scan(), absl::Hours(24 * 7)));
  EXPECT_EQ(Stored(id).command.deadline, kNow + absl::Hours(24 * 7));
}

TEST_F(CommandServiceTest, CreateRejectsARebindVerifyTimeoutOutsideOneSecondToOneHour) {
  ExpectRejected(Rebind(kThumbA, absl::ZeroDuration()));
  ExpectRejected(Rebind(kThumbA, absl::Milliseconds(999)));
  ExpectRejected(Rebind(kThumbA, absl::Hours(1) + absl::Milliseconds(1)));
}

TEST_F(CommandServiceTest, CreateAcceptsARebindVerifyTimeoutOfExactlyOneSecondOrOneHour) {
  for (absl::Duration timeout : {absl::Seconds(1), absl::Hours(1)}) {
    std::string id = MustCreate(Request("agent-1", Rebind(kThumbA, timeout)));
    EXPECT_EQ(StoredPayload<model::RebindPayload>(id).verify_timeout, timeout);
  }
}

TEST_F(CommandServiceTest, CreateStoresThumbprintsInUppercase) {
  const std::string lower = "0123456789abcdef0123456789abcdef01234567";
  const std::string upper = "0123456789ABCDEF0123456789ABCDEF01234567";
  std::string repair = MustCreate(Request("agent-1", Repair(lower)));
  std::string rebind = MustCreate(Request("agent-1", Rebind(lower)));
  std::string remove = MustCreate(Request("agent-1", Remove(lower)));
  EXPECT_EQ(std::get<model::RepairPayload>(Stored(repair).command.payload).thumbprint, upper);
  EXPECT_EQ(std::get<model::RebindPayload>(Stored(rebind).command.payload).thumbprint, upper);
  EXPECT_EQ(std::get<model::RemovePayload>(Stored(remove).command.payload).thumbprint, upper);
}

// --- Create: the agent ---

TEST_F(CommandServiceTest, CreateForAnUnknownAgentIsNotFoundAndStoresNothing) {
  auto record = service_->Create(Request("agent-9", Scan()));
  EXPECT_EQ(record.status().code(), absl::StatusCode::kNotFound) << record.status();
  EXPECT_TRUE(absl::StrContains(record.status().message(), "agent-9")) << record.status();
  EXPECT_THAT(AllStored(), IsEmpty());
}

TEST_F(CommandServiceTest, CreateFindsTheAgentByItsFqdnInAnyCase) {
  std::string by_fqdn = MustCreate(Request("agent-2.example.com", Scan()));
  std::string by_upper_fqdn = MustCreate(Request("AGENT-2.Example.COM", Scan()));
  EXPECT_EQ(Stored(by_fqdn).command.agent_id, "agent-2");
  EXPECT_EQ(Stored(by_upper_fqdn).command.agent_id, "agent-2");
}

TEST_F(CommandServiceTest, CreateQueuesTheCommandOfAnOfflineAgentWithoutSendingIt) {
  auto other = Connect("agent-2");
  auto record = service_->Create(Request("agent-1", Repair(kThumbA), absl::Minutes(30)));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(absl::StartsWith(record->command.id, "cmd-")) << record->command.id;
  EXPECT_EQ(record->command.agent_id, "agent-1");
  EXPECT_EQ(record->state, CommandState::kQueued);
  EXPECT_EQ(record->attempts, 0);
  EXPECT_EQ(record->sent_at, std::nullopt);
  EXPECT_EQ(record->command.deadline, kNow + absl::Minutes(30));
  EXPECT_EQ(record->created_at, kNow);
  EXPECT_EQ(record->created_by, "alice");
  EXPECT_EQ(Stored(record->command.id).state, CommandState::kQueued);
  EXPECT_THAT(other->commands, IsEmpty());
}

TEST_F(CommandServiceTest, CreateSendsTheCommandToAConnectedAgentAtOnce) {
  auto channel = Connect("agent-1");
  auto record = service_->Create(Request("agent-1", Import("PEM", "pw")));
  ASSERT_TRUE(record.ok()) << record.status();
  const std::string& id = record->command.id;

  ASSERT_THAT(channel->commands, SizeIs(1));
  EXPECT_EQ(channel->commands[0].id, id);
  EXPECT_EQ(channel->commands[0].agent_id, "agent-1");
  EXPECT_EQ(channel->commands[0].deadline, kNow + absl::Hours(1));
  auto* import = std::get_if<model::ImportPayload>(&channel->commands[0].payload);
  ASSERT_NE(import, nullptr);
  EXPECT_EQ(import->data, "PEM");
  EXPECT_EQ(import->password, "pw");  // the agent needs it; the store scrubs it once final

  EXPECT_EQ(record->state, CommandState::kSent);  // Create returns the record as stored
  store::CommandRecord stored = Stored(id);
  EXPECT_EQ(stored.state, CommandState::kSent);
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_EQ(stored.sent_at, kNow);
}

TEST_F(CommandServiceTest, CreateGivesEveryCommandItsOwnId) {
  std::string first = MustCreate(Request("agent-1", Scan()));
  std::string second = MustCreate(Request("agent-1", Scan()));
  EXPECT_NE(first, second);
  EXPECT_THAT(AllStored(), SizeIs(2));
}

// --- Get and List ---

TEST_F(CommandServiceTest, GetOfAnUnknownCommandIsNotFound) {
  EXPECT_EQ(service_->Get("cmd-unknown").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CommandServiceTest, ListFiltersByAgentIdOrFqdnAndByState) {
  std::string a1 = MustCreate(Request("agent-1", Scan()));
  std::string a2 = MustCreate(Request("agent-2", Scan()));
  ASSERT_TRUE(service_->Cancel(a2).ok());
  std::string a3 = MustCreate(Request("agent-2", Scan()));

  auto ids = [](const absl::StatusOr<std::vector<store::CommandRecord>>& records) {
    EXPECT_TRUE(records.ok()) << records.status();
    std::vector<std::string> out;
    if (records.ok()) {
      for (const auto& r : *records) out.push_back(r.command.id);
    }
    return out;
  };
  EXPECT_THAT(ids(service_->List("", std::nullopt, 0)), ElementsAre(a1, a2, a3));
  EXPECT_THAT(ids(service_->List("agent-1", std::nullopt, 0)), ElementsAre(a1));
  EXPECT_THAT(ids(service_->List("agent-2.example.com", std::nullopt, 0)), ElementsAre(a2, a3));
  EXPECT_THAT(ids(service_->List("agent-2", CommandState::kQueued, 0)), ElementsAre(a3));
  EXPECT_THAT(ids(service_->List("", CommandState::kCancelled, 0)), ElementsAre(a2));
  EXPECT_EQ(service_->List("agent-9", std::nullopt, 0).status().code(),
            absl::StatusCode::kNotFound);
}

// --- OnAgentAttached ---

TEST_F(CommandServiceTest, OnAgentAttachedSendsTheQueuedCommandsOfThatAgentOldestFirst) {
  std::string first = MustCreate(Request("agent-1", Scan()));
  clock_.Advance(absl::Seconds(1));
  std::string second = MustCreate(Request("agent-1", Repair(kThumbA)));
  MustCreate(Request("agent-2", Scan()));
  clock_.Advance(absl::Seconds(1));

  auto channel = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());

  EXPECT_THAT(channel->CommandIds(), ElementsAre(first, second));
  for (const std::string& id : {first, second}) {
    store::CommandRecord stored = Stored(id);
    EXPECT_EQ(stored.state, CommandState::kSent);
    EXPECT_EQ(stored.attempts, 1);
    EXPECT_EQ(stored.sent_at, kNow + absl::Seconds(2));
  }
}

TEST_F(CommandServiceTest, OnAgentAttachedOfAnAgentWithoutAStreamSendsNothing) {
  std::string id = MustCreate(Request("agent-1", Scan()));
  auto other = Connect("agent-2");
  EXPECT_TRUE(service_->OnAgentAttached("agent-1").ok());
  EXPECT_THAT(other->commands, IsEmpty());
  EXPECT_EQ(Stored(id).state, CommandState::kQueued);
  EXPECT_EQ(Stored(id).attempts, 0);
}

TEST_F(CommandServiceTest, OnAgentAttachedResendsSentAndRunningCommandsThatAreNotFinal) {
  auto first_stream = Connect("agent-1");
  std::string sent = MustCreate(Request("agent-1", Scan()));
  std::string running = RunningOnAgent1();
  Disconnect("agent-1");

  clock_.Advance(absl::Minutes(5));
  auto second_stream = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());

  EXPECT_THAT(second_stream->CommandIds(), ElementsAre(sent, running));
  EXPECT_EQ(Stored(sent).state, CommandState::kSent);
  EXPECT_EQ(Stored(sent).attempts, 2);
  EXPECT_EQ(Stored(sent).sent_at, kNow + absl::Minutes(5));
  EXPECT_EQ(Stored(running).state, CommandState::kRunning);  // a re-send does not move it back
  EXPECT_EQ(Stored(running).attempts, 2);
}

TEST_F(CommandServiceTest, OnAgentAttachedDoesNotResendFinishedCommands) {
  auto first_stream = Connect("agent-1");
  std::string done = MustCreate(Request("agent-1", Scan()));
  ASSERT_TRUE(service_->OnCommandDone("agent-1", done, Succeeded()).ok());
  Disconnect("agent-1");
  std::string cancelled = MustCreate(Request("agent-1", Scan()));
  ASSERT_TRUE(service_->Cancel(cancelled).ok());

  auto second_stream = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());
  EXPECT_THAT(second_stream->commands, IsEmpty());
  EXPECT_EQ(Stored(done).attempts, 1);
  EXPECT_EQ(Stored(cancelled).attempts, 0);
}

TEST_F(CommandServiceTest, OnAgentAttachedDoesNotSendAQueuedOrSentCommandPastItsDeadline) {
  std::string queued = MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  auto first_stream = Connect("agent-1");
  std::string sent = MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  Disconnect("agent-1");

  clock_.Advance(absl::Minutes(1) + absl::Seconds(1));
  auto second_stream = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());

  EXPECT_THAT(second_stream->commands, IsEmpty());
  EXPECT_EQ(Stored(queued).state, CommandState::kQueued);  // ExpireDue finishes it
  EXPECT_EQ(Stored(queued).attempts, 0);
  EXPECT_EQ(Stored(sent).state, CommandState::kSent);
  EXPECT_EQ(Stored(sent).attempts, 1);
}

TEST_F(CommandServiceTest, OnAgentAttachedStillSendsACommandWhoseDeadlineIsNow) {
  std::string id = MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  clock_.Advance(absl::Minutes(1));
  auto channel = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());
  EXPECT_THAT(channel->CommandIds(), ElementsAre(id));
}

TEST_F(CommandServiceTest, OnAgentAttachedResendsARunningCommandPastItsDeadline) {
  // The agent started it in time; its outcome is still wanted until the running grace ends.
  auto first_stream = Connect("agent-1");
  std::string running = RunningOnAgent1(Scan(), absl::Minutes(1));
  Disconnect("agent-1");

  clock_.Advance(absl::Minutes(10));
  auto second_stream = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());
  EXPECT_THAT(second_stream->CommandIds(), ElementsAre(running));
  EXPECT_EQ(Stored(running).state, CommandState::kRunning);
}

TEST_F(CommandServiceTest, OnAgentAttachedResendsACancelRequestedWhileTheAgentWasAway) {
  auto first_stream = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  Disconnect("agent-1");
  ASSERT_TRUE(service_->Cancel(id).ok());
  EXPECT_THAT(first_stream->cancels, IsEmpty());

  auto second_stream = Connect("agent-1");
  ASSERT_TRUE(service_->OnAgentAttached("agent-1").ok());
  EXPECT_THAT(second_stream->messages, ElementsAre("command " + id, "cancel " + id));
}

// --- Cancel ---

TEST_F(CommandServiceTest, CancelOfAQueuedCommandFinishesItAsCancelledAtOnce) {
  std::string id = MustCreate(Request("agent-1", Scan()));
  clock_.Advance(absl::Seconds(3));
  auto record = service_->Cancel(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state, CommandState::kCancelled);
  ASSERT_TRUE(record->outcome.has_value());
  EXPECT_EQ(record->outcome->state, CommandState::kCancelled);
  EXPECT_EQ(record->outcome->code, absl::StatusCode::kCancelled);

  store::CommandRecord stored = Stored(id);
  EXPECT_EQ(stored.state, CommandState::kCancelled);
  EXPECT_EQ(stored.finished_at, kNow + absl::Seconds(3));
}

TEST_F(CommandServiceTest, CancelOfAQueuedImportScrubsItsSecrets) {
  std::string id = MustCreate(Request("agent-1", Import("PRIVATE KEY", "pw")));
  ASSERT_TRUE(service_->Cancel(id).ok());
  model::ImportPayload import = StoredPayload<model::ImportPayload>(id);
  EXPECT_EQ(import.password, "");
  EXPECT_EQ(import.data, "");
}

TEST_F(CommandServiceTest, CancelOfASentCommandAsksTheAgentAndLeavesTheStateToIt) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  auto record = service_->Cancel(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state, CommandState::kSent);
  EXPECT_TRUE(record->cancel_requested);
  EXPECT_THAT(channel->cancels, ElementsAre(id));
  EXPECT_EQ(Stored(id).state, CommandState::kSent);
  EXPECT_TRUE(Stored(id).cancel_requested);
}

TEST_F(CommandServiceTest, CancelOfARunningCommandAsksTheAgent) {
  auto channel = Connect("agent-1");
  std::string id = RunningOnAgent1();
  auto record = service_->Cancel(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state, CommandState::kRunning);
  EXPECT_TRUE(record->cancel_requested);
  EXPECT_THAT(channel->cancels, ElementsAre(id));
}

TEST_F(CommandServiceTest, CancelOfASentCommandOfAnAgentThatLeftOnlyRecordsTheRequest) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  Disconnect("agent-1");
  auto record = service_->Cancel(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(record->cancel_requested);
  EXPECT_THAT(channel->cancels, IsEmpty());
}

TEST_F(CommandServiceTest, CancelOfAFinishedCommandIsFailedPrecondition) {
  auto channel = Connect("agent-1");
  std::string done = MustCreate(Request("agent-1", Scan()));
  ASSERT_TRUE(service_->OnCommandDone("agent-1", done, Succeeded()).ok());
  std::string cancelled = MustCreate(Request("agent-2", Scan()));
  ASSERT_TRUE(service_->Cancel(cancelled).ok());

  EXPECT_EQ(service_->Cancel(done).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(service_->Cancel(cancelled).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(channel->cancels, IsEmpty());
  EXPECT_EQ(Stored(done).state, CommandState::kSucceeded);
}

TEST_F(CommandServiceTest, CancelOfAnUnknownCommandIsNotFound) {
  EXPECT_EQ(service_->Cancel("cmd-unknown").status().code(), absl::StatusCode::kNotFound);
}

// --- OnCommandRunning ---

TEST_F(CommandServiceTest, OnCommandRunningMarksTheCommandRunning) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(service_->OnCommandRunning("agent-1", id).ok());
  store::CommandRecord stored = Stored(id);
  EXPECT_EQ(stored.state, CommandState::kRunning);
  EXPECT_EQ(stored.started_at, kNow + absl::Seconds(2));
}

TEST_F(CommandServiceTest, OnCommandRunningFromAnotherAgentIsPermissionDeniedAndChangesNothing) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  absl::Status status = service_->OnCommandRunning("agent-2", id);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(Stored(id).state, CommandState::kSent);
  EXPECT_EQ(Stored(id).started_at, std::nullopt);
}

TEST_F(CommandServiceTest, OnCommandRunningOfAFinishedCommandIsIgnored) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded()).ok());
  EXPECT_TRUE(service_->OnCommandRunning("agent-1", id).ok());
  EXPECT_EQ(Stored(id).state, CommandState::kSucceeded);
}

TEST_F(CommandServiceTest, OnCommandRunningOfAnUnknownCommandIsIgnored) {
  EXPECT_TRUE(service_->OnCommandRunning("agent-1", "cmd-unknown").ok());
  EXPECT_THAT(AllStored(), IsEmpty());
}

// --- OnCommandDone ---

TEST_F(CommandServiceTest, OnCommandDoneStoresTheOutcomeAndAcknowledgesIt) {
  auto channel = Connect("agent-1");
  std::string id = RunningOnAgent1(Repair(kThumbA));
  clock_.Advance(absl::Seconds(7));
  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded(kThumbA)).ok());

  store::CommandRecord stored = Stored(id);
  EXPECT_EQ(stored.state, CommandState::kSucceeded);
  EXPECT_EQ(stored.finished_at, kNow + absl::Seconds(7));
  ASSERT_TRUE(stored.outcome.has_value());
  EXPECT_EQ(stored.outcome->code, absl::StatusCode::kOk);
  EXPECT_EQ(stored.outcome->result.thumbprint, kThumbA);
  EXPECT_EQ(stored.outcome->result.detail, "done");
  EXPECT_THAT(channel->acks, ElementsAre(id));
}

TEST_F(CommandServiceTest, OnCommandDoneStoresAFailureWithItsCodeAndError) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Remove(kThumbB)));
  ASSERT_TRUE(
      service_->OnCommandDone("agent-1", id, Failed(absl::StatusCode::kNotFound, "not in My"))
          .ok());
  store::CommandRecord stored = Stored(id);
  EXPECT_EQ(stored.state, CommandState::kFailed);
  ASSERT_TRUE(stored.outcome.has_value());
  EXPECT_EQ(stored.outcome->code, absl::StatusCode::kNotFound);
  EXPECT_EQ(stored.outcome->error, "not in My");
  EXPECT_THAT(channel->acks, ElementsAre(id));
}

TEST_F(CommandServiceTest, ADuplicateDoneIsAcknowledgedAgainAndChangesNothing) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded()).ok());
  store::CommandRecord first = Stored(id);

  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(
      service_->OnCommandDone("agent-1", id, Failed(absl::StatusCode::kInternal, "other")).ok());

  store::CommandRecord second = Stored(id);
  EXPECT_EQ(second.state, CommandState::kSucceeded);
  EXPECT_EQ(second.finished_at, first.finished_at);
  ASSERT_TRUE(second.outcome.has_value());
  EXPECT_EQ(second.outcome->code, absl::StatusCode::kOk);
  EXPECT_EQ(second.outcome->error, "");
  EXPECT_THAT(channel->acks, ElementsAre(id, id));
}

TEST_F(CommandServiceTest, ALateDoneOfAnExpiredCommandIsAcknowledgedAndKeepsItExpired) {
  std::string id = MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  clock_.Advance(absl::Minutes(2));
  ASSERT_EQ(service_->ExpireDue().value_or(0), 1u);

  auto channel = Connect("agent-1");
  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded()).ok());
  EXPECT_EQ(Stored(id).state, CommandState::kExpired);
  EXPECT_THAT(channel->acks, ElementsAre(id));
}

TEST_F(CommandServiceTest, DoneForAnUnknownCommandIsAcknowledgedSoTheAgentStopsResending) {
  auto channel = Connect("agent-1");
  ASSERT_TRUE(service_->OnCommandDone("agent-1", "cmd-forgotten", Succeeded()).ok());
  EXPECT_THAT(channel->acks, ElementsAre("cmd-forgotten"));
  EXPECT_THAT(AllStored(), IsEmpty());
}

TEST_F(CommandServiceTest, DoneFromAnotherAgentIsPermissionDeniedNotStoredAndNotAcknowledged) {
  auto owner = Connect("agent-1");
  auto intruder = Connect("agent-2");
  std::string id = MustCreate(Request("agent-1", Scan()));
  absl::Status status = service_->OnCommandDone("agent-2", id, Succeeded());
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(Stored(id).state, CommandState::kSent);
  EXPECT_EQ(Stored(id).outcome, std::nullopt);
  EXPECT_THAT(intruder->acks, IsEmpty());
  EXPECT_THAT(owner->acks, IsEmpty());
}

TEST_F(CommandServiceTest, DoneWithAStateThatIsNotFinalIsInvalidArgumentAndNotAcknowledged) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  model::CommandOutcome outcome = Succeeded();
  outcome.state = CommandState::kRunning;
  absl::Status status = service_->OnCommandDone("agent-1", id, outcome);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(Stored(id).state, CommandState::kSent);
  EXPECT_THAT(channel->acks, IsEmpty());
}

TEST_F(CommandServiceTest, DoneOfAnAgentWhoseStreamIsGoneIsStoredWithoutAnAck) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Scan()));
  Disconnect("agent-1");
  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded()).ok());
  EXPECT_EQ(Stored(id).state, CommandState::kSucceeded);
  EXPECT_THAT(channel->acks, IsEmpty());
}

TEST_F(CommandServiceTest, DoneOfAnImportLeavesNeitherItsPasswordNorItsDataInTheStore) {
  auto channel = Connect("agent-1");
  std::string id = MustCreate(Request("agent-1", Import("-----BEGIN PRIVATE KEY-----", "pw")));
  EXPECT_EQ(StoredPayload<model::ImportPayload>(id).password,
            "pw");  // kept until final: a re-send needs it

  ASSERT_TRUE(service_->OnCommandDone("agent-1", id, Succeeded(kThumbA)).ok());
  store::CommandRecord stored = Stored(id);
  auto* after = std::get_if<model::ImportPayload>(&stored.command.payload);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->password, "");
  EXPECT_EQ(after->data, "");
  ASSERT_TRUE(stored.outcome.has_value());
  EXPECT_EQ(stored.outcome->result.thumbprint, kThumbA);
}

// --- ExpireDue ---

TEST_F(CommandServiceTest, ExpireDueWithNothingPastItsDeadlineExpiresNothing) {
  MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  clock_.Advance(absl::Minutes(1));  // at the deadline, not past it
  auto expired = service_->ExpireDue();
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(*expired, 0u);
}

TEST_F(CommandServiceTest, ExpireDueExpiresQueuedAndSentCommandsPastTheirDeadlineAndCountsThem) {
  std::string queued = MustCreate(Request("agent-2", Import("PEM", "pw"), absl::Minutes(1)));
  auto channel = Connect("agent-1");
  std::string sent = MustCreate(Request("agent-1", Scan(), absl::Minutes(1)));
  std::string later = MustCreate(Request("agent-1", Scan(), absl::Hours(2)));

  clock_.Advance(absl::Minutes(1) + absl::Seconds(1));
  auto expired = service_->ExpireDue();
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(*expired, 2u);

  for (const std::string& id : {queued, sent}) {
    store::CommandRecord stored = Stored(id);
    EXPECT_EQ(stored.state, CommandState::kExpired) << id;
    ASSERT_TRUE(stored.outcome.has_value()) << id;
    EXPECT_EQ(stored.outcome->code, absl::StatusCode::kDeadlineExceeded) << id;
    EXPECT_EQ(stored.finished_at, kNow + absl::Minutes(1) + absl::Seconds(1)) << id;
  }
  EXPECT_EQ(Stored(later).state, CommandState::kSent);
  model::ImportPayload import = StoredPayload<model::ImportPayload>(queued);
  EXPECT_EQ(import.password, "");
  EXPECT_EQ(import.data, "");

  auto again = service_->ExpireDue();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0u);
}

TEST_F(CommandServiceTest, ExpireDueGivesARunningCommandTheRunningGraceBeforeExpiringIt) {
  auto channel = Connect("agent-1");
  std::string id = RunningOnAgent1(Scan(), absl::Minutes(1));

  clock_.Advance(absl::Minutes(1) + CommandService::kRunningGrace);
  EXPECT_EQ(service_->ExpireDue().value_or(99), 0u);
  EXPECT_EQ(Stored(id).state, CommandState::kRunning);

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(service_->ExpireDue().value_or(99), 1u);
  EXPECT_EQ(Stored(id).state, CommandState::kExpired);
}

}  // namespace
}  // namespace certfleet::controller::commands
