// SqliteStore: campaigns and their targets, the automatic scheduler's per-agent state and the
// notifications already sent (schema version 5).
//
// A campaign's spec is one TEXT column holding a string map (encoding.h's EncodeStringMap):
// labels (itself an encoded map), fqdn_glob, expiring_within (microseconds, absent = none),
// problem, profile, issuer, bind ("1"/"0"), waves, max_in_flight, max_failures, soak
// (microseconds), window, emergency ("1"/"0"), offline_deadline (microseconds).

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/sqlite/database.h"
#include "common/status/status_macros.h"
#include "controller/store/sqlite/encoding.h"
#include "controller/store/sqlite/sqlite_store.h"

namespace certfleet::controller::store {
namespace {

using common::model::CampaignState;
using common::model::TargetState;
using common::sqlite::Statement;
using common::sqlite::Transaction;

constexpr char kCampaignColumns[] =
    "id, name, spec, state, reason, current_wave, wave_count, wave_started_at, soak_until, "
    "failures_acknowledged, created_by, created_at, updated_at, started_at, finished_at";

constexpr char kTargetColumns[] =
    "campaign_id, agent_id, position, wave, fqdn, state, renewal_id, previous_thumbprint, "
    "previous_not_after, revert_command_id, reason, started_at, finished_at";

constexpr char kPolicyColumns[] =
    "agent_id, policy, failures, next_attempt_at, last_renewal_id, from_thumbprint, "
    "remediation_command_id, updated_at";

std::string EncodeSpec(const CampaignSpec& spec) {
  std::map<std::string, std::string> m;
  m["labels"] = EncodeStringMap(spec.labels);
  m["fqdn_glob"] = spec.fqdn_glob;
  if (spec.expiring_within) {
    m["expiring_within"] = absl::StrCat(DurationToMicros(*spec.expiring_within));
  }
  m["problem"] = spec.problem;
  m["profile"] = spec.profile;
  m["issuer"] = spec.issuer;
  m["bind"] = spec.bind ? "1" : "0";
  m["waves"] = spec.waves;
  m["max_in_flight"] = absl::StrCat(spec.max_in_flight);
  m["max_failures"] = spec.max_failures;
  m["soak"] = absl::StrCat(DurationToMicros(spec.soak));
  m["window"] = spec.window;
  m["emergency"] = spec.emergency ? "1" : "0";
  m["offline_deadline"] = absl::StrCat(DurationToMicros(spec.offline_deadline));
  return EncodeStringMap(m);
}

absl::StatusOr<CampaignSpec> DecodeSpec(absl::string_view encoded, absl::string_view id) {
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("campaign ", id, ": stored spec has a bad ", what));
  };
  absl::StatusOr<std::map<std::string, std::string>> decoded = DecodeStringMap(encoded);
  if (!decoded.ok()) return bad("encoding");
  std::map<std::string, std::string>& m = *decoded;
  auto micros = [&](const std::string& key, int64_t* out) { return absl::SimpleAtoi(m[key], out); };
  CampaignSpec spec;
  absl::StatusOr<std::map<std::string, std::string>> labels = DecodeStringMap(m["labels"]);
  if (!labels.ok()) return bad("labels");
  spec.labels = *std::move(labels);
  spec.fqdn_glob = m["fqdn_glob"];
  if (m.count("expiring_within")) {
    int64_t v = 0;
    if (!micros("expiring_within", &v)) return bad("expiring_within");
    spec.expiring_within = MicrosToDuration(v);
  }
  spec.problem = m["problem"];
  spec.profile = m["profile"];
  spec.issuer = m["issuer"];
  spec.bind = m["bind"] == "1";
  spec.waves = m["waves"];
  if (!absl::SimpleAtoi(m["max_in_flight"], &spec.max_in_flight)) return bad("max_in_flight");
  spec.max_failures = m["max_failures"];
  int64_t soak = 0, offline = 0;
  if (!micros("soak", &soak)) return bad("soak");
  if (!micros("offline_deadline", &offline)) return bad("offline_deadline");
  spec.soak = MicrosToDuration(soak);
  spec.offline_deadline = MicrosToDuration(offline);
  spec.window = m["window"];
  spec.emergency = m["emergency"] == "1";
  return spec;
}

absl::Status BindCampaign(Statement& stmt, const CampaignRecord& c) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, c.id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, c.name));
  CF_RETURN_IF_ERROR(stmt.BindText(3, EncodeSpec(c.spec)));
  CF_RETURN_IF_ERROR(stmt.BindText(4, common::model::CampaignStateName(c.state)));
  CF_RETURN_IF_ERROR(stmt.BindText(5, c.reason));
  CF_RETURN_IF_ERROR(stmt.BindInt64(6, c.current_wave));
  CF_RETURN_IF_ERROR(stmt.BindInt64(7, c.wave_count));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(8, OptionalMicros(c.wave_started_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(9, OptionalMicros(c.soak_until)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(10, c.failures_acknowledged));
  CF_RETURN_IF_ERROR(stmt.BindText(11, c.created_by));
  CF_RETURN_IF_ERROR(stmt.BindInt64(12, TimeToMicros(c.created_at)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(13, TimeToMicros(c.updated_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(14, OptionalMicros(c.started_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(15, OptionalMicros(c.finished_at)));
  return absl::OkStatus();
}

absl::StatusOr<CampaignRecord> ReadCampaign(const Statement& row) {
  CampaignRecord c;
  c.id = row.ColumnText(0);
  c.name = row.ColumnText(1);
  CF_ASSIGN_OR_RETURN(c.spec, DecodeSpec(row.ColumnText(2), c.id));
  std::optional<CampaignState> state = common::model::CampaignStateFromName(row.ColumnText(3));
  if (!state) {
    return absl::DataLossError(
        absl::StrCat("campaign ", c.id, " has an unknown state '", row.ColumnText(3), "'"));
  }
  c.state = *state;
  c.reason = row.ColumnText(4);
  c.current_wave = static_cast<int>(row.ColumnInt64(5));
  c.wave_count = static_cast<int>(row.ColumnInt64(6));
  c.wave_started_at = OptionalTime(row.ColumnOptionalInt64(7));
  c.soak_until = OptionalTime(row.ColumnOptionalInt64(8));
  c.failures_acknowledged = static_cast<int>(row.ColumnInt64(9));
  c.created_by = row.ColumnText(10);
  c.created_at = MicrosToTime(row.ColumnInt64(11));
  c.updated_at = MicrosToTime(row.ColumnInt64(12));
  c.started_at = OptionalTime(row.ColumnOptionalInt64(13));
  c.finished_at = OptionalTime(row.ColumnOptionalInt64(14));
  return c;
}

absl::Status BindTarget(Statement& stmt, const CampaignTargetRecord& t) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, t.campaign_id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, t.agent_id));
  CF_RETURN_IF_ERROR(stmt.BindInt64(3, t.position));
  CF_RETURN_IF_ERROR(stmt.BindInt64(4, t.wave));
  CF_RETURN_IF_ERROR(stmt.BindText(5, t.fqdn));
  CF_RETURN_IF_ERROR(stmt.BindText(6, common::model::TargetStateName(t.state)));
  CF_RETURN_IF_ERROR(stmt.BindText(7, t.renewal_id));
  CF_RETURN_IF_ERROR(stmt.BindText(8, t.previous_thumbprint));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(9, OptionalMicros(t.previous_not_after)));
  CF_RETURN_IF_ERROR(stmt.BindText(10, t.revert_command_id));
  CF_RETURN_IF_ERROR(stmt.BindText(11, t.reason));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(12, OptionalMicros(t.started_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(13, OptionalMicros(t.finished_at)));
  return absl::OkStatus();
}

absl::StatusOr<CampaignTargetRecord> ReadTarget(const Statement& row) {
  CampaignTargetRecord t;
  t.campaign_id = row.ColumnText(0);
  t.agent_id = row.ColumnText(1);
  t.position = static_cast<int>(row.ColumnInt64(2));
  t.wave = static_cast<int>(row.ColumnInt64(3));
  t.fqdn = row.ColumnText(4);
  std::optional<TargetState> state = common::model::TargetStateFromName(row.ColumnText(5));
  if (!state) {
    return absl::DataLossError(absl::StrCat("campaign ", t.campaign_id, " target ", t.agent_id,
                                            " has an unknown state '", row.ColumnText(5), "'"));
  }
  t.state = *state;
  t.renewal_id = row.ColumnText(6);
  t.previous_thumbprint = row.ColumnText(7);
  t.previous_not_after = OptionalTime(row.ColumnOptionalInt64(8));
  t.revert_command_id = row.ColumnText(9);
  t.reason = row.ColumnText(10);
  t.started_at = OptionalTime(row.ColumnOptionalInt64(11));
  t.finished_at = OptionalTime(row.ColumnOptionalInt64(12));
  return t;
}

absl::StatusOr<PolicyStateRecord> ReadPolicyState(const Statement& row) {
  PolicyStateRecord p;
  p.agent_id = row.ColumnText(0);
  p.policy = row.ColumnText(1);
  p.failures = static_cast<int>(row.ColumnInt64(2));
  p.next_attempt_at = MicrosToTime(row.ColumnInt64(3));
  p.last_renewal_id = row.ColumnText(4);
  p.from_thumbprint = row.ColumnText(5);
  p.remediation_command_id = row.ColumnText(6);
  p.updated_at = MicrosToTime(row.ColumnInt64(7));
  return p;
}

std::string Placeholders(int n) {
  std::string out;
  for (int i = 1; i <= n; ++i) absl::StrAppend(&out, i > 1 ? ", " : "", "?", i);
  return out;
}

const std::string& InsertCampaignSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "INSERT INTO campaigns (", kCampaignColumns, ") VALUES (", Placeholders(15), ")"));
  return *sql;
}

const std::string& UpdateCampaignSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "UPDATE campaigns SET (", kCampaignColumns, ") = (", Placeholders(15), ") WHERE id = ?1"));
  return *sql;
}

const std::string& SelectCampaignSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("SELECT ", kCampaignColumns, " FROM campaigns WHERE id = ?1"));
  return *sql;
}

const std::string& ListCampaignsSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kCampaignColumns, " FROM campaigns ORDER BY created_at, rowid"));
  return *sql;
}

const std::string& InsertTargetSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "INSERT INTO campaign_targets (", kTargetColumns, ") VALUES (", Placeholders(13), ")"));
  return *sql;
}

const std::string& UpdateTargetSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("UPDATE campaign_targets SET (", kTargetColumns, ") = (",
                                   Placeholders(13), ") WHERE campaign_id = ?1 AND agent_id = ?2"));
  return *sql;
}

const std::string& ListTargetsSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kTargetColumns,
                   " FROM campaign_targets WHERE campaign_id = ?1 ORDER BY position"));
  return *sql;
}

const std::string& SelectPolicySql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kPolicyColumns, " FROM policy_state WHERE agent_id = ?1"));
  return *sql;
}

const std::string& PutPolicySql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "INSERT OR REPLACE INTO policy_state (", kPolicyColumns, ") VALUES (", Placeholders(8), ")"));
  return *sql;
}

constexpr char kCampaignStateSql[] = "SELECT state FROM campaigns WHERE id = ?1";
constexpr char kTargetStateSql[] =
    "SELECT state FROM campaign_targets WHERE campaign_id = ?1 AND agent_id = ?2";
constexpr char kCampaignExistsSql[] = "SELECT 1 FROM campaigns WHERE id = ?1";
constexpr char kNotificationSql[] =
    "INSERT INTO notifications_sent (key, at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";

}  // namespace

absl::Status SqliteStore::CreateCampaign(const CampaignRecord& campaign,
                                         const std::vector<CampaignTargetRecord>& targets) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(campaign.id, "campaign id"));
  std::set<std::string> agents;
  for (const CampaignTargetRecord& t : targets) {
    if (t.campaign_id != campaign.id) {
      return absl::InvalidArgumentError(absl::StrCat("campaign ", campaign.id, ": target ",
                                                     t.agent_id, " names campaign '", t.campaign_id,
                                                     "'"));
    }
    CF_RETURN_IF_ERROR(RequireNonEmpty(t.agent_id, "target agent id"), "campaign ", campaign.id);
    if (!agents.insert(t.agent_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("campaign ", campaign.id, ": agent ", t.agent_id, " is a target twice"));
    }
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "creating campaign ", campaign.id);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(InsertCampaignSql()));
    CF_RETURN_IF_ERROR(BindCampaign(*stmt, campaign));
    absl::Status status = stmt->Run();
    if (absl::IsAlreadyExists(status)) {
      return absl::AlreadyExistsError(absl::StrCat("campaign ", campaign.id, " already exists"));
    }
    CF_RETURN_IF_ERROR(status, "creating campaign ", campaign.id);
  }
  CF_ASSIGN_OR_RETURN(Statement * insert, db_->PrepareCached(InsertTargetSql()));
  for (const CampaignTargetRecord& t : targets) {
    CF_RETURN_IF_ERROR(BindTarget(*insert, t));
    CF_RETURN_IF_ERROR(insert->Run(), "campaign ", campaign.id, " target ", t.agent_id);
  }
  CF_RETURN_IF_ERROR(txn.Commit(), "creating campaign ", campaign.id);
  return absl::OkStatus();
}

absl::StatusOr<CampaignRecord> SqliteStore::GetCampaign(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "campaign id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectCampaignSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading campaign ", id);
  if (!found) return absl::NotFoundError(absl::StrCat("campaign ", id, " not found"));
  absl::StatusOr<CampaignRecord> campaign = ReadCampaign(*stmt);
  stmt->Reset();
  return campaign;
}

absl::StatusOr<std::vector<CampaignRecord>> SqliteStore::ListCampaigns() {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(ListCampaignsSql()));
  return ReadAll<CampaignRecord>(*stmt, ReadCampaign, "listing campaigns");
}

absl::Status SqliteStore::UpdateCampaign(const CampaignRecord& campaign,
                                         common::model::CampaignState expected) {
  const std::string& id = campaign.id;
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "campaign id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "updating campaign ", id);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kCampaignStateSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, id));
    CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "updating campaign ", id);
    if (!found) return absl::NotFoundError(absl::StrCat("campaign ", id, " not found"));
    const std::string stored = stmt->ColumnText(0);
    stmt->Reset();
    if (stored != common::model::CampaignStateName(expected)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "campaign ", id, " is ", stored, ", not ", common::model::CampaignStateName(expected)));
    }
  }
  CF_ASSIGN_OR_RETURN(Statement * update, db_->PrepareCached(UpdateCampaignSql()));
  CF_RETURN_IF_ERROR(BindCampaign(*update, campaign));
  CF_RETURN_IF_ERROR(update->Run(), "updating campaign ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "updating campaign ", id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CampaignTargetRecord>> SqliteStore::ListCampaignTargets(
    absl::string_view campaign_id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(campaign_id, "campaign id"));
  absl::MutexLock lock(&mu_);
  {
    CF_ASSIGN_OR_RETURN(Statement * exists, db_->PrepareCached(kCampaignExistsSql));
    CF_RETURN_IF_ERROR(exists->BindText(1, campaign_id));
    CF_ASSIGN_OR_RETURN(bool found, exists->Step(), "reading campaign ", campaign_id);
    exists->Reset();
    if (!found) return absl::NotFoundError(absl::StrCat("campaign ", campaign_id, " not found"));
  }
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(ListTargetsSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, campaign_id));
  return ReadAll<CampaignTargetRecord>(*stmt, ReadTarget,
                                       absl::StrCat("listing targets of campaign ", campaign_id));
}

absl::Status SqliteStore::UpdateCampaignTarget(const CampaignTargetRecord& target,
                                               common::model::TargetState expected) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(target.campaign_id, "campaign id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(target.agent_id, "target agent id"));
  const std::string what =
      absl::StrCat("campaign ", target.campaign_id, " target ", target.agent_id);
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "updating ", what);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kTargetStateSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, target.campaign_id));
    CF_RETURN_IF_ERROR(stmt->BindText(2, target.agent_id));
    CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "updating ", what);
    if (!found) return absl::NotFoundError(absl::StrCat(what, " not found"));
    const std::string stored = stmt->ColumnText(0);
    stmt->Reset();
    if (stored != common::model::TargetStateName(expected)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is ", stored, ", not ", common::model::TargetStateName(expected)));
    }
  }
  CF_ASSIGN_OR_RETURN(Statement * update, db_->PrepareCached(UpdateTargetSql()));
  CF_RETURN_IF_ERROR(BindTarget(*update, target));
  CF_RETURN_IF_ERROR(update->Run(), "updating ", what);
  CF_RETURN_IF_ERROR(txn.Commit(), "updating ", what);
  return absl::OkStatus();
}

absl::StatusOr<PolicyStateRecord> SqliteStore::GetPolicyState(absl::string_view agent_id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectPolicySql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading scheduler state of ", agent_id);
  if (!found) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " has no scheduler state"));
  }
  absl::StatusOr<PolicyStateRecord> state = ReadPolicyState(*stmt);
  stmt->Reset();
  return state;
}

absl::Status SqliteStore::PutPolicyState(const PolicyStateRecord& state) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(state.agent_id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "scheduler state of ",
                      state.agent_id);
  CF_RETURN_IF_ERROR(RequireAgentLocked(state.agent_id, "storing scheduler state"));
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(PutPolicySql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, state.agent_id));
  CF_RETURN_IF_ERROR(stmt->BindText(2, state.policy));
  CF_RETURN_IF_ERROR(stmt->BindInt64(3, state.failures));
  CF_RETURN_IF_ERROR(stmt->BindInt64(4, TimeToMicros(state.next_attempt_at)));
  CF_RETURN_IF_ERROR(stmt->BindText(5, state.last_renewal_id));
  CF_RETURN_IF_ERROR(stmt->BindText(6, state.from_thumbprint));
  CF_RETURN_IF_ERROR(stmt->BindText(7, state.remediation_command_id));
  CF_RETURN_IF_ERROR(stmt->BindInt64(8, TimeToMicros(state.updated_at)));
  CF_RETURN_IF_ERROR(stmt->Run(), "storing scheduler state of ", state.agent_id);
  CF_RETURN_IF_ERROR(txn.Commit(), "storing scheduler state of ", state.agent_id);
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::RecordNotificationOnce(absl::string_view key, absl::Time at) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(key, "notification key"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kNotificationSql));
  CF_RETURN_IF_ERROR(stmt->BindText(1, key));
  CF_RETURN_IF_ERROR(stmt->BindInt64(2, TimeToMicros(at)));
  CF_RETURN_IF_ERROR(stmt->Run(), "recording notification ", key);
  return db_->changes() > 0;
}

}  // namespace certfleet::controller::store
