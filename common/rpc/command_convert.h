#pragma once

// Commands and their outcomes on the wire. FromProto validates peer data: InvalidArgument
// naming the field for anything malformed (an empty id, a thumbprint that is not 40 hex
// digits, data over 1 MiB, a verify timeout outside 1 s..1 h, an unknown state).

#include "absl/status/statusor.h"
#include "certfleet/v1/agent.pb.h"
#include "certfleet/v1/types.pb.h"
#include "common/model/command.h"
#include "common/model/profile.h"

namespace certfleet::common::rpc {

// FromProto validates the profile with model::ValidateProfile.
void ToProto(const model::CertificateProfile& profile, certfleet::v1::CertificateProfile* out);
absl::StatusOr<model::CertificateProfile> FromProto(const certfleet::v1::CertificateProfile& in);

void ToProto(const model::Command& command, certfleet::v1::Command* out);
absl::StatusOr<model::Command> FromProto(const certfleet::v1::Command& command);

void ToProto(const model::CommandResult& result, certfleet::v1::CommandResult* out);
model::CommandResult FromProto(const certfleet::v1::CommandResult& result);

// A DONE update carrying `outcome`.
void ToProto(absl::string_view command_id, const model::CommandOutcome& outcome,
             certfleet::v1::CommandUpdate* out);
// The outcome of a DONE update.
absl::StatusOr<model::CommandOutcome> OutcomeFromProto(const certfleet::v1::CommandUpdate& update);

}  // namespace certfleet::common::rpc
