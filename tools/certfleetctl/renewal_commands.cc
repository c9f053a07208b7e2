#include "tools/certfleetctl/renewal_commands.h"

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files/file_util.h"
#include "common/rpc/json.h"
#include "common/time/format.h"
#include "tools/certfleetctl/connection.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

using certfleet::v1::ApprovalRequestInfo;
using certfleet::v1::RenewalInfo;

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return common::FormatRfc3339(absl::FromUnixSeconds(t.seconds()));
}

bool Terminal(const std::string& state) {
  return state == "done" || state == "rolled_back" || state == "failed";
}

void PrintRenewal(const Connection& c, const RenewalInfo& r) {
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(r) << "\n";
    return;
  }
  std::cout << "id:          " << r.id() << "\n"
            << "agent:       " << r.agent_id() << " (" << r.fqdn() << ")\n"
            << "profile:     " << r.profile() << ", issuer " << r.issuer()
            << (r.bind() ? "" : ", no rebind") << "\n"
            << "state:       " << r.state() << "\n"
            << "created:     " << TimeText(r.created_at()) << " by " << r.created_by() << "\n";
  if (!r.failure_reason().empty()) std::cout << "reason:      " << r.failure_reason() << "\n";
  if (!r.serial().empty()) {
    std::cout << "certificate: serial " << r.serial() << ", thumbprint " << r.thumbprint() << "\n";
  }
  if (!r.approval_request_id().empty()) {
    std::cout << "request:     " << r.approval_request_id() << "\n";
  }
  if (r.commands_size() > 0) {
    std::cout << "commands:    " << absl::StrJoin(r.commands(), ", ") << "\n";
  }
  std::cout << "steps:\n";
  for (const auto& s : r.steps()) {
    std::cout << "  " << TimeText(s.at()) << "  " << s.state()
              << (s.note().empty() ? "" : "  " + s.note()) << "\n";
  }
  if (r.evidence().events_size() > 0) {
    std::cout << "rebind evidence" << (r.evidence().rolled_back() ? " (rolled back)" : "") << ":\n";
    for (const auto& e : r.evidence().events()) {
      std::cout << "  " << TimeText(e.time()) << "  " << e.id() << "  " << e.level() << "  "
                << e.message() << "\n";
    }
  }
}

void PrintRequest(const Connection& c, const ApprovalRequestInfo& r) {
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(r) << "\n";
    return;
  }
  std::cout << "id:          " << r.id() << "\n"
            << "renewal:     " << r.renewal_id() << "\n"
            << "agent:       " << r.agent_id() << " (" << r.fqdn() << ")\n"
            << "profile:     " << r.profile() << "\n"
            << "state:       " << r.state() << "\n"
            << "created:     " << TimeText(r.created_at()) << "\n";
  if (!r.decided_by().empty()) {
    std::cout << "decided:     " << TimeText(r.decided_at()) << " by " << r.decided_by() << "\n";
  }
  if (!r.reason().empty()) std::cout << "reason:      " << r.reason() << "\n";
}

volatile std::sig_atomic_t g_interrupted = 0;

int Renew(const Connection& c, const certfleet::v1::StartRenewalRequest& req, bool wait) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  RenewalInfo info;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = (*stub)->StartRenewal(&ctx, req, &info);
    if (!s.ok()) return ReportRpcError(c, s);
  }
  if (!wait) {
    if (c.output == "json") {
      PrintRenewal(c, info);
    } else {
      std::cout << info.id() << "\n";
    }
    return 0;
  }
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::string last;
  while (true) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    certfleet::v1::GetRenewalRequest get;
    get.set_id(info.id());
    grpc::Status s = (*stub)->GetRenewal(&ctx, get, &info);
    if (!s.ok()) return ReportRpcError(c, s);
    if (info.state() != last && c.output != "json") {
      std::cerr << "renewal " << info.id() << ": " << info.state() << "\n";
      last = info.state();
    }
    if (Terminal(info.state())) break;
    if (g_interrupted) {
      std::cerr << "certfleetctl: stopped waiting; renewal " << info.id() << " is " << info.state()
                << " (it goes on: 'certfleetctl renewals show " << info.id() << "')\n";
      return 1;
    }
    absl::SleepFor(absl::Milliseconds(300));
  }
  PrintRenewal(c, info);
  return info.state() == "done" ? 0 : 1;
}

int ListRenewals(const Connection& c, const certfleet::v1::ListRenewalsRequest& req) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListRenewalsResponse resp;
  grpc::Status s = (*stub)->ListRenewals(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& r : resp.renewals()) items.push_back(common::rpc::MessageToJson(r));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"ID", "FQDN", "PROFILE", "ISSUER", "STATE", "UPDATED", "SERIAL", "REASON"});
  for (const auto& r : resp.renewals()) {
    t.AddRow({r.id(), r.fqdn(), r.profile(), r.issuer(), r.state(), TimeText(r.updated_at()),
              r.serial(), r.failure_reason()});
  }
  t.Print(std::cout);
  return 0;
}

int ShowRenewal(const Connection& c, const std::string& id) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::GetRenewalRequest req;
  req.set_id(id);
  RenewalInfo info;
  grpc::Status s = (*stub)->GetRenewal(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  PrintRenewal(c, info);
  return 0;
}

int ListRequests(const Connection& c, const std::string& state) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListApprovalRequestsRequest req;
  req.set_state(state);
  certfleet::v1::ListApprovalRequestsResponse resp;
  grpc::Status s = (*stub)->ListApprovalRequests(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& r : resp.requests()) items.push_back(common::rpc::MessageToJson(r));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"ID", "FQDN", "PROFILE", "STATE", "CREATED", "DECIDED BY", "REASON"});
  for (const auto& r : resp.requests()) {
    t.AddRow({r.id(), r.fqdn(), r.profile(), r.state(), TimeText(r.created_at()), r.decided_by(),
              r.reason()});
  }
  t.Print(std::cout);
  return 0;
}

// show / export: export prints the CSR alone.
int GetRequest(const Connection& c, const std::string& id, bool export_csr) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::GetApprovalRequestRequest req;
  req.set_id(id);
  ApprovalRequestInfo info;
  grpc::Status s = (*stub)->GetApprovalRequest(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  if (export_csr) {
    std::cout << info.csr_pem();
  } else {
    PrintRequest(c, info);
  }
  return 0;
}

int Decide(const Connection& c, const std::string& id, bool approve, const std::string& reason) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::DecideApprovalRequestRequest req;
  req.set_id(id);
  req.set_approve(approve);
  req.set_reason(reason);
  ApprovalRequestInfo info;
  grpc::Status s = (*stub)->DecideApprovalRequest(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  PrintRequest(c, info);
  return 0;
}

int Fulfill(const Connection& c, const std::string& id, const std::string& cert_file) {
  auto chain = common::ReadFileToString(cert_file);
  if (!chain.ok()) return ReportError(chain.status());
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::FulfillApprovalRequestRequest req;
  req.set_id(id);
  req.set_chain_pem(*chain);
  ApprovalRequestInfo info;
  grpc::Status s = (*stub)->FulfillApprovalRequest(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  PrintRequest(c, info);
  return 0;
}

}  // namespace

void RegisterRenewalCommands(CLI::App& app, int* exit_code) {
  auto conn = std::make_shared<Connection>();

  auto* renew = app.add_subcommand(
      "renew",
      "Renew one host's SCOM certificate: key and CSR made on the host, CSR checked, signed by "
      "an issuer, installed, and rebound with 20053 verification and rollback");
  auto start = std::make_shared<certfleet::v1::StartRenewalRequest>();
  auto wait = std::make_shared<bool>(false);
  auto agent = std::make_shared<std::string>();
  auto profile = std::make_shared<std::string>("scom");
  auto issuer = std::make_shared<std::string>();
  auto no_bind = std::make_shared<bool>(false);
  renew->add_option("--agent", *agent, "Agent id or FQDN")->required();
  renew->add_option("--profile", *profile, "Certificate profile")->capture_default_str();
  renew->add_option("--issuer", *issuer,
                    "builtin, manual, or a configured command issuer (default: the controller's)");
  renew->add_flag("--no-bind", *no_bind, "Install only; leave the binding as it is");
  renew->add_flag("--wait", *wait, "Block until the renewal ends; exit 0 only when done");
  AddConnectionOptions(renew, conn.get(), true);
  renew->callback([=] {
    start->set_agent(*agent);
    start->set_profile(*profile);
    start->set_issuer(*issuer);
    start->set_no_bind(*no_bind);
    *exit_code = Renew(*conn, *start, *wait);
  });

  auto* renewals = app.add_subcommand("renewals", "Renewal jobs");
  renewals->require_subcommand(1);
  auto* list = renewals->add_subcommand("list", "List renewal jobs");
  auto list_req = std::make_shared<certfleet::v1::ListRenewalsRequest>();
  auto list_agent = std::make_shared<std::string>();
  auto list_state = std::make_shared<std::string>();
  auto active = std::make_shared<bool>(false);
  list->add_option("--agent", *list_agent, "Agent id or FQDN");
  list->add_option("--state", *list_state, "e.g. pending_approval, done, failed");
  list->add_flag("--active", *active, "Only jobs still running");
  AddConnectionOptions(list, conn.get(), true);
  list->callback([=] {
    list_req->set_agent(*list_agent);
    list_req->set_state(*list_state);
    list_req->set_active_only(*active);
    *exit_code = ListRenewals(*conn, *list_req);
  });
  auto id = std::make_shared<std::string>();
  auto* show = renewals->add_subcommand(
      "show", "Show a renewal: steps with times, the issued certificate, the rebind evidence");
  show->add_option("id", *id, "Renewal id")->required();
  AddConnectionOptions(show, conn.get(), true);
  show->callback([=] { *exit_code = ShowRenewal(*conn, *id); });

  auto* requests = app.add_subcommand(
      "requests", "The manual issuer's approval queue (a stand-alone CA's pending requests)");
  requests->require_subcommand(1);
  auto state = std::make_shared<std::string>();
  auto* rlist = requests->add_subcommand("list", "List requests");
  rlist->add_option("--state", *state, "pending, approved, denied or fulfilled");
  AddConnectionOptions(rlist, conn.get(), true);
  rlist->callback([=] { *exit_code = ListRequests(*conn, *state); });

  auto* rshow = requests->add_subcommand("show", "Show one request");
  rshow->add_option("id", *id, "Request id")->required();
  AddConnectionOptions(rshow, conn.get(), true);
  rshow->callback([=] { *exit_code = GetRequest(*conn, *id, false); });

  auto* rexport = requests->add_subcommand("export", "Print the request's CSR (PEM)");
  rexport->add_option("id", *id, "Request id")->required();
  AddConnectionOptions(rexport, conn.get(), false);
  rexport->callback([=] { *exit_code = GetRequest(*conn, *id, true); });

  auto reason = std::make_shared<std::string>();
  auto* approve = requests->add_subcommand("approve", "Approve: the controller's CA signs it");
  approve->add_option("id", *id, "Request id")->required();
  approve->add_option("--reason", *reason, "A note for the record");
  AddConnectionOptions(approve, conn.get(), true);
  approve->callback([=] { *exit_code = Decide(*conn, *id, true, *reason); });

  auto* deny = requests->add_subcommand("deny", "Deny: the renewal fails with the reason");
  deny->add_option("id", *id, "Request id")->required();
  deny->add_option("--reason", *reason, "Why");
  AddConnectionOptions(deny, conn.get(), true);
  deny->callback([=] { *exit_code = Decide(*conn, *id, false, *reason); });

  auto cert = std::make_shared<std::string>();
  auto* fulfill = requests->add_subcommand(
      "fulfill", "Answer with a certificate signed elsewhere (checked against the CSR's key)");
  fulfill->add_option("id", *id, "Request id")->required();
  fulfill->add_option("--cert", *cert, "PEM file: the certificate, then its chain")->required();
  AddConnectionOptions(fulfill, conn.get(), true);
  fulfill->callback([=] { *exit_code = Fulfill(*conn, *id, *cert); });
}

}  // namespace certfleet::ctl
