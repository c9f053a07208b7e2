#pragma once

// Runs the real certfleet binaries for integration tests.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace certfleet::testing {

struct RunResult {
  int exit_code = -1;  // -1 when it did not exit in time (it was killed)
  std::string out;
  std::string err;
};

// Runs `argv` to completion (killed after `timeout`), capturing stdout and stderr.
// `env` entries "K=V" are added to the environment.
RunResult RunCommand(const std::vector<std::string>& argv,
                     absl::Duration timeout = absl::Seconds(60),
                     const std::vector<std::string>& env = {});

// A long-running child process; output goes to `log_path`. Killed (SIGKILL) on destruction if
// still running.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Waits for exit; returns the exit code, 128+signal when killed by one, -1 on timeout.
  int Wait(absl::Duration timeout);
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
  std::string log_path_;
};

// Polls `pred` every 100 ms until it is true or `timeout` passes.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return pred();
}

}  // namespace certfleet::testing
