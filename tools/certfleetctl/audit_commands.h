#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers `certfleetctl audit list [--since T] [--limit N]` (entries oldest first; viewer) and
// `certfleetctl audit verify` (walks the hash chain on the controller; admin). Exit status: 0
// success (verify: the log is intact), 1 the call failed (verify: the log is not intact; the
// problem is printed, naming the entry).
void RegisterAuditCommands(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
