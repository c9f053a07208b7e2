#pragma once

#include <memory>
#include <vector>

#include "controller/notify/notifier.h"

namespace certfleet::controller::notify {

// Several notifiers as one: Notify forwards the event to each of them, in the order given.
// Each target applies its own subscription. With no targets, events go nowhere.
//
// Thread-safe: the target list is fixed at construction and every Notifier is thread-safe.
class FanoutNotifier final : public Notifier {
 public:
  // Takes ownership of `targets`; null entries are ignored.
  explicit FanoutNotifier(std::vector<std::unique_ptr<Notifier>> targets);

  void Notify(const Event& event) override;

 private:
  const std::vector<std::unique_ptr<Notifier>> targets_;
};

}  // namespace certfleet::controller::notify
