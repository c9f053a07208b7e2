#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/model/command.h"

namespace certfleet::controller::fleet {

// The controller's side of one agent's live stream, as domain code sees it.
//
// Thread-safe. Methods never block: messages are queued on the stream (one write in flight)
// and silently dropped once the stream is closing; at-least-once delivery comes from the
// store (pending commands are re-sent on the next connection), not from this channel.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual void SendCommand(const common::model::Command& command) = 0;
  virtual void SendCancel(absl::string_view command_id) = 0;
  virtual void SendCommandAck(absl::string_view command_id) = 0;
  // Ends the stream with `reason`.
  virtual void Close(const absl::Status& reason) = 0;
};

}  // namespace certfleet::controller::fleet
