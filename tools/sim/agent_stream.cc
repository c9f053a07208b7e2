#include "tools/sim/agent_stream.h"

#include <utility>

namespace certfleet::sim {

void AgentStream::Start(certfleet::v1::AgentGateway::Stub& stub,
                        certfleet::v1::AgentMessage first) {
  self_ = shared_from_this();
  stub.async()->Connect(&context_, this);
  AddHold();
  {
    absl::MutexLock lock(&mu_);
    writing_ = true;
    out_ = std::move(first);
  }
  StartWrite(&out_);
  StartRead(&in_);
  StartCall();
}

bool AgentStream::Send(certfleet::v1::AgentMessage message) {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return false;
    if (writing_) {
      outbox_.push_back(std::move(message));
      return true;
    }
    writing_ = true;
    out_ = std::move(message);
  }
  // Outside the lock: gRPC may run a reaction of this stream inline.
  StartWrite(&out_);
  return true;
}

bool AgentStream::CloseLocked() {
  closing_ = true;
  outbox_.clear();
  if (writing_ || hold_released_) return false;
  hold_released_ = true;
  return true;
}

void AgentStream::OnWriteDone(bool ok) {
  bool start = false;
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok || closing_) {
      release = CloseLocked();
    } else if (!outbox_.empty()) {
      out_ = std::move(outbox_.front());
      outbox_.pop_front();
      writing_ = true;
      start = true;
    }
  }
  if (start) StartWrite(&out_);
  if (release) RemoveHold();
}

void AgentStream::OnReadDone(bool ok) {
  if (!ok) {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      release = CloseLocked();
    }
    if (release) RemoveHold();
    return;
  }
  listener_.OnMessage(*this, in_);
  in_.Clear();
  StartRead(&in_);
}

void AgentStream::OnDone(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    outbox_.clear();
  }
  listener_.OnDone(*this, status);
  // The last reference may be gRPC's: nothing of this object is touched after the reset.
  std::shared_ptr<AgentStream> self = std::move(self_);
}

}  // namespace certfleet::sim
