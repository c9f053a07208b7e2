#pragma once

// How SqliteStore turns record fields that SQLite has no type for into column values. Kept
// apart from the store so the encodings are tested on their own and documented in one place.
//
// Times are INTEGER columns holding microseconds since the Unix epoch (UTC); sub-microsecond
// precision is dropped. absl::InfiniteFuture() and absl::InfinitePast() are stored as the
// largest and smallest int64 and come back as themselves.
//
// Lists of strings (DNS names, URIs, EKU OIDs, problem and drift codes) and string maps
// (labels) are BLOB columns holding netstrings (https://cr.yp.to/proto/netstrings.txt):
// each string is written as "<decimal byte length>:<bytes>,". A list is its elements in
// order; a map is key, value, key, value, ... in key order. The empty list or map is the empty
// blob. Netstrings carry any bytes (commas, newlines, '=', NUL, invalid UTF-8) unchanged, so
// every value round-trips, and they stay readable in the sqlite3 shell:
//   labels = "4:site,5:paris,4:tier,3:web,"   for {site: paris, tier: web}
//
// Numbers inside a netstring are canonical decimal ASCII ("-12", "0"; no '+', no leading zero).
// Durations are microseconds like times (sub-microsecond precision dropped), with
// absl::InfiniteDuration() and -absl::InfiniteDuration() as the largest and smallest int64.
//
// A later field is appended to the end of its record's list (never inserted, never removed),
// and its decoder then accepts the list with or without it, so rows written before keep
// decoding: below, such fields are marked "optional on read", and absent reads as the field's
// default. Otherwise a list with more or fewer fields than its record has is DataLoss.
//
// Command payloads: the `kind` column holds CommandKindName() ("import") and the `payload` BLOB
// the variant's fields, one netstring each, in this order:
//   scan     (no field: the empty blob)
//   import   data, password          both are empty once the command is final
//   repair   thumbprint
//   rebind   thumbprint, verify_timeout (a duration)
//   trust    data
//   remove   thumbprint
//   renew    profile                 a netstring holding a profile as below (nested)
//   install  chain_pem, bind ("0" or "1"), verify_timeout (a duration)
// e.g. rebind = "4:ABCD,8:60000000,"; install {chain "PEM", bind, 60 s} = "3:PEM,1:1,8:60000000,".
//
// Certificate profiles (a renew payload's profile; a renewal's `profile` BLOB, the snapshot of
// the profile it uses) are these netstrings in order:
//   name, key_algorithm, key_bits (decimal), signature_hash,
//   extra_dns_names          a netstring holding a list as above (nested)
//   key_usage                the KeyUsageBit mask, decimal, 0..4294967295
//   extended_key_usage       a netstring holding a list of OIDs (nested)
//   validity                 a duration
//   template_name
// e.g. ScomProfile() = "4:scom,3:RSA,4:2048,6:SHA256,0:,1:5,"
//                      "42:17:1.3.6.1.5.5.7.3.1,17:1.3.6.1.5.5.7.3.2,,14:31536000000000,0:,".
//
// Command results (a renewal's `evidence` BLOB, NULL when it has none) are these netstrings in
// order:
//   thumbprint
//   problems                 a netstring holding a list as above (nested)
//   previous_channel_serial
//   channel_serial
//   rolled_back              "0" or "1"
//   events                   a netstring holding one netstring per event, each holding four:
//                            time (unix microseconds), id (decimal), level, message
//   detail
//   csr_pem                  optional on read (appended with renewals, schema version 3)
//
// Command outcomes: the `outcome` BLOB (NULL until the command is final) holds `code` (the
// absl::StatusCode as its number, the gRPC code, 0..16), then `error`, then the outcome's result
// as the fields above, all at one level (not nested). The outcome's state is the row's `state`
// column, not repeated here. Outcomes written before version 3 have no csr_pem and read with an
// empty one. e.g. {code kFailedPrecondition (9), error "boom"} =
// "1:9,4:boom,0:,0:,0:,0:,1:0,0:,0:,0:,".
//
// Renewal steps: the `steps` BLOB holds one netstring per step, oldest first, each holding three:
// state (RenewalStateName(): "csr_requested"), at (unix microseconds), note. e.g.
// {planned at 0, "by alice"} = "25:7:planned,1:0,8:by alice,,".

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/sqlite/database.h"
#include "common/status/status_macros.h"
#include "controller/store/records.h"

namespace certfleet::controller::store {

int64_t TimeToMicros(absl::Time t);
absl::Time MicrosToTime(int64_t micros);

std::string EncodeStringList(const std::vector<std::string>& list);
// DataLoss when `encoded` is not a sequence of netstrings.
absl::StatusOr<std::vector<std::string>> DecodeStringList(absl::string_view encoded);

std::string EncodeStringMap(const std::map<std::string, std::string>& map);
// DataLoss when `encoded` is not an even sequence of netstrings with distinct keys.
absl::StatusOr<std::map<std::string, std::string>> DecodeStringMap(absl::string_view encoded);

int64_t DurationToMicros(absl::Duration d);
absl::Duration MicrosToDuration(int64_t micros);

// The `payload` column of a command; its kind is common::model::KindOf(payload).
std::string EncodeCommandPayload(const common::model::CommandPayload& payload);
// DataLoss when `encoded` is not a payload of `kind` as laid out above.
absl::StatusOr<common::model::CommandPayload> DecodeCommandPayload(common::model::CommandKind kind,
                                                                   absl::string_view encoded);

// The `outcome` column of a final command; outcome.state is not encoded.
std::string EncodeCommandOutcome(const common::model::CommandOutcome& outcome);
// The outcome in `encoded`, with `state` as its state. DataLoss when `encoded` is not an outcome
// as laid out above.
absl::StatusOr<common::model::CommandOutcome> DecodeCommandOutcome(
    common::model::CommandState state, absl::string_view encoded);

// A certificate profile, as laid out above.
std::string EncodeProfile(const common::model::CertificateProfile& profile);
// DataLoss when `encoded` is not a profile as laid out above.
absl::StatusOr<common::model::CertificateProfile> DecodeProfile(absl::string_view encoded);

// A command result (a renewal's evidence), as laid out above.
std::string EncodeCommandResult(const common::model::CommandResult& result);
// DataLoss when `encoded` is not a command result as laid out above.
absl::StatusOr<common::model::CommandResult> DecodeCommandResult(absl::string_view encoded);

// The `steps` column of a renewal.
std::string EncodeRenewalSteps(const std::vector<RenewalStep>& steps);
// DataLoss when `encoded` is not a list of steps as laid out above, or names an unknown state.
absl::StatusOr<std::vector<RenewalStep>> DecodeRenewalSteps(absl::string_view encoded);

// InvalidArgument "<what> is empty" for an empty value.
absl::Status RequireNonEmpty(absl::string_view value, absl::string_view what);
// A nullable time column: NULL <-> nullopt.
std::optional<int64_t> OptionalMicros(const std::optional<absl::Time>& t);
std::optional<absl::Time> OptionalTime(std::optional<int64_t> micros);

// Runs `query` (bound already) to its end and decodes every row with `read`
// (absl::StatusOr<Record>(const Statement&)); errors are annotated with `what`. Resets `query`.
template <typename Record, typename Read>
absl::StatusOr<std::vector<Record>> ReadAll(common::sqlite::Statement& query, Read read,
                                            absl::string_view what) {
  std::vector<Record> records;
  while (true) {
    absl::StatusOr<bool> row = query.Step();
    if (!row.ok()) return common::Annotate(row.status(), what);
    if (!*row) break;
    absl::StatusOr<Record> record = read(query);
    if (!record.ok()) {
      query.Reset();
      return record.status();
    }
    records.push_back(*std::move(record));
  }
  query.Reset();
  return records;
}

}  // namespace certfleet::controller::store
