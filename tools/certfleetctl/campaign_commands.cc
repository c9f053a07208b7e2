#include "tools/certfleetctl/campaign_commands.h"

#include <unistd.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certfleet/v1/campaigns.grpc.pb.h"
#include "common/rpc/json.h"
#include "common/time/format.h"
#include "google/protobuf/util/time_util.h"
#include "tools/certfleetctl/connection.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

using certfleet::v1::CampaignInfo;
using google::protobuf::util::TimeUtil;

struct CreateOptions {
  std::string name;
  std::vector<std::string> selector;
  std::string fqdn;
  std::string expiring_within;
  std::string problem;
  std::string profile;
  std::string issuer;
  bool no_bind = false;
  std::string waves = "1,10%,50%,100%";
  int max_in_flight = 10;
  std::string max_failures = "0";
  std::string soak;
  std::string window;
  bool emergency = false;
  std::string offline_deadline;
  bool start = false;
};

volatile std::sig_atomic_t g_interrupted = 0;

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return common::FormatRfc3339(absl::FromUnixSeconds(t.seconds()));
}

absl::StatusOr<std::unique_ptr<certfleet::v1::Campaigns::Stub>> DialCampaigns(const Connection& c) {
  auto channel = DialChannel(c);
  if (!channel.ok()) return channel.status();
  return certfleet::v1::Campaigns::NewStub(*channel);
}

absl::Status ParseDurationInto(const std::string& text, absl::string_view flag,
                               google::protobuf::Duration* out) {
  auto d = common::ParseHumanDuration(text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", d.status().message()));
  }
  *out = TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(*d));
  return absl::OkStatus();
}

// "3/10 succeeded, 1 failed, 2 running" for the states present.
std::string CountsText(const google::protobuf::Map<std::string, int32_t>& states) {
  static const char* kOrder[] = {"succeeded",   "running",      "pending",   "failed",
                                 "rolled_back", "not_reached",  "cancelled", "reverting",
                                 "reverted",    "revert_failed"};
  std::vector<std::string> parts;
  for (const char* s : kOrder) {
    auto it = states.find(s);
    if (it != states.end() && it->second > 0) parts.push_back(absl::StrCat(it->second, " ", s));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

void PrintCampaign(const Connection& c, const CampaignInfo& info) {
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(info) << "\n";
    return;
  }
  std::cout << "id:        " << info.id() << "  (" << info.name() << ")\n"
            << "state:     " << info.state() << ", wave " << info.current_wave() << " of "
            << info.wave_count() << ", " << info.hosts() << " host(s)\n";
  if (!info.reason().empty()) std::cout << "reason:    " << info.reason() << "\n";
  std::cout << "failures:  " << info.failures() << " (allowed " << info.allowed_failures()
            << (info.failures_accepted() > 0
                    ? absl::StrCat(", ", info.failures_accepted(), " accepted on resume")
                    : "")
            << ")\n"
            << "created:   " << TimeText(info.created_at()) << " by " << info.created_by() << "\n";
  if (info.has_soak_until()) std::cout << "soak until " << TimeText(info.soak_until()) << "\n";
  Table waves({"WAVE", "HOSTS", "STATES"});
  for (const auto& w : info.waves()) {
    waves.AddRow({absl::StrCat(w.wave()), absl::StrCat(w.hosts()), CountsText(w.states())});
  }
  waves.Print(std::cout);
  if (info.targets_size() > 0) {
    std::cout << "\n";
    Table hosts({"WAVE", "FQDN", "STATE", "RENEWAL", "REASON"});
    for (const auto& t : info.targets()) {
      hosts.AddRow({absl::StrCat(t.wave()), t.fqdn(), t.state(),
                    t.renewal_id().empty() ? "-" : t.renewal_id(),
                    t.reason().empty() ? "-" : t.reason()});
    }
    hosts.Print(std::cout);
  }
}

int Create(const Connection& c, const CreateOptions& o) {
  certfleet::v1::CreateCampaignRequest req;
  req.set_name(o.name);
  auto* spec = req.mutable_spec();
  for (const std::string& pair : o.selector) {
    for (absl::string_view item : absl::StrSplit(pair, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
      if (kv.first.empty() || item.find('=') == absl::string_view::npos) {
        return ReportError(absl::InvalidArgumentError(
            absl::StrCat("--selector: '", item, "' is not label=value")));
      }
      (*spec->mutable_labels())[kv.first] = kv.second;
    }
  }
  spec->set_fqdn_glob(o.fqdn);
  if (!o.expiring_within.empty()) {
    if (auto s = ParseDurationInto(o.expiring_within, "--expiring-within",
                                   spec->mutable_expiring_within());
        !s.ok()) {
      return ReportError(s);
    }
  }
  spec->set_problem(o.problem);
  spec->set_profile(o.profile);
  spec->set_issuer(o.issuer);
  spec->set_no_bind(o.no_bind);
  spec->set_waves(o.waves);
  spec->set_max_in_flight(o.max_in_flight);
  spec->set_max_failures(o.max_failures);
  if (!o.soak.empty()) {
    if (auto s = ParseDurationInto(o.soak, "--soak", spec->mutable_soak()); !s.ok()) {
      return ReportError(s);
    }
  }
  spec->set_window(o.window);
  spec->set_emergency(o.emergency);
  if (!o.offline_deadline.empty()) {
    if (auto s = ParseDurationInto(o.offline_deadline, "--offline-deadline",
                                   spec->mutable_offline_deadline());
        !s.ok()) {
      return ReportError(s);
    }
  }
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  CampaignInfo info;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = (*stub)->CreateCampaign(&ctx, req, &info);
    if (!s.ok()) return ReportRpcError(c, s);
  }
  if (o.start) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    certfleet::v1::ControlCampaignRequest start;
    start.set_id(info.id());
    start.set_action("start");
    grpc::Status s = (*stub)->ControlCampaign(&ctx, start, &info);
    if (!s.ok()) return ReportRpcError(c, s);
  }
  if (c.output == "json") {
    PrintCampaign(c, info);
  } else {
    std::cout << info.id() << "\n";
    std::cerr << "campaign " << info.id() << " " << info.state() << ": " << info.hosts()
              << " host(s) in " << info.wave_count() << " wave(s) ("
              << absl::StrJoin(
                     info.waves(), ", ",
                     [](std::string* out, const auto& w) { absl::StrAppend(out, w.hosts()); })
              << ")\n";
  }
  return 0;
}

int Control(const Connection& c, const std::string& id, const std::string& action,
            const std::string& reason) {
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ControlCampaignRequest req;
  req.set_id(id);
  req.set_action(action);
  req.set_reason(reason);
  CampaignInfo info;
  grpc::Status s = (*stub)->ControlCampaign(&ctx, req, &info);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    PrintCampaign(c, info);
  } else {
    std::cout << "campaign " << info.id() << ": " << info.state()
              << (info.reason().empty() ? "" : absl::StrCat(" (", info.reason(), ")")) << "\n";
  }
  return 0;
}

absl::StatusOr<CampaignInfo> Fetch(certfleet::v1::Campaigns::Stub& stub, const std::string& id,
                                   grpc::Status* rpc) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::CampaignRef ref;
  ref.set_id(id);
  CampaignInfo info;
  *rpc = stub.GetCampaign(&ctx, ref, &info);
  if (!rpc->ok()) return absl::UnavailableError(rpc->error_message());
  return info;
}

int Show(const Connection& c, const std::string& id) {
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::Status rpc;
  auto info = Fetch(**stub, id, &rpc);
  if (!info.ok()) return ReportRpcError(c, rpc);
  PrintCampaign(c, *info);
  return 0;
}

int Plan(const Connection& c, const std::string& id) {
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::CampaignRef ref;
  ref.set_id(id);
  certfleet::v1::CampaignPlan plan;
  grpc::Status s = (*stub)->PlanCampaign(&ctx, ref, &plan);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(plan) << "\n";
    return 0;
  }
  const CampaignInfo& info = plan.campaign();
  std::cout << "campaign " << info.id() << " (" << info.name() << "), " << info.state() << ": "
            << info.hosts() << " host(s) in " << info.wave_count() << " wave(s); at most "
            << info.spec().max_in_flight() << " at once; failure budget "
            << info.spec().max_failures() << " (" << info.allowed_failures() << " host(s))"
            << (info.spec().window().empty() ? "" : "; window " + info.spec().window())
            << (info.spec().emergency() ? " (emergency: hard windows ignored)" : "") << "\n";
  if (plan.targets_size() > 0) {
    std::cout << "each host: " << plan.targets(0).change() << "\n\n";
  }
  Table table({"WAVE", "FQDN", "ONLINE", "BOUND", "EXPIRES", "STATE", "WARNINGS"});
  for (const auto& p : plan.targets()) {
    table.AddRow({absl::StrCat(p.target().wave()), p.target().fqdn(), p.connected() ? "yes" : "no",
                  p.bound_thumbprint().empty() ? "-" : p.bound_thumbprint().substr(0, 12),
                  TimeText(p.bound_not_after()), p.target().state(),
                  p.warnings().empty() ? "-" : absl::StrJoin(p.warnings(), "; ")});
  }
  table.Print(std::cout);
  return 0;
}

int List(const Connection& c) {
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  certfleet::v1::ListCampaignsResponse resp;
  grpc::Status s = (*stub)->ListCampaigns(&ctx, {}, &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& i : resp.campaigns()) items.push_back(common::rpc::MessageToJson(i));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table table({"ID", "NAME", "STATE", "WAVE", "HOSTS", "PROGRESS", "CREATED"});
  for (const auto& i : resp.campaigns()) {
    table.AddRow({i.id(), i.name(), i.state(), absl::StrCat(i.current_wave(), "/", i.wave_count()),
                  absl::StrCat(i.hosts()), CountsText(i.totals()), TimeText(i.created_at())});
  }
  table.Print(std::cout);
  return 0;
}

bool Final(const std::string& state) { return state == "completed" || state == "cancelled"; }

// One line that says where the campaign stands.
std::string ProgressLine(const CampaignInfo& info) {
  return absl::StrCat(info.state(), " wave ", info.current_wave(), "/", info.wave_count(), ": ",
                      CountsText(info.totals()), " of ", info.hosts(),
                      info.reason().empty() ? "" : absl::StrCat(" (", info.reason(), ")"));
}

// "[#######.....]  7/12 settled"
std::string Bar(const CampaignInfo& info) {
  int settled = 0;
  for (const auto& [state, n] : info.totals()) {
    if (state != "pending" && state != "running" && state != "reverting") settled += n;
  }
  const int width = 30;
  const int filled = info.hosts() > 0 ? settled * width / info.hosts() : 0;
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ",
                      settled, "/", info.hosts(), " settled");
}

int Watch(const Connection& c, const std::string& id, const std::string& interval_text) {
  auto interval = common::ParseHumanDuration(interval_text);
  if (!interval.ok() || *interval <= absl::ZeroDuration()) {
    return ReportError(absl::InvalidArgumentError(
        absl::StrCat("--interval: '", interval_text, "' is not a positive duration")));
  }
  auto stub = DialCampaigns(c);
  if (!stub.ok()) return ReportError(stub.status());
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  const bool tty = c.output != "json" && isatty(STDOUT_FILENO);
  std::string last;
  while (true) {
    grpc::Status rpc;
    auto info = Fetch(**stub, id, &rpc);
    if (!info.ok()) return ReportRpcError(c, rpc);
    const std::string line =
        c.output == "json" ? common::rpc::MessageToJson(*info) : ProgressLine(*info);
    if (tty) {
      std::cout << "\r\033[K" << Bar(*info) << "  " << line << std::flush;
    } else if (line != last) {
      std::cout << (c.output == "json"
                        ? line
                        : absl::StrCat(common::FormatRfc3339(absl::Now()), " ", line))
                << std::endl;
    }
    last = line;
    if (Final(info->state()) || info->state() == "halted") {
      if (tty) std::cout << "\n";
      if (info->state() == "halted") {
        std::cerr << "campaign " << id << " halted: " << info->reason()
                  << "\n  resume: certfleetctl campaign resume " << id
                  << "\n  revert the wave: certfleetctl campaign revert " << id
                  << "\n  cancel: certfleetctl campaign cancel " << id << "\n";
      }
      return info->state() == "completed" ? 0 : 1;
    }
    if (g_interrupted) {
      if (tty) std::cout << "\n";
      return 0;
    }
    absl::SleepFor(*interval);
  }
}

}  // namespace

void RegisterCampaignCommands(CLI::App& app, int* exit_code) {
  auto* group = app.add_subcommand(
      "campaign",
      "Staged renewal roll-outs: a selector picks hosts, waves renew them with a health gate "
      "between waves and a failure budget that halts the campaign");
  group->require_subcommand(1);

  auto* conn = new Connection();
  auto* create_opts = new CreateOptions();
  auto* create = group->add_subcommand(
      "create",
      "Plan a campaign over the hosts the selector matches now (all hosts when no selector is "
      "given); prints its id. Nothing changes on a host before 'campaign start'");
  AddConnectionOptions(create, conn, true);
  create->add_option("--name", create_opts->name, "A name for people")->required();
  create->add_option("--selector", create_opts->selector,
                     "Labels every host must carry: role=gateway,site=ams (repeatable)");
  create->add_option("--fqdn", create_opts->fqdn, "FQDN glob, e.g. '*.dmz.corp.example'");
  create->add_option("--expiring-within", create_opts->expiring_within,
                     "Only hosts whose bound certificate expires within this (30d, 12h)");
  create->add_option("--problem", create_opts->problem,
                     "Only hosts with this problem or drift code (e.g. EXPIRES_SOON)");
  create->add_option("--profile", create_opts->profile, "Certificate profile (default scom)");
  create->add_option("--issuer", create_opts->issuer,
                     "Issuer (default: the controller's default issuer)");
  create->add_flag("--no-bind", create_opts->no_bind, "Install the new certificates, no rebind");
  create
      ->add_option("--waves", create_opts->waves,
                   "Cumulative wave sizes: host counts or percentages")
      ->capture_default_str();
  create
      ->add_option("--max-in-flight", create_opts->max_in_flight, "Hosts renewing at the same time")
      ->capture_default_str();
  create
      ->add_option("--max-failures", create_opts->max_failures,
                   "Failures (rolled back or failed hosts) before the campaign halts: N or P%")
      ->capture_default_str();
  create->add_option("--soak", create_opts->soak,
                     "Wait this long after a wave passed before the next starts (e.g. 30m)");
  create->add_option("--window", create_opts->window,
                     "Start hosts only inside this window: a configured window's name or a spec "
                     "like 'Sat,Sun 01:00-05:00 Europe/Berlin'");
  create->add_flag("--emergency", create_opts->emergency,
                   "Ignore hard maintenance windows (admin credential; audited)");
  create->add_option("--offline-deadline", create_opts->offline_deadline,
                     "Wait this long for an offline host before counting it not reached "
                     "(default 24h)");
  create->add_flag("--start", create_opts->start, "Start the campaign right after creating it");
  create->callback([conn, create_opts, exit_code] { *exit_code = Create(*conn, *create_opts); });

  auto* id = new std::string();
  auto* reason = new std::string();
  auto* interval = new std::string("1s");
  auto add_id = [&](CLI::App* cmd) {
    AddConnectionOptions(cmd, conn, true);
    cmd->add_option("id", *id, "Campaign id")->required();
  };
  auto* plan = group->add_subcommand(
      "plan", "The dry run: which hosts in which wave, what would change, what is in the way now");
  add_id(plan);
  plan->callback([conn, id, exit_code] { *exit_code = Plan(*conn, *id); });
  struct ControlSpec {
    const char* name;
    const char* help;
  };
  for (const ControlSpec& spec : {
           ControlSpec{"start", "Start a planned campaign"},
           ControlSpec{"pause", "Start no new host; hosts in flight finish"},
           ControlSpec{"resume",
                       "Continue a paused or halted campaign (a halted one accepts the "
                       "failures so far: the budget counts only new ones)"},
           ControlSpec{"cancel", "Stop for good: hosts not started never will"},
           ControlSpec{"revert",
                       "Rebind the current wave's renewed hosts to their previous certificate "
                       "(campaign paused or halted)"},
       }) {
    auto* cmd = group->add_subcommand(spec.name, spec.help);
    add_id(cmd);
    if (std::string(spec.name) == "cancel") {
      cmd->add_option("--reason", *reason, "Why (kept with the campaign and in the audit log)");
    }
    const std::string action = spec.name;
    cmd->callback([conn, id, reason, action, exit_code] {
      *exit_code = Control(*conn, *id, action, *reason);
    });
  }
  auto* show = group->add_subcommand(
      "show", "State, counts per wave and per state, every host with its reason");
  add_id(show);
  show->callback([conn, id, exit_code] { *exit_code = Show(*conn, *id); });
  auto* list = group->add_subcommand("list", "All campaigns, oldest first");
  AddConnectionOptions(list, conn, true);
  list->callback([conn, exit_code] { *exit_code = List(*conn); });
  auto* watch = group->add_subcommand(
      "watch",
      "Follow a campaign until it completes, halts or is cancelled: a live progress bar on a "
      "terminal, one line per change otherwise. Exit 0 when completed, 1 when halted or "
      "cancelled");
  add_id(watch);
  watch->add_option("--interval", *interval, "How often to look")->capture_default_str();
  watch->callback([conn, id, interval, exit_code] { *exit_code = Watch(*conn, *id, *interval); });
}

}  // namespace certfleet::ctl
