#include "controller/store/sqlite/sqlite_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

// --- SQL, prepared once per connection (Database::PrepareCached) ---

constexpr char kTokenColumns[] =
    "token_hash, fqdn, labels, created_at, expires_at, used_at, used_by_agent, created_by";
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
      absl::StrCat("INSERT INTO join_tokens (", kTokenColumns, ") VALUES (", Placeholders(8), ")"));
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

// --- Validation ---

absl::Status RequireNonEmpty(absl::string_view value, absl::string_view what) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  return absl::OkStatus();
}

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

bool Contains(const std::vector<std::string>& codes, absl::string_view code) {
  for (const std::string& c : codes) {
    if (c == code) return true;
  }
  return false;
}

}  // namespace

const std::vector<Migration>& SqliteStore::Migrations() {
  static const std::vector<Migration>* migrations = new std::vector<Migration>{
      {1, "join tokens, agents, certificates", kSchemaV1},
  };
  return *migrations;
}

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const Options& options) {
  Database::Options db_options;
  db_options.busy_timeout = options.busy_timeout;
  db_options.quick_check = options.quick_check;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(options.path, db_options));
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
  };
  for (const std::string& sql : statements) {
    CF_RETURN_IF_ERROR(db->PrepareCached(sql).status(), "opening store ", options.path);
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

}  // namespace certfleet::controller::store
