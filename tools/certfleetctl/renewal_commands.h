#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers `certfleetctl renew`, `renewals list|show` and the manual issuer's approval queue
// `requests list|show|approve|deny|export|fulfill`. Exit status: 0 success (renew --wait: the
// renewal ended done), 1 the call failed or the renewal did not succeed.
void RegisterRenewalCommands(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
