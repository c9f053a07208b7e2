// certfleetctl: the admin command line. main() only builds the command tree and dispatches;
// every command group registers itself from its own file (Register*Command / *Commands) and
// reports its exit status through `exit_code`.

#include "CLI/CLI.hpp"
#include "tools/certfleetctl/admin_commands.h"
#include "tools/certfleetctl/audit_commands.h"
#include "tools/certfleetctl/campaign_commands.h"
#include "tools/certfleetctl/command_commands.h"
#include "tools/certfleetctl/inspect_command.h"
#include "tools/certfleetctl/renewal_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"certfleetctl: keep SCOM certificates valid across a fleet", "certfleetctl"};
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);
  app.set_version_flag("--version", CERTFLEET_VERSION);

  int exit_code = 0;
  certfleet::ctl::RegisterInspectCommand(app, &exit_code);
  certfleet::ctl::RegisterAdminCommands(app, &exit_code);
  certfleet::ctl::RegisterCommandCommands(app, &exit_code);
  certfleet::ctl::RegisterRenewalCommands(app, &exit_code);
  certfleet::ctl::RegisterAuditCommands(app, &exit_code);
  certfleet::ctl::RegisterCampaignCommands(app, &exit_code);

  // CLI11 reports parse errors by exception; this is the one place they are caught. Bad usage
  // exits 2 after CLI11 printed the error and the usage; --help and --version exit 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}
