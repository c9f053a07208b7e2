#include "common/rpc/command_convert.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/model/certificate.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::common::rpc {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxData = 1 << 20;
constexpr size_t kMaxText = 16 * 1024;

google::protobuf::Timestamp Ts(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}
// Peer timestamps are clamped to what Timestamp allows (years 1..9999) before conversion, so a
// hostile value cannot overflow.
absl::Time FromTs(const google::protobuf::Timestamp& t) {
  if (t.seconds() < TimeUtil::kTimestampMinSeconds) return absl::InfinitePast();
  if (t.seconds() > TimeUtil::kTimestampMaxSeconds) return absl::InfiniteFuture();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos() % 1000000000);
}

absl::Status CheckThumbprint(absl::string_view t, absl::string_view kind) {
  if (!model::IsThumbprint(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " command: thumbprint must be 40 hex digits"));
  }
  return absl::OkStatus();
}

}  // namespace

void ToProto(const model::CertificateProfile& p, certfleet::v1::CertificateProfile* out) {
  out->set_name(p.name);
  out->set_key_algorithm(p.key_algorithm);
  out->set_key_bits(p.key_bits);
  out->set_signature_hash(p.signature_hash);
  for (const auto& n : p.extra_dns_names) out->add_extra_dns_names(n);
  for (const auto& n : model::KeyUsageNames(p.key_usage)) out->add_key_usage(n);
  for (const auto& e : p.extended_key_usage) out->add_extended_key_usage(e);
  *out->mutable_validity() = TimeUtil::SecondsToDuration(absl::ToInt64Seconds(p.validity));
  out->set_template_name(p.template_name);
}

absl::StatusOr<model::CertificateProfile> FromProto(const certfleet::v1::CertificateProfile& in) {
  model::CertificateProfile p;
  p.name = in.name();
  p.key_algorithm = in.key_algorithm();
  p.key_bits = in.key_bits();
  p.signature_hash = in.signature_hash();
  p.extra_dns_names.assign(in.extra_dns_names().begin(), in.extra_dns_names().end());
  auto ku = model::KeyUsageFromNames({in.key_usage().begin(), in.key_usage().end()});
  if (!ku) return absl::InvalidArgumentError("profile: unknown key usage name");
  p.key_usage = *ku;
  p.extended_key_usage.assign(in.extended_key_usage().begin(), in.extended_key_usage().end());
  p.validity = absl::Seconds(TimeUtil::DurationToSeconds(in.validity()));
  p.template_name = in.template_name();
  if (absl::Status s = model::ValidateProfile(p); !s.ok()) return s;
  return p;
}

void ToProto(const model::Command& command, certfleet::v1::Command* out) {
  out->set_id(command.id);
  *out->mutable_deadline() = Ts(command.deadline);
  std::visit(
      [out](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, model::ScanPayload>) {
          out->mutable_scan();
        } else if constexpr (std::is_same_v<T, model::ImportPayload>) {
          out->mutable_import()->set_data(p.data);
          out->mutable_import()->set_password(p.password);
        } else if constexpr (std::is_same_v<T, model::RepairPayload>) {
          out->mutable_repair()->set_thumbprint(p.thumbprint);
        } else if constexpr (std::is_same_v<T, model::RebindPayload>) {
          out->mutable_rebind()->set_thumbprint(p.thumbprint);
          *out->mutable_rebind()->mutable_verify_timeout() =
              TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(p.verify_timeout));
        } else if constexpr (std::is_same_v<T, model::TrustPayload>) {
          out->mutable_trust()->set_data(p.data);
        } else if constexpr (std::is_same_v<T, model::RemovePayload>) {
          out->mutable_remove()->set_thumbprint(p.thumbprint);
        } else if constexpr (std::is_same_v<T, model::RenewPayload>) {
          ToProto(p.profile, out->mutable_renew()->mutable_profile());
        } else if constexpr (std::is_same_v<T, model::InstallPayload>) {
          out->mutable_install()->set_chain_pem(p.chain_pem);
          out->mutable_install()->set_bind(p.bind);
          *out->mutable_install()->mutable_verify_timeout() =
              TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(p.verify_timeout));
        }
      },
      command.payload);
}

absl::StatusOr<model::Command> FromProto(const certfleet::v1::Command& in) {
  model::Command c;
  if (in.id().empty() || in.id().size() > 128) {
    return absl::InvalidArgumentError("command: id must be 1-128 characters");
  }
  c.id = in.id();
  c.deadline = FromTs(in.deadline());
  switch (in.payload_case()) {
    case certfleet::v1::Command::kScan:
      c.payload = model::ScanPayload{};
      break;
    case certfleet::v1::Command::kImport:
      if (in.import().data().empty() || in.import().data().size() > kMaxData) {
        return absl::InvalidArgumentError("import command: data must be 1 byte to 1 MiB");
      }
      c.payload = model::ImportPayload{in.import().data(), in.import().password()};
      break;
    case certfleet::v1::Command::kRepair: {
      auto s = CheckThumbprint(in.repair().thumbprint(), "repair");
      if (!s.ok()) return s;
      c.payload = model::RepairPayload{absl::AsciiStrToUpper(in.repair().thumbprint())};
      break;
    }
    case certfleet::v1::Command::kRebind: {
      auto s = CheckThumbprint(in.rebind().thumbprint(), "rebind");
      if (!s.ok()) return s;
      absl::Duration timeout = absl::Seconds(60);
      if (in.rebind().has_verify_timeout()) {
        timeout =
            absl::Milliseconds(TimeUtil::DurationToMilliseconds(in.rebind().verify_timeout()));
      }
      if (timeout < absl::Seconds(1) || timeout > absl::Hours(1)) {
        return absl::InvalidArgumentError("rebind command: verify timeout must be 1s to 1h");
      }
      c.payload = model::RebindPayload{absl::AsciiStrToUpper(in.rebind().thumbprint()), timeout};
      break;
    }
    case certfleet::v1::Command::kTrust:
      if (in.trust().data().empty() || in.trust().data().size() > kMaxData) {
        return absl::InvalidArgumentError("trust command: data must be 1 byte to 1 MiB");
      }
      c.payload = model::TrustPayload{in.trust().data()};
      break;
    case certfleet::v1::Command::kRemove: {
      auto s = CheckThumbprint(in.remove().thumbprint(), "remove");
      if (!s.ok()) return s;
      c.payload = model::RemovePayload{absl::AsciiStrToUpper(in.remove().thumbprint())};
      break;
    }
    case certfleet::v1::Command::kRenew: {
      auto profile = FromProto(in.renew().profile());
      if (!profile.ok()) return profile.status();
      c.payload = model::RenewPayload{std::move(*profile)};
      break;
    }
    case certfleet::v1::Command::kInstall: {
      if (in.install().chain_pem().empty() || in.install().chain_pem().size() > kMaxData) {
        return absl::InvalidArgumentError("install command: chain must be 1 byte to 1 MiB");
      }
      absl::Duration timeout = absl::Seconds(60);
      if (in.install().has_verify_timeout()) {
        timeout =
            absl::Milliseconds(TimeUtil::DurationToMilliseconds(in.install().verify_timeout()));
      }
      if (timeout < absl::Seconds(1) || timeout > absl::Hours(1)) {
        return absl::InvalidArgumentError("install command: verify timeout must be 1s to 1h");
      }
      c.payload = model::InstallPayload{in.install().chain_pem(), in.install().bind(), timeout};
      break;
    }
    case certfleet::v1::Command::PAYLOAD_NOT_SET:
      return absl::InvalidArgumentError("command: no payload");
  }
  return c;
}

void ToProto(const model::CommandResult& r, certfleet::v1::CommandResult* out) {
  out->set_thumbprint(r.thumbprint);
  for (const auto& p : r.problems) out->add_problems(p);
  out->set_previous_channel_serial(r.previous_channel_serial);
  out->set_channel_serial(r.channel_serial);
  out->set_rolled_back(r.rolled_back);
  for (const auto& e : r.events) {
    auto* ev = out->add_events();
    *ev->mutable_time() = Ts(e.time);
    ev->set_id(e.id);
    ev->set_level(e.level);
    ev->set_message(e.message);
  }
  out->set_detail(r.detail);
  out->set_csr_pem(r.csr_pem);
}

model::CommandResult FromProto(const certfleet::v1::CommandResult& in) {
  model::CommandResult r;
  r.thumbprint = in.thumbprint().substr(0, 64);
  for (const auto& p : in.problems()) r.problems.push_back(p.substr(0, 64));
  r.previous_channel_serial = in.previous_channel_serial().substr(0, 256);
  r.channel_serial = in.channel_serial().substr(0, 256);
  r.rolled_back = in.rolled_back();
  for (const auto& e : in.events()) {
    if (r.events.size() >= 100) break;
    r.events.push_back(model::EventRecord{FromTs(e.time()), e.id(), e.level().substr(0, 32),
                                          e.message().substr(0, kMaxText)});
  }
  r.detail = in.detail().substr(0, kMaxText);
  r.csr_pem = in.csr_pem().substr(0, 64 * 1024);
  return r;
}

void ToProto(absl::string_view command_id, const model::CommandOutcome& outcome,
             certfleet::v1::CommandUpdate* out) {
  out->set_command_id(std::string(command_id));
  out->set_phase(certfleet::v1::CommandUpdate::DONE);
  out->set_state(std::string(model::CommandStateName(outcome.state)));
  out->set_code(static_cast<int>(outcome.code));
  out->set_error(outcome.error);
  ToProto(outcome.result, out->mutable_result());
}

absl::StatusOr<model::CommandOutcome> OutcomeFromProto(const certfleet::v1::CommandUpdate& in) {
  model::CommandOutcome o;
  auto state = model::CommandStateFromName(in.state());
  if (!state || !model::IsFinal(*state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("command update: '", in.state().substr(0, 32), "' is not a final state"));
  }
  if (in.code() < 0 || in.code() > 16) {
    return absl::InvalidArgumentError("command update: unknown status code");
  }
  o.state = *state;
  o.code = static_cast<absl::StatusCode>(in.code());
  o.error = in.error().substr(0, kMaxText);
  o.result = FromProto(in.result());
  return o;
}

}  // namespace certfleet::common::rpc
