#include "agent/client/command_worker.h"

#include <utility>

#include "common/logging/log.h"

namespace certfleet::agent::client {

CommandWorker::CommandWorker(commands::CommandRunner& runner) : runner_(runner) {
  thread_ = std::thread([this] { Loop(); });
}

CommandWorker::~CommandWorker() { Stop(); }

void CommandWorker::Submit(common::model::Command command) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || !in_flight_.insert(command.id).second) return;
  queue_.push_back(std::move(command));
}

void CommandWorker::Cancel(absl::string_view id) { runner_.Cancel(id); }

void CommandWorker::SetReporter(Reporter reporter) {
  absl::MutexLock lock(&reporter_mu_);
  reporter_ = std::move(reporter);
}

void CommandWorker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void CommandWorker::Report(const std::string& id, const common::model::CommandOutcome* outcome) {
  absl::MutexLock lock(&reporter_mu_);
  if (reporter_) reporter_(id, outcome);
}

void CommandWorker::Loop() {
  while (true) {
    common::model::Command command;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;  // queued commands are re-sent by the controller after a restart
      command = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string id = command.id;
    common::LogInfo("running command ", id, " (",
                    common::model::CommandKindName(common::model::KindOf(command.payload)), ")");
    common::model::CommandOutcome outcome =
        runner_.Execute(command, [this, &id] { Report(id, nullptr); });
    common::LogInfo("command ", id, ": ", common::model::CommandStateName(outcome.state),
                    outcome.error.empty() ? "" : " (" + outcome.error + ")");
    Report(id, &outcome);
    absl::MutexLock lock(&mu_);
    in_flight_.erase(id);
  }
}

}  // namespace certfleet::agent::client
