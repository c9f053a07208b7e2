#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "certfleet/v1/agent.grpc.pb.h"

namespace certfleet::sim {

class AgentStream;

// What an AgentStream reports to the simulated agent that opened it. Both methods run on gRPC
// callback threads: they must not block (post blocking work to an executor).
class StreamListener {
 public:
  virtual ~StreamListener() = default;
  // A message from the controller. The next read starts when this returns.
  virtual void OnMessage(AgentStream& stream, const certfleet::v1::ControllerMessage& message) = 0;
  // The stream ended with `status` (every operation on it is over; Send now fails). Called once.
  virtual void OnDone(AgentStream& stream, const grpc::Status& status) = 0;
};

// One AgentGateway.Connect stream over the gRPC callback API: no thread of its own, one read and
// at most one write in flight, further writes queued in order.
//
// Lifetime: shared. gRPC holds a reference from Start until OnDone has run; holders of a
// shared_ptr may call Send and Cancel at any time, before or after the end of the stream.
// A hold (ClientBidiReactor::AddHold) keeps the stream from finishing while a write that Send
// started may still be in flight, so that Send never races the end of the call.
//
// Thread-safe.
class AgentStream final
    : public grpc::ClientBidiReactor<certfleet::v1::AgentMessage, certfleet::v1::ControllerMessage>,
      public std::enable_shared_from_this<AgentStream> {
 public:
  // `listener` must outlive the stream's OnDone.
  explicit AgentStream(StreamListener& listener) : listener_(listener) {}

  // Opens the stream on `stub` and writes `first` (the Hello). Call once.
  void Start(certfleet::v1::AgentGateway::Stub& stub, certfleet::v1::AgentMessage first);

  // Queues `message` behind the writes in flight. False (message dropped) once the stream is
  // ending.
  bool Send(certfleet::v1::AgentMessage message);

  // Ends the stream (the controller sees a cancellation); OnDone follows.
  void Cancel() { context_.TryCancel(); }

 private:
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;
  // Marks the stream as ending; returns true when the hold must be removed now.
  bool CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StreamListener& listener_;
  grpc::ClientContext context_;
  certfleet::v1::ControllerMessage in_;  // the read in flight; only gRPC and OnReadDone touch it
  std::shared_ptr<AgentStream> self_;    // gRPC's reference, Start to OnDone

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<certfleet::v1::AgentMessage> outbox_ ABSL_GUARDED_BY(mu_);
  // The write in flight; owned by gRPC from StartWrite to OnWriteDone.
  certfleet::v1::AgentMessage out_;
};

}  // namespace certfleet::sim
