#pragma once

#include "certfleet/v1/campaigns.grpc.pb.h"
#include "common/executor/executor.h"
#include "controller/campaigns/campaign_service.h"

namespace certfleet::controller::rpc {

// The Campaigns service over the gRPC callback API: authenticate the operator, check the role
// (viewer to read; operator to create and control; admin for an emergency campaign), convert,
// run the CampaignService call on the executor, convert back. Thread-safe.
class CampaignApiService final : public certfleet::v1::Campaigns::CallbackService {
 public:
  CampaignApiService(campaigns::CampaignService& campaigns, common::Executor& executor)
      : campaigns_(campaigns), executor_(executor) {}

  grpc::ServerUnaryReactor* CreateCampaign(grpc::CallbackServerContext* context,
                                           const certfleet::v1::CreateCampaignRequest* request,
                                           certfleet::v1::CampaignInfo* response) override;
  grpc::ServerUnaryReactor* GetCampaign(grpc::CallbackServerContext* context,
                                        const certfleet::v1::CampaignRef* request,
                                        certfleet::v1::CampaignInfo* response) override;
  grpc::ServerUnaryReactor* ListCampaigns(grpc::CallbackServerContext* context,
                                          const certfleet::v1::ListCampaignsRequest* request,
                                          certfleet::v1::ListCampaignsResponse* response) override;
  grpc::ServerUnaryReactor* PlanCampaign(grpc::CallbackServerContext* context,
                                         const certfleet::v1::CampaignRef* request,
                                         certfleet::v1::CampaignPlan* response) override;
  grpc::ServerUnaryReactor* ControlCampaign(grpc::CallbackServerContext* context,
                                            const certfleet::v1::ControlCampaignRequest* request,
                                            certfleet::v1::CampaignInfo* response) override;

 private:
  campaigns::CampaignService& campaigns_;
  common::Executor& executor_;
};

// Conversions, exposed for tests. `with_targets` false leaves CampaignInfo.targets empty.
void ToProto(const campaigns::CampaignView& view, bool with_targets,
             certfleet::v1::CampaignInfo* out);
void ToProto(const store::CampaignTargetRecord& target, certfleet::v1::CampaignTarget* out);
// InvalidArgument for a negative duration.
absl::StatusOr<store::CampaignSpec> FromProto(const certfleet::v1::CampaignSpec& spec);

}  // namespace certfleet::controller::rpc
