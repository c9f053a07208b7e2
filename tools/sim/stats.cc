#include "tools/sim/stats.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace certfleet::sim {
namespace {

using Json = nlohmann::ordered_json;
namespace model = common::model;

// "UNAVAILABLE", ...: absl's names are gRPC's.
std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

LatencySummary Summarize(std::vector<double> values) {
  LatencySummary s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    // Nearest rank.
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::min(values.size(), std::max<size_t>(rank, 1)) - 1];
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = values.back();
  return s;
}

double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

Json CountsJson(const std::map<std::string, int64_t>& counts) {
  Json out = Json::object();
  for (const auto& [name, n] : counts) out[name] = n;
  return out;
}

}  // namespace

void Stats::SetLaunchStart(absl::Time start) {
  absl::MutexLock lock(&mu_);
  launch_start_ = start;
}

void Stats::ConnectLaunched() {
  absl::MutexLock lock(&mu_);
  ++launched_;
}

void Stats::Connected(absl::Time at, bool first) {
  absl::MutexLock lock(&mu_);
  ++connected_now_;
  if (!first) return;
  ++connected_ever_;
  if (!first_connected_) first_connected_ = at;
  last_first_connect_ = at;
  if (connected_ever_ == expected_) all_connected_ = at;
}

void Stats::Disconnected(absl::StatusCode code, bool counted) {
  absl::MutexLock lock(&mu_);
  --connected_now_;
  if (counted) ++disconnects_[code];
}

void Stats::ConnectFailed(absl::StatusCode code) {
  absl::MutexLock lock(&mu_);
  ++connect_errors_[code];
}

void Stats::Reconnect() {
  absl::MutexLock lock(&mu_);
  ++reconnects_;
}

void Stats::CommandReceived(model::CommandKind kind) {
  absl::MutexLock lock(&mu_);
  ++commands_[kind].counts.received;
}

void Stats::CommandFinished(model::CommandKind kind, model::CommandState state,
                            absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  KindCounts& k = commands_[kind];
  switch (state) {
    case model::CommandState::kSucceeded:
      ++k.counts.succeeded;
      break;
    case model::CommandState::kCancelled:
      ++k.counts.cancelled;
      break;
    case model::CommandState::kExpired:
      ++k.counts.expired;
      break;
    default:
      ++k.counts.failed;
  }
  k.latencies_ms.push_back(absl::ToDoubleMilliseconds(latency));
}

void Stats::RenewalCompleted() {
  absl::MutexLock lock(&mu_);
  ++renewals_completed_;
}

std::optional<absl::Time> Stats::last_first_connect_at() const {
  absl::MutexLock lock(&mu_);
  return last_first_connect_;
}

int64_t Stats::launched() const {
  absl::MutexLock lock(&mu_);
  return launched_;
}

int64_t Stats::connected_ever() const {
  absl::MutexLock lock(&mu_);
  return connected_ever_;
}

int64_t Stats::connected_now() const {
  absl::MutexLock lock(&mu_);
  return connected_now_;
}

int64_t Stats::renewals_completed() const {
  absl::MutexLock lock(&mu_);
  return renewals_completed_;
}

std::optional<absl::Time> Stats::all_connected_at() const {
  absl::MutexLock lock(&mu_);
  return all_connected_;
}

void Stats::Fill(Report& report) const {
  absl::MutexLock lock(&mu_);
  report.launched = launched_;
  report.connected_ever = connected_ever_;
  report.connected_at_end = connected_now_;
  auto since = [&](std::optional<absl::Time> t) -> std::optional<double> {
    if (!t) return std::nullopt;
    return absl::ToDoubleSeconds(*t - launch_start_);
  };
  report.first_connected_s = since(first_connected_);
  report.all_connected_s = since(all_connected_);
  for (const auto& [code, n] : connect_errors_) report.connect_errors[CodeName(code)] += n;
  for (const auto& [code, n] : disconnects_) report.disconnects[CodeName(code)] += n;
  report.reconnects = reconnects_;
  report.renewals_completed = renewals_completed_;
  for (const auto& [kind, k] : commands_) {
    CommandCounts counts = k.counts;
    counts.latency = Summarize(k.latencies_ms);
    report.commands[std::string(model::CommandKindName(kind))] = counts;
  }
}

int64_t PeakRssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmHWM:")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, "kB");
    int64_t kb = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) return kb;
  }
  return 0;
}

void CpuSeconds(double* user, double* system) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  *user = static_cast<double>(usage.ru_utime.tv_sec) + usage.ru_utime.tv_usec / 1e6;
  *system = static_cast<double>(usage.ru_stime.tv_sec) + usage.ru_stime.tv_usec / 1e6;
}

std::string SummaryLine(const Report& r) {
  std::vector<std::string> parts = {
      absl::StrCat("scenario=", r.scenario),
      absl::StrCat("end=\"", r.end_reason, "\""),
      absl::StrCat("agents=", r.agents_requested),
      absl::StrCat("enrolled_new=", r.enrolled_new),
      absl::StrCat("enrolled_cached=", r.enrolled_cached),
      absl::StrCat("connected=", r.connected_ever, "/", r.launched),
      absl::StrCat("connected_at_end=", r.connected_at_end),
  };
  if (r.first_connected_s) parts.push_back(absl::StrCat("first_s=", Round3(*r.first_connected_s)));
  if (r.all_connected_s) parts.push_back(absl::StrCat("all_s=", Round3(*r.all_connected_s)));
  int64_t errors = 0;
  for (const auto& [code, n] : r.connect_errors) errors += n;
  parts.push_back(absl::StrCat("connect_errors=", errors));
  parts.push_back(absl::StrCat("reconnects=", r.reconnects));
  for (const auto& [kind, c] : r.commands) {
    parts.push_back(absl::StrCat(kind, "=", c.succeeded, "ok/", c.failed, "fail/", c.received,
                                 " p50=", Round3(c.latency.p50_ms),
                                 "ms p99=", Round3(c.latency.p99_ms), "ms"));
  }
  if (r.renewals_completed > 0) {
    parts.push_back(absl::StrCat("renewals_completed=", r.renewals_completed));
  }
  parts.push_back(absl::StrCat("key_pool=", r.key_pool ? "true" : "false"));
  parts.push_back(absl::StrCat("rss_peak_mb=", Round3(r.rss_peak_kb / 1024.0)));
  parts.push_back(absl::StrCat("cpu_s=", Round3(r.cpu_user_s + r.cpu_system_s)));
  return absl::StrCat("certfleet-sim: ", absl::StrJoin(parts, " "));
}

std::string ReportJson(const Report& r) {
  Json j;
  j["scenario"] = r.scenario;
  j["end_reason"] = r.end_reason;
  j["agents_requested"] = r.agents_requested;
  j["enrolled"] = {{"cached", r.enrolled_cached},
                   {"new", r.enrolled_new},
                   {"errors", CountsJson(r.enroll_errors)},
                   {"seconds", Round3(r.enroll_s)}};
  j["launched"] = r.launched;
  j["connected"] = r.connected_ever;
  j["connected_at_end"] = r.connected_at_end;
  j["time_to_first_connected_s"] =
      r.first_connected_s ? Json(Round3(*r.first_connected_s)) : Json(nullptr);
  j["time_to_all_connected_s"] =
      r.all_connected_s ? Json(Round3(*r.all_connected_s)) : Json(nullptr);
  j["connect_errors"] = CountsJson(r.connect_errors);
  j["disconnects"] = CountsJson(r.disconnects);
  j["reconnects"] = r.reconnects;
  j["renewals_completed"] = r.renewals_completed;
  Json commands = Json::object();
  for (const auto& [kind, c] : r.commands) {
    commands[kind] = {{"received", c.received},
                      {"succeeded", c.succeeded},
                      {"failed", c.failed},
                      {"cancelled", c.cancelled},
                      {"expired", c.expired},
                      {"latency_ms",
                       {{"count", c.latency.count},
                        {"p50", Round3(c.latency.p50_ms)},
                        {"p99", Round3(c.latency.p99_ms)},
                        {"max", Round3(c.latency.max_ms)}}}};
  }
  j["commands"] = std::move(commands);
  j["key_pool"] = r.key_pool;
  j["key_pool_size"] = r.key_pool_size;
  j["run_s"] = Round3(r.run_s);
  j["rss_peak_kb"] = r.rss_peak_kb;
  j["cpu_user_s"] = Round3(r.cpu_user_s);
  j["cpu_system_s"] = Round3(r.cpu_system_s);
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace certfleet::sim
