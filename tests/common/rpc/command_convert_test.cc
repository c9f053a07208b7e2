#include "common/rpc/command_convert.h"

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace certfleet::common::rpc {
namespace {

using google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::SizeIs;

// Microseconds included: the wire keeps them.
const absl::Time kDeadline =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 13, 30, 0), absl::UTCTimeZone()) +
    absl::Microseconds(123456);

const std::string kThumb = "0123456789ABCDEF0123456789ABCDEF01234567";
const std::string kThumbLower = "0123456789abcdef0123456789abcdef01234567";

model::Command CommandWith(model::CommandPayload payload) {
  model::Command command;
  command.id = "cmd-0a1b2c";
  command.agent_id = "agent-1";  // not on the wire: the stream names the agent
  command.deadline = kDeadline;
  command.payload = std::move(payload);
  return command;
}

// ToProto then FromProto; the conversion back must succeed.
model::Command RoundTrip(const model::Command& command) {
  certfleet::v1::Command proto;
  ToProto(command, &proto);
  auto back = FromProto(proto);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : model::Command{};
}

// A valid wire command with `id` and a scan payload, to break one field at a time.
certfleet::v1::Command WireScan() {
  certfleet::v1::Command proto;
  proto.set_id("cmd-1");
  *proto.mutable_deadline() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(kDeadline));
  proto.mutable_scan();
  return proto;
}

certfleet::v1::Command WireRebind(const std::string& thumbprint, int64_t verify_timeout_ms) {
  certfleet::v1::Command proto = WireScan();
  proto.mutable_rebind()->set_thumbprint(thumbprint);
  *proto.mutable_rebind()->mutable_verify_timeout() =
      TimeUtil::MillisecondsToDuration(verify_timeout_ms);
  return proto;
}

absl::StatusCode CodeOf(const certfleet::v1::Command& proto) {
  return FromProto(proto).status().code();
}

// --- Commands ---

TEST(CommandToProto, PutsTheIdDeadlineAndPayloadOnTheWire) {
  certfleet::v1::Command proto;
  ToProto(CommandWith(model::RebindPayload{kThumb, absl::Seconds(90)}), &proto);
  EXPECT_EQ(proto.id(), "cmd-0a1b2c");
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(proto.deadline()), absl::ToUnixMicros(kDeadline));
  ASSERT_EQ(proto.payload_case(), certfleet::v1::Command::kRebind);
  EXPECT_EQ(proto.rebind().thumbprint(), kThumb);
  EXPECT_EQ(TimeUtil::DurationToMilliseconds(proto.rebind().verify_timeout()), 90000);
}

TEST(CommandRoundTrip, KeepsAScan) {
  model::Command back = RoundTrip(CommandWith(model::ScanPayload{}));
  EXPECT_EQ(back.id, "cmd-0a1b2c");
  EXPECT_EQ(back.deadline, kDeadline);
  EXPECT_TRUE(std::holds_alternative<model::ScanPayload>(back.payload));
}

TEST(CommandRoundTrip, KeepsAnImportWithBinaryDataAndItsPassword) {
  const std::string der("\x30\x82\x00\xff\x00\x01", 6);
  model::Command back = RoundTrip(CommandWith(model::ImportPayload{der, "pfx-pass"}));
  EXPECT_EQ(back.id, "cmd-0a1b2c");
  EXPECT_EQ(back.deadline, kDeadline);
  auto* import = std::get_if<model::ImportPayload>(&back.payload);
  ASSERT_NE(import, nullptr);
  EXPECT_EQ(import->data, der);
  EXPECT_EQ(import->password, "pfx-pass");
}

TEST(CommandRoundTrip, KeepsAnImportWithoutAPassword) {
  model::Command back = RoundTrip(CommandWith(model::ImportPayload{"PEM", ""}));
  auto* import = std::get_if<model::ImportPayload>(&back.payload);
  ASSERT_NE(import, nullptr);
  EXPECT_EQ(import->password, "");
}

TEST(CommandRoundTrip, KeepsARepair) {
  model::Command back = RoundTrip(CommandWith(model::RepairPayload{kThumb}));
  auto* repair = std::get_if<model::RepairPayload>(&back.payload);
  ASSERT_NE(repair, nullptr);
  EXPECT_EQ(repair->thumbprint, kThumb);
}

TEST(CommandRoundTrip, KeepsARebindAndItsVerifyTimeoutToTheMillisecond) {
  model::Command back =
      RoundTrip(CommandWith(model::RebindPayload{kThumb, absl::Milliseconds(2500)}));
  auto* rebind = std::get_if<model::RebindPayload>(&back.payload);
  ASSERT_NE(rebind, nullptr);
  EXPECT_EQ(rebind->thumbprint, kThumb);
  EXPECT_EQ(rebind->verify_timeout, absl::Milliseconds(2500));
}

TEST(CommandRoundTrip, KeepsATrust) {
  model::Command back = RoundTrip(CommandWith(model::TrustPayload{"-----BEGIN CERTIFICATE-----"}));
  auto* trust = std::get_if<model::TrustPayload>(&back.payload);
  ASSERT_NE(trust, nullptr);
  EXPECT_EQ(trust->data, "-----BEGIN CERTIFICATE-----");
}

TEST(CommandRoundTrip, KeepsARemove) {
  model::Command back = RoundTrip(CommandWith(model::RemovePayload{kThumb}));
  auto* remove = std::get_if<model::RemovePayload>(&back.payload);
  ASSERT_NE(remove, nullptr);
  EXPECT_EQ(remove->thumbprint, kThumb);
}

TEST(CommandRoundTrip, KeepsADeadlineBeforeTheEpoch) {
  model::Command command = CommandWith(model::ScanPayload{});
  command.deadline = absl::UnixEpoch() - absl::Microseconds(1500001);
  EXPECT_EQ(RoundTrip(command).deadline, command.deadline);
}

TEST(CommandFromProto, UppercasesThumbprints) {
  certfleet::v1::Command repair = WireScan();
  repair.mutable_repair()->set_thumbprint(kThumbLower);
  certfleet::v1::Command remove = WireScan();
  remove.mutable_remove()->set_thumbprint(kThumbLower);

  auto r = FromProto(repair);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<model::RepairPayload>(r->payload).thumbprint, kThumb);
  auto b = FromProto(WireRebind(kThumbLower, 5000));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(std::get<model::RebindPayload>(b->payload).thumbprint, kThumb);
  auto m = FromProto(remove);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<model::RemovePayload>(m->payload).thumbprint, kThumb);
}

TEST(CommandFromProto, GivesARebindWithoutAVerifyTimeoutTheDefaultOfSixtySeconds) {
  certfleet::v1::Command proto = WireScan();
  proto.mutable_rebind()->set_thumbprint(kThumb);
  auto command = FromProto(proto);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(std::get<model::RebindPayload>(command->payload).verify_timeout, absl::Seconds(60));
}

TEST(CommandFromProto, AcceptsAVerifyTimeoutOfExactlyOneSecondOrOneHour) {
  for (int64_t ms : {int64_t{1000}, int64_t{3600 * 1000}}) {
    auto command = FromProto(WireRebind(kThumb, ms));
    ASSERT_TRUE(command.ok()) << ms << ": " << command.status();
    EXPECT_EQ(std::get<model::RebindPayload>(command->payload).verify_timeout,
              absl::Milliseconds(ms));
  }
}

TEST(CommandFromProto, AcceptsAnIdOf128CharactersAndDataOfExactlyOneMebibyte) {
  certfleet::v1::Command proto = WireScan();
  proto.set_id(std::string(128, 'c'));
  proto.mutable_import()->set_data(std::string(1 << 20, 'x'));
  auto command = FromProto(proto);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->id, std::string(128, 'c'));
  EXPECT_EQ(std::get<model::ImportPayload>(command->payload).data.size(), size_t{1} << 20);
}

TEST(CommandFromProtoRejects, AnEmptyId) {
  certfleet::v1::Command proto = WireScan();
  proto.set_id("");
  EXPECT_EQ(CodeOf(proto), absl::StatusCode::kInvalidArgument);
}

TEST(CommandFromProtoRejects, AnIdLongerThan128Characters) {
  certfleet::v1::Command proto = WireScan();
  proto.set_id(std::string(129, 'c'));
  EXPECT_EQ(CodeOf(proto), absl::StatusCode::kInvalidArgument);
}

TEST(CommandFromProtoRejects, AThumbprintThatIsNotFortyHexDigits) {
  for (const std::string& bad : {std::string(""), std::string(39, 'A'), std::string(41, 'A'),
                                 std::string(40, 'G'), std::string(39, 'A') + "-"}) {
    SCOPED_TRACE("thumbprint '" + bad + "'");
    certfleet::v1::Command repair = WireScan();
    repair.mutable_repair()->set_thumbprint(bad);
    certfleet::v1::Command remove = WireScan();
    remove.mutable_remove()->set_thumbprint(bad);
    EXPECT_EQ(CodeOf(repair), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(WireRebind(bad, 5000)), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(remove), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CommandFromProtoRejects, AnImportOrTrustWithoutData) {
  certfleet::v1::Command import = WireScan();
  import.mutable_import()->set_password("pw");
  certfleet::v1::Command trust = WireScan();
  trust.mutable_trust();
  EXPECT_EQ(CodeOf(import), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(trust), absl::StatusCode::kInvalidArgument);
}

TEST(CommandFromProtoRejects, AnImportOrTrustOverOneMebibyte) {
  const std::string big((1 << 20) + 1, 'x');
  certfleet::v1::Command import = WireScan();
  import.mutable_import()->set_data(big);
  certfleet::v1::Command trust = WireScan();
  trust.mutable_trust()->set_data(big);
  EXPECT_EQ(CodeOf(import), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(trust), absl::StatusCode::kInvalidArgument);
}

TEST(CommandFromProtoRejects, AVerifyTimeoutOutsideOneSecondToOneHour) {
  for (int64_t ms : {int64_t{-1000}, int64_t{0}, int64_t{999}, int64_t{3600 * 1000 + 1}}) {
    SCOPED_TRACE(ms);
    EXPECT_EQ(CodeOf(WireRebind(kThumb, ms)), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CommandFromProtoRejects, ACommandWithoutAPayload) {
  certfleet::v1::Command proto = WireScan();
  proto.clear_payload();
  EXPECT_EQ(CodeOf(proto), absl::StatusCode::kInvalidArgument);
}

// --- Outcomes ---

model::CommandOutcome RebindOutcome() {
  const absl::Time restart =
      absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 5), absl::UTCTimeZone());
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kFailed;
  outcome.code = absl::StatusCode::kFailedPrecondition;
  outcome.error = "20071: the certificate's subject does not match this computer";
  outcome.result.thumbprint = kThumb;
  outcome.result.problems = {"EXPIRES_SOON", "NO_PRIVATE_KEY"};
  outcome.result.previous_channel_serial = "0A0B";
  outcome.result.channel_serial = "0A0B";
  outcome.result.rolled_back = true;
  outcome.result.events = {
      {restart + absl::Microseconds(250), 20071, "Error", "subject mismatch"},
      {restart + absl::Seconds(3), 20053, "Information", "loaded the certificate"},
  };
  outcome.result.detail = "rolled back to 0A0B";
  return outcome;
}

model::CommandOutcome OutcomeRoundTrip(const model::CommandOutcome& outcome) {
  certfleet::v1::CommandUpdate update;
  ToProto("cmd-1", outcome, &update);
  auto back = OutcomeFromProto(update);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : model::CommandOutcome{};
}

certfleet::v1::CommandUpdate WireDone(const std::string& state, int code) {
  certfleet::v1::CommandUpdate update;
  update.set_command_id("cmd-1");
  update.set_phase(certfleet::v1::CommandUpdate::DONE);
  update.set_state(state);
  update.set_code(code);
  return update;
}

TEST(OutcomeToProto, IsADoneUpdateNamingTheStateAndTheCanonicalCode) {
  certfleet::v1::CommandUpdate update;
  ToProto("cmd-1", RebindOutcome(), &update);
  EXPECT_EQ(update.command_id(), "cmd-1");
  EXPECT_EQ(update.phase(), certfleet::v1::CommandUpdate::DONE);
  EXPECT_EQ(update.state(), "failed");
  EXPECT_EQ(update.code(), 9);  // FAILED_PRECONDITION, as gRPC numbers it
  EXPECT_EQ(update.error(), RebindOutcome().error);
  EXPECT_THAT(update.result().problems(), ElementsAre("EXPIRES_SOON", "NO_PRIVATE_KEY"));
  ASSERT_THAT(update.result().events(), SizeIs(2));
  EXPECT_EQ(update.result().events(0).id(), 20071);
}

TEST(OutcomeRoundTrip, KeepsAFailedRebindWithItsEvidence) {
  model::CommandOutcome in = RebindOutcome();
  model::CommandOutcome out = OutcomeRoundTrip(in);
  EXPECT_EQ(out.state, model::CommandState::kFailed);
  EXPECT_EQ(out.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.error, in.error);
  EXPECT_EQ(out.result.thumbprint, kThumb);
  EXPECT_THAT(out.result.problems, ElementsAre("EXPIRES_SOON", "NO_PRIVATE_KEY"));
  EXPECT_EQ(out.result.previous_channel_serial, "0A0B");
  EXPECT_EQ(out.result.channel_serial, "0A0B");
  EXPECT_TRUE(out.result.rolled_back);
  EXPECT_EQ(out.result.detail, "rolled back to 0A0B");
  ASSERT_THAT(out.result.events, SizeIs(2));
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(out.result.events[i].time, in.result.events[i].time);
    EXPECT_EQ(out.result.events[i].id, in.result.events[i].id);
    EXPECT_EQ(out.result.events[i].level, in.result.events[i].level);
    EXPECT_EQ(out.result.events[i].message, in.result.events[i].message);
  }
}

TEST(OutcomeRoundTrip, KeepsEveryFinalStateWithItsCode) {
  const std::vector<std::pair<model::CommandState, absl::StatusCode>> finals = {
      {model::CommandState::kSucceeded, absl::StatusCode::kOk},
      {model::CommandState::kFailed, absl::StatusCode::kNotFound},
      {model::CommandState::kCancelled, absl::StatusCode::kCancelled},
      {model::CommandState::kExpired, absl::StatusCode::kDeadlineExceeded},
  };
  for (const auto& [state, code] : finals) {
    SCOPED_TRACE(model::CommandStateName(state));
    model::CommandOutcome in;
    in.state = state;
    in.code = code;
    in.error = code == absl::StatusCode::kOk ? "" : "why";
    model::CommandOutcome out = OutcomeRoundTrip(in);
    EXPECT_EQ(out.state, state);
    EXPECT_EQ(out.code, code);
    EXPECT_EQ(out.error, in.error);
    EXPECT_FALSE(out.result.rolled_back);
    EXPECT_TRUE(out.result.events.empty());
  }
}

TEST(OutcomeFromProto, AcceptsTheHighestCanonicalCode) {
  auto outcome = OutcomeFromProto(WireDone("failed", 16));
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->code, absl::StatusCode::kUnauthenticated);
}

TEST(OutcomeFromProto, KeepsAtMost100EventsAndBoundsTheirText) {
  certfleet::v1::CommandUpdate update = WireDone("succeeded", 0);
  for (int i = 0; i < 150; ++i) {
    auto* event = update.mutable_result()->add_events();
    event->set_id(i);
    event->set_message(std::string(20 * 1024, 'm'));
  }
  update.mutable_result()->set_detail(std::string(20 * 1024, 'd'));
  auto outcome = OutcomeFromProto(update);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_THAT(outcome->result.events, SizeIs(100));
  EXPECT_EQ(outcome->result.events[99].id, 99);
  EXPECT_EQ(outcome->result.events[0].message.size(), 16u * 1024);
  EXPECT_EQ(outcome->result.detail.size(), 16u * 1024);
}

TEST(OutcomeFromProtoRejects, AStateThatIsNotFinal) {
  for (const char* state : {"queued", "sent", "running", "", "done", "SUCCEEDED"}) {
    SCOPED_TRACE(state);
    EXPECT_EQ(OutcomeFromProto(WireDone(state, 0)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(OutcomeFromProtoRejects, ACodeThatIsNotCanonical) {
  for (int code : {-1, 17, 1000}) {
    SCOPED_TRACE(code);
    EXPECT_EQ(OutcomeFromProto(WireDone("failed", code)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace certfleet::common::rpc
