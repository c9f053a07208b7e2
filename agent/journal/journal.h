#pragma once

// The agent's own journal (ARCHITECTURE.md, "Delivery semantics"): a small SQLite file
// (state_dir/journal.db) that records every command the agent received, how far it got, and
// its outcome, so that each command has its effect once even across crashes and reconnects,
// and so that a rebind interrupted by a crash can be finished or rolled back at the next start.
//
//   CF_ASSIGN_OR_RETURN(std::unique_ptr<Journal> journal, Journal::Open(dir + "/journal.db"));
//   CF_ASSIGN_OR_RETURN(JournalEntry entry, journal->Receive(id, kind, deadline));
//   if (entry.outcome) return *entry.outcome;              // a duplicate: answer it
//   CF_RETURN_IF_ERROR(journal->MarkRunning(id));
//   ... carry the command out ...
//   CF_RETURN_IF_ERROR(journal->Finish(id, outcome, clock.Now()));
//   ... report; when the controller acknowledges: journal->MarkReported(id)
//
// A command's life: received -> running -> done. The outcome is written once, with the move
// to done, and never changes afterwards. Payloads are not journaled: a PFX, its password and
// imported data never reach the file; only what a command acts on (its "target") and, for a
// rebind or an install that binds, the facts needed to undo the binding. A renewal's outcome
// holds its CSR (public) so that a duplicate is answered with the same request; the key it
// generated stays in the host's store and never reaches the journal.
//
// Every change is one SQLite transaction (WAL, synchronous=NORMAL: a committed change survives a
// crash of the agent; a power loss may lose the last few, which the controller's re-sending
// covers).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/sqlite/database.h"

namespace certfleet::agent::journal {

// Where a command is in its life.
enum class Phase {
  kReceived,  // journaled, nothing done on the host yet
  kRunning,   // the agent started it; the host may have been changed
  kDone,      // the outcome is journaled and final
};

// "received", "running", "done".
absl::string_view PhaseName(Phase phase);
std::optional<Phase> PhaseFromName(absl::string_view name);

// How far a rebind (or the binding step of an install with bind) got, each step journaled
// before the next change to the host.
enum class RebindStep {
  kSnapshotTaken,  // the binding before the change is journaled; the registry may be unchanged
  kValueWritten,   // the new ChannelCertificateSerialNumber is written; not yet restarted
  kRestarted,      // the HealthService restarted (at restart_time) with the new value
};

// "snapshot_taken", "value_written", "restarted".
absl::string_view RebindStepName(RebindStep step);
std::optional<RebindStep> RebindStepFromName(absl::string_view name);

// The binding registry values before a rebind changed them. nullopt: the value was absent.
struct BindingSnapshot {
  std::optional<std::string> channel_serial;  // ChannelCertificateSerialNumber, as stored
  std::optional<std::string> channel_hash;    // ChannelCertificateHash
};

// What a rebind needs to be finished or undone after a crash.
struct RebindProgress {
  RebindStep step = RebindStep::kSnapshotTaken;
  BindingSnapshot snapshot;
  std::string target_thumbprint;
  std::string target_channel_serial;  // the value the rebind writes
  // When the restart that loads the new value began (clock time); set from kRestarted on.
  std::optional<absl::Time> restart_time;
};

// One command as the journal knows it.
struct JournalEntry {
  std::string id;
  common::model::CommandKind kind = common::model::CommandKind::kScan;
  absl::Time deadline;
  Phase phase = Phase::kReceived;
  // What the command acts on, once the agent knows it: a thumbprint (import, install: of the
  // certificate being put into My; repair, rebind, remove: the payload's; trust: the
  // comma-separated thumbprints of its CA certificates), or for renew the id of the key
  // container it generated. Empty until then.
  std::string target;
  // Set exactly when phase == kDone.
  std::optional<common::model::CommandOutcome> outcome;
  // The controller acknowledged the outcome.
  bool reported = false;
  // Rebinds, and installs with bind, from the snapshot on.
  std::optional<RebindProgress> rebind;
};

// Thread-safety: thread-safe; every method runs under one mutex (the journal is small and its
// writes are short). Several Journal objects on one file (in one process or several) are
// arbitrated by SQLite's locks, but only one agent should own a journal.
//
// Errors common to every method: the SQLite codes of common/sqlite/status.h, e.g. Unavailable
// when the file stays locked, DataLoss when it is corrupt or a stored value cannot be decoded
// (the message names the command), PermissionDenied / ResourceExhausted when it cannot be
// written.
class Journal {
 public:
  // Opens or creates the journal at `path` (mode 0600) and applies the schema migrations.
  // InvalidArgument for an empty path; NotFound when the directory does not exist;
  // FailedPrecondition when the file was written by a newer certfleet; otherwise the errors of
  // common::sqlite::Database::Open, naming the path.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path);

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  ~Journal();

  // Records a command the first time it is delivered (phase kReceived) and returns its entry;
  // a command already journaled is returned as it stands, unchanged (a duplicate delivery).
  // InvalidArgument for an empty id; FailedPrecondition when the id is journaled with another
  // kind (the controller reused an id).
  absl::StatusOr<JournalEntry> Receive(absl::string_view id, common::model::CommandKind kind,
                                       absl::Time deadline);

  // The entry of `id`; nullopt when the id was never received (or was forgotten).
  absl::StatusOr<std::optional<JournalEntry>> Find(absl::string_view id);

  // kReceived -> kRunning. NotFound for an unknown id; FailedPrecondition when the command is
  // not in kReceived (already started or done).
  absl::Status MarkRunning(absl::string_view id);

  // Records the thumbprint the command acts on (JournalEntry::target), replacing an earlier
  // one. NotFound for an unknown id; FailedPrecondition unless the command is kRunning.
  absl::Status SetTarget(absl::string_view id, absl::string_view thumbprint);

  // Rebind step kSnapshotTaken: journals the binding before any change and what will be
  // written. Also sets the target to `target_thumbprint`. An install with bind records it too,
  // before it changes the stores, so that its entry says a binding was asked for. NotFound for
  // an unknown id; FailedPrecondition unless the command is a running rebind or install without
  // a snapshot yet (a snapshot is taken once: a second one would capture the rebind's own change);
  // InvalidArgument when a thumbprint or serial is empty.
  absl::Status RecordSnapshot(absl::string_view id, const BindingSnapshot& snapshot,
                              absl::string_view target_thumbprint,
                              absl::string_view target_channel_serial);

  // Rebind step kSnapshotTaken -> kValueWritten. NotFound for an unknown id;
  // FailedPrecondition unless the command is running at kSnapshotTaken.
  absl::Status RecordValueWritten(absl::string_view id);

  // Rebind step kValueWritten -> kRestarted, with the time the restart began. NotFound for an
  // unknown id; FailedPrecondition unless the command is running at kValueWritten.
  absl::Status RecordRestarted(absl::string_view id, absl::Time restart_time);

  // kReceived or kRunning -> kDone with `outcome` (its final word; unreported). NotFound for an
  // unknown id; FailedPrecondition when the command is already done (an outcome never
  // changes); InvalidArgument when outcome.state is not final (model::IsFinal).
  absl::Status Finish(absl::string_view id, const common::model::CommandOutcome& outcome,
                      absl::Time finished_at);

  // Commands in kRunning (started, no outcome): what a crash interrupted. Oldest first.
  absl::StatusOr<std::vector<JournalEntry>> Interrupted();

  // Outcomes the controller has not acknowledged, in the order they were finished.
  absl::StatusOr<std::vector<std::pair<std::string, common::model::CommandOutcome>>> Unreported();

  // The controller acknowledged the outcome of `id`. Idempotent. NotFound for an unknown id;
  // FailedPrecondition when the command has no outcome yet.
  absl::Status MarkReported(absl::string_view id);

  // Forgets reported commands finished before `cutoff` and returns how many. A command must be
  // remembered for as long as the controller might deliver it again; the caller picks a cutoff
  // well past every deadline.
  absl::StatusOr<int64_t> ForgetReportedBefore(absl::Time cutoff);

 private:
  explicit Journal(std::unique_ptr<common::sqlite::Database> db);

  absl::StatusOr<std::optional<JournalEntry>> FindLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry of `id`, NotFound when absent.
  absl::StatusOr<JournalEntry> GetLocked(absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<common::sqlite::Database> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::agent::journal
