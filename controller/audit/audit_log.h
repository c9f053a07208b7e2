#pragma once

// The audit log: one entry for every admin change and every automatic decision, kept in the
// Store (AppendAudit / ListAudit) and chained so that changing, removing or reordering entries
// afterwards is detectable.
//
//   CF_ASSIGN_OR_RETURN(std::unique_ptr<AuditLog> audit, AuditLog::Open(state_dir, store, clock));
//   CF_ASSIGN_OR_RETURN(store::AuditRecord entry,
//                       audit->Record("operator/admin/alice", "token.create", "web1.corp",
//                                     {{"fqdn", "web1.corp"}, {"ttl", "1h"}}));
//   CF_ASSIGN_OR_RETURN(AuditLog::Verification v, audit->Verify());
//   if (!v.ok) ... v.problem ...
//
// How an entry is sealed. Entry N holds prev_hash = the hash of entry N-1 ("" for entry 1) and
// hash = lowercase hex HMAC-SHA256(key, canonical entry), where the canonical entry is the
// netstrings ("<decimal byte length>:<bytes>,") of, in order: the tag "certfleet.audit.v1", seq
// (decimal), at (unix microseconds, decimal), actor, action, target, details, prev_hash. Every
// field is length-prefixed, so no two different entries have the same canonical form.
//
// Why the chain is keyed. A plain hash chain (hash = SHA-256(entry, prev_hash)) only proves that
// the entries are consistent with each other: whoever can write the database can change an
// entry and recompute every hash after it, and the result verifies. Here the hashes are HMACs
// under a 32-byte random key kept in STATE_DIR/audit.key (mode 0600), a file apart from the
// database: someone who can change the database (a restored or hand-edited copy of the SQLite
// file, SQL access to it, a shared database server later) but cannot read the key cannot write
// an entry that verifies. STATE_DIR/audit.head holds the seq and hash of the newest entry,
// rewritten atomically after every append, so that deleting the newest entries (which leaves a
// chain that is consistent as far as it goes) is detected too.
//
// What it does not protect against: anyone who can read audit.key (root on the controller's
// host, the controller's own account, a backup of the state directory) can rewrite the log and
// reseal it, and rewrite audit.head to match. It also cannot tell a rolled-back copy of both the
// database and audit.head from the current one. Ship entries elsewhere (syslog, a SIEM) when that
// matters; this log detects tampering by anyone short of that.
//
// Entries never contain secrets: callers pass only safe fields (never a token, a PFX or its
// password, a private key), and Record refuses detail keys that name one (see Record).
//
// Thread-safe. Calls block on the store and the file system: run them on an executor.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/time/clock.h"
#include "controller/store/records.h"
#include "controller/store/store.h"

namespace certfleet::controller::audit {

class AuditLog {
 public:
  // Loads STATE_DIR/audit.key, creating it (32 random bytes, mode 0600) when it does not exist
  // and the log is empty. `store` and `clock` must outlive the AuditLog. Errors name the file:
  // DataLoss when the key is not 32 bytes, or is missing while the log already has entries (a new
  // key could verify none of them: restore the file); PermissionDenied / Unavailable when it
  // cannot be read or written; the store's error when the log cannot be read.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& state_dir,
                                                        store::Store& store, common::Clock& clock);

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one entry at the clock's time (to the microsecond) and returns it as stored.
  // `details` is rendered as one JSON object with sorted keys (invalid UTF-8 replaced by U+FFFD).
  // InvalidArgument for an empty actor or action, or for a detail key that names a secret
  // ("token", "password", "passphrase", "secret", "private_key", in any case); the store's error
  // when the append fails (nothing was appended then). When the entry was appended but audit.head
  // could not be rewritten, the error is logged and the entry returned: the next append rewrites
  // the head, and Verify accepts a head that is behind a valid chain (see Verify).
  absl::StatusOr<store::AuditRecord> Record(absl::string_view actor, absl::string_view action,
                                            absl::string_view target,
                                            const std::map<std::string, std::string>& details = {});

  // Entries matching `filter`, oldest first, exactly as stored. InvalidArgument for limit 0.
  absl::StatusOr<std::vector<store::AuditRecord>> List(const store::AuditFilter& filter);

  struct Verification {
    uint64_t entries = 0;  // entries in the log
    bool ok = true;        // the whole chain verifies and reaches audit.head
    // The first entry found wrong or missing (a removed tail: the first removed one); 0 when ok,
    // and when audit.head itself is missing or malformed.
    uint64_t first_bad_seq = 0;
    // What is wrong, naming the entry: "entry 17: hash does not match its content (changed after
    // it was written)". Empty when ok.
    std::string problem;
  };

  // Walks the whole log, in pages, and checks that seqs run 1, 2, ... without a gap; that each
  // entry's hash is the HMAC of its content under the key; that each prev_hash is the previous
  // entry's hash; and that the log reaches audit.head: the entry the head names exists and has
  // the head's hash. Entries newer than the head are accepted when they verify (an append whose
  // head write did not happen: only a key holder can make them). A missing audit.head while the
  // log has entries, or one that is not "SEQ HASH", is a problem. The first problem found is
  // reported. Errors (not problems): the store's when the log cannot be read; PermissionDenied /
  // Unavailable when audit.head exists but cannot be read.
  absl::StatusOr<Verification> Verify();

 private:
  AuditLog(std::string state_dir, std::string key, store::Store& store, common::Clock& clock)
      : state_dir_(std::move(state_dir)), key_(std::move(key)), store_(store), clock_(clock) {}

  // Lowercase hex HMAC-SHA256 of `entry`'s canonical form (see the file comment).
  std::string Seal(const store::AuditRecord& entry) const;
  std::string HeadPath() const;

  const std::string state_dir_;
  const std::string key_;  // 32 bytes; never logged
  store::Store& store_;
  common::Clock& clock_;
  // Held across an append and the head write that follows it, so that audit.head is written in
  // the chain's order and names the newest entry once both are done.
  absl::Mutex head_mu_;
};

}  // namespace certfleet::controller::audit
