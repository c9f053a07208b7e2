#include "controller/rpc/convert.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/certificate_convert.h"
#include "common/rpc/command_convert.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::controller::rpc {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxCodes = 64;
constexpr size_t kMaxText = 4096;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(t));
}

absl::Status CheckCodes(const google::protobuf::RepeatedPtrField<std::string>& codes,
                        absl::string_view field) {
  if (static_cast<size_t>(codes.size()) > kMaxCodes) {
    return absl::InvalidArgumentError(absl::StrCat("too many ", field, " codes"));
  }
  for (const auto& c : codes) {
    if (c.empty() || c.size() > 64) {
      return absl::InvalidArgumentError(absl::StrCat("malformed ", field, " code"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<fleet::InventoryReport> FromProto(const certfleet::v1::Inventory& inventory,
                                                 absl::string_view agent_id) {
  fleet::InventoryReport report;
  report.generation = inventory.generation();
  report.full = inventory.full();
  report.base_generation = inventory.base_generation();
  if (!report.full && report.base_generation >= report.generation) {
    return absl::InvalidArgumentError("inventory delta: base_generation must precede generation");
  }
  report.certificates.reserve(inventory.certificates_size());
  for (const auto& hc : inventory.certificates()) {
    store::CertificateRecord rec;
    rec.agent_id = std::string(agent_id);
    if (hc.store() != "My" && hc.store() != "CA" && hc.store() != "Root") {
      return absl::InvalidArgumentError(
          absl::StrCat("inventory: unknown store '", hc.store().substr(0, 32), "'"));
    }
    rec.store = hc.store();
    if (hc.location().size() > kMaxText) {
      return absl::InvalidArgumentError("inventory: location too long");
    }
    rec.location = hc.location();
    auto info = common::rpc::FromProto(hc.certificate());
    if (!info.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("inventory certificate in ", rec.store, ": ", info.status().message()));
    }
    rec.info = std::move(*info);
    if (auto s = CheckCodes(hc.certificate().problems(), "problem"); !s.ok()) return s;
    if (auto s = CheckCodes(hc.drift(), "drift"); !s.ok()) return s;
    rec.problems.assign(hc.certificate().problems().begin(), hc.certificate().problems().end());
    rec.bound = hc.bound();
    rec.drift.assign(hc.drift().begin(), hc.drift().end());
    report.certificates.push_back(std::move(rec));
  }
  for (const auto& key : inventory.removed()) {
    if (key.size() > 128) return absl::InvalidArgumentError("inventory: removed key too long");
    report.removed.push_back(key);
  }
  if (auto s = CheckCodes(inventory.binding().drift(), "drift"); !s.ok()) return s;
  if (inventory.binding().channel_serial().size() > 256) {
    return absl::InvalidArgumentError("inventory: channel serial too long");
  }
  report.binding.channel_serial = inventory.binding().channel_serial();
  report.binding.drift.assign(inventory.binding().drift().begin(),
                              inventory.binding().drift().end());
  return report;
}

void ToProto(const admin::AgentView& view, certfleet::v1::Agent* out) {
  const store::AgentRecord& a = view.agent;
  out->set_id(a.id);
  out->set_fqdn(a.fqdn);
  out->set_status(view.connected ? "connected" : "disconnected");
  if (a.last_seen) *out->mutable_last_seen() = ToTimestamp(*a.last_seen);
  out->set_platform(a.platform);
  out->set_version(a.version);
  for (const auto& [k, v] : a.labels) (*out->mutable_labels())[k] = v;
  *out->mutable_enrolled_at() = ToTimestamp(a.enrolled_at);
  for (const auto& d : a.drift) out->add_drift(d);
  out->set_channel_serial(a.channel_serial);
  out->set_identity_serial(a.identity_serial);
  if (a.identity_not_after > absl::UnixEpoch() &&
      a.identity_not_after < absl::FromCivil(absl::CivilYear(9999), absl::UTCTimeZone())) {
    *out->mutable_identity_not_after() = ToTimestamp(a.identity_not_after);
  }
}

void ToProto(const admin::CertificateView& view, certfleet::v1::CertificateRow* out) {
  const store::CertificateRecord& c = view.certificate;
  out->set_agent_id(c.agent_id);
  out->set_fqdn(view.fqdn);
  auto* hc = out->mutable_host_certificate();
  common::rpc::ToProto(c.info, c.problems, hc->mutable_certificate());
  hc->set_store(c.store);
  hc->set_location(c.location);
  hc->set_bound(c.bound);
  for (const auto& d : c.drift) hc->add_drift(d);
}

void ToProto(const store::RenewalRecord& r, certfleet::v1::RenewalInfo* out) {
  out->set_id(r.id);
  out->set_agent_id(r.agent_id);
  out->set_fqdn(r.fqdn);
  out->set_profile(r.profile.name);
  out->set_issuer(r.issuer);
  out->set_bind(r.bind);
  out->set_state(std::string(common::model::RenewalStateName(r.state)));
  for (const auto& step : r.steps) {
    auto* s = out->add_steps();
    s->set_state(std::string(common::model::RenewalStateName(step.state)));
    *s->mutable_at() = ToTimestamp(step.at);
    s->set_note(step.note);
  }
  out->set_serial(r.serial);
  out->set_thumbprint(r.thumbprint);
  if (!r.chain_pem.empty()) {
    // The leaf: the first PEM block of the chain.
    size_t end = r.chain_pem.find("-----END CERTIFICATE-----");
    if (end != std::string::npos) {
      out->set_certificate_pem(r.chain_pem.substr(0, end + 25) + "\n");
    }
  }
  out->set_failure_reason(r.failure_reason);
  if (r.evidence) common::rpc::ToProto(*r.evidence, out->mutable_evidence());
  out->set_approval_request_id(r.approval_request_id);
  out->set_created_by(r.created_by);
  *out->mutable_created_at() = ToTimestamp(r.created_at);
  *out->mutable_updated_at() = ToTimestamp(r.updated_at);
  for (const auto* id : {&r.renew_command_id, &r.install_command_id, &r.bind_command_id}) {
    if (!id->empty()) out->add_commands(*id);
  }
}

void ToProto(const store::ApprovalRequestRecord& r, certfleet::v1::ApprovalRequestInfo* out) {
  out->set_id(r.id);
  out->set_issuer(r.issuer);
  out->set_renewal_id(r.renewal_id);
  out->set_agent_id(r.agent_id);
  out->set_fqdn(r.fqdn);
  out->set_profile(r.profile_name);
  out->set_state(std::string(common::model::ApprovalStateName(r.state)));
  out->set_decided_by(r.decided_by);
  out->set_reason(r.reason);
  out->set_csr_pem(r.csr_pem);
  *out->mutable_created_at() = ToTimestamp(r.created_at);
  if (r.decided_at) *out->mutable_decided_at() = ToTimestamp(*r.decided_at);
}

void ToProto(const store::CommandRecord& r, absl::string_view fqdn,
             certfleet::v1::CommandInfo* out) {
  using common::model::CommandKindName;
  out->set_id(r.command.id);
  out->set_agent_id(r.command.agent_id);
  out->set_fqdn(std::string(fqdn));
  out->set_kind(std::string(CommandKindName(common::model::KindOf(r.command.payload))));
  out->set_state(std::string(common::model::CommandStateName(r.state)));
  *out->mutable_created_at() = ToTimestamp(r.created_at);
  *out->mutable_deadline() = ToTimestamp(r.command.deadline);
  if (r.sent_at) *out->mutable_sent_at() = ToTimestamp(*r.sent_at);
  if (r.started_at) *out->mutable_started_at() = ToTimestamp(*r.started_at);
  if (r.finished_at) *out->mutable_finished_at() = ToTimestamp(*r.finished_at);
  out->set_created_by(r.created_by);
  out->set_attempts(r.attempts);
  out->set_cancel_requested(r.cancel_requested);
  std::visit(
      [out](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, common::model::RepairPayload> ||
                      std::is_same_v<T, common::model::RebindPayload> ||
                      std::is_same_v<T, common::model::RemovePayload>) {
          out->set_thumbprint(p.thumbprint);
        }
      },
      r.command.payload);
  if (r.outcome) {
    common::rpc::ToProto(r.outcome->result, out->mutable_result());
    out->set_error(r.outcome->error);
    if (r.outcome->code != absl::StatusCode::kOk) {
      out->set_error_code(absl::StatusCodeToString(r.outcome->code));
    }
  }
}

}  // namespace certfleet::controller::rpc
