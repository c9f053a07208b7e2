#include "controller/store/sqlite/sqlite_store.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "controller/store/sqlite/encoding.h"

namespace certfleet::controller::store {
namespace {

using common::sqlite::Database;
using common::sqlite::Migration;
using common::sqlite::Statement;
using common::sqlite::Transaction;

// Times are unix microseconds, lists and labels netstrings (encoding.h). FQDNs compare
// case-insensitively (COLLATE NOCASE: ASCII, as DNS does). STRICT tables refuse a value of the
// wrong type; the CHECKs keep empty keys out even if a bug gets past the input validation.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE join_tokens (
  token_hash TEXT NOT NULL PRIMARY KEY CHECK (token_hash <> ''),
  fqdn TEXT CHECK (fqdn IS NULL OR fqdn <> ''),  -- NULL: any FQDN may use the token
  labels BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,                               -- NULL: unused
  used_by_agent TEXT NOT NULL,
  created_by TEXT NOT NULL
) STRICT;

CREATE TABLE agents (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  fqdn TEXT NOT NULL COLLATE NOCASE CHECK (fqdn <> ''),
  labels BLOB NOT NULL,
  platform TEXT NOT NULL,
  version TEXT NOT NULL,
  enrolled_at INTEGER NOT NULL,
  last_seen INTEGER,                             -- NULL: never seen
  identity_serial TEXT NOT NULL,
  identity_not_after INTEGER NOT NULL,
  channel_serial TEXT NOT NULL,
  drift BLOB NOT NULL,
  inventory_generation INTEGER NOT NULL          -- uint64 stored as its int64 bit pattern
) STRICT;
CREATE INDEX agents_by_fqdn ON agents (fqdn, enrolled_at);

CREATE TABLE certificates (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  store TEXT NOT NULL CHECK (store <> ''),
  thumbprint TEXT NOT NULL CHECK (thumbprint <> ''),
  location TEXT NOT NULL,
  subject TEXT NOT NULL,
  subject_cn TEXT NOT NULL,
  issuer TEXT NOT NULL,
  dns_names BLOB NOT NULL,
  uris BLOB NOT NULL,
  serial TEXT NOT NULL,
  channel_serial TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  key_algorithm TEXT NOT NULL,
  key_bits INTEGER NOT NULL,
  signature_hash TEXT NOT NULL,
  has_key_usage INTEGER NOT NULL CHECK (has_key_usage IN (0, 1)),
  key_usage INTEGER NOT NULL,
  extended_key_usage BLOB NOT NULL,
  is_ca INTEGER NOT NULL CHECK (is_ca IN (0, 1)),
  template_name TEXT NOT NULL,
  has_private_key INTEGER NOT NULL CHECK (has_private_key IN (0, 1)),
  problems BLOB NOT NULL,
  bound INTEGER NOT NULL CHECK (bound IN (0, 1)),
  drift BLOB NOT NULL,
  PRIMARY KEY (agent_id, store, thumbprint)
) STRICT;
CREATE INDEX certificates_by_not_after ON certificates (not_after);
)sql";

// Commands (encoding.h has the payload and outcome layouts). `state` and `kind` hold the model's
// names. A command is final exactly when it has an outcome and a finished_at; the CHECKs keep
// the row consistent with that. Indexes: an agent's commands by state (PendingCommands, and
// ListCommands by agent and state, already in created_at order), all commands by creation
// (ListCommands), and the unfinished ones by deadline (ExpireCommands; partial, so it stays as
// small as the queue however long the history grows). Times are unix microseconds.
constexpr char kSchemaV2[] = R"sql(
CREATE TABLE commands (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  kind TEXT NOT NULL
    CHECK (kind IN ('scan', 'import', 'repair', 'rebind', 'trust', 'remove')),
  payload BLOB NOT NULL,             -- an ImportPayload's password is empty once final
  deadline INTEGER NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('queued', 'sent', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER,                   -- NULL: never sent
  started_at INTEGER,                -- NULL: not reported running
  finished_at INTEGER,               -- NULL: not final
  attempts INTEGER NOT NULL CHECK (attempts >= 0),
  cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
  outcome BLOB,                      -- NULL: not final
  CHECK ((outcome IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled', 'expired'))),
  CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled', 'expired')))
) STRICT;
CREATE INDEX commands_by_agent_state ON commands (agent_id, state, created_at);
CREATE INDEX commands_by_created_at ON commands (created_at);
CREATE INDEX commands_unfinished_by_deadline ON commands (deadline)
  WHERE state IN ('queued', 'sent', 'running');
)sql";

// Renewal jobs, the issuance log and the approval queue; and commands of the kinds renew and
// install.
//
// SQLite cannot change a CHECK, so `commands` is rebuilt with the two new kinds: copied row for
// row (rowids kept, so "oldest first" still breaks ties by creation) into a new table, which
// then takes the old one's name and indexes. Nothing references `commands`, so dropping it
// deletes no other row; secure_delete (set before migrating) zeroes the pages it leaves.
//
// The profile snapshot, the steps and the evidence of a renewal are netstrings (encoding.h);
// states hold the model's names. Renewals belong to their agent (deleted with it). Issuances
// and approval requests are records of what was signed and decided, kept whatever becomes of
// the agent or the job, so they reference neither. Indexes: an agent's renewals, renewals by
// state, the active ones (partial: it stays as small as the work in progress however long the
// history grows), each of the three command ids (FindRenewalByCommand, one index per column
// for the OR), issuances by renewal, approval requests by state. Times are unix microseconds.
// One job at a time per host: two renewals racing for one agent cannot both be active.
constexpr char kSchemaV4[] = R"sql(
CREATE UNIQUE INDEX renewals_one_active_per_agent ON renewals (agent_id)
  WHERE state NOT IN ('done', 'rolled_back', 'failed');
)sql";

// Version 5: re-enrollment tokens (bound to an existing agent), the hash-chained audit log,
// campaigns and their targets, the automatic scheduler's per-agent state and the notifications
// already sent. Campaign specs are JSON. Targets keep their agent id without a foreign key: a
// campaign's record outlives the agents it touched. Times are unix microseconds.
constexpr char kSchemaV5[] = R"sql(
ALTER TABLE join_tokens ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
CREATE TABLE audit_log (
  seq INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
  at INTEGER NOT NULL,
  actor TEXT NOT NULL CHECK (actor <> ''),
  action TEXT NOT NULL CHECK (action <> ''),
  target TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TABLE campaigns (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('planned', 'running', 'paused', 'halted', 'cancelled', 'completed')),
  reason TEXT NOT NULL,
  current_wave INTEGER NOT NULL,
  wave_count INTEGER NOT NULL,
  wave_started_at INTEGER,
  soak_until INTEGER,
  failures_acknowledged INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER
);
CREATE TABLE campaign_targets (
  campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  agent_id TEXT NOT NULL CHECK (agent_id <> ''),
  position INTEGER NOT NULL,
  wave INTEGER NOT NULL,
  fqdn TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'rolled_back', 'failed',
    'not_reached', 'cancelled', 'reverting', 'reverted', 'revert_failed')),
  renewal_id TEXT NOT NULL,
  previous_thumbprint TEXT NOT NULL,
  previous_not_after INTEGER,
  revert_command_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  PRIMARY KEY (campaign_id, agent_id)
);
CREATE INDEX campaign_targets_position ON campaign_targets (campaign_id, position);
CREATE TABLE policy_state (
  agent_id TEXT NOT NULL PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
  policy TEXT NOT NULL,
  failures INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  last_renewal_id TEXT NOT NULL,
  from_thumbprint TEXT NOT NULL,
  remediation_command_id TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE notifications_sent (
  key TEXT NOT NULL PRIMARY KEY CHECK (key <> ''),
  at INTEGER NOT NULL
);
)sql";

constexpr char kSchemaV3[] = R"sql(
CREATE TABLE commands_v3 (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  kind TEXT NOT NULL
    CHECK (kind IN ('scan', 'import', 'repair', 'rebind', 'trust', 'remove', 'renew', 'install')),
  payload BLOB NOT NULL,             -- an ImportPayload's password and data are empty once final
  deadline INTEGER NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('queued', 'sent', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER,                   -- NULL: never sent
  started_at INTEGER,                -- NULL: not reported running
  finished_at INTEGER,               -- NULL: not final
  attempts INTEGER NOT NULL CHECK (attempts >= 0),
  cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
  outcome BLOB,                      -- NULL: not final
  CHECK ((outcome IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled', 'expired'))),
  CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled', 'expired')))
) STRICT;
INSERT INTO commands_v3 (rowid, id, agent_id, kind, payload, deadline, state, created_by,
                         created_at, sent_at, started_at, finished_at, attempts, cancel_requested,
                         outcome)
  SELECT rowid, id, agent_id, kind, payload, deadline, state, created_by, created_at, sent_at,
         started_at, finished_at, attempts, cancel_requested, outcome
  FROM commands ORDER BY rowid;
DROP TABLE commands;
ALTER TABLE commands_v3 RENAME TO commands;
CREATE INDEX commands_by_agent_state ON commands (agent_id, state, created_at);
CREATE INDEX commands_by_created_at ON commands (created_at);
CREATE INDEX commands_unfinished_by_deadline ON commands (deadline)
  WHERE state IN ('queued', 'sent', 'running');

CREATE TABLE issuances (
  serial TEXT NOT NULL PRIMARY KEY CHECK (serial <> ''),
  issuer TEXT NOT NULL,
  renewal_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  fqdn TEXT NOT NULL,
  thumbprint TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  certificate_pem TEXT NOT NULL
) STRICT;
CREATE INDEX issuances_by_renewal ON issuances (renewal_id, issued_at);

CREATE TABLE approval_requests (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  issuer TEXT NOT NULL,
  renewal_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  fqdn TEXT NOT NULL,
  csr_pem TEXT NOT NULL,
  profile_name TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'fulfilled')),
  decided_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  chain_pem TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  decided_at INTEGER                 -- NULL: not decided
) STRICT;
CREATE INDEX approval_requests_by_state ON approval_requests (state, created_at);

CREATE TABLE renewals (
  id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  fqdn TEXT NOT NULL,
  profile BLOB NOT NULL,
  issuer TEXT NOT NULL,
  bind INTEGER NOT NULL CHECK (bind IN (0, 1)),
  state TEXT NOT NULL CHECK (state IN ('planned', 'csr_requested', 'csr_received',
    'policy_checked', 'submitted', 'pending_approval', 'issued', 'install_sent', 'installed',
    'bind_sent', 'verified', 'done', 'rolled_back', 'failed')),
  steps BLOB NOT NULL,
  csr_pem TEXT NOT NULL,
  renew_command_id TEXT NOT NULL,    -- '': not sent yet, as the other two
  install_command_id TEXT NOT NULL,
  bind_command_id TEXT NOT NULL,
  issuer_cookie TEXT NOT NULL,
  approval_request_id TEXT NOT NULL,
  chain_pem TEXT NOT NULL,
  serial TEXT NOT NULL,
  thumbprint TEXT NOT NULL,
  failure_reason TEXT NOT NULL,
  evidence BLOB,                     -- NULL: none
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL
) STRICT;
CREATE INDEX renewals_by_agent ON renewals (agent_id, created_at);
CREATE INDEX renewals_by_state ON renewals (state, created_at);
CREATE INDEX renewals_active ON renewals (created_at)
  WHERE state NOT IN ('done', 'rolled_back', 'failed');
CREATE INDEX renewals_by_renew_command ON renewals (renew_command_id);
CREATE INDEX renewals_by_install_command ON renewals (install_command_id);
CREATE INDEX renewals_by_bind_command ON renewals (bind_command_id);
)sql";

// --- SQL, prepared once per connection (Database::PrepareCached) ---

constexpr char kTokenColumns[] =
    "token_hash, fqdn, labels, created_at, expires_at, used_at, used_by_agent, created_by, "
    "agent_id";
constexpr char kAgentColumns[] =
    "id, fqdn, labels, platform, version, enrolled_at, last_seen, identity_serial, "
    "identity_not_after, channel_serial, drift, inventory_generation";
constexpr char kCertificateColumns[] =
    "agent_id, store, thumbprint, location, subject, subject_cn, issuer, dns_names, uris, "
    "serial, channel_serial, sha256, not_before, not_after, key_algorithm, key_bits, "
    "signature_hash, has_key_usage, key_usage, extended_key_usage, is_ca, template_name, "
    "has_private_key, problems, bound, drift";
constexpr int kCertificateColumnCount = 26;

std::string Placeholders(int count) {
  std::string out;
  for (int i = 1; i <= count; ++i) absl::StrAppend(&out, i == 1 ? "" : ", ", "?", i);
  return out;
}

const std::string& InsertTokenSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("INSERT INTO join_tokens (", kTokenColumns, ") VALUES (", Placeholders(9), ")"));
  return *sql;
}
const std::string& SelectTokenSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kTokenColumns, " FROM join_tokens WHERE token_hash = ?1"));
  return *sql;
}
constexpr char kMarkTokenUsedSql[] =
    "UPDATE join_tokens SET used_at = ?2, used_by_agent = ?3 "
    "WHERE token_hash = ?1 AND used_at IS NULL";
const std::string& InsertAgentSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("INSERT INTO agents (", kAgentColumns, ") VALUES (", Placeholders(12), ")"));
  return *sql;
}
const std::string& SelectAgentSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("SELECT ", kAgentColumns, " FROM agents WHERE id = ?1"));
  return *sql;
}
// `fqdn = ?1` compares with the column's NOCASE collation, through agents_by_fqdn.
const std::string& FindAgentSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kAgentColumns,
                   " FROM agents WHERE fqdn = ?1 ORDER BY enrolled_at DESC, rowid DESC LIMIT 1"));
  return *sql;
}
const std::string& ListAgentsSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kAgentColumns, " FROM agents ORDER BY fqdn COLLATE BINARY, id"));
  return *sql;
}
constexpr char kAgentSeenSql[] =
    "UPDATE agents SET platform = ?2, version = ?3, last_seen = ?4 WHERE id = ?1";
constexpr char kAgentBindingSql[] =
    "UPDATE agents SET channel_serial = ?2, drift = ?3, inventory_generation = ?4, "
    "last_seen = ?5 WHERE id = ?1";
constexpr char kAgentGenerationSql[] = "SELECT inventory_generation FROM agents WHERE id = ?1";
constexpr char kDeleteInventorySql[] = "DELETE FROM certificates WHERE agent_id = ?1";
constexpr char kDeleteCertificateSql[] =
    "DELETE FROM certificates WHERE agent_id = ?1 AND store = ?2 AND thumbprint = ?3";
const std::string& InsertCertificateSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("INSERT INTO certificates (", kCertificateColumns, ") VALUES (",
                                   Placeholders(kCertificateColumnCount), ")"));
  return *sql;
}
const std::string& UpsertCertificateSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("INSERT OR REPLACE INTO certificates (", kCertificateColumns,
                                   ") VALUES (", Placeholders(kCertificateColumnCount), ")"));
  return *sql;
}
constexpr char kCommandColumns[] =
    "id, agent_id, kind, payload, deadline, state, created_by, created_at, sent_at, started_at, "
    "finished_at, attempts, cancel_requested, outcome";
const std::string& InsertCommandSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("INSERT INTO commands (", kCommandColumns, ") VALUES (", Placeholders(14), ")"));
  return *sql;
}
const std::string& SelectCommandSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("SELECT ", kCommandColumns, " FROM commands WHERE id = ?1"));
  return *sql;
}
constexpr char kAgentExistsSql[] = "SELECT 1 FROM agents WHERE id = ?1";
// Numbered as kCommandColumns, so that BindCommand serves both; id, agent, kind, deadline and
// creation never change.
constexpr char kUpdateCommandSql[] =
    "UPDATE commands SET payload = ?4, state = ?6, sent_at = ?9, started_at = ?10, "
    "finished_at = ?11, attempts = ?12, cancel_requested = ?13, outcome = ?14 WHERE id = ?1";
// Through commands_by_agent_state, one range per unfinished state.
const std::string& PendingCommandsSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kCommandColumns,
                   " FROM commands WHERE agent_id = ?1 AND state IN ('queued', 'sent', 'running')"
                   " ORDER BY created_at, rowid"));
  return *sql;
}
// ?1 is the later of the two bounds, so that the first terms select a range of
// commands_unfinished_by_deadline; the last term applies the grace to running commands. Without
// statistics the planner would rather walk commands_by_created_at, the whole history, to avoid
// sorting; INDEXED BY keeps the sweep proportional to the queue.
const std::string& ExpirableCommandsSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "SELECT ", kCommandColumns,
      " FROM commands INDEXED BY commands_unfinished_by_deadline"
      " WHERE state IN ('queued', 'sent', 'running') AND deadline < ?1"
      " AND ((state <> 'running' AND deadline < ?2) OR (state = 'running' AND deadline < ?3))"
      " ORDER BY created_at, rowid"));
  return *sql;
}
// The newest ?3 matching commands, newest first (the caller reverses them).
std::string ListCommandsSql(bool by_agent, bool by_state) {
  std::string sql = absl::StrCat("SELECT ", kCommandColumns, " FROM commands");
  if (by_agent || by_state) absl::StrAppend(&sql, " WHERE ");
  if (by_agent) absl::StrAppend(&sql, "agent_id = ?1");
  if (by_agent && by_state) absl::StrAppend(&sql, " AND ");
  if (by_state) absl::StrAppend(&sql, "state = ?2");
  absl::StrAppend(&sql, " ORDER BY created_at DESC, rowid DESC LIMIT ?3");
  return sql;
}

// One statement per combination of filters, so each can use its index. Certificate columns are
// qualified: agents has columns of the same names.
std::string ListCertificatesSql(bool by_agent, bool by_not_after) {
  std::string sql = absl::StrCat("SELECT ",
                                 absl::StrJoin(absl::StrSplit(kCertificateColumns, ", "), ", ",
                                               [](std::string* out, absl::string_view column) {
                                                 absl::StrAppend(out, "c.", column);
                                               }),
                                 " FROM certificates AS c JOIN agents AS a ON a.id = c.agent_id");
  if (by_agent || by_not_after) absl::StrAppend(&sql, " WHERE ");
  if (by_agent) absl::StrAppend(&sql, "c.agent_id = ?1");
  if (by_agent && by_not_after) absl::StrAppend(&sql, " AND ");
  if (by_not_after) absl::StrAppend(&sql, "c.not_after < ?2");
  absl::StrAppend(&sql,
                  " ORDER BY a.fqdn COLLATE BINARY, c.agent_id, c.store, c.not_after, "
                  "c.thumbprint");
  return sql;
}

constexpr char kIssuanceColumns[] =
    "serial, issuer, renewal_id, agent_id, fqdn, thumbprint, not_before, not_after, issued_at, "
    "certificate_pem";
const std::string& InsertIssuanceSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "INSERT INTO issuances (", kIssuanceColumns, ") VALUES (", Placeholders(10), ")"));
  return *sql;
}
const std::string& ListIssuancesSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kIssuanceColumns,
                   " FROM issuances WHERE renewal_id = ?1 ORDER BY issued_at, rowid"));
  return *sql;
}

constexpr char kApprovalColumns[] =
    "id, issuer, renewal_id, agent_id, fqdn, csr_pem, profile_name, state, decided_by, reason, "
    "chain_pem, created_at, decided_at";
const std::string& InsertApprovalSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "INSERT INTO approval_requests (", kApprovalColumns, ") VALUES (", Placeholders(13), ")"));
  return *sql;
}
const std::string& SelectApprovalSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kApprovalColumns, " FROM approval_requests WHERE id = ?1"));
  return *sql;
}
// Numbered as kApprovalColumns, so that BindApproval serves both; only the id never changes.
constexpr char kUpdateApprovalSql[] =
    "UPDATE approval_requests SET issuer = ?2, renewal_id = ?3, agent_id = ?4, fqdn = ?5, "
    "csr_pem = ?6, profile_name = ?7, state = ?8, decided_by = ?9, reason = ?10, chain_pem = ?11, "
    "created_at = ?12, decided_at = ?13 WHERE id = ?1";
constexpr char kApprovalStateSql[] = "SELECT state FROM approval_requests WHERE id = ?1";
std::string ListApprovalsSql(bool by_state) {
  return absl::StrCat("SELECT ", kApprovalColumns, " FROM approval_requests",
                      by_state ? " WHERE state = ?1" : "", " ORDER BY created_at, rowid");
}

constexpr char kRenewalColumns[] =
    "id, agent_id, fqdn, profile, issuer, bind, state, steps, csr_pem, renew_command_id, "
    "install_command_id, bind_command_id, issuer_cookie, approval_request_id, chain_pem, serial, "
    "thumbprint, failure_reason, evidence, created_by, created_at, updated_at, next_attempt_at";
const std::string& InsertRenewalSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("INSERT INTO renewals (", kRenewalColumns, ") VALUES (", Placeholders(23), ")"));
  return *sql;
}
const std::string& SelectRenewalSql() {
  static const std::string* sql =
      new std::string(absl::StrCat("SELECT ", kRenewalColumns, " FROM renewals WHERE id = ?1"));
  return *sql;
}
// Numbered as kRenewalColumns, so that BindRenewal serves both; the id and the agent never
// change.
constexpr char kUpdateRenewalSql[] =
    "UPDATE renewals SET fqdn = ?3, profile = ?4, issuer = ?5, bind = ?6, state = ?7, steps = ?8, "
    "csr_pem = ?9, renew_command_id = ?10, install_command_id = ?11, bind_command_id = ?12, "
    "issuer_cookie = ?13, approval_request_id = ?14, chain_pem = ?15, serial = ?16, "
    "thumbprint = ?17, failure_reason = ?18, evidence = ?19, created_by = ?20, created_at = ?21, "
    "updated_at = ?22, next_attempt_at = ?23 WHERE id = ?1";
constexpr char kRenewalStateSql[] = "SELECT state, agent_id FROM renewals WHERE id = ?1";
// Each term of the OR has its own index (SQLite's OR-by-union); the newest job wins if several
// name the command.
const std::string& FindRenewalByCommandSql() {
  static const std::string* sql = new std::string(
      absl::StrCat("SELECT ", kRenewalColumns,
                   " FROM renewals WHERE renew_command_id = ?1 OR install_command_id = ?1"
                   " OR bind_command_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"));
  return *sql;
}
// The newest ?3 matching jobs, newest first (the caller reverses them). The active-only term is
// the WHERE of renewals_active, word for word, so that the planner can use that index.
std::string ListRenewalsSql(bool by_agent, bool by_state, bool active_only) {
  std::vector<absl::string_view> terms;
  if (by_agent) terms.push_back("agent_id = ?1");
  if (by_state) terms.push_back("state = ?2");
  if (active_only) terms.push_back("state NOT IN ('done', 'rolled_back', 'failed')");
  return absl::StrCat("SELECT ", kRenewalColumns, " FROM renewals", terms.empty() ? "" : " WHERE ",
                      absl::StrJoin(terms, " AND "),
                      " ORDER BY created_at DESC, rowid DESC LIMIT ?3");
}

// --- Validation ---

absl::Status ValidateAgent(const AgentRecord& agent) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent.id, "agent id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent.fqdn, "agent FQDN"), "agent ", agent.id);
  return absl::OkStatus();
}

absl::Status ValidateCertificate(absl::string_view agent_id, const CertificateRecord& cert) {
  if (!cert.agent_id.empty() && cert.agent_id != agent_id) {
    return absl::InvalidArgumentError(absl::StrCat("certificate ", cert.Key(), " belongs to agent ",
                                                   cert.agent_id, ", not ", agent_id));
  }
  CF_RETURN_IF_ERROR(RequireNonEmpty(cert.store, "certificate store"), "certificate ",
                     cert.info.thumbprint);
  CF_RETURN_IF_ERROR(RequireNonEmpty(cert.info.thumbprint, "certificate thumbprint"),
                     "certificate in store ", cert.store);
  if (absl::StrContains(cert.info.thumbprint, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate thumbprint '", cert.info.thumbprint, "' contains '/'"));
  }
  return absl::OkStatus();
}

// Splits a CertificateRecord::Key(), "<store>/<thumbprint>"; thumbprints never hold '/'.
absl::StatusOr<std::pair<absl::string_view, absl::string_view>> SplitKey(absl::string_view key) {
  size_t slash = key.rfind('/');
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == key.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate key '", key, "' is not <store>/<thumbprint>"));
  }
  return std::make_pair(key.substr(0, slash), key.substr(slash + 1));
}

// --- Rows to records ---

absl::Status DataLossIn(const absl::Status& status, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("stored ", what, ": ", status.message()));
}

absl::StatusOr<JoinTokenRecord> ReadToken(const Statement& row) {
  JoinTokenRecord token;
  token.token_hash = row.ColumnText(0);
  token.fqdn = row.ColumnOptionalText(1);
  absl::StatusOr<std::map<std::string, std::string>> labels = DecodeStringMap(row.ColumnBlob(2));
  if (!labels.ok()) return DataLossIn(labels.status(), "labels of a join token");
  token.labels = *std::move(labels);
  token.created_at = MicrosToTime(row.ColumnInt64(3));
  token.expires_at = MicrosToTime(row.ColumnInt64(4));
  if (std::optional<int64_t> used_at = row.ColumnOptionalInt64(5)) {
    token.used_at = MicrosToTime(*used_at);
  }
  token.used_by_agent = row.ColumnText(6);
  token.created_by = row.ColumnText(7);
  token.agent_id = row.ColumnText(8);
  return token;
}

absl::StatusOr<AgentRecord> ReadAgent(const Statement& row) {
  AgentRecord agent;
  agent.id = row.ColumnText(0);
  agent.fqdn = row.ColumnText(1);
  absl::StatusOr<std::map<std::string, std::string>> labels = DecodeStringMap(row.ColumnBlob(2));
  if (!labels.ok()) return DataLossIn(labels.status(), absl::StrCat("labels of agent ", agent.id));
  agent.labels = *std::move(labels);
  agent.platform = row.ColumnText(3);
  agent.version = row.ColumnText(4);
  agent.enrolled_at = MicrosToTime(row.ColumnInt64(5));
  if (std::optional<int64_t> last_seen = row.ColumnOptionalInt64(6)) {
    agent.last_seen = MicrosToTime(*last_seen);
  }
  agent.identity_serial = row.ColumnText(7);
  agent.identity_not_after = MicrosToTime(row.ColumnInt64(8));
  agent.channel_serial = row.ColumnText(9);
  absl::StatusOr<std::vector<std::string>> drift = DecodeStringList(row.ColumnBlob(10));
  if (!drift.ok()) return DataLossIn(drift.status(), absl::StrCat("drift of agent ", agent.id));
  agent.drift = *std::move(drift);
  agent.inventory_generation = static_cast<uint64_t>(row.ColumnInt64(11));
  return agent;
}

absl::Status BindAgent(Statement& stmt, const AgentRecord& agent) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, agent.id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, agent.fqdn));
  CF_RETURN_IF_ERROR(stmt.BindBlob(3, EncodeStringMap(agent.labels)));
  CF_RETURN_IF_ERROR(stmt.BindText(4, agent.platform));
  CF_RETURN_IF_ERROR(stmt.BindText(5, agent.version));
  CF_RETURN_IF_ERROR(stmt.BindInt64(6, TimeToMicros(agent.enrolled_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(
      7, agent.last_seen ? std::optional<int64_t>(TimeToMicros(*agent.last_seen)) : std::nullopt));
  CF_RETURN_IF_ERROR(stmt.BindText(8, agent.identity_serial));
  CF_RETURN_IF_ERROR(stmt.BindInt64(9, TimeToMicros(agent.identity_not_after)));
  CF_RETURN_IF_ERROR(stmt.BindText(10, agent.channel_serial));
  CF_RETURN_IF_ERROR(stmt.BindBlob(11, EncodeStringList(agent.drift)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(12, static_cast<int64_t>(agent.inventory_generation)));
  return absl::OkStatus();
}

absl::Status BindCertificate(Statement& stmt, absl::string_view agent_id,
                             const CertificateRecord& cert) {
  const common::model::CertificateInfo& info = cert.info;
  CF_RETURN_IF_ERROR(stmt.BindText(1, agent_id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, cert.store));
  CF_RETURN_IF_ERROR(stmt.BindText(3, info.thumbprint));
  CF_RETURN_IF_ERROR(stmt.BindText(4, cert.location));
  CF_RETURN_IF_ERROR(stmt.BindText(5, info.subject));
  CF_RETURN_IF_ERROR(stmt.BindText(6, info.subject_cn));
  CF_RETURN_IF_ERROR(stmt.BindText(7, info.issuer));
  CF_RETURN_IF_ERROR(stmt.BindBlob(8, EncodeStringList(info.dns_names)));
  CF_RETURN_IF_ERROR(stmt.BindBlob(9, EncodeStringList(info.uris)));
  CF_RETURN_IF_ERROR(stmt.BindText(10, info.serial));
  CF_RETURN_IF_ERROR(stmt.BindText(11, info.channel_serial));
  CF_RETURN_IF_ERROR(stmt.BindText(12, info.sha256));
  CF_RETURN_IF_ERROR(stmt.BindInt64(13, TimeToMicros(info.not_before)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(14, TimeToMicros(info.not_after)));
  CF_RETURN_IF_ERROR(stmt.BindText(15, info.key_algorithm));
  CF_RETURN_IF_ERROR(stmt.BindInt64(16, info.key_bits));
  CF_RETURN_IF_ERROR(stmt.BindText(17, info.signature_hash));
  CF_RETURN_IF_ERROR(stmt.BindInt64(18, info.has_key_usage ? 1 : 0));
  CF_RETURN_IF_ERROR(stmt.BindInt64(19, info.key_usage));
  CF_RETURN_IF_ERROR(stmt.BindBlob(20, EncodeStringList(info.extended_key_usage)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(21, info.is_ca ? 1 : 0));
  CF_RETURN_IF_ERROR(stmt.BindText(22, info.template_name));
  CF_RETURN_IF_ERROR(stmt.BindInt64(23, info.has_private_key ? 1 : 0));
  CF_RETURN_IF_ERROR(stmt.BindBlob(24, EncodeStringList(cert.problems)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(25, cert.bound ? 1 : 0));
  CF_RETURN_IF_ERROR(stmt.BindBlob(26, EncodeStringList(cert.drift)));
  return absl::OkStatus();
}

// Reads the certificate in `row`; `problems` and `drift` are decoded already (the caller filters
// on them first).
absl::StatusOr<CertificateRecord> ReadCertificate(const Statement& row,
                                                  std::vector<std::string> problems,
                                                  std::vector<std::string> drift) {
  CertificateRecord cert;
  common::model::CertificateInfo& info = cert.info;
  cert.agent_id = row.ColumnText(0);
  cert.store = row.ColumnText(1);
  info.thumbprint = row.ColumnText(2);
  cert.location = row.ColumnText(3);
  info.subject = row.ColumnText(4);
  info.subject_cn = row.ColumnText(5);
  info.issuer = row.ColumnText(6);
  const std::string what = absl::StrCat("certificate ", cert.Key(), " of agent ", cert.agent_id);
  absl::StatusOr<std::vector<std::string>> dns_names = DecodeStringList(row.ColumnBlob(7));
  if (!dns_names.ok()) return DataLossIn(dns_names.status(), what);
  info.dns_names = *std::move(dns_names);
  absl::StatusOr<std::vector<std::string>> uris = DecodeStringList(row.ColumnBlob(8));
  if (!uris.ok()) return DataLossIn(uris.status(), what);
  info.uris = *std::move(uris);
  info.serial = row.ColumnText(9);
  info.channel_serial = row.ColumnText(10);
  info.sha256 = row.ColumnText(11);
  info.not_before = MicrosToTime(row.ColumnInt64(12));
  info.not_after = MicrosToTime(row.ColumnInt64(13));
  info.key_algorithm = row.ColumnText(14);
  info.key_bits = static_cast<int>(row.ColumnInt64(15));
  info.signature_hash = row.ColumnText(16);
  info.has_key_usage = row.ColumnInt64(17) != 0;
  info.key_usage = static_cast<uint32_t>(row.ColumnInt64(18));
  absl::StatusOr<std::vector<std::string>> eku = DecodeStringList(row.ColumnBlob(19));
  if (!eku.ok()) return DataLossIn(eku.status(), what);
  info.extended_key_usage = *std::move(eku);
  info.is_ca = row.ColumnInt64(20) != 0;
  info.template_name = row.ColumnText(21);
  info.has_private_key = row.ColumnInt64(22) != 0;
  cert.problems = std::move(problems);
  cert.bound = row.ColumnInt64(24) != 0;
  cert.drift = std::move(drift);
  return cert;
}

absl::StatusOr<CommandRecord> ReadCommand(const Statement& row) {
  CommandRecord record;
  common::model::Command& command = record.command;
  command.id = row.ColumnText(0);
  command.agent_id = row.ColumnText(1);
  const std::string what = absl::StrCat("command ", command.id);
  const std::string kind_name = row.ColumnText(2);
  std::optional<common::model::CommandKind> kind = common::model::CommandKindFromName(kind_name);
  if (!kind.has_value()) {
    return absl::DataLossError(
        absl::StrCat("stored ", what, " has unknown kind '", kind_name, "'"));
  }
  absl::StatusOr<common::model::CommandPayload> payload =
      DecodeCommandPayload(*kind, row.ColumnBlob(3));
  if (!payload.ok()) return DataLossIn(payload.status(), what);
  command.payload = *std::move(payload);
  command.deadline = MicrosToTime(row.ColumnInt64(4));
  const std::string state_name = row.ColumnText(5);
  std::optional<common::model::CommandState> state =
      common::model::CommandStateFromName(state_name);
  if (!state.has_value()) {
    return absl::DataLossError(
        absl::StrCat("stored ", what, " has unknown state '", state_name, "'"));
  }
  record.state = *state;
  record.created_by = row.ColumnText(6);
  record.created_at = MicrosToTime(row.ColumnInt64(7));
  record.sent_at = OptionalTime(row.ColumnOptionalInt64(8));
  record.started_at = OptionalTime(row.ColumnOptionalInt64(9));
  record.finished_at = OptionalTime(row.ColumnOptionalInt64(10));
  record.attempts = static_cast<int>(row.ColumnInt64(11));
  record.cancel_requested = row.ColumnInt64(12) != 0;
  if (!row.ColumnIsNull(13)) {
    absl::StatusOr<common::model::CommandOutcome> outcome =
        DecodeCommandOutcome(record.state, row.ColumnBlob(13));
    if (!outcome.ok()) return DataLossIn(outcome.status(), what);
    record.outcome = *std::move(outcome);
  }
  return record;
}

// Binds every column of `record`, numbered as in kCommandColumns (?1 id ... ?14 outcome); the
// UPDATE uses the same numbers for the columns it sets.
absl::Status BindCommand(Statement& stmt, const CommandRecord& record) {
  const common::model::Command& command = record.command;
  CF_RETURN_IF_ERROR(stmt.BindText(1, command.id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, command.agent_id));
  CF_RETURN_IF_ERROR(
      stmt.BindText(3, common::model::CommandKindName(common::model::KindOf(command.payload))));
  CF_RETURN_IF_ERROR(stmt.BindBlob(4, EncodeCommandPayload(command.payload)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(5, TimeToMicros(command.deadline)));
  CF_RETURN_IF_ERROR(stmt.BindText(6, common::model::CommandStateName(record.state)));
  CF_RETURN_IF_ERROR(stmt.BindText(7, record.created_by));
  CF_RETURN_IF_ERROR(stmt.BindInt64(8, TimeToMicros(record.created_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(9, OptionalMicros(record.sent_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(10, OptionalMicros(record.started_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(11, OptionalMicros(record.finished_at)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(12, record.attempts));
  CF_RETURN_IF_ERROR(stmt.BindInt64(13, record.cancel_requested ? 1 : 0));
  if (record.outcome.has_value()) {
    CF_RETURN_IF_ERROR(stmt.BindBlob(14, EncodeCommandOutcome(*record.outcome)));
  } else {
    CF_RETURN_IF_ERROR(stmt.BindNull(14));
  }
  return absl::OkStatus();
}

// Empties the secrets of `payload`; true when there was one.
// An import's password and its file (a PEM may hold an unencrypted private key) are needed only
// until the command is final.
bool ScrubSecrets(common::model::CommandPayload& payload) {
  auto* import = std::get_if<common::model::ImportPayload>(&payload);
  if (import == nullptr || (import->password.empty() && import->data.empty())) return false;
  import->password.clear();
  import->data.clear();
  return true;
}

absl::Status FinalError(const CommandRecord& command, absl::string_view doing) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", doing, " command ", command.command.id, ": it is already ",
                   common::model::CommandStateName(command.state)));
}

bool Contains(const std::vector<std::string>& codes, absl::string_view code) {
  for (const std::string& c : codes) {
    if (c == code) return true;
  }
  return false;
}

absl::Status BindIssuance(Statement& stmt, const IssuanceRecord& issuance) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, issuance.serial));
  CF_RETURN_IF_ERROR(stmt.BindText(2, issuance.issuer));
  CF_RETURN_IF_ERROR(stmt.BindText(3, issuance.renewal_id));
  CF_RETURN_IF_ERROR(stmt.BindText(4, issuance.agent_id));
  CF_RETURN_IF_ERROR(stmt.BindText(5, issuance.fqdn));
  CF_RETURN_IF_ERROR(stmt.BindText(6, issuance.thumbprint));
  CF_RETURN_IF_ERROR(stmt.BindInt64(7, TimeToMicros(issuance.not_before)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(8, TimeToMicros(issuance.not_after)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(9, TimeToMicros(issuance.issued_at)));
  CF_RETURN_IF_ERROR(stmt.BindText(10, issuance.certificate_pem));
  return absl::OkStatus();
}

IssuanceRecord ReadIssuance(const Statement& row) {
  IssuanceRecord issuance;
  issuance.serial = row.ColumnText(0);
  issuance.issuer = row.ColumnText(1);
  issuance.renewal_id = row.ColumnText(2);
  issuance.agent_id = row.ColumnText(3);
  issuance.fqdn = row.ColumnText(4);
  issuance.thumbprint = row.ColumnText(5);
  issuance.not_before = MicrosToTime(row.ColumnInt64(6));
  issuance.not_after = MicrosToTime(row.ColumnInt64(7));
  issuance.issued_at = MicrosToTime(row.ColumnInt64(8));
  issuance.certificate_pem = row.ColumnText(9);
  return issuance;
}

// Binds every column of `request`, numbered as in kApprovalColumns.
absl::Status BindApproval(Statement& stmt, const ApprovalRequestRecord& request) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, request.id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, request.issuer));
  CF_RETURN_IF_ERROR(stmt.BindText(3, request.renewal_id));
  CF_RETURN_IF_ERROR(stmt.BindText(4, request.agent_id));
  CF_RETURN_IF_ERROR(stmt.BindText(5, request.fqdn));
  CF_RETURN_IF_ERROR(stmt.BindText(6, request.csr_pem));
  CF_RETURN_IF_ERROR(stmt.BindText(7, request.profile_name));
  CF_RETURN_IF_ERROR(stmt.BindText(8, common::model::ApprovalStateName(request.state)));
  CF_RETURN_IF_ERROR(stmt.BindText(9, request.decided_by));
  CF_RETURN_IF_ERROR(stmt.BindText(10, request.reason));
  CF_RETURN_IF_ERROR(stmt.BindText(11, request.chain_pem));
  CF_RETURN_IF_ERROR(stmt.BindInt64(12, TimeToMicros(request.created_at)));
  CF_RETURN_IF_ERROR(stmt.BindOptionalInt64(13, OptionalMicros(request.decided_at)));
  return absl::OkStatus();
}

absl::StatusOr<common::model::ApprovalState> ApprovalStateOf(const std::string& name,
                                                             absl::string_view id) {
  std::optional<common::model::ApprovalState> state = common::model::ApprovalStateFromName(name);
  if (!state.has_value()) {
    return absl::DataLossError(
        absl::StrCat("stored approval request ", id, " has unknown state '", name, "'"));
  }
  return *state;
}

absl::StatusOr<ApprovalRequestRecord> ReadApproval(const Statement& row) {
  ApprovalRequestRecord request;
  request.id = row.ColumnText(0);
  request.issuer = row.ColumnText(1);
  request.renewal_id = row.ColumnText(2);
  request.agent_id = row.ColumnText(3);
  request.fqdn = row.ColumnText(4);
  request.csr_pem = row.ColumnText(5);
  request.profile_name = row.ColumnText(6);
  CF_ASSIGN_OR_RETURN(request.state, ApprovalStateOf(row.ColumnText(7), request.id));
  request.decided_by = row.ColumnText(8);
  request.reason = row.ColumnText(9);
  request.chain_pem = row.ColumnText(10);
  request.created_at = MicrosToTime(row.ColumnInt64(11));
  request.decided_at = OptionalTime(row.ColumnOptionalInt64(12));
  return request;
}

// Binds every column of `renewal`, numbered as in kRenewalColumns.
absl::Status BindRenewal(Statement& stmt, const RenewalRecord& renewal) {
  CF_RETURN_IF_ERROR(stmt.BindText(1, renewal.id));
  CF_RETURN_IF_ERROR(stmt.BindText(2, renewal.agent_id));
  CF_RETURN_IF_ERROR(stmt.BindText(3, renewal.fqdn));
  CF_RETURN_IF_ERROR(stmt.BindBlob(4, EncodeProfile(renewal.profile)));
  CF_RETURN_IF_ERROR(stmt.BindText(5, renewal.issuer));
  CF_RETURN_IF_ERROR(stmt.BindInt64(6, renewal.bind ? 1 : 0));
  CF_RETURN_IF_ERROR(stmt.BindText(7, common::model::RenewalStateName(renewal.state)));
  CF_RETURN_IF_ERROR(stmt.BindBlob(8, EncodeRenewalSteps(renewal.steps)));
  CF_RETURN_IF_ERROR(stmt.BindText(9, renewal.csr_pem));
  CF_RETURN_IF_ERROR(stmt.BindText(10, renewal.renew_command_id));
  CF_RETURN_IF_ERROR(stmt.BindText(11, renewal.install_command_id));
  CF_RETURN_IF_ERROR(stmt.BindText(12, renewal.bind_command_id));
  CF_RETURN_IF_ERROR(stmt.BindText(13, renewal.issuer_cookie));
  CF_RETURN_IF_ERROR(stmt.BindText(14, renewal.approval_request_id));
  CF_RETURN_IF_ERROR(stmt.BindText(15, renewal.chain_pem));
  CF_RETURN_IF_ERROR(stmt.BindText(16, renewal.serial));
  CF_RETURN_IF_ERROR(stmt.BindText(17, renewal.thumbprint));
  CF_RETURN_IF_ERROR(stmt.BindText(18, renewal.failure_reason));
  if (renewal.evidence.has_value()) {
    CF_RETURN_IF_ERROR(stmt.BindBlob(19, EncodeCommandResult(*renewal.evidence)));
  } else {
    CF_RETURN_IF_ERROR(stmt.BindNull(19));
  }
  CF_RETURN_IF_ERROR(stmt.BindText(20, renewal.created_by));
  CF_RETURN_IF_ERROR(stmt.BindInt64(21, TimeToMicros(renewal.created_at)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(22, TimeToMicros(renewal.updated_at)));
  CF_RETURN_IF_ERROR(stmt.BindInt64(23, TimeToMicros(renewal.next_attempt_at)));
  return absl::OkStatus();
}

absl::StatusOr<common::model::RenewalState> RenewalStateOf(const std::string& name,
                                                           absl::string_view id) {
  std::optional<common::model::RenewalState> state = common::model::RenewalStateFromName(name);
  if (!state.has_value()) {
    return absl::DataLossError(
        absl::StrCat("stored renewal ", id, " has unknown state '", name, "'"));
  }
  return *state;
}

absl::StatusOr<RenewalRecord> ReadRenewal(const Statement& row) {
  RenewalRecord renewal;
  renewal.id = row.ColumnText(0);
  const std::string what = absl::StrCat("renewal ", renewal.id);
  renewal.agent_id = row.ColumnText(1);
  renewal.fqdn = row.ColumnText(2);
  absl::StatusOr<common::model::CertificateProfile> profile = DecodeProfile(row.ColumnBlob(3));
  if (!profile.ok()) return DataLossIn(profile.status(), what);
  renewal.profile = *std::move(profile);
  renewal.issuer = row.ColumnText(4);
  renewal.bind = row.ColumnInt64(5) != 0;
  CF_ASSIGN_OR_RETURN(renewal.state, RenewalStateOf(row.ColumnText(6), renewal.id));
  absl::StatusOr<std::vector<RenewalStep>> steps = DecodeRenewalSteps(row.ColumnBlob(7));
  if (!steps.ok()) return DataLossIn(steps.status(), what);
  renewal.steps = *std::move(steps);
  renewal.csr_pem = row.ColumnText(8);
  renewal.renew_command_id = row.ColumnText(9);
  renewal.install_command_id = row.ColumnText(10);
  renewal.bind_command_id = row.ColumnText(11);
  renewal.issuer_cookie = row.ColumnText(12);
  renewal.approval_request_id = row.ColumnText(13);
  renewal.chain_pem = row.ColumnText(14);
  renewal.serial = row.ColumnText(15);
  renewal.thumbprint = row.ColumnText(16);
  renewal.failure_reason = row.ColumnText(17);
  if (!row.ColumnIsNull(18)) {
    absl::StatusOr<common::model::CommandResult> evidence = DecodeCommandResult(row.ColumnBlob(18));
    if (!evidence.ok()) return DataLossIn(evidence.status(), absl::StrCat("evidence of ", what));
    renewal.evidence = *std::move(evidence);
  }
  renewal.created_by = row.ColumnText(19);
  renewal.created_at = MicrosToTime(row.ColumnInt64(20));
  renewal.updated_at = MicrosToTime(row.ColumnInt64(21));
  renewal.next_attempt_at = MicrosToTime(row.ColumnInt64(22));
  return renewal;
}

// Runs `query` (bound already) to its end and decodes every row with `read`.
}  // namespace

const std::vector<Migration>& SqliteStore::Migrations() {
  static const std::vector<Migration>* migrations = new std::vector<Migration>{
      {1, "join tokens, agents, certificates", kSchemaV1},
      {2, "commands", kSchemaV2},
      {3, "renewals, issuances, approval requests; renew and install commands", kSchemaV3},
      {4, "at most one active renewal per agent", kSchemaV4},
      {5, "re-enrollment tokens, audit log, campaigns, scheduler state, notifications", kSchemaV5},
  };
  return *migrations;
}

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const Options& options) {
  Database::Options db_options;
  db_options.busy_timeout = options.busy_timeout;
  db_options.quick_check = options.quick_check;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(options.path, db_options));
  // Freed row and page space is zeroed, so a scrubbed secret does not linger in the file.
  CF_RETURN_IF_ERROR(db->Execute("PRAGMA secure_delete=ON"), "opening store ", options.path);
  CF_RETURN_IF_ERROR(common::sqlite::Migrate(*db, Migrations()));
  // Preparing every statement now reads the whole schema: a corrupt schema, or SQL that does not
  // match it, fails here rather than on the first call.
  const std::string statements[] = {
      InsertTokenSql(),
      SelectTokenSql(),
      kMarkTokenUsedSql,
      InsertAgentSql(),
      SelectAgentSql(),
      FindAgentSql(),
      ListAgentsSql(),
      kAgentSeenSql,
      kAgentBindingSql,
      kAgentGenerationSql,
      kDeleteInventorySql,
      kDeleteCertificateSql,
      InsertCertificateSql(),
      UpsertCertificateSql(),
      ListCertificatesSql(false, false),
      ListCertificatesSql(true, false),
      ListCertificatesSql(false, true),
      ListCertificatesSql(true, true),
      InsertCommandSql(),
      SelectCommandSql(),
      kAgentExistsSql,
      kUpdateCommandSql,
      PendingCommandsSql(),
      ExpirableCommandsSql(),
      ListCommandsSql(false, false),
      ListCommandsSql(true, false),
      ListCommandsSql(false, true),
      ListCommandsSql(true, true),
      InsertIssuanceSql(),
      ListIssuancesSql(),
      InsertApprovalSql(),
      SelectApprovalSql(),
      kUpdateApprovalSql,
      kApprovalStateSql,
      ListApprovalsSql(false),
      ListApprovalsSql(true),
      InsertRenewalSql(),
      SelectRenewalSql(),
      kUpdateRenewalSql,
      kRenewalStateSql,
      FindRenewalByCommandSql(),
  };
  for (const std::string& sql : statements) {
    CF_RETURN_IF_ERROR(db->PrepareCached(sql).status(), "opening store ", options.path);
  }
  // Every combination of ListRenewals' three filters.
  for (bool by_agent : {false, true}) {
    for (bool by_state : {false, true}) {
      for (bool active_only : {false, true}) {
        CF_RETURN_IF_ERROR(
            db->PrepareCached(ListRenewalsSql(by_agent, by_state, active_only)).status(),
            "opening store ", options.path);
      }
    }
  }
  return std::unique_ptr<Store>(new SqliteStore(std::move(db)));
}

// --- Join tokens ---

absl::Status SqliteStore::CreateJoinToken(const JoinTokenRecord& token) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(token.token_hash, "join token hash"));
  if (token.fqdn.has_value()) {
    CF_RETURN_IF_ERROR(RequireNonEmpty(*token.fqdn, "join token FQDN"));
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(InsertTokenSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, token.token_hash));
  CF_RETURN_IF_ERROR(stmt->BindOptionalText(2, token.fqdn));
  CF_RETURN_IF_ERROR(stmt->BindBlob(3, EncodeStringMap(token.labels)));
  CF_RETURN_IF_ERROR(stmt->BindInt64(4, TimeToMicros(token.created_at)));
  CF_RETURN_IF_ERROR(stmt->BindInt64(5, TimeToMicros(token.expires_at)));
  CF_RETURN_IF_ERROR(stmt->BindOptionalInt64(
      6, token.used_at ? std::optional<int64_t>(TimeToMicros(*token.used_at)) : std::nullopt));
  CF_RETURN_IF_ERROR(stmt->BindText(7, token.used_by_agent));
  CF_RETURN_IF_ERROR(stmt->BindText(8, token.created_by));
  CF_RETURN_IF_ERROR(stmt->BindText(9, token.agent_id));
  absl::Status status = stmt->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError("a join token with this hash already exists");
  }
  return common::Annotate(status, "creating join token");
}

absl::StatusOr<JoinTokenRecord> SqliteStore::ConsumeJoinTokenLocked(absl::string_view token_hash,
                                                                    absl::string_view fqdn,
                                                                    absl::string_view agent_id,
                                                                    absl::Time now) {
  return ConsumeTokenLocked(token_hash, fqdn, agent_id, now, /*reenrollment=*/false);
}

absl::StatusOr<JoinTokenRecord> SqliteStore::ConsumeTokenLocked(absl::string_view token_hash,
                                                                absl::string_view fqdn,
                                                                absl::string_view agent_id,
                                                                absl::Time now, bool reenrollment) {
  CF_ASSIGN_OR_RETURN(Statement * select, db_->PrepareCached(SelectTokenSql()));
  CF_RETURN_IF_ERROR(select->BindText(1, token_hash));
  CF_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return absl::NotFoundError("unknown join token");
  absl::StatusOr<JoinTokenRecord> token = ReadToken(*select);
  select->Reset();
  if (!token.ok()) return token.status();

  if (token->used_at.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("join token already used by agent ", token->used_by_agent));
  }
  if (now >= token->expires_at) return absl::FailedPreconditionError("join token expired");
  // A re-enrollment token never creates an agent, and a join token never re-enrolls one.
  if (!reenrollment && !token->agent_id.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("this is a re-enrollment token for agent ", token->agent_id,
                     "; only that agent (with its state directory) may use it"));
  }
  if (reenrollment && token->agent_id.empty()) {
    return absl::PermissionDeniedError(
        "this join token enrolls a new agent; re-enrolling an agent needs a re-enrollment token "
        "bound to it");
  }
  if (reenrollment && token->agent_id != agent_id) {
    return absl::PermissionDeniedError(absl::StrCat("this re-enrollment token is bound to agent ",
                                                    token->agent_id, ", not ", agent_id));
  }
  if (token->fqdn.has_value() && !absl::EqualsIgnoreCase(*token->fqdn, fqdn)) {
    return absl::PermissionDeniedError(
        absl::StrCat("join token is bound to another FQDN than ", fqdn));
  }

  CF_ASSIGN_OR_RETURN(Statement * mark, db_->PrepareCached(kMarkTokenUsedSql));
  CF_RETURN_IF_ERROR(mark->BindText(1, token_hash));
  CF_RETURN_IF_ERROR(mark->BindInt64(2, TimeToMicros(now)));
  CF_RETURN_IF_ERROR(mark->BindText(3, agent_id));
  CF_RETURN_IF_ERROR(mark->Run());
  if (db_->changes() != 1) {
    // The row was read as unused in this same transaction.
    return absl::InternalError("join token changed under a write transaction");
  }
  token->used_at = MicrosToTime(TimeToMicros(now));
  token->used_by_agent = std::string(agent_id);
  return token;
}

absl::StatusOr<JoinTokenRecord> SqliteStore::ConsumeJoinToken(absl::string_view token_hash,
                                                              absl::string_view fqdn,
                                                              absl::string_view agent_id,
                                                              absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(token_hash, "join token hash"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(fqdn, "FQDN"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "consuming join token");
  CF_ASSIGN_OR_RETURN(JoinTokenRecord token,
                      ConsumeJoinTokenLocked(token_hash, fqdn, agent_id, now));
  CF_RETURN_IF_ERROR(txn.Commit(), "consuming join token");
  return token;
}

// --- Agents ---

absl::Status SqliteStore::InsertAgentLocked(const AgentRecord& agent) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(InsertAgentSql()));
  CF_RETURN_IF_ERROR(BindAgent(*stmt, agent));
  absl::Status status = stmt->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("agent ", agent.id, " already exists"));
  }
  return common::Annotate(status, absl::StrCat("creating agent ", agent.id));
}

absl::Status SqliteStore::CreateAgent(const AgentRecord& agent) {
  CF_RETURN_IF_ERROR(ValidateAgent(agent));
  absl::MutexLock lock(&mu_);
  return InsertAgentLocked(agent);
}

absl::StatusOr<JoinTokenRecord> SqliteStore::EnrollAgent(absl::string_view token_hash,
                                                         const AgentRecord& agent, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(token_hash, "join token hash"));
  CF_RETURN_IF_ERROR(ValidateAgent(agent));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "enrolling agent ", agent.id);
  CF_ASSIGN_OR_RETURN(JoinTokenRecord token,
                      ConsumeJoinTokenLocked(token_hash, agent.fqdn, agent.id, now));
  // The token's labels win over the agent's on a shared key.
  AgentRecord enrolled = agent;
  for (const auto& [key, value] : token.labels) enrolled.labels[key] = value;
  // On failure the transaction rolls back, and the token stays unused.
  CF_RETURN_IF_ERROR(InsertAgentLocked(enrolled));
  CF_RETURN_IF_ERROR(txn.Commit(), "enrolling agent ", agent.id);
  return token;
}

absl::StatusOr<AgentRecord> SqliteStore::GetAgent(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectAgentSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading agent ", id);
  if (!found) return absl::NotFoundError(absl::StrCat("agent ", id, " not found"));
  absl::StatusOr<AgentRecord> agent = ReadAgent(*stmt);
  stmt->Reset();
  return agent;
}

absl::StatusOr<AgentRecord> SqliteStore::FindAgentByFqdn(absl::string_view fqdn) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(fqdn, "FQDN"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(FindAgentSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, fqdn));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "finding agent ", fqdn);
  if (!found) return absl::NotFoundError(absl::StrCat("no agent has FQDN ", fqdn));
  absl::StatusOr<AgentRecord> agent = ReadAgent(*stmt);
  stmt->Reset();
  return agent;
}

absl::StatusOr<std::vector<AgentRecord>> SqliteStore::ListAgents() {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(ListAgentsSql()));
  std::vector<AgentRecord> agents;
  while (true) {
    CF_ASSIGN_OR_RETURN(bool row, stmt->Step(), "listing agents");
    if (!row) break;
    absl::StatusOr<AgentRecord> agent = ReadAgent(*stmt);
    if (!agent.ok()) {
      stmt->Reset();
      return agent.status();
    }
    agents.push_back(*std::move(agent));
  }
  return agents;
}

absl::Status SqliteStore::RecordAgentSeen(absl::string_view id, absl::string_view platform,
                                          absl::string_view version, absl::Time seen) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kAgentSeenSql));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_RETURN_IF_ERROR(stmt->BindText(2, platform));
  CF_RETURN_IF_ERROR(stmt->BindText(3, version));
  CF_RETURN_IF_ERROR(stmt->BindInt64(4, TimeToMicros(seen)));
  CF_RETURN_IF_ERROR(stmt->Run(), "recording agent ", id, " seen");
  if (db_->changes() == 0) return absl::NotFoundError(absl::StrCat("agent ", id, " not found"));
  return absl::OkStatus();
}

// --- Inventory ---

absl::Status SqliteStore::UpdateBindingLocked(absl::string_view agent_id, uint64_t generation,
                                              const BindingRecord& binding, absl::Time seen) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kAgentBindingSql));
  CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
  CF_RETURN_IF_ERROR(stmt->BindText(2, binding.channel_serial));
  CF_RETURN_IF_ERROR(stmt->BindBlob(3, EncodeStringList(binding.drift)));
  CF_RETURN_IF_ERROR(stmt->BindInt64(4, static_cast<int64_t>(generation)));
  CF_RETURN_IF_ERROR(stmt->BindInt64(5, TimeToMicros(seen)));
  CF_RETURN_IF_ERROR(stmt->Run());
  if (db_->changes() == 0) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::WriteCertificateLocked(absl::string_view sql, absl::string_view agent_id,
                                                 const CertificateRecord& certificate) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(sql));
  CF_RETURN_IF_ERROR(BindCertificate(*stmt, agent_id, certificate));
  absl::Status status = stmt->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", certificate.Key(), " appears twice in the inventory"));
  }
  return common::Annotate(status, absl::StrCat("writing certificate ", certificate.Key()));
}

absl::Status SqliteStore::ReplaceInventory(absl::string_view agent_id, uint64_t generation,
                                           const std::vector<CertificateRecord>& certificates,
                                           const BindingRecord& binding, absl::Time seen) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  for (const CertificateRecord& cert : certificates) {
    CF_RETURN_IF_ERROR(ValidateCertificate(agent_id, cert), "inventory of agent ", agent_id);
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "replacing inventory of agent ",
                      agent_id);
  CF_RETURN_IF_ERROR(UpdateBindingLocked(agent_id, generation, binding, seen),
                     "replacing inventory");
  CF_ASSIGN_OR_RETURN(Statement * clear, db_->PrepareCached(kDeleteInventorySql));
  CF_RETURN_IF_ERROR(clear->BindText(1, agent_id));
  CF_RETURN_IF_ERROR(clear->Run(), "replacing inventory of agent ", agent_id);
  for (const CertificateRecord& cert : certificates) {
    CF_RETURN_IF_ERROR(WriteCertificateLocked(InsertCertificateSql(), agent_id, cert),
                       "replacing inventory of agent ", agent_id);
  }
  CF_RETURN_IF_ERROR(txn.Commit(), "replacing inventory of agent ", agent_id);
  return absl::OkStatus();
}

absl::Status SqliteStore::ApplyInventoryDelta(absl::string_view agent_id, uint64_t base_generation,
                                              uint64_t generation,
                                              const std::vector<CertificateRecord>& changed,
                                              const std::vector<std::string>& removed,
                                              const BindingRecord& binding, absl::Time seen) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  for (const CertificateRecord& cert : changed) {
    CF_RETURN_IF_ERROR(ValidateCertificate(agent_id, cert), "inventory delta of agent ", agent_id);
  }
  std::vector<std::pair<absl::string_view, absl::string_view>> removed_keys;
  removed_keys.reserve(removed.size());
  for (const std::string& key : removed) {
    CF_ASSIGN_OR_RETURN(auto store_and_thumbprint, SplitKey(key), "inventory delta of agent ",
                        agent_id);
    removed_keys.push_back(store_and_thumbprint);
  }

  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_),
                      "applying inventory delta of agent ", agent_id);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kAgentGenerationSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
    CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "applying inventory delta of agent ", agent_id);
    if (!found) return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
    const uint64_t stored = static_cast<uint64_t>(stmt->ColumnInt64(0));
    stmt->Reset();
    if (stored != base_generation) {
      return absl::FailedPreconditionError(absl::StrCat(
          "inventory delta of agent ", agent_id, " is based on generation ", base_generation,
          " but the stored inventory is generation ", stored, "; a full inventory is needed"));
    }
  }
  for (const CertificateRecord& cert : changed) {
    CF_RETURN_IF_ERROR(WriteCertificateLocked(UpsertCertificateSql(), agent_id, cert),
                       "applying inventory delta of agent ", agent_id);
  }
  for (const auto& [store, thumbprint] : removed_keys) {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kDeleteCertificateSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
    CF_RETURN_IF_ERROR(stmt->BindText(2, store));
    CF_RETURN_IF_ERROR(stmt->BindText(3, thumbprint));
    CF_RETURN_IF_ERROR(stmt->Run(), "applying inventory delta of agent ", agent_id);
  }
  CF_RETURN_IF_ERROR(UpdateBindingLocked(agent_id, generation, binding, seen),
                     "applying inventory delta");
  CF_RETURN_IF_ERROR(txn.Commit(), "applying inventory delta of agent ", agent_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CertificateRecord>> SqliteStore::ListCertificates(
    const CertificateFilter& filter) {
  const std::string sql =
      ListCertificatesSql(filter.agent_id.has_value(), filter.not_after_before.has_value());
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(sql));
  if (filter.agent_id.has_value()) CF_RETURN_IF_ERROR(stmt->BindText(1, *filter.agent_id));
  if (filter.not_after_before.has_value()) {
    CF_RETURN_IF_ERROR(stmt->BindInt64(2, TimeToMicros(*filter.not_after_before)));
  }
  std::vector<CertificateRecord> certificates;
  absl::Status status;
  while (status.ok()) {
    CF_ASSIGN_OR_RETURN(bool row, stmt->Step(), "listing certificates");
    if (!row) break;
    absl::StatusOr<std::vector<std::string>> problems = DecodeStringList(stmt->ColumnBlob(23));
    absl::StatusOr<std::vector<std::string>> drift = DecodeStringList(stmt->ColumnBlob(25));
    if (!problems.ok() || !drift.ok()) {
      status =
          DataLossIn(problems.ok() ? drift.status() : problems.status(),
                     absl::StrCat("problems or drift of certificate ", stmt->ColumnText(1), "/",
                                  stmt->ColumnText(2), " of agent ", stmt->ColumnText(0)));
      break;
    }
    // An exact match on one code: "EXPIRED" does not match "EXPIRES_SOON".
    if (filter.code.has_value() && !Contains(*problems, *filter.code) &&
        !Contains(*drift, *filter.code)) {
      continue;
    }
    absl::StatusOr<CertificateRecord> cert =
        ReadCertificate(*stmt, *std::move(problems), *std::move(drift));
    if (!cert.ok()) {
      status = cert.status();
      break;
    }
    certificates.push_back(*std::move(cert));
  }
  stmt->Reset();
  if (!status.ok()) return status;
  return certificates;
}

// --- Commands ---

absl::StatusOr<CommandRecord> SqliteStore::ReadCommandLocked(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectCommandSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading command ", id);
  if (!found) return absl::NotFoundError(absl::StrCat("command ", id, " not found"));
  absl::StatusOr<CommandRecord> command = ReadCommand(*stmt);
  stmt->Reset();
  return command;
}

absl::StatusOr<std::vector<CommandRecord>> SqliteStore::ReadCommandsLocked(Statement& query,
                                                                           absl::string_view what) {
  std::vector<CommandRecord> commands;
  while (true) {
    CF_ASSIGN_OR_RETURN(bool row, query.Step(), "", what);
    if (!row) break;
    absl::StatusOr<CommandRecord> command = ReadCommand(query);
    if (!command.ok()) {
      query.Reset();
      return command.status();
    }
    commands.push_back(*std::move(command));
  }
  query.Reset();
  return commands;
}

absl::StatusOr<CommandRecord> SqliteStore::UpdateCommandLocked(const CommandRecord& command) {
  const std::string& id = command.command.id;
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kUpdateCommandSql));
  CF_RETURN_IF_ERROR(BindCommand(*stmt, command));
  CF_RETURN_IF_ERROR(stmt->Run(), "writing command ", id);
  if (db_->changes() != 1) {
    // The row was read in this same transaction.
    return absl::InternalError(absl::StrCat("command ", id, " vanished under a write transaction"));
  }
  return ReadCommandLocked(id);
}

absl::StatusOr<CommandRecord> SqliteStore::FinalizeCommandLocked(
    CommandRecord command, common::model::CommandOutcome outcome, absl::Time now, bool* scrubbed) {
  command.state = outcome.state;
  command.outcome = std::move(outcome);
  command.finished_at = now;
  *scrubbed = ScrubSecrets(command.command.payload);
  return UpdateCommandLocked(command);
}

void SqliteStore::TruncateWalLocked() {
  // One row: busy (1 when a reader or writer kept the checkpoint from finishing), then frame
  // counts. Failing here changes nothing that was committed, so it is only logged.
  absl::StatusOr<Statement> checkpoint = db_->Prepare("PRAGMA wal_checkpoint(TRUNCATE)");
  absl::Status status = checkpoint.status();
  if (status.ok()) {
    absl::StatusOr<bool> row = checkpoint->Step();
    status = row.status();
    if (status.ok() && *row && checkpoint->ColumnInt64(0) != 0) {
      status = absl::UnavailableError("another connection is using the database");
    }
  }
  if (!status.ok()) {
    common::LogWarning("store ", db_->path(),
                       ": could not truncate the WAL after scrubbing a command's secret; old "
                       "page images stay in the -wal file until a later checkpoint: ",
                       status.message());
  }
}

absl::Status SqliteStore::CreateCommand(const CommandRecord& command) {
  const std::string& id = command.command.id;
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(command.command.agent_id, "agent id"), "command ", id);
  CommandRecord queued;
  queued.command = command.command;
  queued.created_by = command.created_by;
  queued.created_at = command.created_at;

  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "creating command ", id);
  CF_RETURN_IF_ERROR(
      RequireAgentLocked(queued.command.agent_id, absl::StrCat("creating command ", id)));
  CF_ASSIGN_OR_RETURN(Statement * insert, db_->PrepareCached(InsertCommandSql()));
  CF_RETURN_IF_ERROR(BindCommand(*insert, queued));
  absl::Status status = insert->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("command ", id, " already exists"));
  }
  CF_RETURN_IF_ERROR(status, "creating command ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "creating command ", id);
  return absl::OkStatus();
}

absl::StatusOr<CommandRecord> SqliteStore::GetCommand(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  absl::MutexLock lock(&mu_);
  return ReadCommandLocked(id);
}

absl::StatusOr<std::vector<CommandRecord>> SqliteStore::ListCommands(const CommandFilter& filter) {
  if (filter.limit == 0) return absl::InvalidArgumentError("command list limit is 0");
  const std::string sql = ListCommandsSql(filter.agent_id.has_value(), filter.state.has_value());
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(sql));
  if (filter.agent_id.has_value()) CF_RETURN_IF_ERROR(stmt->BindText(1, *filter.agent_id));
  if (filter.state.has_value()) {
    CF_RETURN_IF_ERROR(stmt->BindText(2, common::model::CommandStateName(*filter.state)));
  }
  const uint64_t limit = std::min<uint64_t>(filter.limit, std::numeric_limits<int64_t>::max());
  CF_RETURN_IF_ERROR(stmt->BindInt64(3, static_cast<int64_t>(limit)));
  CF_ASSIGN_OR_RETURN(std::vector<CommandRecord> newest_first,
                      ReadCommandsLocked(*stmt, "listing commands"));
  return std::vector<CommandRecord>(std::make_move_iterator(newest_first.rbegin()),
                                    std::make_move_iterator(newest_first.rend()));
}

absl::StatusOr<std::vector<CommandRecord>> SqliteStore::PendingCommands(
    absl::string_view agent_id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(agent_id, "agent id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(PendingCommandsSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, agent_id));
  return ReadCommandsLocked(*stmt, absl::StrCat("listing pending commands of agent ", agent_id));
}

absl::Status SqliteStore::MarkCommandSent(absl::string_view id, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "marking command ", id, " sent");
  CF_ASSIGN_OR_RETURN(CommandRecord command, ReadCommandLocked(id));
  if (common::model::IsFinal(command.state)) return FinalError(command, "send");
  if (command.state == common::model::CommandState::kQueued) {
    command.state = common::model::CommandState::kSent;
  }
  command.sent_at = now;
  ++command.attempts;
  CF_RETURN_IF_ERROR(UpdateCommandLocked(command).status());
  CF_RETURN_IF_ERROR(txn.Commit(), "marking command ", id, " sent");
  return absl::OkStatus();
}

absl::Status SqliteStore::MarkCommandRunning(absl::string_view id, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "marking command ", id,
                      " running");
  CF_ASSIGN_OR_RETURN(CommandRecord command, ReadCommandLocked(id));
  if (common::model::IsFinal(command.state)) return FinalError(command, "start");
  if (command.state == common::model::CommandState::kRunning) return absl::OkStatus();
  command.state = common::model::CommandState::kRunning;
  command.started_at = now;
  CF_RETURN_IF_ERROR(UpdateCommandLocked(command).status());
  CF_RETURN_IF_ERROR(txn.Commit(), "marking command ", id, " running");
  return absl::OkStatus();
}

absl::StatusOr<CommandRecord> SqliteStore::FinishCommand(
    absl::string_view id, const common::model::CommandOutcome& outcome, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  if (!common::model::IsFinal(outcome.state)) {
    return absl::InvalidArgumentError(absl::StrCat("finishing command ", id, ": outcome state ",
                                                   common::model::CommandStateName(outcome.state),
                                                   " is not final"));
  }
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "finishing command ", id);
  CF_ASSIGN_OR_RETURN(CommandRecord command, ReadCommandLocked(id));
  // A duplicate report: the first one stands.
  if (common::model::IsFinal(command.state)) return command;
  bool scrubbed = false;
  CF_ASSIGN_OR_RETURN(CommandRecord stored,
                      FinalizeCommandLocked(std::move(command), outcome, now, &scrubbed));
  CF_RETURN_IF_ERROR(txn.Commit(), "finishing command ", id);
  if (scrubbed) TruncateWalLocked();
  return stored;
}

absl::StatusOr<CommandRecord> SqliteStore::CancelCommand(absl::string_view id, absl::Time now) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "command id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "cancelling command ", id);
  CF_ASSIGN_OR_RETURN(CommandRecord command, ReadCommandLocked(id));
  if (common::model::IsFinal(command.state)) return FinalError(command, "cancel");
  command.cancel_requested = true;
  bool scrubbed = false;
  CommandRecord stored;
  if (command.state == common::model::CommandState::kQueued) {
    // Never sent: nobody else can act on it, so it is cancelled now.
    common::model::CommandOutcome outcome;
    outcome.state = common::model::CommandState::kCancelled;
    outcome.code = absl::StatusCode::kCancelled;
    outcome.error = "cancelled before it was sent";
    CF_ASSIGN_OR_RETURN(
        stored, FinalizeCommandLocked(std::move(command), std::move(outcome), now, &scrubbed));
  } else {
    // The agent may be running it: it decides, and reports the outcome.
    CF_ASSIGN_OR_RETURN(stored, UpdateCommandLocked(command));
  }
  CF_RETURN_IF_ERROR(txn.Commit(), "cancelling command ", id);
  if (scrubbed) TruncateWalLocked();
  return stored;
}

absl::StatusOr<std::vector<CommandRecord>> SqliteStore::ExpireCommands(
    absl::Time now, absl::Duration running_grace) {
  const int64_t queued_before = TimeToMicros(now);
  const int64_t running_before = TimeToMicros(now - running_grace);
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "expiring commands");
  std::vector<CommandRecord> due;
  {
    CF_ASSIGN_OR_RETURN(Statement * query, db_->PrepareCached(ExpirableCommandsSql()));
    CF_RETURN_IF_ERROR(query->BindInt64(1, std::max(queued_before, running_before)));
    CF_RETURN_IF_ERROR(query->BindInt64(2, queued_before));
    CF_RETURN_IF_ERROR(query->BindInt64(3, running_before));
    CF_ASSIGN_OR_RETURN(due, ReadCommandsLocked(*query, "expiring commands"));
  }
  std::vector<CommandRecord> expired;
  expired.reserve(due.size());
  bool scrubbed = false;
  for (CommandRecord& command : due) {
    common::model::CommandOutcome outcome;
    outcome.state = common::model::CommandState::kExpired;
    outcome.code = absl::StatusCode::kDeadlineExceeded;
    outcome.error = absl::StrCat("the deadline ", absl::FormatTime(command.command.deadline),
                                 " passed while the command was ",
                                 common::model::CommandStateName(command.state));
    bool had_secret = false;
    CF_ASSIGN_OR_RETURN(
        CommandRecord stored,
        FinalizeCommandLocked(std::move(command), std::move(outcome), now, &had_secret),
        "expiring commands");
    scrubbed = scrubbed || had_secret;
    expired.push_back(std::move(stored));
  }
  CF_RETURN_IF_ERROR(txn.Commit(), "expiring commands");
  if (scrubbed) TruncateWalLocked();
  return expired;
}

// --- Issuance log ---

absl::Status SqliteStore::RecordIssuance(const IssuanceRecord& issuance) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(issuance.serial, "issuance serial"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(InsertIssuanceSql()));
  CF_RETURN_IF_ERROR(BindIssuance(*stmt, issuance));
  absl::Status status = stmt->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("a certificate with serial ", issuance.serial,
                                                 " was issued already; serials are never reused"));
  }
  return common::Annotate(status, absl::StrCat("recording issuance of serial ", issuance.serial));
}

absl::StatusOr<std::vector<IssuanceRecord>> SqliteStore::ListIssuances(
    absl::string_view renewal_id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(renewal_id, "renewal id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(ListIssuancesSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, renewal_id));
  return ReadAll<IssuanceRecord>(*stmt, ReadIssuance,
                                 absl::StrCat("listing issuances of renewal ", renewal_id));
}

// --- Approval queue ---

absl::StatusOr<ApprovalRequestRecord> SqliteStore::ReadApprovalLocked(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectApprovalSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading approval request ", id);
  if (!found) return absl::NotFoundError(absl::StrCat("approval request ", id, " not found"));
  absl::StatusOr<ApprovalRequestRecord> request = ReadApproval(*stmt);
  stmt->Reset();
  return request;
}

absl::Status SqliteStore::CreateApprovalRequest(const ApprovalRequestRecord& request) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(request.id, "approval request id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(InsertApprovalSql()));
  CF_RETURN_IF_ERROR(BindApproval(*stmt, request));
  absl::Status status = stmt->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(
        absl::StrCat("approval request ", request.id, " already exists"));
  }
  return common::Annotate(status, absl::StrCat("creating approval request ", request.id));
}

absl::StatusOr<ApprovalRequestRecord> SqliteStore::GetApprovalRequest(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "approval request id"));
  absl::MutexLock lock(&mu_);
  return ReadApprovalLocked(id);
}

absl::StatusOr<std::vector<ApprovalRequestRecord>> SqliteStore::ListApprovalRequests(
    std::optional<common::model::ApprovalState> state) {
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(ListApprovalsSql(state.has_value())));
  if (state.has_value()) {
    CF_RETURN_IF_ERROR(stmt->BindText(1, common::model::ApprovalStateName(*state)));
  }
  return ReadAll<ApprovalRequestRecord>(*stmt, ReadApproval, "listing approval requests");
}

absl::Status SqliteStore::UpdateApprovalRequest(const ApprovalRequestRecord& request,
                                                common::model::ApprovalState expected) {
  const std::string& id = request.id;
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "approval request id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "updating approval request ", id);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kApprovalStateSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, id));
    CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "updating approval request ", id);
    if (!found) return absl::NotFoundError(absl::StrCat("approval request ", id, " not found"));
    const std::string stored_name = stmt->ColumnText(0);
    stmt->Reset();
    CF_ASSIGN_OR_RETURN(common::model::ApprovalState stored, ApprovalStateOf(stored_name, id));
    if (stored != expected) {
      return absl::FailedPreconditionError(absl::StrCat(
          "approval request ", id, " is ", common::model::ApprovalStateName(stored), ", not ",
          common::model::ApprovalStateName(expected), ": someone else decided it first"));
    }
  }
  CF_ASSIGN_OR_RETURN(Statement * update, db_->PrepareCached(kUpdateApprovalSql));
  CF_RETURN_IF_ERROR(BindApproval(*update, request));
  CF_RETURN_IF_ERROR(update->Run(), "updating approval request ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "updating approval request ", id);
  return absl::OkStatus();
}

// --- Renewal jobs ---

absl::StatusOr<RenewalRecord> SqliteStore::ReadRenewalLocked(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(SelectRenewalSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "reading renewal ", id);
  if (!found) return absl::NotFoundError(absl::StrCat("renewal ", id, " not found"));
  absl::StatusOr<RenewalRecord> renewal = ReadRenewal(*stmt);
  stmt->Reset();
  return renewal;
}

absl::Status SqliteStore::RequireAgentLocked(absl::string_view agent_id, absl::string_view doing) {
  CF_ASSIGN_OR_RETURN(Statement * agent, db_->PrepareCached(kAgentExistsSql));
  CF_RETURN_IF_ERROR(agent->BindText(1, agent_id));
  CF_ASSIGN_OR_RETURN(bool found, agent->Step(), doing);
  agent->Reset();
  if (!found) {
    return absl::NotFoundError(absl::StrCat(doing, ": agent ", agent_id, " not found"));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CreateRenewal(const RenewalRecord& renewal) {
  const std::string& id = renewal.id;
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "renewal id"));
  CF_RETURN_IF_ERROR(RequireNonEmpty(renewal.agent_id, "agent id"), "renewal ", id);
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "creating renewal ", id);
  CF_RETURN_IF_ERROR(RequireAgentLocked(renewal.agent_id, absl::StrCat("creating renewal ", id)));
  CF_ASSIGN_OR_RETURN(Statement * insert, db_->PrepareCached(InsertRenewalSql()));
  CF_RETURN_IF_ERROR(BindRenewal(*insert, renewal));
  absl::Status status = insert->Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("renewal ", id, " already exists"));
  }
  CF_RETURN_IF_ERROR(status, "creating renewal ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "creating renewal ", id);
  return absl::OkStatus();
}

absl::StatusOr<RenewalRecord> SqliteStore::GetRenewal(absl::string_view id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "renewal id"));
  absl::MutexLock lock(&mu_);
  return ReadRenewalLocked(id);
}

absl::StatusOr<std::vector<RenewalRecord>> SqliteStore::ListRenewals(const RenewalFilter& filter) {
  if (filter.limit == 0) return absl::InvalidArgumentError("renewal list limit is 0");
  const std::string sql =
      ListRenewalsSql(filter.agent_id.has_value(), filter.state.has_value(), filter.active_only);
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(sql));
  if (filter.agent_id.has_value()) CF_RETURN_IF_ERROR(stmt->BindText(1, *filter.agent_id));
  if (filter.state.has_value()) {
    CF_RETURN_IF_ERROR(stmt->BindText(2, common::model::RenewalStateName(*filter.state)));
  }
  const uint64_t limit = std::min<uint64_t>(filter.limit, std::numeric_limits<int64_t>::max());
  CF_RETURN_IF_ERROR(stmt->BindInt64(3, static_cast<int64_t>(limit)));
  CF_ASSIGN_OR_RETURN(std::vector<RenewalRecord> newest_first,
                      ReadAll<RenewalRecord>(*stmt, ReadRenewal, "listing renewals"));
  return std::vector<RenewalRecord>(std::make_move_iterator(newest_first.rbegin()),
                                    std::make_move_iterator(newest_first.rend()));
}

absl::Status SqliteStore::UpdateRenewal(const RenewalRecord& renewal,
                                        common::model::RenewalState expected) {
  const std::string& id = renewal.id;
  CF_RETURN_IF_ERROR(RequireNonEmpty(id, "renewal id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_), "updating renewal ", id);
  {
    CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(kRenewalStateSql));
    CF_RETURN_IF_ERROR(stmt->BindText(1, id));
    CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "updating renewal ", id);
    if (!found) return absl::NotFoundError(absl::StrCat("renewal ", id, " not found"));
    const std::string stored_name = stmt->ColumnText(0);
    const std::string stored_agent = stmt->ColumnText(1);
    stmt->Reset();
    CF_ASSIGN_OR_RETURN(common::model::RenewalState stored, RenewalStateOf(stored_name, id));
    if (stored != expected) {
      return absl::FailedPreconditionError(
          absl::StrCat("renewal ", id, " is ", common::model::RenewalStateName(stored), ", not ",
                       common::model::RenewalStateName(expected), ": it moved on meanwhile"));
    }
    if (renewal.agent_id != stored_agent) {
      return absl::InvalidArgumentError(absl::StrCat("renewal ", id, " belongs to agent ",
                                                     stored_agent, ", not ", renewal.agent_id,
                                                     "; a job never changes hosts"));
    }
  }
  CF_ASSIGN_OR_RETURN(Statement * update, db_->PrepareCached(kUpdateRenewalSql));
  CF_RETURN_IF_ERROR(BindRenewal(*update, renewal));
  CF_RETURN_IF_ERROR(update->Run(), "updating renewal ", id);
  CF_RETURN_IF_ERROR(txn.Commit(), "updating renewal ", id);
  return absl::OkStatus();
}

absl::StatusOr<RenewalRecord> SqliteStore::FindRenewalByCommand(absl::string_view command_id) {
  CF_RETURN_IF_ERROR(RequireNonEmpty(command_id, "command id"));
  absl::MutexLock lock(&mu_);
  CF_ASSIGN_OR_RETURN(Statement * stmt, db_->PrepareCached(FindRenewalByCommandSql()));
  CF_RETURN_IF_ERROR(stmt->BindText(1, command_id));
  CF_ASSIGN_OR_RETURN(bool found, stmt->Step(), "finding the renewal of command ", command_id);
  if (!found) {
    return absl::NotFoundError(absl::StrCat("no renewal sent command ", command_id));
  }
  absl::StatusOr<RenewalRecord> renewal = ReadRenewal(*stmt);
  stmt->Reset();
  return renewal;
}

}  // namespace certfleet::controller::store
