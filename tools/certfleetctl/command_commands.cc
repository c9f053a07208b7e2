#include "tools/certfleetctl/command_commands.h"

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files/file_util.h"
#include "common/rpc/json.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "google/protobuf/util/time_util.h"
#include "tools/certfleetctl/connection.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

using certfleet::v1::CommandInfo;
using google::protobuf::util::TimeUtil;

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return common::FormatRfc3339(absl::FromUnixSeconds(t.seconds()));
}

bool IsFinal(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled" || state == "expired";
}

void PrintDetail(const CommandInfo& c) {
  std::cout << "id:          " << c.id() << "\n"
            << "agent:       " << c.agent_id() << " (" << c.fqdn() << ")\n"
            << "kind:        " << c.kind() << (c.thumbprint().empty() ? "" : " " + c.thumbprint())
            << "\n"
            << "state:       " << c.state() << (c.cancel_requested() ? " (cancel requested)" : "")
            << "\n"
            << "created:     " << TimeText(c.created_at()) << " by " << c.created_by() << "\n"
            << "deadline:    " << TimeText(c.deadline()) << "\n"
            << "sent:        " << TimeText(c.sent_at()) << " (" << c.attempts() << " times)\n"
            << "started:     " << TimeText(c.started_at()) << "\n"
            << "finished:    " << TimeText(c.finished_at()) << "\n";
  if (!c.error().empty())
    std::cout << "error:       " << c.error_code() << ": " << c.error() << "\n";
  const auto& r = c.result();
  if (!r.thumbprint().empty()) std::cout << "thumbprint:  " << r.thumbprint() << "\n";
  if (r.problems_size() > 0) {
    std::cout << "problems:    " << absl::StrJoin(r.problems(), ",") << "\n";
  }
  if (!r.previous_channel_serial().empty() || !r.channel_serial().empty()) {
    std::cout << "binding:     "
              << (r.previous_channel_serial().empty() ? "(none)" : r.previous_channel_serial())
              << " -> " << (r.channel_serial().empty() ? "(none)" : r.channel_serial())
              << (r.rolled_back() ? " (rolled back)" : "") << "\n";
  }
  if (!r.detail().empty()) std::cout << "detail:      " << r.detail() << "\n";
  if (r.events_size() > 0) {
    std::cout << "events:\n";
    for (const auto& e : r.events()) {
      std::cout << "  " << TimeText(e.time()) << "  " << e.id() << "  " << e.level() << "  "
                << e.message() << "\n";
    }
  }
}

void Print(const Connection& c, const CommandInfo& info) {
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(info) << "\n";
  } else {
    PrintDetail(info);
  }
}

volatile std::sig_atomic_t g_interrupted = 0;

// Polls until `id` is final; prints it. Exit 0 only when it succeeded.
int WaitFor(const Connection& c, certfleet::v1::Admin::Stub& stub, const std::string& id,
            absl::Duration limit) {
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  const absl::Time until = absl::Now() + limit;
  CommandInfo info;
  std::string last_state;
  while (true) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    certfleet::v1::GetCommandRequest req;
    req.set_id(id);
    grpc::Status s = stub.GetCommand(&ctx, req, &info);
    if (!s.ok()) return ReportRpcError(c, s);
    if (info.state() != last_state && c.output != "json") {
      std::cerr << "command " << id << ": " << info.state() << "\n";
      last_state = info.state();
    }
    if (IsFinal(info.state())) break;
    if (g_interrupted || absl::Now() > until) {
      std::cerr << "certfleetctl: stopped waiting; command " << id << " is still " << info.state()
                << " (see 'certfleetctl cmd show " << id << "')\n";
      return 1;
    }
    absl::SleepFor(absl::Milliseconds(300));
  }
  Print(c, info);
  return info.state() == "succeeded" ? 0 : 1;
}

struct CreateFlags {
  std::string agent;
  std::string file;
  std::string password_file;
  std::string thumbprint;
  std::string verify_timeout = "60s";
  std::string timeout = "1h";
  bool wait = false;
};

int Create(const Connection& c, const CreateFlags& f, const std::string& kind) {
  certfleet::v1::CreateCommandRequest req;
  req.set_agent(f.agent);
  auto timeout = common::ParseHumanDuration(f.timeout);
  if (!timeout.ok()) return ReportError(common::Annotate(timeout.status(), "--timeout"));
  *req.mutable_timeout() = TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(*timeout));
  auto* cmd = req.mutable_command();
  std::string data;
  if (kind == "import" || kind == "trust") {
    auto read = common::ReadFileToString(f.file);
    if (!read.ok()) return ReportError(read.status());
    data = std::move(*read);
  }
  if (kind == "import") {
    cmd->mutable_import()->set_data(data);
    if (!f.password_file.empty()) {
      auto pw = common::ReadFileToString(f.password_file);
      if (!pw.ok()) return ReportError(common::Annotate(pw.status(), "--password-file"));
      std::string password = std::move(*pw);
      if (!password.empty() && password.back() == '\n') password.pop_back();
      if (!password.empty() && password.back() == '\r') password.pop_back();
      cmd->mutable_import()->set_password(password);
    }
  } else if (kind == "trust") {
    cmd->mutable_trust()->set_data(data);
  } else if (kind == "repair") {
    cmd->mutable_repair()->set_thumbprint(f.thumbprint);
  } else if (kind == "remove") {
    cmd->mutable_remove()->set_thumbprint(f.thumbprint);
  } else if (kind == "rebind") {
    auto vt = common::ParseHumanDuration(f.verify_timeout);
    if (!vt.ok()) return ReportError(common::Annotate(vt.status(), "--verify-timeout"));
    cmd->mutable_rebind()->set_thumbprint(f.thumbprint);
    *cmd->mutable_rebind()->mutable_verify_timeout() =
        TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(*vt));
  } else {
    cmd->mutable_scan();
  }
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  CommandInfo info;
  grpc::Status s = (*stub)->CreateCommand(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  if (f.wait) return WaitFor(c, **stub, info.id(), *timeout + absl::Minutes(1));
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(info) << "\n";
  } else {
    std::cout << info.id() << "\n";
  }
  return 0;
}

int List(const Connection& c, const std::string& agent, const std::string& state, int limit) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListCommandsRequest req;
  req.set_agent(agent);
  req.set_state(state);
  req.set_limit(limit);
  certfleet::v1::ListCommandsResponse resp;
  grpc::Status s = (*stub)->ListCommands(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& cmd : resp.commands()) items.push_back(common::rpc::MessageToJson(cmd));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"ID", "FQDN", "KIND", "STATE", "CREATED", "FINISHED", "ERROR"});
  for (const auto& cmd : resp.commands()) {
    t.AddRow({cmd.id(), cmd.fqdn(), cmd.kind(), cmd.state(), TimeText(cmd.created_at()),
              TimeText(cmd.finished_at()), cmd.error()});
  }
  t.Print(std::cout);
  return 0;
}

int Show(const Connection& c, const std::string& id) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::GetCommandRequest req;
  req.set_id(id);
  CommandInfo info;
  grpc::Status s = (*stub)->GetCommand(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  Print(c, info);
  return 0;
}

int Cancel(const Connection& c, const std::string& id) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::CancelCommandRequest req;
  req.set_id(id);
  CommandInfo info;
  grpc::Status s = (*stub)->CancelCommand(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  Print(c, info);
  return 0;
}

}  // namespace

void RegisterCommandCommands(CLI::App& app, int* exit_code) {
  auto conn = std::make_shared<Connection>();
  auto* cmd = app.add_subcommand("cmd", "Commands for agents: import, repair, rebind, ...");
  cmd->require_subcommand(1);

  struct Spec {
    const char* name;
    const char* help;
    bool file;
    bool thumbprint;
  };
  const Spec specs[] = {
      {"import",
       "Import a PFX (with --password-file), a PEM with certificate and key, or a bare "
       "certificate whose key is already on the host, into LocalMachine\\My",
       true, false},
      {"repair", "Link the host's matching key container to a certificate (certutil -repairstore)",
       false, true},
      {"rebind",
       "Bind SCOM to a certificate: write ChannelCertificateSerialNumber, restart the "
       "HealthService, wait for event 20053, roll back on failure",
       false, true},
      {"trust", "Add a CA certificate to Trusted Root (self-signed) or Intermediate", true, false},
      {"remove", "Remove a certificate from My (refused for the bound one)", false, true},
      {"scan", "Ask the agent for a fresh inventory now", false, false},
  };
  for (const Spec& spec : specs) {
    auto flags = std::make_shared<CreateFlags>();
    auto* sub = cmd->add_subcommand(spec.name, spec.help);
    sub->add_option("--agent", flags->agent, "Agent id or FQDN")->required();
    if (spec.file) sub->add_option("file", flags->file, "File to send")->required();
    if (std::string(spec.name) == "import") {
      sub->add_option("--password-file", flags->password_file,
                      "File holding the PFX password (one trailing newline is ignored)");
    }
    if (spec.thumbprint) {
      sub->add_option("--thumbprint", flags->thumbprint, "SHA-1 thumbprint (40 hex digits)")
          ->required();
    }
    if (std::string(spec.name) == "rebind") {
      sub->add_option("--verify-timeout", flags->verify_timeout,
                      "How long to wait for event 20053 before rolling back")
          ->capture_default_str();
    }
    sub->add_option("--timeout", flags->timeout,
                    "Deadline from now; an agent offline until then never runs it")
        ->capture_default_str();
    sub->add_flag("--wait", flags->wait,
                  "Block until the command is final; exit 0 only when it succeeded");
    AddConnectionOptions(sub, conn.get(), true);
    std::string kind = spec.name;
    sub->callback([=] { *exit_code = Create(*conn, *flags, kind); });
  }

  auto* list = cmd->add_subcommand("list", "List commands, newest last");
  auto agent = std::make_shared<std::string>();
  auto state = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(200);
  list->add_option("--agent", *agent, "Agent id or FQDN");
  list->add_option("--state", *state,
                   "queued, sent, running, succeeded, failed, cancelled or expired");
  list->add_option("--limit", *limit, "At most this many (the newest)")->capture_default_str();
  AddConnectionOptions(list, conn.get(), true);
  list->callback([=] { *exit_code = List(*conn, *agent, *state, *limit); });

  auto id = std::make_shared<std::string>();
  auto* show = cmd->add_subcommand("show", "Show one command with its result and evidence");
  show->add_option("id", *id, "Command id")->required();
  AddConnectionOptions(show, conn.get(), true);
  show->callback([=] { *exit_code = Show(*conn, *id); });

  auto* cancel = cmd->add_subcommand(
      "cancel", "Cancel a command (one the agent already started runs to its end)");
  cancel->add_option("id", *id, "Command id")->required();
  AddConnectionOptions(cancel, conn.get(), true);
  cancel->callback([=] { *exit_code = Cancel(*conn, *id); });
}

}  // namespace certfleet::ctl
