#pragma once

// Runs one program to completion for the command issuer: no shell, input on stdin, output
// captured and capped, a deadline enforced on its whole process group. Linux (posix_spawn).

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace certfleet::controller::ca {

struct SubprocessSpec {
  // argv[0] is the program's absolute path; no PATH search, no shell.
  std::vector<std::string> argv;
  // The program's whole environment, "NAME=value" entries. Nothing else is inherited.
  std::vector<std::string> env;
  // Written to the program's stdin, which is then closed. A program that exits without reading
  // it all is fine.
  std::string stdin_data;
  // Real (monotonic) time: it bounds a real process, so it is not read from a Clock.
  absl::Duration timeout = absl::Seconds(60);
  // Cap of stdout and of stderr, each.
  size_t max_output_bytes = size_t{1} << 20;
};

struct SubprocessResult {
  enum class End {
    kExited,          // exit_code is set
    kSignaled,        // killed by signal `signal`, not by us
    kTimedOut,        // still running at the deadline: its process group was killed
    kOutputTooLarge,  // wrote more than max_output_bytes: its process group was killed
  };
  End end = End::kExited;
  int exit_code = -1;
  int signal = 0;
  std::string out;  // at most max_output_bytes
  std::string err;  // at most max_output_bytes
};

// Starts argv[0] in a new process group, with the signal mask emptied and every signal's
// disposition reset to the default (the controller blocks SIGTERM in its threads and may ignore
// SIGPIPE; the program must not inherit either), stdin/stdout/stderr on pipes and no other file
// descriptor open. Feeds stdin, collects stdout and stderr until the program exits, and then
// kills what is left of its process group (a helper's stray background processes). At the
// deadline, or when an output exceeds its cap, the whole group is killed with SIGKILL.
// A broken stdin pipe never raises SIGPIPE in the caller.
//
// Errors: InvalidArgument for an empty argv; FailedPrecondition when the program cannot be
// started (missing, not executable, bad interpreter: the message names the path and the
// system's reason); Internal when pipes or waiting fail.
//
// Thread-safe: may run on several threads at once (each call uses its own pipes).
absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessSpec& spec);

}  // namespace certfleet::controller::ca
