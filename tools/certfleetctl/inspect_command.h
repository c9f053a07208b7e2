#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers `certfleetctl inspect [options] FILE...` (see inspect.h). When the command runs it
// stores its exit status in `*exit_code`: 0 every certificate compliant, 1 some certificate has
// problems, 2 some file (or --password-file / --ca-file) could not be read.
void RegisterInspectCommand(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
