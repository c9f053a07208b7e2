#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers the commands that talk to a controller's admin API (tokens, agents, certs) and
// their connection options (--controller / CERTFLEET_CONTROLLER, --credentials /
// CERTFLEET_CREDENTIALS). A command that runs stores its process exit status in `*exit_code`:
// 0 success, 1 the call failed (unreachable controller, bad credentials, denied, bad request).
void RegisterAdminCommands(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
