#include "controller/store/sqlite/encoding.h"

#include <array>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/model/renewal.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::store {
namespace {

namespace model = common::model;

constexpr int64_t kInfiniteFutureMicros = std::numeric_limits<int64_t>::max();
constexpr int64_t kInfinitePastMicros = std::numeric_limits<int64_t>::min();

void AppendNetstring(absl::string_view value, std::string& out) {
  absl::StrAppend(&out, value.size(), ":", value, ",");
}

// Reads one netstring from the front of `in` and removes it.
absl::StatusOr<absl::string_view> ReadNetstring(absl::string_view& in) {
  constexpr size_t kMaxDigits = 10;  // lengths below 10 GB; a blob is at most 1 GB anyway
  size_t colon = in.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > kMaxDigits) {
    return absl::DataLossError("malformed netstring length");
  }
  uint64_t length = 0;
  for (char c : in.substr(0, colon)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return absl::DataLossError("malformed netstring length");
    }
    length = length * 10 + static_cast<uint64_t>(c - '0');
  }
  in.remove_prefix(colon + 1);
  if (length >= in.size() || in[length] != ',') {
    return absl::DataLossError("truncated netstring");
  }
  absl::string_view value = in.substr(0, length);
  in.remove_prefix(length + 1);
  return value;
}

// Reads exactly `N` netstrings from `encoded`: DataLoss when it holds more or fewer.
template <size_t N>
absl::StatusOr<std::array<absl::string_view, N>> ReadFields(absl::string_view encoded,
                                                            absl::string_view what) {
  std::array<absl::string_view, N> fields;
  for (size_t i = 0; i < N; ++i) {
    if (encoded.empty()) {
      return absl::DataLossError(absl::StrCat(what, " has ", i, " fields instead of ", N));
    }
    CF_ASSIGN_OR_RETURN(fields[i], ReadNetstring(encoded), "", what);
  }
  if (!encoded.empty()) {
    return absl::DataLossError(absl::StrCat(what, " has more than ", N, " fields"));
  }
  return fields;
}

// A canonical decimal int64, as absl::StrCat writes it.
absl::StatusOr<int64_t> ParseInt64(absl::string_view text, absl::string_view what) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || absl::StrCat(value) != text) {
    return absl::DataLossError(absl::StrCat(what, " '", text, "' is not a decimal integer"));
  }
  return value;
}

// Reads every netstring of `encoded`: DataLoss when there are fewer than `min` or more than
// `max` (a record whose last fields are optional on read).
absl::StatusOr<std::vector<absl::string_view>> ReadFieldRange(absl::string_view encoded, size_t min,
                                                              size_t max, absl::string_view what) {
  std::vector<absl::string_view> fields;
  while (!encoded.empty()) {
    if (fields.size() == max) {
      return absl::DataLossError(absl::StrCat(what, " has more than ", max, " fields"));
    }
    CF_ASSIGN_OR_RETURN(absl::string_view field, ReadNetstring(encoded), "", what);
    fields.push_back(field);
  }
  if (fields.size() < min) {
    return absl::DataLossError(
        absl::StrCat(what, " has ", fields.size(), " fields instead of at least ", min));
  }
  return fields;
}

absl::StatusOr<bool> ParseBool(absl::string_view text, absl::string_view what) {
  if (text != "0" && text != "1") {
    return absl::DataLossError(absl::StrCat(what, " is '", text, "' instead of 0 or 1"));
  }
  return text == "1";
}

// A canonical decimal in [min, max].
absl::StatusOr<int64_t> ParseInt64InRange(absl::string_view text, int64_t min, int64_t max,
                                          absl::string_view what) {
  CF_ASSIGN_OR_RETURN(int64_t value, ParseInt64(text, what));
  if (value < min || value > max) {
    return absl::DataLossError(absl::StrCat(what, " ", value, " is out of range"));
  }
  return value;
}

std::string EncodeEvents(const std::vector<model::EventRecord>& events) {
  std::string out;
  for (const model::EventRecord& event : events) {
    std::string fields;
    AppendNetstring(absl::StrCat(TimeToMicros(event.time)), fields);
    AppendNetstring(absl::StrCat(event.id), fields);
    AppendNetstring(event.level, fields);
    AppendNetstring(event.message, fields);
    AppendNetstring(fields, out);
  }
  return out;
}

absl::StatusOr<std::vector<model::EventRecord>> DecodeEvents(absl::string_view encoded) {
  std::vector<model::EventRecord> events;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view event, ReadNetstring(encoded), "event");
    CF_ASSIGN_OR_RETURN(auto fields, ReadFields<4>(event, "event"));
    model::EventRecord& record = events.emplace_back();
    CF_ASSIGN_OR_RETURN(int64_t time, ParseInt64(fields[0], "event time"));
    record.time = MicrosToTime(time);
    CF_ASSIGN_OR_RETURN(int64_t id, ParseInt64InRange(fields[1], std::numeric_limits<int>::min(),
                                                      std::numeric_limits<int>::max(), "event id"));
    record.id = static_cast<int>(id);
    record.level = std::string(fields[2]);
    record.message = std::string(fields[3]);
  }
  return events;
}

// The fields of a CommandResult, in the order encoding.h gives; shared by the outcome (after
// its code and error) and the evidence of a renewal.
constexpr size_t kResultFields = 8;
constexpr size_t kResultFieldsBeforeCsr = 7;  // outcomes written before schema version 3

void AppendResultFields(const model::CommandResult& result, std::string& out) {
  AppendNetstring(result.thumbprint, out);
  AppendNetstring(EncodeStringList(result.problems), out);
  AppendNetstring(result.previous_channel_serial, out);
  AppendNetstring(result.channel_serial, out);
  AppendNetstring(result.rolled_back ? "1" : "0", out);
  AppendNetstring(EncodeEvents(result.events), out);
  AppendNetstring(result.detail, out);
  AppendNetstring(result.csr_pem, out);
}

// `fields` holds kResultFieldsBeforeCsr or kResultFields netstrings.
absl::StatusOr<model::CommandResult> ParseResultFields(absl::Span<const absl::string_view> fields,
                                                       absl::string_view what) {
  model::CommandResult result;
  result.thumbprint = std::string(fields[0]);
  CF_ASSIGN_OR_RETURN(result.problems, DecodeStringList(fields[1]), "", what, ": problems");
  result.previous_channel_serial = std::string(fields[2]);
  result.channel_serial = std::string(fields[3]);
  CF_ASSIGN_OR_RETURN(result.rolled_back, ParseBool(fields[4], "rolled_back"), "", what);
  CF_ASSIGN_OR_RETURN(result.events, DecodeEvents(fields[5]), "", what);
  result.detail = std::string(fields[6]);
  if (fields.size() > kResultFieldsBeforeCsr) result.csr_pem = std::string(fields[7]);
  return result;
}

}  // namespace

int64_t TimeToMicros(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kInfiniteFutureMicros;
  if (t == absl::InfinitePast()) return kInfinitePastMicros;
  return absl::ToUnixMicros(t);
}

absl::Time MicrosToTime(int64_t micros) {
  if (micros == kInfiniteFutureMicros) return absl::InfiniteFuture();
  if (micros == kInfinitePastMicros) return absl::InfinitePast();
  return absl::FromUnixMicros(micros);
}

std::string EncodeStringList(const std::vector<std::string>& list) {
  std::string out;
  for (const std::string& value : list) AppendNetstring(value, out);
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeStringList(absl::string_view encoded) {
  std::vector<std::string> list;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view value, ReadNetstring(encoded));
    list.emplace_back(value);
  }
  return list;
}

std::string EncodeStringMap(const std::map<std::string, std::string>& map) {
  std::string out;
  for (const auto& [key, value] : map) {
    AppendNetstring(key, out);
    AppendNetstring(value, out);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> DecodeStringMap(absl::string_view encoded) {
  std::map<std::string, std::string> map;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view key, ReadNetstring(encoded));
    if (encoded.empty()) return absl::DataLossError("map key without a value");
    CF_ASSIGN_OR_RETURN(absl::string_view value, ReadNetstring(encoded));
    if (!map.emplace(std::string(key), std::string(value)).second) {
      return absl::DataLossError(absl::StrCat("duplicate map key '", key, "'"));
    }
  }
  return map;
}

int64_t DurationToMicros(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return kInfiniteFutureMicros;
  if (d == -absl::InfiniteDuration()) return kInfinitePastMicros;
  return absl::ToInt64Microseconds(d);
}

absl::Duration MicrosToDuration(int64_t micros) {
  if (micros == kInfiniteFutureMicros) return absl::InfiniteDuration();
  if (micros == kInfinitePastMicros) return -absl::InfiniteDuration();
  return absl::Microseconds(micros);
}

std::string EncodeCommandPayload(const model::CommandPayload& payload) {
  std::string out;
  std::visit(
      [&out](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, model::ImportPayload>) {
          AppendNetstring(p.data, out);
          AppendNetstring(p.password, out);
        } else if constexpr (std::is_same_v<T, model::RepairPayload> ||
                             std::is_same_v<T, model::RemovePayload>) {
          AppendNetstring(p.thumbprint, out);
        } else if constexpr (std::is_same_v<T, model::RebindPayload>) {
          AppendNetstring(p.thumbprint, out);
          AppendNetstring(absl::StrCat(DurationToMicros(p.verify_timeout)), out);
        } else if constexpr (std::is_same_v<T, model::TrustPayload>) {
          AppendNetstring(p.data, out);
        } else if constexpr (std::is_same_v<T, model::RenewPayload>) {
          AppendNetstring(EncodeProfile(p.profile), out);
        } else if constexpr (std::is_same_v<T, model::InstallPayload>) {
          AppendNetstring(p.chain_pem, out);
          AppendNetstring(p.bind ? "1" : "0", out);
          AppendNetstring(absl::StrCat(DurationToMicros(p.verify_timeout)), out);
        } else {
          static_assert(std::is_same_v<T, model::ScanPayload>,
                        "a payload type without an encoding");
        }
      },
      payload);
  return out;
}

absl::StatusOr<model::CommandPayload> DecodeCommandPayload(model::CommandKind kind,
                                                           absl::string_view encoded) {
  const std::string what = absl::StrCat(model::CommandKindName(kind), " payload");
  switch (kind) {
    case model::CommandKind::kScan: {
      CF_RETURN_IF_ERROR(ReadFields<0>(encoded, what).status());
      return model::ScanPayload{};
    }
    case model::CommandKind::kImport: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<2>(encoded, what));
      return model::ImportPayload{std::string(fields[0]), std::string(fields[1])};
    }
    case model::CommandKind::kRepair: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<1>(encoded, what));
      return model::RepairPayload{std::string(fields[0])};
    }
    case model::CommandKind::kRebind: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<2>(encoded, what));
      CF_ASSIGN_OR_RETURN(int64_t timeout, ParseInt64(fields[1], "verify timeout"), "", what);
      return model::RebindPayload{std::string(fields[0]), MicrosToDuration(timeout)};
    }
    case model::CommandKind::kTrust: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<1>(encoded, what));
      return model::TrustPayload{std::string(fields[0])};
    }
    case model::CommandKind::kRemove: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<1>(encoded, what));
      return model::RemovePayload{std::string(fields[0])};
    }
    case model::CommandKind::kRenew: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<1>(encoded, what));
      CF_ASSIGN_OR_RETURN(model::CertificateProfile profile, DecodeProfile(fields[0]), "", what);
      return model::RenewPayload{std::move(profile)};
    }
    case model::CommandKind::kInstall: {
      CF_ASSIGN_OR_RETURN(auto fields, ReadFields<3>(encoded, what));
      model::InstallPayload install;
      install.chain_pem = std::string(fields[0]);
      CF_ASSIGN_OR_RETURN(install.bind, ParseBool(fields[1], "bind"), "", what);
      CF_ASSIGN_OR_RETURN(int64_t timeout, ParseInt64(fields[2], "verify timeout"), "", what);
      install.verify_timeout = MicrosToDuration(timeout);
      return install;
    }
  }
  return absl::DataLossError(absl::StrCat("unknown command kind ", static_cast<int>(kind)));
}

std::string EncodeCommandOutcome(const model::CommandOutcome& outcome) {
  std::string out;
  AppendNetstring(absl::StrCat(static_cast<int>(outcome.code)), out);
  AppendNetstring(outcome.error, out);
  AppendResultFields(outcome.result, out);
  return out;
}

absl::StatusOr<model::CommandOutcome> DecodeCommandOutcome(model::CommandState state,
                                                           absl::string_view encoded) {
  constexpr absl::string_view kWhat = "command outcome";
  CF_ASSIGN_OR_RETURN(
      std::vector<absl::string_view> fields,
      ReadFieldRange(encoded, 2 + kResultFieldsBeforeCsr, 2 + kResultFields, kWhat));
  model::CommandOutcome outcome;
  outcome.state = state;
  // The canonical codes are 0 (OK) to 16 (UNAUTHENTICATED), as in gRPC.
  CF_ASSIGN_OR_RETURN(
      int64_t code,
      ParseInt64InRange(fields[0], 0, static_cast<int64_t>(absl::StatusCode::kUnauthenticated),
                        "status code"),
      "", kWhat);
  outcome.code = static_cast<absl::StatusCode>(code);
  outcome.error = std::string(fields[1]);
  CF_ASSIGN_OR_RETURN(outcome.result,
                      ParseResultFields(absl::MakeConstSpan(fields).subspan(2), kWhat));
  return outcome;
}

std::string EncodeCommandResult(const model::CommandResult& result) {
  std::string out;
  AppendResultFields(result, out);
  return out;
}

absl::StatusOr<model::CommandResult> DecodeCommandResult(absl::string_view encoded) {
  constexpr absl::string_view kWhat = "command result";
  CF_ASSIGN_OR_RETURN(std::vector<absl::string_view> fields,
                      ReadFieldRange(encoded, kResultFieldsBeforeCsr, kResultFields, kWhat));
  return ParseResultFields(fields, kWhat);
}

std::string EncodeProfile(const model::CertificateProfile& profile) {
  std::string out;
  AppendNetstring(profile.name, out);
  AppendNetstring(profile.key_algorithm, out);
  AppendNetstring(absl::StrCat(profile.key_bits), out);
  AppendNetstring(profile.signature_hash, out);
  AppendNetstring(EncodeStringList(profile.extra_dns_names), out);
  AppendNetstring(absl::StrCat(profile.key_usage), out);
  AppendNetstring(EncodeStringList(profile.extended_key_usage), out);
  AppendNetstring(absl::StrCat(DurationToMicros(profile.validity)), out);
  AppendNetstring(profile.template_name, out);
  return out;
}

absl::StatusOr<model::CertificateProfile> DecodeProfile(absl::string_view encoded) {
  constexpr absl::string_view kWhat = "certificate profile";
  CF_ASSIGN_OR_RETURN(auto fields, ReadFields<9>(encoded, kWhat));
  model::CertificateProfile profile;
  profile.name = std::string(fields[0]);
  profile.key_algorithm = std::string(fields[1]);
  CF_ASSIGN_OR_RETURN(int64_t key_bits,
                      ParseInt64InRange(fields[2], std::numeric_limits<int>::min(),
                                        std::numeric_limits<int>::max(), "key_bits"),
                      "", kWhat);
  profile.key_bits = static_cast<int>(key_bits);
  profile.signature_hash = std::string(fields[3]);
  CF_ASSIGN_OR_RETURN(profile.extra_dns_names, DecodeStringList(fields[4]), "", kWhat,
                      ": extra_dns_names");
  CF_ASSIGN_OR_RETURN(
      int64_t key_usage,
      ParseInt64InRange(fields[5], 0, std::numeric_limits<uint32_t>::max(), "key_usage"), "",
      kWhat);
  profile.key_usage = static_cast<uint32_t>(key_usage);
  CF_ASSIGN_OR_RETURN(profile.extended_key_usage, DecodeStringList(fields[6]), "", kWhat,
                      ": extended_key_usage");
  CF_ASSIGN_OR_RETURN(int64_t validity, ParseInt64(fields[7], "validity"), "", kWhat);
  profile.validity = MicrosToDuration(validity);
  profile.template_name = std::string(fields[8]);
  return profile;
}

std::string EncodeRenewalSteps(const std::vector<RenewalStep>& steps) {
  std::string out;
  for (const RenewalStep& step : steps) {
    std::string fields;
    AppendNetstring(model::RenewalStateName(step.state), fields);
    AppendNetstring(absl::StrCat(TimeToMicros(step.at)), fields);
    AppendNetstring(step.note, fields);
    AppendNetstring(fields, out);
  }
  return out;
}

absl::StatusOr<std::vector<RenewalStep>> DecodeRenewalSteps(absl::string_view encoded) {
  std::vector<RenewalStep> steps;
  while (!encoded.empty()) {
    CF_ASSIGN_OR_RETURN(absl::string_view step, ReadNetstring(encoded), "renewal step");
    CF_ASSIGN_OR_RETURN(auto fields, ReadFields<3>(step, "renewal step"));
    std::optional<model::RenewalState> state = model::RenewalStateFromName(fields[0]);
    if (!state.has_value()) {
      return absl::DataLossError(absl::StrCat("renewal step has unknown state '", fields[0], "'"));
    }
    CF_ASSIGN_OR_RETURN(int64_t at, ParseInt64(fields[1], "renewal step time"));
    steps.push_back(RenewalStep{*state, MicrosToTime(at), std::string(fields[2])});
  }
  return steps;
}

absl::Status RequireNonEmpty(absl::string_view value, absl::string_view what) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  return absl::OkStatus();
}

std::optional<int64_t> OptionalMicros(const std::optional<absl::Time>& t) {
  return t.has_value() ? std::optional<int64_t>(TimeToMicros(*t)) : std::nullopt;
}

std::optional<absl::Time> OptionalTime(std::optional<int64_t> micros) {
  return micros.has_value() ? std::optional<absl::Time>(MicrosToTime(*micros)) : std::nullopt;
}

}  // namespace certfleet::controller::store
