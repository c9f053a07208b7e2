#include "agent/journal/journal.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sqlite/migration.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace certfleet::agent::journal {
namespace {

namespace model = common::model;
using common::sqlite::Database;
using common::sqlite::Migration;
using common::sqlite::Statement;
using common::sqlite::Transaction;
using Json = nlohmann::json;

// Times are unix nanoseconds (infinite times saturate to the int64 limits and come back
// infinite). An outcome's result is JSON (EncodeResult); its state and code have columns so
// that the journal can be inspected with the sqlite3 shell. The CHECKs keep a half-written
// outcome out even if a bug gets past the checks in the code.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE commands (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  kind TEXT NOT NULL,
  deadline INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('received', 'running', 'done')),
  target TEXT NOT NULL DEFAULT '',
  outcome_state TEXT,        -- NULL until done
  outcome_code INTEGER,
  outcome_error TEXT,
  outcome_result TEXT,
  finished_at INTEGER,
  finish_seq INTEGER,
  reported INTEGER NOT NULL DEFAULT 0 CHECK (reported IN (0, 1)),
  CHECK ((phase = 'done') = (outcome_state IS NOT NULL)),
  CHECK (outcome_state IS NULL OR (outcome_code IS NOT NULL AND outcome_error IS NOT NULL
                                   AND outcome_result IS NOT NULL AND finish_seq IS NOT NULL))
) STRICT;
CREATE INDEX commands_by_phase ON commands (phase, reported, finish_seq);

CREATE TABLE rebinds (
  command_id TEXT NOT NULL PRIMARY KEY REFERENCES commands (id) ON DELETE CASCADE,
  step TEXT NOT NULL CHECK (step IN ('snapshot_taken', 'value_written', 'restarted')),
  previous_serial TEXT,      -- NULL: ChannelCertificateSerialNumber was absent
  previous_hash TEXT,        -- NULL: ChannelCertificateHash was absent
  target_thumbprint TEXT NOT NULL CHECK (target_thumbprint <> ''),
  target_channel_serial TEXT NOT NULL CHECK (target_channel_serial <> ''),
  restart_time INTEGER,      -- set from 'restarted' on
  CHECK ((step = 'restarted') = (restart_time IS NOT NULL))
) STRICT;
)sql";

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration>* migrations =
      new std::vector<Migration>{{1, "commands and rebind progress", kSchemaV1}};
  return *migrations;
}

constexpr char kSelectEntry[] =
    "SELECT c.id, c.kind, c.deadline, c.phase, c.target, c.outcome_state, c.outcome_code, "
    "c.outcome_error, c.outcome_result, c.reported, r.command_id, r.step, r.previous_serial, "
    "r.previous_hash, r.target_thumbprint, r.target_channel_serial, r.restart_time "
    "FROM commands c LEFT JOIN rebinds r ON r.command_id = c.id ";

int64_t TimeToNanos(absl::Time t) {
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  if (t == absl::InfinitePast()) return std::numeric_limits<int64_t>::min();
  return absl::ToUnixNanos(t);
}

absl::Time NanosToTime(int64_t nanos) {
  if (nanos == std::numeric_limits<int64_t>::max()) return absl::InfiniteFuture();
  if (nanos == std::numeric_limits<int64_t>::min()) return absl::InfinitePast();
  return absl::FromUnixNanos(nanos);
}

std::string EncodeResult(const model::CommandResult& result) {
  Json events = Json::array();
  for (const model::EventRecord& event : result.events) {
    events.push_back({{"time", TimeToNanos(event.time)},
                      {"id", event.id},
                      {"level", event.level},
                      {"message", event.message}});
  }
  Json json = {
      {"thumbprint", result.thumbprint},
      {"problems", result.problems},
      {"previous_channel_serial", result.previous_channel_serial},
      {"channel_serial", result.channel_serial},
      {"rolled_back", result.rolled_back},
      {"events", std::move(events)},
      {"detail", result.detail},
  };
  // A renewal's request (public data: the key stays in the host's store). Absent otherwise, so
  // that outcomes of other commands read as before.
  if (!result.csr_pem.empty()) json["csr_pem"] = result.csr_pem;
  // Messages come from the host and may hold any bytes; replace what is not UTF-8 rather than
  // fail (dump() would otherwise throw).
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Typed reads of one member without exceptions: false when absent or of another type.
bool ReadString(const Json& object, const char* name, std::string* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return false;
  *out = it->get_ref<const std::string&>();
  return true;
}

bool ReadBool(const Json& object, const char* name, bool* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_boolean()) return false;
  *out = it->get<bool>();
  return true;
}

bool ReadInt(const Json& object, const char* name, int64_t* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return false;
  *out = it->get<int64_t>();
  return true;
}

absl::StatusOr<model::CommandResult> DecodeResult(absl::string_view text) {
  const Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  const absl::Status corrupt = absl::DataLossError("the stored result is not valid");
  if (json.is_discarded() || !json.is_object()) return corrupt;
  model::CommandResult result;
  if (!ReadString(json, "thumbprint", &result.thumbprint) ||
      !ReadString(json, "previous_channel_serial", &result.previous_channel_serial) ||
      !ReadString(json, "channel_serial", &result.channel_serial) ||
      !ReadBool(json, "rolled_back", &result.rolled_back) ||
      !ReadString(json, "detail", &result.detail)) {
    return corrupt;
  }
  if (json.contains("csr_pem") && !ReadString(json, "csr_pem", &result.csr_pem)) return corrupt;
  auto problems = json.find("problems");
  auto events = json.find("events");
  if (problems == json.end() || !problems->is_array() || events == json.end() ||
      !events->is_array()) {
    return corrupt;
  }
  for (const Json& problem : *problems) {
    if (!problem.is_string()) return corrupt;
    result.problems.push_back(problem.get<std::string>());
  }
  for (const Json& event : *events) {
    if (!event.is_object()) return corrupt;
    model::EventRecord record;
    int64_t time = 0;
    int64_t id = 0;
    if (!ReadInt(event, "time", &time) || !ReadInt(event, "id", &id) ||
        !ReadString(event, "level", &record.level) ||
        !ReadString(event, "message", &record.message) || id < std::numeric_limits<int>::min() ||
        id > std::numeric_limits<int>::max()) {
      return corrupt;
    }
    record.time = NanosToTime(time);
    record.id = static_cast<int>(id);
    result.events.push_back(std::move(record));
  }
  return result;
}

absl::StatusOr<model::CommandOutcome> DecodeOutcome(const Statement& row, int first_column) {
  model::CommandOutcome outcome;
  const std::string state = row.ColumnText(first_column);
  std::optional<model::CommandState> parsed = model::CommandStateFromName(state);
  if (!parsed.has_value() || !model::IsFinal(*parsed)) {
    return absl::DataLossError(absl::StrCat("unknown outcome state '", state, "'"));
  }
  outcome.state = *parsed;
  const int64_t code = row.ColumnInt64(first_column + 1);
  if (code < 0 || code > static_cast<int64_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::DataLossError(absl::StrCat("unknown status code ", code));
  }
  outcome.code = static_cast<absl::StatusCode>(code);
  outcome.error = row.ColumnText(first_column + 2);
  CF_ASSIGN_OR_RETURN(outcome.result, DecodeResult(row.ColumnText(first_column + 3)));
  return outcome;
}

// One row of kSelectEntry.
absl::StatusOr<JournalEntry> ReadEntry(const Statement& row) {
  JournalEntry entry;
  entry.id = row.ColumnText(0);
  const std::string context = absl::StrCat("journal entry of command ", entry.id);
  const std::string kind = row.ColumnText(1);
  std::optional<model::CommandKind> parsed_kind = model::CommandKindFromName(kind);
  if (!parsed_kind.has_value()) {
    return absl::DataLossError(absl::StrCat(context, ": unknown kind '", kind, "'"));
  }
  entry.kind = *parsed_kind;
  entry.deadline = NanosToTime(row.ColumnInt64(2));
  const std::string phase = row.ColumnText(3);
  std::optional<Phase> parsed_phase = PhaseFromName(phase);
  if (!parsed_phase.has_value()) {
    return absl::DataLossError(absl::StrCat(context, ": unknown phase '", phase, "'"));
  }
  entry.phase = *parsed_phase;
  entry.target = row.ColumnText(4);
  if (!row.ColumnIsNull(5)) {
    CF_ASSIGN_OR_RETURN(entry.outcome, DecodeOutcome(row, 5), "", context);
  }
  entry.reported = row.ColumnInt64(9) != 0;
  if (!row.ColumnIsNull(10)) {
    RebindProgress rebind;
    const std::string step = row.ColumnText(11);
    std::optional<RebindStep> parsed_step = RebindStepFromName(step);
    if (!parsed_step.has_value()) {
      return absl::DataLossError(absl::StrCat(context, ": unknown rebind step '", step, "'"));
    }
    rebind.step = *parsed_step;
    rebind.snapshot.channel_serial = row.ColumnOptionalText(12);
    rebind.snapshot.channel_hash = row.ColumnOptionalText(13);
    rebind.target_thumbprint = row.ColumnText(14);
    rebind.target_channel_serial = row.ColumnText(15);
    if (std::optional<int64_t> restart = row.ColumnOptionalInt64(16); restart.has_value()) {
      rebind.restart_time = NanosToTime(*restart);
    }
    entry.rebind = std::move(rebind);
  }
  return entry;
}

absl::Status RequireId(absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("command id is empty");
  return absl::OkStatus();
}

absl::Status WrongPhase(const JournalEntry& entry, absl::string_view wanted) {
  return absl::FailedPreconditionError(
      absl::StrCat("command ", entry.id, " is ", PhaseName(entry.phase), ", not ", wanted));
}

absl::Status RequireRebindStep(const JournalEntry& entry, RebindStep step) {
  if (entry.phase != Phase::kRunning) return WrongPhase(entry, "running");
  if (!entry.rebind.has_value() || entry.rebind->step != step) {
    return absl::FailedPreconditionError(
        absl::StrCat("rebind ", entry.id, " is at step ",
                     entry.rebind.has_value() ? RebindStepName(entry.rebind->step) : "none",
                     ", not ", RebindStepName(step)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kReceived:
      return "received";
    case Phase::kRunning:
      return "running";
    case Phase::kDone:
      return "done";
  }
  return "unknown";
}

std::optional<Phase> PhaseFromName(absl::string_view name) {
  for (Phase phase : {Phase::kReceived, Phase::kRunning, Phase::kDone}) {
    if (PhaseName(phase) == name) return phase;
  }
  return std::nullopt;
}

absl::string_view RebindStepName(RebindStep step) {
  switch (step) {
    case RebindStep::kSnapshotTaken:
      return "snapshot_taken";
    case RebindStep::kValueWritten:
      return "value_written";
    case RebindStep::kRestarted:
      return "restarted";
  }
  return "unknown";
}

std::optional<RebindStep> RebindStepFromName(absl::string_view name) {
  for (RebindStep step :
       {RebindStep::kSnapshotTaken, RebindStep::kValueWritten, RebindStep::kRestarted}) {
    if (RebindStepName(step) == name) return step;
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("journal path is empty");
  Database::Options options;
  options.create_if_missing = true;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path, options),
                      "opening journal");
  CF_RETURN_IF_ERROR(common::sqlite::Migrate(*db, Migrations()), "opening journal ", path);
  return std::unique_ptr<Journal>(new Journal(std::move(db)));
}

Journal::Journal(std::unique_ptr<Database> db) : db_(std::move(db)) {}

Journal::~Journal() = default;

absl::StatusOr<std::optional<JournalEntry>> Journal::FindLocked(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(Statement select,
                      db_->Prepare(absl::StrCat(kSelectEntry, "WHERE c.id = ?1")));
  CF_RETURN_IF_ERROR(select.BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, select.Step(), "reading journal entry of command ", id);
  if (!found) return std::optional<JournalEntry>();
  CF_ASSIGN_OR_RETURN(JournalEntry entry, ReadEntry(select));
  return std::optional<JournalEntry>(std::move(entry));
}

absl::StatusOr<JournalEntry> Journal::GetLocked(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireId(id));
  CF_ASSIGN_OR_RETURN(std::optional<JournalEntry> entry, FindLocked(id));
  if (!entry.has_value()) {
    return absl::NotFoundError(absl::StrCat("command ", id, " is not in the journal"));
  }
  return std::move(*entry);
}

absl::StatusOr<JournalEntry> Journal::Receive(absl::string_view id, model::CommandKind kind,
                                              absl::Time deadline) {
  CF_RETURN_IF_ERROR(RequireId(id));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling command ", id);
  CF_ASSIGN_OR_RETURN(std::optional<JournalEntry> existing, FindLocked(id));
  if (existing.has_value()) {
    if (existing->kind != kind) {
      return absl::FailedPreconditionError(absl::StrCat(
          "command id ", id, " is journaled as a ", model::CommandKindName(existing->kind),
          " command, not a ", model::CommandKindName(kind)));
    }
    return std::move(*existing);
  }
  CF_ASSIGN_OR_RETURN(Statement insert,
                      db_->Prepare("INSERT INTO commands (id, kind, deadline, phase) "
                                   "VALUES (?1, ?2, ?3, 'received')"));
  CF_RETURN_IF_ERROR(insert.BindText(1, id));
  CF_RETURN_IF_ERROR(insert.BindText(2, model::CommandKindName(kind)));
  CF_RETURN_IF_ERROR(insert.BindInt64(3, TimeToNanos(deadline)));
  CF_RETURN_IF_ERROR(insert.Run(), "journaling command ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "journaling command ", id);
  JournalEntry entry;
  entry.id = std::string(id);
  entry.kind = kind;
  entry.deadline = NanosToTime(TimeToNanos(deadline));
  entry.phase = Phase::kReceived;
  return entry;
}

absl::StatusOr<std::optional<JournalEntry>> Journal::Find(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  return FindLocked(id);
}

absl::Status Journal::MarkRunning(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling command ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  if (entry.phase != Phase::kReceived) return WrongPhase(entry, "received");
  CF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE commands SET phase = 'running' WHERE id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.Run(), "journaling command ", id, " as running");
  return txn.Commit();
}

absl::Status Journal::SetTarget(absl::string_view id, absl::string_view thumbprint) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling command ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  if (entry.phase != Phase::kRunning) return WrongPhase(entry, "running");
  CF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE commands SET target = ?2 WHERE id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.BindText(2, thumbprint));
  CF_RETURN_IF_ERROR(update.Run(), "journaling the target of command ", id);
  return txn.Commit();
}

absl::Status Journal::RecordSnapshot(absl::string_view id, const BindingSnapshot& snapshot,
                                     absl::string_view target_thumbprint,
                                     absl::string_view target_channel_serial) {
  if (target_thumbprint.empty() || target_channel_serial.empty()) {
    return absl::InvalidArgumentError("a rebind snapshot needs the target thumbprint and serial");
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling rebind ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  if (entry.kind != model::CommandKind::kRebind && entry.kind != model::CommandKind::kInstall) {
    return absl::FailedPreconditionError(absl::StrCat("command ", id, " is a ",
                                                      model::CommandKindName(entry.kind),
                                                      " command, not a rebind or install"));
  }
  if (entry.phase != Phase::kRunning) return WrongPhase(entry, "running");
  if (entry.rebind.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat("rebind ", id,
                                                      " already has its snapshot (step ",
                                                      RebindStepName(entry.rebind->step), ")"));
  }
  CF_ASSIGN_OR_RETURN(
      Statement insert,
      db_->Prepare("INSERT INTO rebinds (command_id, step, previous_serial, previous_hash, "
                   "target_thumbprint, target_channel_serial) "
                   "VALUES (?1, 'snapshot_taken', ?2, ?3, ?4, ?5)"));
  CF_RETURN_IF_ERROR(insert.BindText(1, id));
  CF_RETURN_IF_ERROR(insert.BindOptionalText(2, snapshot.channel_serial));
  CF_RETURN_IF_ERROR(insert.BindOptionalText(3, snapshot.channel_hash));
  CF_RETURN_IF_ERROR(insert.BindText(4, target_thumbprint));
  CF_RETURN_IF_ERROR(insert.BindText(5, target_channel_serial));
  CF_RETURN_IF_ERROR(insert.Run(), "journaling the snapshot of rebind ", id);
  CF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE commands SET target = ?2 WHERE id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.BindText(2, target_thumbprint));
  CF_RETURN_IF_ERROR(update.Run(), "journaling the target of rebind ", id);
  return txn.Commit();
}

absl::Status Journal::RecordValueWritten(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling rebind ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  CF_RETURN_IF_ERROR(RequireRebindStep(entry, RebindStep::kSnapshotTaken));
  CF_ASSIGN_OR_RETURN(
      Statement update,
      db_->Prepare("UPDATE rebinds SET step = 'value_written' WHERE command_id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.Run(), "journaling rebind ", id, " as value_written");
  return txn.Commit();
}

absl::Status Journal::RecordRestarted(absl::string_view id, absl::Time restart_time) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling rebind ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  CF_RETURN_IF_ERROR(RequireRebindStep(entry, RebindStep::kValueWritten));
  CF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE rebinds SET step = 'restarted', restart_time = ?2 "
                                   "WHERE command_id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.BindInt64(2, TimeToNanos(restart_time)));
  CF_RETURN_IF_ERROR(update.Run(), "journaling rebind ", id, " as restarted");
  return txn.Commit();
}

absl::Status Journal::Finish(absl::string_view id, const model::CommandOutcome& outcome,
                             absl::Time finished_at) {
  if (!model::IsFinal(outcome.state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("outcome state ", model::CommandStateName(outcome.state), " is not final"));
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling command ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  if (entry.phase == Phase::kDone) {
    return absl::FailedPreconditionError(absl::StrCat("command ", id, " already has its outcome (",
                                                      model::CommandStateName(entry.outcome->state),
                                                      ")"));
  }
  CF_ASSIGN_OR_RETURN(
      Statement update,
      db_->Prepare("UPDATE commands SET phase = 'done', outcome_state = ?2, outcome_code = ?3, "
                   "outcome_error = ?4, outcome_result = ?5, finished_at = ?6, finish_seq = "
                   "(SELECT COALESCE(MAX(finish_seq), 0) + 1 FROM commands), reported = 0 "
                   "WHERE id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.BindText(2, model::CommandStateName(outcome.state)));
  CF_RETURN_IF_ERROR(update.BindInt64(3, static_cast<int64_t>(outcome.code)));
  CF_RETURN_IF_ERROR(update.BindText(4, outcome.error));
  CF_RETURN_IF_ERROR(update.BindText(5, EncodeResult(outcome.result)));
  CF_RETURN_IF_ERROR(update.BindInt64(6, TimeToNanos(finished_at)));
  CF_RETURN_IF_ERROR(update.Run(), "journaling the outcome of command ", id);
  return txn.Commit();
}

absl::StatusOr<std::vector<JournalEntry>> Journal::Interrupted() {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(
      Statement select,
      db_->Prepare(absl::StrCat(kSelectEntry, "WHERE c.phase = 'running' ORDER BY c.rowid")));
  std::vector<JournalEntry> entries;
  while (true) {
    CF_ASSIGN_OR_RETURN(bool row, select.Step(), "listing interrupted commands");
    if (!row) break;
    CF_ASSIGN_OR_RETURN(JournalEntry entry, ReadEntry(select));
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<std::vector<std::pair<std::string, model::CommandOutcome>>> Journal::Unreported() {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(
      Statement select,
      db_->Prepare("SELECT id, outcome_state, outcome_code, outcome_error, outcome_result "
                   "FROM commands WHERE phase = 'done' AND reported = 0 ORDER BY finish_seq"));
  std::vector<std::pair<std::string, model::CommandOutcome>> out;
  while (true) {
    CF_ASSIGN_OR_RETURN(bool row, select.Step(), "listing unreported outcomes");
    if (!row) break;
    std::string id = select.ColumnText(0);
    CF_ASSIGN_OR_RETURN(model::CommandOutcome outcome, DecodeOutcome(select, 1),
                        "journal entry of command ", id);
    out.emplace_back(std::move(id), std::move(outcome));
  }
  return out;
}

absl::Status Journal::MarkReported(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "journaling command ", id);
  CF_ASSIGN_OR_RETURN(JournalEntry entry, GetLocked(id));
  if (entry.phase != Phase::kDone) return WrongPhase(entry, "done");
  if (entry.reported) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE commands SET reported = 1 WHERE id = ?1"));
  CF_RETURN_IF_ERROR(update.BindText(1, id));
  CF_RETURN_IF_ERROR(update.Run(), "journaling command ", id, " as reported");
  return txn.Commit();
}

absl::StatusOr<int64_t> Journal::ForgetReportedBefore(absl::Time cutoff) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement remove,
                      db_->Prepare("DELETE FROM commands WHERE phase = 'done' AND reported = 1 "
                                   "AND finished_at < ?1"));
  CF_RETURN_IF_ERROR(remove.BindInt64(1, TimeToNanos(cutoff)));
  CF_RETURN_IF_ERROR(remove.Run(), "forgetting reported commands");
  return db_->changes();
}

}  // namespace certfleet::agent::journal
