#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::agent::rpc {

// First contact with a controller whose CA the agent does not know yet: opens a TLS connection
// to `address` (HOST:PORT) without trusting anything, reads the certificate chain the server
// presents, and returns the PEM of the certificate whose SHA-256 equals `ca_pin` (the pin a join
// token carries). Nothing is sent but the TLS handshake.
//
// InvalidArgument when `address` is not HOST:PORT (port 1-65535); Unavailable when the
// controller cannot be reached within `timeout`; PermissionDenied when no certificate in the
// chain matches the pin (a controller other than the token's, or someone in between).
absl::StatusOr<std::string> FetchPinnedCaPem(absl::string_view address, absl::string_view ca_pin,
                                             absl::Duration timeout);

}  // namespace certfleet::agent::rpc
