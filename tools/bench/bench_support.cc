#include "tools/bench/bench_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/crypto/issue.h"
#include "common/crypto/keys.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

extern char** environ;

namespace certfleet::bench {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CpuModel() {
  for (absl::string_view line : absl::StrSplit(ReadSmallFile("/proc/cpuinfo"), '\n')) {
    if (absl::StartsWith(line, "model name")) {
      size_t colon = line.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "unknown CPU";
}

std::string OsName() {
  for (absl::string_view line : absl::StrSplit(ReadSmallFile("/etc/os-release"), '\n')) {
    if (absl::ConsumePrefix(&line, "PRETTY_NAME=")) {
      return std::string(absl::StripSuffix(absl::StripPrefix(line, "\""), "\""));
    }
  }
  return "unknown OS";
}

// "12345 kB" -> 12345.
int64_t KbField(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  absl::ConsumeSuffix(&value, " kB");
  int64_t kb = 0;
  return absl::SimpleAtoi(value, &kb) ? kb : 0;
}

std::string Cell(const std::string& what, double value, const std::string& unit) {
  return absl::StrCat(what, ": **", FormatNumber(value), "**", unit.empty() ? "" : " ", unit);
}

// Reads everything from `fd` into `out` until EOF.
void Drain(int fd, std::string* out) {
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buffer, static_cast<size_t>(n));
  }
}

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const std::string& arg : argv) out.push_back(const_cast<char*>(arg.c_str()));
  out.push_back(nullptr);
  return out;
}

// Waits for `pid` up to `timeout`; the exit code (128 + signal) or nullopt when it still runs.
std::optional<int> WaitPid(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0 && errno != EINTR) return -1;  // not our child any more
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

BenchRow Compare(std::string figure, double value, std::string unit, std::string baseline,
                 double baseline_value, std::string baseline_unit) {
  BenchRow row;
  row.figure = std::move(figure);
  row.value = value;
  row.unit = std::move(unit);
  row.baseline = std::move(baseline);
  row.baseline_value = baseline_value;
  row.baseline_unit = std::move(baseline_unit);
  return row;
}

bool BenchReport::AllTargetsMet() const {
  return std::all_of(rows.begin(), rows.end(),
                     [](const BenchRow& row) { return row.target_met.value_or(true); });
}

std::string FormatNumber(double v) {
  if (!std::isfinite(v)) return "n/a";
  const double a = std::fabs(v);
  if (a >= 1000) {
    std::string digits = absl::StrFormat("%.0f", std::round(a));
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return v < 0 ? "-" + out : out;
  }
  if (a >= 100) return absl::StrFormat("%.0f", v);
  if (a >= 10) return absl::StrFormat("%.1f", v);
  if (a >= 1) return absl::StrFormat("%.2f", v);
  return absl::StrFormat("%.3f", v);
}

std::string FormatReport(const BenchReport& report) {
  std::string out = absl::StrCat("### ", report.title, "\n\n", MachineLine(), "\n\n");
  absl::StrAppend(&out, "| figure | baseline measured in the same run | ratio | target |\n",
                  "|---|---|---|---|\n");
  for (const BenchRow& row : report.rows) {
    std::string target = row.target.empty() ? "" : row.target;
    if (row.target_met.has_value()) {
      absl::StrAppend(&target, *row.target_met ? ": **met**" : ": **missed**");
    }
    absl::StrAppend(&out, "| ", Cell(row.figure, row.value, row.unit), " | ",
                    row.baseline.empty() ? "" : Cell(row.baseline, row.baseline_value,
                                                     row.baseline_unit),
                    " | ", row.baseline.empty() ? "" : absl::StrFormat("%.2f", row.Ratio()), " | ",
                    target, " |\n");
  }
  if (!report.notes.empty()) {
    out += "\n";
    for (const std::string& note : report.notes) absl::StrAppend(&out, "- ", note, "\n");
  }
  return out;
}

double LoadAverage1() {
  double load[3];
  if (::getloadavg(load, 3) < 1) return -1;
  return load[0];
}

std::string MachineLine() {
  double load[3] = {-1, -1, -1};
  ::getloadavg(load, 3);
  return absl::StrFormat("%d cores (%s), %s, load %.2f %.2f %.2f, %s",
                         std::thread::hardware_concurrency(), CpuModel(), OsName(), load[0],
                         load[1], load[2],
                         absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone()));
}

absl::StatusOr<TempDir> TempDir::Create(absl::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, "-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot make a temporary directory ", pattern, ": ", std::strerror(errno)));
  }
  return TempDir(std::move(pattern));
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::move(other.path_)), keep_(other.keep_) {
  other.path_.clear();
}

TempDir::~TempDir() {
  if (path_.empty() || keep_) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

absl::StatusOr<ProcessFigures> ReadProcessFigures(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid);
  std::string status = ReadSmallFile(dir + "/status");
  std::string stat = ReadSmallFile(dir + "/stat");
  if (status.empty() || stat.empty()) {
    return absl::NotFoundError(absl::StrCat("process ", pid, " is gone"));
  }
  ProcessFigures figures;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, "VmRSS:")) figures.vm_rss_kb = KbField(line);
    if (absl::ConsumePrefix(&line, "VmHWM:")) figures.vm_hwm_kb = KbField(line);
    if (absl::ConsumePrefix(&line, "RssAnon:")) figures.rss_anon_kb = KbField(line);
    if (absl::ConsumePrefix(&line, "Threads:")) {
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &figures.threads)) {
        return absl::DataLossError(absl::StrCat(dir, "/status: bad Threads line"));
      }
    }
  }
  // The command name (field 2) is in parentheses and may hold spaces; fields 14 and 15
  // (utime, stime) count from after its closing parenthesis.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::DataLossError(absl::StrCat(dir, "/stat: no ')'"));
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ', absl::SkipEmpty());
  // After ")": field 3 (state) is index 0, so field N is index N - 3.
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[14 - 3], &utime) ||
      !absl::SimpleAtoi(fields[15 - 3], &stime)) {
    return absl::DataLossError(absl::StrCat(dir, "/stat: cannot read utime and stime"));
  }
  figures.cpu_ticks = utime + stime;
  return figures;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::UnavailableError("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return absl::UnavailableError("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args = Argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    if (rc == ENOENT) return absl::NotFoundError(absl::StrCat(argv[0], ": not found"));
    return absl::UnavailableError(absl::StrCat("cannot run ", argv[0], ": ", std::strerror(rc)));
  }
  CommandResult result;
  // Two readers so that neither pipe fills up while the other is read.
  std::thread err_reader([&] { Drain(err_pipe[0], &result.err); });
  bool timed_out = false;
  std::optional<int> code;
  {
    std::thread out_reader([&] { Drain(out_pipe[0], &result.out); });
    code = WaitPid(pid, timeout);
    if (!code.has_value()) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      code = WaitPid(pid, absl::Seconds(10));
    }
    out_reader.join();
  }
  err_reader.join();
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", absl::FormatDuration(timeout)));
  }
  result.exit_code = code.value_or(-1);
  return result;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("ChildProcess: empty argv");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args = Argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_path));
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    ::kill(pid_, SIGKILL);
    WaitPid(pid_, absl::Seconds(10));
  }
}

bool ChildProcess::Running() {
  if (exit_code_.has_value()) return false;
  std::optional<int> code = WaitPid(pid_, absl::ZeroDuration());
  if (code.has_value()) exit_code_ = code;
  return !exit_code_.has_value();
}

void ChildProcess::Signal(int sig) {
  if (Running()) ::kill(pid_, sig);
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  if (!exit_code_.has_value()) exit_code_ = WaitPid(pid_, timeout);
  if (!exit_code_.has_value()) {
    return absl::DeadlineExceededError(absl::StrCat("process ", pid_, " still runs after ",
                                                    absl::FormatDuration(timeout)));
  }
  return *exit_code_;
}

std::string ChildProcess::Log() const { return ReadSmallFile(log_path_); }

double RateResult::PerSecond() const {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(steps) / seconds : 0;
}

absl::StatusOr<RateResult> MeasureRate(absl::Duration budget, int64_t max_steps,
                                       const std::function<absl::Status(int64_t i)>& step) {
  RateResult result;
  const absl::Time start = absl::Now();
  absl::Time now = start;
  while (result.steps == 0 || (result.steps < max_steps && now - start < budget)) {
    absl::Status status = step(result.steps);
    if (!status.ok()) return status;
    ++result.steps;
    now = absl::Now();
  }
  result.elapsed = now - start;
  return result;
}

absl::StatusOr<BenchPki> MakeBenchPki(absl::Time now) {
  BenchPki pki;
  CF_ASSIGN_OR_RETURN(pki.root_key, common::crypto::GenerateRsaKey(2048), "bench root key");
  CF_ASSIGN_OR_RETURN(pki.issuing_key, common::crypto::GenerateRsaKey(2048), "bench issuing key");
  common::crypto::CertificateSpec ca;
  ca.is_ca = true;
  ca.key_usage = common::model::kKeyCertSign | common::model::kCrlSign;
  ca.not_before = now - absl::Hours(24 * 30);
  ca.not_after = now + absl::Hours(24 * 365 * 10);
  ca.subject_o = "certfleet benchmarks";
  ca.subject_cn = "Bench Root";
  CF_ASSIGN_OR_RETURN(pki.root,
                      common::crypto::IssueCertificate(ca, pki.root_key.get(), nullptr,
                                                       pki.root_key.get()),
                      "bench root");
  ca.subject_cn = "Bench Issuing CA";
  ca.path_len = 0;
  CF_ASSIGN_OR_RETURN(pki.issuing,
                      common::crypto::IssueCertificate(ca, pki.issuing_key.get(), pki.root.get(),
                                                       pki.root_key.get()),
                      "bench issuing CA");
  return pki;
}

absl::StatusOr<common::crypto::X509Ptr> IssueScomLeaf(const BenchPki& pki, EVP_PKEY* key,
                                                      const std::string& fqdn, absl::Time now) {
  common::crypto::CertificateSpec spec;
  spec.subject_cn = fqdn;
  spec.dns_names = {fqdn};
  spec.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  spec.extended_key_usage = {std::string(common::model::kServerAuthOid),
                             std::string(common::model::kClientAuthOid)};
  spec.not_before = now - absl::Hours(24);
  spec.not_after = now + absl::Hours(24 * 365);
  return common::crypto::IssueCertificate(spec, key, pki.issuing.get(), pki.issuing_key.get());
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace certfleet::bench
