#include "controller/notify/fanout_notifier.h"

#include <utility>

namespace certfleet::controller::notify {
namespace {

std::vector<std::unique_ptr<Notifier>> WithoutNulls(std::vector<std::unique_ptr<Notifier>> all) {
  std::vector<std::unique_ptr<Notifier>> kept;
  kept.reserve(all.size());
  for (auto& notifier : all) {
    if (notifier != nullptr) kept.push_back(std::move(notifier));
  }
  return kept;
}

}  // namespace

FanoutNotifier::FanoutNotifier(std::vector<std::unique_ptr<Notifier>> targets)
    : targets_(WithoutNulls(std::move(targets))) {}

void FanoutNotifier::Notify(const Event& event) {
  for (const auto& target : targets_) target->Notify(event);
}

}  // namespace certfleet::controller::notify
