#pragma once

// ChannelCertificateSerialNumber: the REG_BINARY value MOMCertImport writes, the serial's
// bytes in reverse order (SCOM.md, "The binding").

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::common::scom {

// Display serial ("00AF3C56", uppercase hex of the DER INTEGER content bytes, sign byte kept)
// to the channel form ("563CAF00"): bytes reversed, digits inside a byte kept.
// InvalidArgument when `display_serial` is not an even-length hex string.
absl::StatusOr<std::string> ChannelSerialFromDisplay(absl::string_view display_serial);

// True when the stored REG_BINARY hex `channel_serial` names the certificate whose display
// serial is `display_serial`, ignoring leading zero bytes of the serial (trailing zero bytes
// of the stored value) and case. Malformed hex on either side: false.
bool ChannelSerialMatches(absl::string_view channel_serial, absl::string_view display_serial);

}  // namespace certfleet::common::scom
