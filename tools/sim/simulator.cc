#include "tools/sim/simulator.h"

#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "common/executor/executor.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "tools/sim/enroller.h"
#include "tools/sim/flags.h"
#include "tools/sim/key_pool.h"
#include "tools/sim/sim_agent.h"
#include "tools/sim/sim_host.h"
#include "tools/sim/timer_queue.h"

namespace certfleet::sim {
namespace {

// Descriptors beyond one per agent connection: enrollment channels, open journals (three each),
// the admin channel, logs.
constexpr rlim_t kDescriptorMargin = 1024;
// Keys for seeding hosts when --key-pool is 0.
constexpr int kSeedKeys = 8;
constexpr int kSeedKeyBits = 2048;
// How long stopped agents get to end their streams.
constexpr absl::Duration kStopGrace = absl::Seconds(15);
constexpr absl::Duration kPoll = absl::Milliseconds(50);
constexpr absl::Duration kProgressEvery = absl::Seconds(10);

// "VmHWM 123 MB, CPU 4.5 s" for the progress log.
std::string Resources() {
  double user = 0;
  double system = 0;
  CpuSeconds(&user, &system);
  return absl::StrCat("VmHWM ", PeakRssKb() / 1024, " MB, CPU ",
                      absl::StrFormat("%.1f", user + system), " s");
}

// Removes a directory tree; errors are logged (the run's result does not depend on them).
void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) common::LogWarning("removing ", path, ": ", ec.message());
}

}  // namespace

absl::string_view ScenarioName(Scenario scenario) {
  switch (scenario) {
    case Scenario::kConnect:
      return "connect";
    case Scenario::kIdle:
      return "idle";
    case Scenario::kCommands:
      return "commands";
    case Scenario::kRenew:
      return "renew";
  }
  return "connect";
}

std::optional<Scenario> ScenarioFromName(absl::string_view name) {
  for (Scenario s : {Scenario::kConnect, Scenario::kIdle, Scenario::kCommands, Scenario::kRenew}) {
    if (ScenarioName(s) == name) return s;
  }
  return std::nullopt;
}

absl::Status EnsureFileDescriptors(int agents) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError("getrlimit(RLIMIT_NOFILE) failed");
  }
  const rlim_t needed = static_cast<rlim_t>(agents) + kDescriptorMargin;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        agents, " agents need about ", needed, " file descriptors (one connection each plus ",
        kDescriptorMargin, "), but the hard limit (ulimit -Hn) is ", limit.rlim_max,
        ": raise it (limits.conf nofile, systemd LimitNOFILE=, docker --ulimit nofile=) or run "
        "fewer agents. The controller needs as many for its side of the connections."));
  }
  if (limit.rlim_cur != limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return absl::FailedPreconditionError("cannot raise the open-file limit to the hard limit");
    }
  }
  return absl::OkStatus();
}

void Simulator::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

bool Simulator::Stopped() {
  absl::MutexLock lock(&mu_);
  return stop_;
}

absl::StatusOr<Report> Simulator::Run() {
  if (options_.agents < 1) return absl::InvalidArgumentError("--agents must be at least 1");
  CF_ASSIGN_OR_RETURN(auto host_port, SplitHostPort(options_.controller), "--controller");
  const std::string server_name =
      options_.server_name.empty() ? host_port.first : options_.server_name;

  Report report;
  report.scenario = std::string(ScenarioName(options_.scenario));
  report.agents_requested = options_.agents;
  report.key_pool = options_.key_pool > 0;
  report.key_pool_size = options_.key_pool;

  // The state directory: the identity cache survives runs; journals describe hosts that live
  // in memory, so they start empty with every run.
  std::string work_dir = options_.state_dir;
  const bool temporary = work_dir.empty();
  if (temporary) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "certfleet-sim-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot create a directory like ", pattern));
    }
    work_dir = pattern;
  } else {
    CF_RETURN_IF_ERROR(common::MakeDirectories(work_dir, 0700), "--state-dir");
  }
  const std::string journal_dir = work_dir + "/journals";
  RemoveTree(journal_dir);
  CF_RETURN_IF_ERROR(common::MakeDirectories(journal_dir, 0700), "journal directory");
  struct Cleanup {
    bool temporary;
    std::string dir;
    ~Cleanup() {
      if (temporary) RemoveTree(dir);
    }
  } cleanup{temporary, work_dir};

  // Identities.
  CF_ASSIGN_OR_RETURN(std::unique_ptr<AdminClient> admin,
                      AdminClient::Dial(GrpcTarget(host_port.first, host_port.second), server_name,
                                        options_.admin_dir));
  EnrollmentOptions enroll;
  enroll.controller = options_.controller;
  enroll.agents = options_.agents;
  enroll.cache_path = temporary ? "" : work_dir + "/identities.json";
  enroll.parallelism = options_.enroll_parallelism;
  enroll.version = options_.version;
  const absl::Time enroll_start = clock_.Now();
  CF_ASSIGN_OR_RETURN(EnrollmentResult enrolled,
                      EnsureIdentities(enroll, *admin, [this] { return Stopped(); }));
  report.enroll_s = absl::ToDoubleSeconds(clock_.Now() - enroll_start);
  report.enrolled_cached = enrolled.cached;
  report.enrolled_new = enrolled.enrolled;
  report.enroll_errors = enrolled.errors;
  common::LogInfo("identities: ", enrolled.cached, " cached, ", enrolled.enrolled, " enrolled in ",
                  absl::FormatDuration(clock_.Now() - enroll_start), " (", Resources(), ")");

  if (Stopped()) {
    report.end_reason = "signal";
    report.rss_peak_kb = PeakRssKb();
    CpuSeconds(&report.cpu_user_s, &report.cpu_system_s);
    return report;
  }

  // Hosts, seeded on the executor.
  std::unique_ptr<KeyPool> renew_keys;
  if (options_.key_pool > 0) {
    renew_keys = std::make_unique<KeyPool>(options_.key_pool);
    CF_RETURN_IF_ERROR(renew_keys->Prepare(kSeedKeyBits), "key pool");
  }
  KeyPool own_seed_keys(kSeedKeys);
  KeyPool& seed_keys = renew_keys ? *renew_keys : own_seed_keys;
  CF_RETURN_IF_ERROR(seed_keys.Prepare(kSeedKeyBits), "host keys");
  CF_ASSIGN_OR_RETURN(std::unique_ptr<HostFactory> factory, HostFactory::Create(clock_, seed_keys));

  common::Executor executor(options_.threads);
  std::vector<int> indexes;
  for (int i = 0; i < options_.agents; ++i) {
    if (enrolled.identities[i].has_value()) indexes.push_back(i);
  }
  if (indexes.empty()) {
    return common::Annotate(enrolled.first_error, "no agent could be enrolled");
  }
  std::vector<std::unique_ptr<agent::platform::MemoryHostPlatform>> hosts(indexes.size());
  std::vector<absl::Status> host_errors(indexes.size());
  {
    absl::BlockingCounter seeded(static_cast<int>(indexes.size()));
    for (size_t k = 0; k < indexes.size(); ++k) {
      executor.Post([&, k] {
        auto host = factory->NewHost(SimFqdn(indexes[k]), options_.certs_per_host);
        if (host.ok()) {
          hosts[k] = std::move(*host);
        } else {
          host_errors[k] = host.status();
        }
        seeded.DecrementCount();
      });
    }
    seeded.Wait();
  }
  for (const absl::Status& s : host_errors) {
    if (!s.ok()) return common::Annotate(s, "seeding a simulated host");
  }
  common::LogInfo("seeded ", hosts.size(), " hosts (", Resources(), ")");

  // Agents.
  Stats stats(static_cast<int64_t>(indexes.size()));
  TimerQueue timers(clock_);
  SimAgentDeps deps{executor, timers, stats, clock_, renew_keys.get()};
  std::vector<std::unique_ptr<SimAgent>> agents;
  agents.reserve(indexes.size());
  for (size_t k = 0; k < indexes.size(); ++k) {
    const int i = indexes[k];
    SimAgentOptions o;
    const std::string& destination =
        options_.sources.empty() ? host_port.first : options_.sources[i % options_.sources.size()];
    o.target = GrpcTarget(destination, host_port.second);
    o.server_name = server_name;
    o.version = options_.version;
    o.journal_path = absl::StrCat(journal_dir, "/", SimFqdn(i), ".db");
    o.heartbeat_interval = options_.heartbeat_interval;
    o.max_backoff = options_.max_backoff;
    o.unique_id = i;
    agents.push_back(std::make_unique<SimAgent>(
        std::move(o), deps, std::move(*enrolled.identities[i]), std::move(hosts[k])));
  }
  hosts.clear();
  {
    absl::BlockingCounter prepared(static_cast<int>(agents.size()));
    for (auto& a : agents) {
      SimAgent* agent = a.get();
      executor.Post([agent, &prepared] {
        agent->Prepare();
        prepared.DecrementCount();
      });
    }
    prepared.Wait();
  }
  common::LogInfo("scanned ", agents.size(), " hosts (", Resources(), ")");
  const absl::Time launch_start = clock_.Now();
  stats.SetLaunchStart(launch_start);
  absl::Time last_launch = launch_start;
  for (size_t k = 0; k < agents.size(); ++k) {
    absl::Time at = launch_start;
    if (options_.connect_rate > 0) {
      at += absl::Seconds(static_cast<double>(k) / options_.connect_rate);
    }
    last_launch = std::max(last_launch, at);
    SimAgent* a = agents[k].get();
    timers.Schedule(at, [a, &executor] { executor.Post([a] { a->Launch(); }); });
  }
  common::LogInfo("launching ", agents.size(), " agents",
                  options_.connect_rate > 0
                      ? absl::StrCat(" at ", options_.connect_rate, " per second")
                      : std::string(" at once"));

  // The scenario.
  absl::Time next_progress = launch_start + kProgressEvery;
  while (true) {
    const absl::Time now = clock_.Now();
    if (Stopped()) {
      report.end_reason = "signal";
      break;
    }
    const std::optional<absl::Time> all_connected = stats.all_connected_at();
    if (options_.scenario == Scenario::kConnect && all_connected) {
      report.end_reason = "all connected";
      break;
    }
    if (options_.scenario == Scenario::kRenew &&
        stats.renewals_completed() >= static_cast<int64_t>(agents.size())) {
      report.end_reason = "all renewed";
      break;
    }
    // --duration after the last agent connected for the first time; agents that never connect
    // end the run --duration after the last connection (or launch), not never.
    if (now >= std::max(last_launch, stats.last_first_connect_at().value_or(last_launch)) +
                   options_.duration) {
      report.end_reason = "duration";
      break;
    }
    if (now >= next_progress) {
      next_progress = now + kProgressEvery;
      common::LogInfo("connected ", stats.connected_now(), " of ", agents.size(), " (ever ",
                      stats.connected_ever(), "); renewals completed ", stats.renewals_completed(),
                      " (", Resources(), ")");
    }
    clock_.SleepFor(kPoll);
  }
  const absl::Time end = clock_.Now();
  report.run_s = absl::ToDoubleSeconds(end - launch_start);
  stats.Fill(report);

  // Stop: no more reconnects or timers, streams cancelled, queued work drained.
  for (auto& a : agents) a->Stop();
  timers.Shutdown();
  const absl::Time give_up = clock_.Now() + kStopGrace;
  while (clock_.Now() < give_up) {
    bool all = true;
    for (auto& a : agents) all = all && a->Finished();
    if (all) break;
    clock_.SleepFor(kPoll);
  }
  bool all_finished = true;
  for (auto& a : agents) {
    if (a->Finished()) continue;
    // gRPC may still call into it: leaked on purpose rather than freed under gRPC's feet (the
    // process is about to exit).
    all_finished = false;
    static_cast<void>(a.release());
  }
  if (!all_finished) {
    common::LogWarning("some streams did not end within ", absl::FormatDuration(kStopGrace));
  }
  executor.Shutdown();
  agents.clear();

  report.rss_peak_kb = PeakRssKb();
  CpuSeconds(&report.cpu_user_s, &report.cpu_system_s);
  return report;
}

}  // namespace certfleet::sim
