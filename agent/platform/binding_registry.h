#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::agent::platform {

// HKLM\SOFTWARE\Microsoft\Microsoft Operations Manager\3.0\Machine Settings
// (lab: ROOT/Registry/Machine Settings.json).
struct MachineSettings {
  // ChannelCertificateSerialNumber: uppercase hex of the REG_BINARY bytes (the serial
  // reversed). nullopt when the value is absent.
  std::optional<std::string> channel_certificate_serial;
  // ChannelCertificateHash (REG_SZ thumbprint) as admin scripts write it; nullopt when absent.
  std::optional<std::string> channel_certificate_hash;
};

// Thread-safety: implementations are safe to call from several threads; a Write is atomic
// (a reader sees the old or the new value, never a mix).
class BindingRegistry {
 public:
  virtual ~BindingRegistry() = default;

  // The current values. Absent key or file: both fields nullopt (not an error).
  // DataLoss when the stored settings are corrupt (the message names the location).
  virtual absl::StatusOr<MachineSettings> Read() = 0;

  // Replaces the values; a nullopt field removes that value. InvalidArgument when
  // channel_certificate_serial is not even-length hex, or is empty (REG_BINARY of no bytes
  // names no certificate). Lowercase hex and spaces between bytes are accepted and stored as
  // NormalizeChannelSerial returns them.
  virtual absl::Status Write(const MachineSettings& settings) = 0;
};

// Added for implementers, so that every backend validates alike: `hex` as stored, uppercase,
// without spaces ("56 3c af" -> "563CAF"). InvalidArgument naming the text when it is not
// even-length hex (spaces between bytes allowed) or names no byte.
absl::StatusOr<std::string> NormalizeChannelSerial(absl::string_view hex);

}  // namespace certfleet::agent::platform
