#include "common/rpc/certificate_convert.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/timestamp.pb.h"

namespace certfleet::common::rpc {
namespace {

// Valid google.protobuf.Timestamp range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  int64_t seconds = absl::ToUnixSeconds(t);
  absl::Duration rest = t - absl::FromUnixSeconds(seconds);
  if (rest < absl::ZeroDuration()) {
    seconds -= 1;
    rest += absl::Seconds(1);
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
}

absl::StatusOr<absl::Time> FromTimestamp(const google::protobuf::Timestamp& ts,
                                         absl::string_view field) {
  if (ts.seconds() < kMinTimestampSeconds || ts.seconds() > kMaxTimestampSeconds ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is out of range"));
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

// The value of the first "CN=" attribute of an RFC 2253 name, with escapes removed.
std::string FirstCommonName(absl::string_view subject) {
  size_t pos = 0;
  while (pos < subject.size()) {
    // One RDN component runs to the next unescaped ',' or '+'.
    std::string value;
    size_t i = pos;
    bool escaped = false;
    for (; i < subject.size(); ++i) {
      char c = subject[i];
      if (escaped) {
        value.push_back(c);
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == ',' || c == '+') {
        break;
      } else {
        value.push_back(c);
      }
    }
    if (absl::StartsWithIgnoreCase(value, "CN=")) return value.substr(3);
    pos = i + 1;
  }
  return "";
}

}  // namespace

void ToProto(const model::CertificateInfo& info, const std::vector<std::string>& problems,
             certfleet::v1::Certificate* out) {
  out->Clear();
  out->set_subject(info.subject);
  out->set_issuer(info.issuer);
  for (const std::string& dns : info.dns_names) out->add_dns_names(dns);
  out->set_serial(info.serial);
  out->set_channel_serial(info.channel_serial);
  out->set_thumbprint(info.thumbprint);
  out->set_sha256(info.sha256);
  ToTimestamp(info.not_before, out->mutable_not_before());
  ToTimestamp(info.not_after, out->mutable_not_after());
  out->set_key_algorithm(info.key_algorithm);
  out->set_key_bits(info.key_bits);
  out->set_signature_hash(info.signature_hash);
  for (const std::string& name : model::KeyUsageNames(info.key_usage)) out->add_key_usage(name);
  for (const std::string& oid : info.extended_key_usage) out->add_extended_key_usage(oid);
  out->set_is_ca(info.is_ca);
  out->set_has_private_key(info.has_private_key);
  out->set_template_name(info.template_name);
  for (const std::string& p : problems) out->add_problems(p);
  out->set_compliant(problems.empty());
}

absl::StatusOr<model::CertificateInfo> FromProto(const certfleet::v1::Certificate& proto) {
  if (proto.thumbprint().size() != 40 || !IsHex(proto.thumbprint())) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate thumbprint '", proto.thumbprint(), "' is not 40 hex digits"));
  }
  if (!proto.sha256().empty() && (proto.sha256().size() != 64 || !IsHex(proto.sha256()))) {
    return absl::InvalidArgumentError("certificate sha256 is not 64 hex digits");
  }
  if (proto.serial().empty() || proto.serial().size() % 2 != 0 || !IsHex(proto.serial())) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate serial '", proto.serial(), "' is not even-length hex"));
  }
  if (proto.channel_serial().size() % 2 != 0 || !IsHex(proto.channel_serial())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate channel_serial '", proto.channel_serial(), "' is not even-length hex"));
  }
  model::CertificateInfo info;
  auto not_before = FromTimestamp(proto.not_before(), "not_before");
  if (!not_before.ok()) return not_before.status();
  auto not_after = FromTimestamp(proto.not_after(), "not_after");
  if (!not_after.ok()) return not_after.status();
  if (*not_after < *not_before) {
    return absl::InvalidArgumentError("certificate not_after is before not_before");
  }
  info.not_before = *not_before;
  info.not_after = *not_after;

  for (const std::string& name : proto.key_usage()) {
    bool known = false;
    for (uint32_t bit = 1; bit <= model::kCrlSign; bit <<= 1) {
      if (model::KeyUsageNames(bit) == std::vector<std::string>{name}) {
        info.key_usage |= bit;
        known = true;
        break;
      }
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("unknown key usage '", name, "'"));
    }
  }
  // The wire cannot tell an absent extension from an empty one; a certificate that names
  // usages has the extension.
  info.has_key_usage = info.key_usage != 0;

  info.subject = proto.subject();
  info.subject_cn = FirstCommonName(proto.subject());
  info.issuer = proto.issuer();
  info.dns_names.assign(proto.dns_names().begin(), proto.dns_names().end());
  info.serial = absl::AsciiStrToUpper(proto.serial());
  info.channel_serial = absl::AsciiStrToUpper(proto.channel_serial());
  info.thumbprint = absl::AsciiStrToUpper(proto.thumbprint());
  info.sha256 = absl::AsciiStrToUpper(proto.sha256());
  info.key_algorithm = proto.key_algorithm();
  info.key_bits = proto.key_bits();
  info.signature_hash = proto.signature_hash();
  info.extended_key_usage.assign(proto.extended_key_usage().begin(),
                                 proto.extended_key_usage().end());
  info.is_ca = proto.is_ca();
  info.template_name = proto.template_name();
  info.has_private_key = proto.has_private_key();
  return info;
}

}  // namespace certfleet::common::rpc
