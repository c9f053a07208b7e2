#include "tools/certfleetctl/admin_commands.h"

#include <grpcpp/grpcpp.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "certfleet/v1/admin.grpc.pb.h"
#include "common/files/file_util.h"
#include "common/rpc/json.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "google/protobuf/util/time_util.h"
#include "tools/certfleetctl/connection.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

using google::protobuf::util::TimeUtil;

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return common::FormatRfc3339(absl::FromUnixSeconds(t.seconds()));
}

std::string JoinLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

int TokensCreate(const Connection& c, const std::string& ttl, const std::string& fqdn,
                 const std::vector<std::string>& labels, const std::string& agent) {
  certfleet::v1::CreateJoinTokenRequest req;
  req.set_agent(agent);
  auto d = common::ParseHumanDuration(ttl);
  if (!d.ok()) return ReportError(common::Annotate(d.status(), "--ttl"));
  *req.mutable_ttl() = TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(*d));
  req.set_fqdn(fqdn);
  for (const auto& l : labels) {
    std::pair<std::string, std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    if (kv.first.empty() || l.find('=') == std::string::npos) {
      return ReportError(
          absl::InvalidArgumentError(absl::StrCat("--label '", l, "' is not KEY=VALUE")));
    }
    (*req.mutable_labels())[kv.first] = kv.second;
  }
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::CreateJoinTokenResponse resp;
  grpc::Status s = (*stub)->CreateJoinToken(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  std::cout << resp.token() << "\n";
  return 0;
}

int AgentsList(const Connection& c) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListAgentsResponse resp;
  grpc::Status s = (*stub)->ListAgents(&ctx, certfleet::v1::ListAgentsRequest(), &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& a : resp.agents()) items.push_back(common::rpc::MessageToJson(a));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"ID", "FQDN", "STATUS", "LAST SEEN", "PLATFORM", "VERSION", "LABELS", "DRIFT"});
  for (const auto& a : resp.agents()) {
    t.AddRow({a.id(), a.fqdn(), a.status(), TimeText(a.last_seen()), a.platform(), a.version(),
              JoinLabels(a.labels()), absl::StrJoin(a.drift(), ",")});
  }
  t.Print(std::cout);
  return 0;
}

int CertsList(const Connection& c, const std::string& agent, const std::string& expiring,
              const std::string& problem) {
  certfleet::v1::ListCertificatesRequest req;
  req.set_agent(agent);
  req.set_problem(problem);
  if (!expiring.empty()) {
    auto d = common::ParseHumanDuration(expiring);
    if (!d.ok()) return ReportError(common::Annotate(d.status(), "--expiring-within"));
    *req.mutable_expiring_within() =
        TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(*d));
  }
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListCertificatesResponse resp;
  grpc::Status s = (*stub)->ListCertificates(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& row : resp.rows()) {
      const auto& hc = row.host_certificate();
      google::protobuf::Value agent_id, fqdn, store, location, bound, drift;
      agent_id.set_string_value(row.agent_id());
      fqdn.set_string_value(row.fqdn());
      store.set_string_value(hc.store());
      location.set_string_value(hc.location());
      bound.set_bool_value(hc.bound());
      auto* list = drift.mutable_list_value();
      for (const auto& d : hc.drift()) list->add_values()->set_string_value(d);
      items.push_back(common::rpc::JsonObjectWithFields(hc.certificate(), {{"agent_id", agent_id},
                                                                           {"fqdn", fqdn},
                                                                           {"store", store},
                                                                           {"location", location},
                                                                           {"bound", bound},
                                                                           {"drift", drift}}));
    }
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"FQDN", "STORE", "SUBJECT", "SERIAL", "NOT AFTER", "BOUND", "PROBLEMS", "DRIFT"});
  for (const auto& row : resp.rows()) {
    const auto& hc = row.host_certificate();
    const auto& cert = hc.certificate();
    t.AddRow({row.fqdn(), hc.store(), cert.subject(), cert.serial(), TimeText(cert.not_after()),
              hc.bound() ? "yes" : "", absl::StrJoin(cert.problems(), ","),
              absl::StrJoin(hc.drift(), ",")});
  }
  t.Print(std::cout);
  return 0;
}

}  // namespace

void RegisterAdminCommands(CLI::App& app, int* exit_code) {
  auto conn = std::make_shared<Connection>();
  auto add_connection = [conn](CLI::App* cmd, bool output) {
    AddConnectionOptions(cmd, conn.get(), output);
  };

  auto* tokens = app.add_subcommand("tokens", "Join tokens for enrolling agents");
  tokens->require_subcommand(1);
  auto* create = tokens->add_subcommand(
      "create", "Create a single-use join token and print it alone on stdout");
  auto ttl = std::make_shared<std::string>("1h");
  auto fqdn = std::make_shared<std::string>();
  auto labels = std::make_shared<std::vector<std::string>>();
  create->add_option("--ttl", *ttl, "How long the token stays valid (at most 168h)")
      ->capture_default_str();
  create->add_option("--fqdn", *fqdn, "Only the host with this FQDN may use the token");
  create->add_option("--label", *labels, "KEY=VALUE label given to the agent (repeatable)");
  auto reenroll = std::make_shared<std::string>();
  create
      ->add_option("--agent", *reenroll,
                   "Agent id or FQDN: a re-enrollment token bound to that agent, for an agent "
                   "whose identity expired while it was offline (it refuses to start and says "
                   "so). Start it once with --token; it keeps its id and labels")
      ->excludes("--label");
  add_connection(create, false);
  create->callback([=] { *exit_code = TokensCreate(*conn, *ttl, *fqdn, *labels, *reenroll); });

  auto* agents = app.add_subcommand("agents", "Enrolled agents");
  agents->require_subcommand(1);
  auto* agents_list = agents->add_subcommand("list", "List agents and their connection state");
  add_connection(agents_list, true);
  agents_list->callback([=] { *exit_code = AgentsList(*conn); });

  auto* certs = app.add_subcommand("certs", "Certificates the agents report");
  certs->require_subcommand(1);
  auto* certs_list = certs->add_subcommand("list", "List certificates across the fleet");
  auto agent = std::make_shared<std::string>();
  auto expiring = std::make_shared<std::string>();
  auto problem = std::make_shared<std::string>();
  certs_list->add_option("--agent", *agent, "Agent id or FQDN");
  certs_list->add_option("--expiring-within", *expiring,
                         "Only certificates ending within this duration (e.g. 30d)");
  certs_list->add_option("--problem", *problem,
                         "Only certificates with this problem or drift code (e.g. EXPIRES_SOON)");
  add_connection(certs_list, true);
  certs_list->callback([=] { *exit_code = CertsList(*conn, *agent, *expiring, *problem); });
}

}  // namespace certfleet::ctl
