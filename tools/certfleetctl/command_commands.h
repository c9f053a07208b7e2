#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers `certfleetctl cmd ...`: import, repair, rebind, trust, remove, scan (each with
// --wait), list, show, cancel. Exit status: 0 success (with --wait: the command succeeded),
// 1 the call failed or the command did not succeed.
void RegisterCommandCommands(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
