#pragma once

#include "CLI/CLI.hpp"

namespace certfleet::ctl {

// Registers `certfleetctl campaign create|plan|start|pause|resume|cancel|revert|show|list|watch`.
// Exit status: 0 success (watch: the campaign completed), 1 the call failed (watch: the campaign
// halted or was cancelled).
void RegisterCampaignCommands(CLI::App& app, int* exit_code);

}  // namespace certfleet::ctl
