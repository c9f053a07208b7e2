#pragma once

// Wire <-> domain conversion for the controller's services. FromProto validates: malformed
// peer data is InvalidArgument naming the field.

#include <string>

#include "absl/status/statusor.h"
#include "certfleet/v1/admin.pb.h"
#include "certfleet/v1/agent.pb.h"
#include "controller/admin/admin_service.h"
#include "controller/fleet/fleet.h"

namespace certfleet::controller::rpc {

absl::StatusOr<fleet::InventoryReport> FromProto(const certfleet::v1::Inventory& inventory,
                                                 absl::string_view agent_id);

void ToProto(const admin::AgentView& view, certfleet::v1::Agent* out);
void ToProto(const admin::CertificateView& view, certfleet::v1::CertificateRow* out);
void ToProto(const store::RenewalRecord& record, certfleet::v1::RenewalInfo* out);
void ToProto(const store::ApprovalRequestRecord& record, certfleet::v1::ApprovalRequestInfo* out);

// Never copies an import's data or password.
void ToProto(const store::CommandRecord& record, absl::string_view fqdn,
             certfleet::v1::CommandInfo* out);

}  // namespace certfleet::controller::rpc
