#include "controller/rpc/campaign_api.h"

#include "absl/strings/str_cat.h"
#include "controller/rpc/admin_call.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::controller::rpc {
namespace {

using common::model::PeerIdentity;
using common::model::Role;
using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp Stamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

google::protobuf::Duration ToDuration(absl::Duration d) {
  return TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(d));
}

absl::Duration FromDuration(const google::protobuf::Duration& d) {
  return absl::Microseconds(TimeUtil::DurationToMicroseconds(d));
}

void SpecToProto(const store::CampaignSpec& spec, certfleet::v1::CampaignSpec* out) {
  out->mutable_labels()->insert(spec.labels.begin(), spec.labels.end());
  out->set_fqdn_glob(spec.fqdn_glob);
  if (spec.expiring_within) *out->mutable_expiring_within() = ToDuration(*spec.expiring_within);
  out->set_problem(spec.problem);
  out->set_profile(spec.profile);
  out->set_issuer(spec.issuer);
  out->set_no_bind(!spec.bind);
  out->set_waves(spec.waves);
  out->set_max_in_flight(spec.max_in_flight);
  out->set_max_failures(spec.max_failures);
  *out->mutable_soak() = ToDuration(spec.soak);
  out->set_window(spec.window);
  out->set_emergency(spec.emergency);
  *out->mutable_offline_deadline() = ToDuration(spec.offline_deadline);
}

}  // namespace

absl::StatusOr<store::CampaignSpec> FromProto(const certfleet::v1::CampaignSpec& in) {
  store::CampaignSpec spec;
  spec.labels.insert(in.labels().begin(), in.labels().end());
  spec.fqdn_glob = in.fqdn_glob();
  if (in.has_expiring_within()) {
    spec.expiring_within = FromDuration(in.expiring_within());
    if (*spec.expiring_within <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("expiring within must be positive");
    }
  }
  spec.problem = in.problem();
  spec.profile = in.profile();
  spec.issuer = in.issuer();
  spec.bind = !in.no_bind();
  if (!in.waves().empty()) spec.waves = in.waves();
  if (in.max_in_flight() != 0) spec.max_in_flight = in.max_in_flight();
  if (!in.max_failures().empty()) spec.max_failures = in.max_failures();
  if (in.has_soak()) spec.soak = FromDuration(in.soak());
  spec.window = in.window();
  spec.emergency = in.emergency();
  if (in.has_offline_deadline()) spec.offline_deadline = FromDuration(in.offline_deadline());
  if (spec.soak < absl::ZeroDuration() || spec.offline_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("soak must not be negative; offline deadline must be > 0");
  }
  return spec;
}

void ToProto(const store::CampaignTargetRecord& t, certfleet::v1::CampaignTarget* out) {
  out->set_agent_id(t.agent_id);
  out->set_fqdn(t.fqdn);
  out->set_wave(t.wave + 1);
  out->set_state(std::string(common::model::TargetStateName(t.state)));
  out->set_renewal_id(t.renewal_id);
  out->set_reason(t.reason);
  out->set_previous_thumbprint(t.previous_thumbprint);
  if (t.previous_not_after) *out->mutable_previous_not_after() = Stamp(*t.previous_not_after);
  if (t.started_at) *out->mutable_started_at() = Stamp(*t.started_at);
  if (t.finished_at) *out->mutable_finished_at() = Stamp(*t.finished_at);
}

void ToProto(const campaigns::CampaignView& view, bool with_targets,
             certfleet::v1::CampaignInfo* out) {
  const store::CampaignRecord& c = view.campaign;
  out->set_id(c.id);
  out->set_name(c.name);
  SpecToProto(c.spec, out->mutable_spec());
  out->set_state(std::string(common::model::CampaignStateName(c.state)));
  out->set_reason(c.reason);
  out->set_current_wave(std::min(c.current_wave, c.wave_count - 1) + 1);
  out->set_wave_count(c.wave_count);
  out->set_hosts(static_cast<int32_t>(view.targets.size()));
  int start = 0;
  for (size_t w = 0; w < view.wave_ends.size(); ++w) {
    auto* wave = out->add_waves();
    wave->set_wave(static_cast<int32_t>(w + 1));
    wave->set_hosts(view.wave_ends[w] - start);
    start = view.wave_ends[w];
    if (w < view.counts.size()) {
      for (const auto& [state, n] : view.counts[w]) {
        (*wave->mutable_states())[state] = n;
        (*out->mutable_totals())[state] += n;
      }
    }
  }
  out->set_failures(view.failures);
  out->set_allowed_failures(view.allowed_failures);
  out->set_failures_accepted(c.failures_acknowledged);
  if (with_targets) {
    for (const auto& t : view.targets) ToProto(t, out->add_targets());
  }
  out->set_created_by(c.created_by);
  *out->mutable_created_at() = Stamp(c.created_at);
  *out->mutable_updated_at() = Stamp(c.updated_at);
  if (c.started_at) *out->mutable_started_at() = Stamp(*c.started_at);
  if (c.finished_at) *out->mutable_finished_at() = Stamp(*c.finished_at);
  if (c.soak_until) *out->mutable_soak_until() = Stamp(*c.soak_until);
}

grpc::ServerUnaryReactor* CampaignApiService::CreateCampaign(
    grpc::CallbackServerContext* context, const certfleet::v1::CreateCampaignRequest* request,
    certfleet::v1::CampaignInfo* response) {
  // Ignoring hard maintenance windows is an admin's decision.
  const Role needed = request->spec().emergency() ? Role::kAdmin : Role::kOperator;
  return RunAdminCall(context, executor_, needed, "CreateCampaign",
                      [this, request, response](const PeerIdentity& who) -> absl::Status {
                        campaigns::CreateCampaignRequest req;
                        req.name = request->name();
                        auto spec = FromProto(request->spec());
                        if (!spec.ok()) return spec.status();
                        req.spec = *std::move(spec);
                        req.created_by = ActorOf(who);
                        auto view = campaigns_.Create(req);
                        if (!view.ok()) return view.status();
                        ToProto(*view, true, response);
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* CampaignApiService::GetCampaign(grpc::CallbackServerContext* context,
                                                          const certfleet::v1::CampaignRef* request,
                                                          certfleet::v1::CampaignInfo* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "GetCampaign",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        auto view = campaigns_.Get(request->id());
                        if (!view.ok()) return view.status();
                        ToProto(*view, true, response);
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* CampaignApiService::ListCampaigns(
    grpc::CallbackServerContext* context, const certfleet::v1::ListCampaignsRequest*,
    certfleet::v1::ListCampaignsResponse* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "ListCampaigns",
                      [this, response](const PeerIdentity&) -> absl::Status {
                        auto all = campaigns_.List();
                        if (!all.ok()) return all.status();
                        for (const auto& c : *all) {
                          auto view = campaigns_.Get(c.id);
                          if (!view.ok()) return view.status();
                          ToProto(*view, false, response->add_campaigns());
                        }
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* CampaignApiService::PlanCampaign(
    grpc::CallbackServerContext* context, const certfleet::v1::CampaignRef* request,
    certfleet::v1::CampaignPlan* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "PlanCampaign",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        auto view = campaigns_.Get(request->id());
                        if (!view.ok()) return view.status();
                        ToProto(*view, false, response->mutable_campaign());
                        auto plan = campaigns_.Plan(request->id());
                        if (!plan.ok()) return plan.status();
                        for (const auto& p : *plan) {
                          auto* out = response->add_targets();
                          ToProto(p.target, out->mutable_target());
                          out->set_connected(p.connected);
                          out->set_bound_thumbprint(p.bound_thumbprint);
                          if (p.bound_not_after) {
                            *out->mutable_bound_not_after() = Stamp(*p.bound_not_after);
                          }
                          out->set_change(p.change);
                          for (const auto& w : p.warnings) out->add_warnings(w);
                        }
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* CampaignApiService::ControlCampaign(
    grpc::CallbackServerContext* context, const certfleet::v1::ControlCampaignRequest* request,
    certfleet::v1::CampaignInfo* response) {
  return RunAdminCall(context, executor_, Role::kOperator, "ControlCampaign",
                      [this, request, response](const PeerIdentity& who) -> absl::Status {
                        const std::string actor = ActorOf(who);
                        const std::string& action = request->action();
                        absl::StatusOr<campaigns::CampaignView> view;
                        if (action == "start") {
                          view = campaigns_.Start(request->id(), actor);
                        } else if (action == "pause") {
                          view = campaigns_.Pause(request->id(), actor);
                        } else if (action == "resume") {
                          view = campaigns_.Resume(request->id(), actor);
                        } else if (action == "cancel") {
                          view = campaigns_.Cancel(request->id(), actor, request->reason());
                        } else if (action == "revert") {
                          view = campaigns_.Revert(request->id(), actor);
                        } else {
                          return absl::InvalidArgumentError(absl::StrCat(
                              "'", action.substr(0, 32),
                              "' is not a campaign action (start, pause, resume, cancel, revert)"));
                        }
                        if (!view.ok()) return view.status();
                        ToProto(*view, true, response);
                        return absl::OkStatus();
                      });
}

}  // namespace certfleet::controller::rpc
