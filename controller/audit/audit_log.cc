#include "controller/audit/audit_log.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/crypto/encoding.h"
#include "common/crypto/openssl_types.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

namespace certfleet::controller::audit {
namespace {

constexpr size_t kKeySize = 32;
constexpr size_t kPageSize = 1000;
constexpr char kCanonicalTag[] = "certfleet.audit.v1";
constexpr char kKeyFile[] = "audit.key";
constexpr char kHeadFile[] = "audit.head";

void AppendNetstring(std::string* out, absl::string_view field) {
  absl::StrAppend(out, field.size(), ":", field, ",");
}

std::string Canonical(const store::AuditRecord& e) {
  std::string out;
  AppendNetstring(&out, kCanonicalTag);
  AppendNetstring(&out, absl::StrCat(e.seq));
  AppendNetstring(&out, absl::StrCat(absl::ToUnixMicros(e.at)));
  AppendNetstring(&out, e.actor);
  AppendNetstring(&out, e.action);
  AppendNetstring(&out, e.target);
  AppendNetstring(&out, e.details);
  AppendNetstring(&out, e.prev_hash);
  return out;
}

// One JSON object; std::map keeps the keys sorted. The `replace` handler turns invalid UTF-8
// into U+FFFD instead of throwing.
std::string RenderDetails(const std::map<std::string, std::string>& details) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [key, value] : details) object[key] = value;
  return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::Status CheckNoSecretKeys(const std::map<std::string, std::string>& details) {
  for (const auto& [key, value] : details) {
    const std::string lower = absl::AsciiStrToLower(key);
    for (absl::string_view secret : {"token", "password", "passphrase", "secret", "private_key"}) {
      if (lower == secret) {
        return absl::InvalidArgumentError(
            absl::StrCat("audit details must not hold a secret: key '", key, "' refused"));
      }
    }
  }
  return absl::OkStatus();
}

struct Head {
  uint64_t seq = 0;
  std::string hash;
};

// "SEQ HASH\n" -> Head; nullopt when the text is not that.
std::optional<Head> ParseHead(absl::string_view text) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  Head head;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &head.seq) || head.seq == 0) {
    return std::nullopt;
  }
  head.hash = std::string(parts[1]);
  return head;
}

// "entry 3 is missing" / "entries 3 to 5 are missing".
std::string Missing(uint64_t from, uint64_t to) {
  return from == to ? absl::StrCat("entry ", from, " is missing")
                    : absl::StrCat("entries ", from, " to ", to, " are missing");
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& state_dir,
                                                         store::Store& store,
                                                         common::Clock& clock) {
  if (state_dir.empty()) return absl::InvalidArgumentError("audit log: no state directory");
  const std::string path = absl::StrCat(state_dir, "/", kKeyFile);
  absl::StatusOr<std::string> key = common::ReadFileToString(path);
  if (absl::IsNotFound(key.status())) {
    store::AuditFilter first;
    first.limit = 1;
    CF_ASSIGN_OR_RETURN(std::vector<store::AuditRecord> entries, store.ListAudit(first),
                        "opening the audit log");
    if (!entries.empty()) {
      return absl::DataLossError(
          absl::StrCat(path,
                       " is missing but the audit log already has entries: restore the file (a "
                       "new key could verify none of them)"));
    }
    key = common::crypto::RandomBytes(kKeySize);
    CF_RETURN_IF_ERROR(common::WriteFileAtomically(path, *key, 0600), "creating the audit key");
    common::LogInfo("created the audit log key ", path);
  } else if (!key.ok()) {
    return common::Annotate(key.status(), "reading the audit key");
  }
  if (key->size() != kKeySize) {
    return absl::DataLossError(absl::StrCat(path, " holds ", key->size(), " bytes, not the ",
                                            kKeySize, " of an audit key"));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    common::LogWarning(path, " can be read by other users (mode ",
                       absl::StrFormat("%04o", st.st_mode & 0777), "); it should be 0600");
  }
  return std::unique_ptr<AuditLog>(new AuditLog(state_dir, *std::move(key), store, clock));
}

std::string AuditLog::HeadPath() const { return absl::StrCat(state_dir_, "/", kHeadFile); }

std::string AuditLog::Seal(const store::AuditRecord& entry) const {
  const std::string canonical = Canonical(entry);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
           reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), mac,
           &length) == nullptr) {
    // HMAC-SHA256 over memory fails only when OpenSSL itself is broken (as for
    // common/crypto/encoding.h's digests); an entry sealed with anything else would break the
    // chain for good, so stop here.
    std::fprintf(stderr, "certfleet: OpenSSL HMAC-SHA256 failed: %s\n",
                 common::crypto::DrainOpenSslErrors().c_str());
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(length)));
}

absl::StatusOr<store::AuditRecord> AuditLog::Record(
    absl::string_view actor, absl::string_view action, absl::string_view target,
    const std::map<std::string, std::string>& details) {
  if (actor.empty()) return absl::InvalidArgumentError("audit entry: actor is empty");
  if (action.empty()) return absl::InvalidArgumentError("audit entry: action is empty");
  CF_RETURN_IF_ERROR(CheckNoSecretKeys(details), "audit entry ", action);
  store::AuditRecord entry;
  entry.actor = std::string(actor);
  entry.action = std::string(action);
  entry.target = std::string(target);
  entry.details = RenderDetails(details);
  absl::MutexLock lock(&head_mu_);
  // Read under the lock, so that times never go backwards along the chain.
  entry.at = absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now()));
  CF_ASSIGN_OR_RETURN(
      store::AuditRecord stored,
      store_.AppendAudit(std::move(entry), [this](const store::AuditRecord& e) { return Seal(e); }),
      "audit entry ", action);
  absl::Status head = common::WriteFileAtomically(
      HeadPath(), absl::StrCat(stored.seq, " ", stored.hash, "\n"), 0600);
  if (!head.ok()) {
    // The entry is in the log; failing the call would make the caller think it was not.
    common::LogError("audit entry ", stored.seq, " (", stored.action,
                     ") was written, but the audit head was not: ", head.message());
  }
  return stored;
}

absl::StatusOr<std::vector<store::AuditRecord>> AuditLog::List(const store::AuditFilter& filter) {
  return store_.ListAudit(filter);
}

absl::StatusOr<AuditLog::Verification> AuditLog::Verify() {
  const std::string head_path = HeadPath();
  // Read before the chain: the chain only grows, so the head can only be behind what is read.
  absl::StatusOr<std::string> head_text;
  {
    absl::MutexLock lock(&head_mu_);
    head_text = common::ReadFileToString(head_path);
  }
  if (!head_text.ok() && !absl::IsNotFound(head_text.status())) {
    return common::Annotate(head_text.status(), "reading the audit head");
  }
  std::optional<Head> head;
  if (head_text.ok()) head = ParseHead(*head_text);

  Verification v;
  auto fail = [&v](uint64_t seq, std::string problem) {
    if (!v.ok) return;
    v.ok = false;
    v.first_bad_seq = seq;
    v.problem = std::move(problem);
  };
  uint64_t expected = 1;
  std::string prev_hash;
  bool first_problem_is_first_entry_hash = false;
  bool any_entry_verifies = false;
  std::optional<std::string> hash_at_head;  // the hash of the entry the head names
  store::AuditFilter page;
  page.limit = kPageSize;
  while (true) {
    CF_ASSIGN_OR_RETURN(std::vector<store::AuditRecord> entries, store_.ListAudit(page),
                        "verifying the audit log");
    for (const store::AuditRecord& e : entries) {
      const bool sealed = e.hash == Seal(e);
      any_entry_verifies = any_entry_verifies || sealed;
      if (head && e.seq == head->seq) hash_at_head = e.hash;
      if (e.seq != expected) {
        fail(expected, absl::StrCat(Missing(expected, e.seq - 1), ": the log ",
                                    expected == 1 ? "starts at" : "jumps from entry ",
                                    expected == 1 ? "" : absl::StrCat(expected - 1, " to"),
                                    " entry ", e.seq, " (removed from the database)"));
      } else if (!sealed) {
        if (v.ok && v.entries == 0) first_problem_is_first_entry_hash = true;
        fail(e.seq, absl::StrCat("entry ", e.seq,
                                 ": hash does not match its content (changed after it was "
                                 "written)"));
      } else if (e.prev_hash != prev_hash) {
        fail(e.seq, absl::StrCat("entry ", e.seq, ": prev_hash is not the hash of entry ",
                                 e.seq - 1, " (an entry was changed, removed or reordered)"));
      }
      ++v.entries;
      expected = e.seq + 1;
      prev_hash = e.hash;
    }
    if (entries.size() < kPageSize) break;
    page.after_seq = entries.back().seq;
  }
  if (first_problem_is_first_entry_hash && !any_entry_verifies) {
    v.problem =
        absl::StrCat(v.problem, "; no entry of the log verifies with ", state_dir_, "/", kKeyFile,
                     ": it is not the key this log was written with, or every entry was rewritten");
  }

  const uint64_t last = expected - 1;
  if (!head_text.ok()) {
    if (v.entries > 0) {
      fail(0, absl::StrCat(head_path, " is missing, but the log has ", v.entries,
                           " entries (it records the newest entry, to detect removed ones)"));
    }
  } else if (!head) {
    fail(0, absl::StrCat(head_path, " is not 'SEQ HASH'"));
  } else if (head->seq > last) {
    fail(last + 1,
         absl::StrCat(Missing(last + 1, head->seq), ": the log ",
                      last == 0 ? "is empty" : absl::StrCat("ends at entry ", last), " but ",
                      head_path, " records entry ", head->seq, " (newest entries removed)"));
  } else if (hash_at_head != head->hash) {
    fail(head->seq, absl::StrCat("entry ", head->seq, ": hash is not the one ", head_path,
                                 " records for it (entry replaced)"));
  }
  return v;
}

}  // namespace certfleet::controller::audit
