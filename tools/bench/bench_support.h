#pragma once

// What every certfleet benchmark prints: a Markdown table of figures, each next to a baseline
// measured in the same run on the same machine, and the ratio of the two. Absolute figures move
// with the machine and its load; the ratio to the same-run baseline is what is compared across
// runs (BENCHMARKS.md).
//
//   BenchReport report;
//   report.title = "issuance";
//   report.rows.push_back(Compare("issued + recorded", 310, "certs/s",
//                                 "bare X509_sign", 340, "signs/s")
//                             .WithTarget("ratio >= 0.80", true));
//   std::cout << FormatReport(report);
//
// Also the small pieces each benchmark needs: a temporary directory, the machine's description,
// child processes and their /proc figures, and a time-bounded rate loop.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::bench {

struct BenchRow {
  std::string figure;  // what was measured
  double value = 0;
  std::string unit;      // "certs/s", "rows/s", "MB", "s", ...
  std::string baseline;  // what it is compared with, measured in the same run
  double baseline_value = 0;
  std::string baseline_unit;
  // value / baseline_value (0 when the baseline is 0).
  double Ratio() const { return baseline_value > 0 ? value / baseline_value : 0; }
  // The target, as text ("ratio >= 0.80", "<= 15 s"); empty when the row has none.
  std::string target;
  // Whether it was met; nullopt when the row has no target.
  std::optional<bool> target_met;

  BenchRow& WithTarget(std::string text, bool met) {
    target = std::move(text);
    target_met = met;
    return *this;
  }
};

// A row without a target. `baseline` empty: a figure without a baseline.
BenchRow Compare(std::string figure, double value, std::string unit, std::string baseline,
                 double baseline_value, std::string baseline_unit);

struct BenchReport {
  std::string title;
  std::vector<BenchRow> rows;
  // Free text printed after the table (sizes, per-round figures, what was excluded).
  std::vector<std::string> notes;

  // True when no row missed its target.
  bool AllTargetsMet() const;
};

// The report as Markdown: "### title", the machine line, the table
// (figure | baseline measured in the same run | ratio | target), then the notes as a list.
std::string FormatReport(const BenchReport& report);

// "2 cores (<model>), Debian GNU/Linux 12 (bookworm), load 1.23 0.98 0.75, <UTC time>": what
// BENCHMARKS.md records with every table.
std::string MachineLine();

// The 1-minute load average; -1 when it cannot be read.
double LoadAverage1();

// A number as the tables print it: 3 significant digits for small values, thousands
// separated for large ones ("0.873", "41.2", "1,234", "512,300").
std::string FormatNumber(double v);

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  // FailedPrecondition / Unavailable when it cannot be made.
  static absl::StatusOr<TempDir> Create(absl::string_view prefix);
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  // Keeps the directory after destruction (for a run that failed and should be looked at).
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

// From /proc/PID/status and /proc/PID/stat.
struct ProcessFigures {
  int64_t vm_rss_kb = 0;   // resident set now
  int64_t vm_hwm_kb = 0;   // peak resident set
  int64_t rss_anon_kb = 0; // the anonymous part of VmRSS (heap, stacks), not shared libraries
  int64_t threads = 0;
  int64_t cpu_ticks = 0;  // utime + stime, in sysconf(_SC_CLK_TCK) ticks
};
// NotFound when the process is gone; DataLoss when the files cannot be parsed.
absl::StatusOr<ProcessFigures> ReadProcessFigures(pid_t pid);

// Runs `argv` (argv[0] a path, or a name looked up in PATH) to completion with stdout and
// stderr captured; killed after `timeout`. NotFound when the program does not exist;
// DeadlineExceeded when it was killed; Unavailable when it cannot be started.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

// A program running beside the benchmark, stdout and stderr appended to a log file. Killed
// (SIGKILL) and reaped on destruction if still running.
//
// Not thread-safe.
class ChildProcess {
 public:
  // Unavailable when it cannot be started (the message names the program).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once it exited (it is reaped then).
  bool Running();
  void Signal(int sig);
  // Waits up to `timeout` for it to exit: its exit code, or 128 + the signal that ended it.
  // DeadlineExceeded when it still runs.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // The log file's contents (for error messages).
  std::string Log() const;

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Runs `step` repeatedly until `budget` has passed or `max_steps` steps ran, whichever first
// (at least one step), and returns steps per second of wall time. A failing step stops the
// loop and is returned.
struct RateResult {
  int64_t steps = 0;
  absl::Duration elapsed;
  double PerSecond() const;
};
absl::StatusOr<RateResult> MeasureRate(absl::Duration budget, int64_t max_steps,
                                       const std::function<absl::Status(int64_t i)>& step);

// A root CA and an issuing CA (RSA-2048, SHA-256) made at run time, and SCOM leaves they sign.
struct BenchPki {
  common::crypto::X509Ptr root;
  common::crypto::EvpPkeyPtr root_key;
  common::crypto::X509Ptr issuing;
  common::crypto::EvpPkeyPtr issuing_key;
};
// Valid from `now` - 30 days for 10 years. OpenSSL's errors (Internal).
absl::StatusOr<BenchPki> MakeBenchPki(absl::Time now);
// A certificate SCOM accepts for `fqdn` (CN and SAN DNS = fqdn, KeyUsage digitalSignature +
// keyEncipherment, EKU server + client authentication, `now` - 1 day .. `now` + 365 days), for
// the public half of `key`, signed by the issuing CA.
absl::StatusOr<common::crypto::X509Ptr> IssueScomLeaf(const BenchPki& pki, EVP_PKEY* key,
                                                      const std::string& fqdn, absl::Time now);

// The median of `values` (which must not be empty); the mean of the middle two for an even
// count.
double Median(std::vector<double> values);

}  // namespace certfleet::bench
