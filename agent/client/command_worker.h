#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/commands/command_runner.h"
#include "common/model/command.h"

namespace certfleet::agent::client {

// Runs the commands the controller sends, one at a time in arrival order, on its own thread,
// independent of any stream: a command keeps running when the connection drops, and its outcome
// (journaled by the CommandRunner) is reported on the next connection.
//
// Thread-safe.
class CommandWorker {
 public:
  // Receives progress: `outcome` null = the command started; otherwise it finished.
  using Reporter =
      std::function<void(const std::string& id, const common::model::CommandOutcome* outcome)>;

  explicit CommandWorker(commands::CommandRunner& runner);
  ~CommandWorker();
  CommandWorker(const CommandWorker&) = delete;
  CommandWorker& operator=(const CommandWorker&) = delete;

  // Queues `command` unless the same id is already queued or running (a re-delivery while the
  // original is in flight is dropped; its outcome will be reported once).
  void Submit(common::model::Command command);
  void Cancel(absl::string_view id);
  // The current stream's reporter; an empty function detaches. The reporter is called with the
  // reporter lock held (so it never runs after a detach returns): it must not call SetReporter.
  void SetReporter(Reporter reporter);
  // Stops taking work, finishes the running command, and joins. Idempotent.
  void Stop();

 private:
  void Loop();
  void Report(const std::string& id, const common::model::CommandOutcome* outcome);

  commands::CommandRunner& runner_;
  absl::Mutex mu_;
  std::deque<common::model::Command> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex reporter_mu_;
  Reporter reporter_ ABSL_GUARDED_BY(reporter_mu_);
  std::thread thread_;
};

}  // namespace certfleet::agent::client
