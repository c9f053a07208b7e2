#include "agent/platform/health_service_emulator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/describe.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/scom/channel_serial.h"
#include "common/scom/rules.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"

namespace certfleet::agent::platform {
namespace {

namespace crypto = common::crypto;
namespace model = common::model;

constexpr absl::string_view kSettingsKey =
    "HKLM\\SOFTWARE\\Microsoft\\Microsoft Operations Manager\\3.0\\Machine Settings";

HostEvent MakeEvent(absl::Time now, int id, absl::string_view level, std::string message) {
  HostEvent event;
  event.time = now;
  event.id = id;
  event.level = std::string(level);
  event.message = std::move(message);
  return event;
}

// The common opening of the HealthService's "cannot be used" texts.
std::string Unusable(const model::CertificateInfo& info, absl::string_view reason) {
  return absl::StrCat("The certificate specified in the registry at ", kSettingsKey, " (subject '",
                      info.subject, "', serial number '", info.serial,
                      "') cannot be used for authentication. ", reason);
}

// The certificates of `store` that parse, in id order; unreadable entries are skipped, as
// CryptoAPI skips what it cannot decode.
absl::StatusOr<std::vector<crypto::X509Ptr>> ReadableCertificates(CertificateStore& certificates,
                                                                  StoreName store) {
  CF_ASSIGN_OR_RETURN(std::vector<StoredCertificate> entries, certificates.List(store),
                      "listing store ", StoreNameText(store));
  std::vector<crypto::X509Ptr> out;
  out.reserve(entries.size());
  for (const StoredCertificate& entry : entries) {
    if (!entry.error.empty()) continue;
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(entry.der);
    if (cert.ok()) out.push_back(std::move(*cert));
  }
  return out;
}

}  // namespace

absl::string_view RestartFaultKindText(RestartFault::Kind kind) {
  switch (kind) {
    case RestartFault::Kind::kNone:
      return "none";
    case RestartFault::Kind::kFail:
      return "fail";
    case RestartFault::Kind::kHang:
      return "hang";
    case RestartFault::Kind::kNoEvent:
      return "no_event";
  }
  return "none";
}

std::optional<RestartFault::Kind> RestartFaultKindFromText(absl::string_view text) {
  for (RestartFault::Kind kind : {RestartFault::Kind::kNone, RestartFault::Kind::kFail,
                                  RestartFault::Kind::kHang, RestartFault::Kind::kNoEvent}) {
    if (text == RestartFaultKindText(kind)) return kind;
  }
  return std::nullopt;
}

HealthServiceEmulator::HealthServiceEmulator(const Deps& deps, std::string fqdn,
                                             absl::Duration max_restart_time)
    : certificates_(deps.certificates),
      binding_(deps.binding),
      clock_(deps.clock),
      fqdn_(std::move(fqdn)),
      max_restart_time_(max_restart_time) {}

absl::StatusOr<HostEvent> HealthServiceEmulator::LoadCertificate() {
  const absl::Time now = clock_.Now();
  CF_ASSIGN_OR_RETURN(MachineSettings settings, binding_.Read(), "reading Machine Settings");
  if (!settings.channel_certificate_serial.has_value()) {
    return MakeEvent(now, kEventCertificateNotFound, kLevelError,
                     absl::StrCat("The OpsMgr Connector could not find a certificate to use for "
                                  "authentication: the value ChannelCertificateSerialNumber is "
                                  "not set under ",
                                  kSettingsKey, "."));
  }
  const std::string& channel_serial = *settings.channel_certificate_serial;

  CF_ASSIGN_OR_RETURN(std::vector<StoredCertificate> my, certificates_.List(StoreName::kMy),
                      "listing store My");
  crypto::X509Ptr bound;
  model::CertificateInfo info;
  bool has_key = false;
  // CA certificates in My help chain building, as Windows' chain engine uses them too.
  std::vector<crypto::X509Ptr> my_cas;
  for (const StoredCertificate& entry : my) {
    if (!entry.error.empty()) continue;
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(entry.der);
    if (!cert.ok()) continue;
    absl::StatusOr<model::CertificateInfo> described =
        crypto::DescribeCertificate(cert->get(), entry.has_private_key);
    if (!described.ok()) continue;
    if (described->is_ca) my_cas.push_back(crypto::CopyCertificate(cert->get()));
    if (!common::scom::ChannelSerialMatches(channel_serial, described->serial)) continue;
    if (bound == nullptr || (!has_key && entry.has_private_key)) {
      bound = std::move(*cert);
      info = std::move(*described);
      has_key = entry.has_private_key;
    }
  }
  if (bound == nullptr) {
    return MakeEvent(
        now, kEventCertificateNotFound, kLevelError,
        absl::StrCat("The OpsMgr Connector could not find the certificate with "
                     "serial number '",
                     channel_serial, "' (ChannelCertificateSerialNumber under ", kSettingsKey,
                     ") in the Personal (My) store of the local computer."));
  }
  if (!has_key) {
    return MakeEvent(now, kEventNoPrivateKey, kLevelError,
                     Unusable(info,
                              "The certificate has no private key, or its private key cannot "
                              "be accessed."));
  }
  if (now < info.not_before || now > info.not_after) {
    return MakeEvent(
        now, kEventNotTimeValid, kLevelError,
        Unusable(info, absl::StrCat("The certificate is not valid at the current time (valid "
                                    "from ",
                                    common::FormatRfc3339(info.not_before), " to ",
                                    common::FormatRfc3339(info.not_after), ").")));
  }
  constexpr uint32_t kRequiredUsage = model::kDigitalSignature | model::kKeyEncipherment;
  if (info.has_key_usage && (info.key_usage & kRequiredUsage) != kRequiredUsage) {
    return MakeEvent(now, kEventKeyUsage, kLevelError,
                     Unusable(info,
                              "Its Key Usage must allow both digital signature and key "
                              "encipherment."));
  }
  const bool server_auth = absl::c_linear_search(info.extended_key_usage, model::kServerAuthOid);
  const bool client_auth = absl::c_linear_search(info.extended_key_usage, model::kClientAuthOid);
  if (!server_auth || !client_auth) {
    return MakeEvent(
        now, kEventEnhancedKeyUsage, kLevelError,
        Unusable(info, absl::StrCat("Its Enhanced Key Usage must include Server Authentication (",
                                    model::kServerAuthOid, ") and Client Authentication (",
                                    model::kClientAuthOid, ").")));
  }
  if (!common::scom::SubjectMatches(info, fqdn_)) {
    return MakeEvent(
        now, kEventSubjectMismatch, kLevelError,
        Unusable(info, absl::StrCat("Its subject name '", common::scom::NameForMatch(info),
                                    "' does not match the computer name '", fqdn_, "'.")));
  }

  CF_ASSIGN_OR_RETURN(std::vector<crypto::X509Ptr> ca,
                      ReadableCertificates(certificates_, StoreName::kCa));
  CF_ASSIGN_OR_RETURN(std::vector<crypto::X509Ptr> root,
                      ReadableCertificates(certificates_, StoreName::kRoot));
  std::vector<X509*> intermediates;
  intermediates.reserve(ca.size() + my_cas.size());
  for (const crypto::X509Ptr& cert : ca) intermediates.push_back(cert.get());
  for (const crypto::X509Ptr& cert : my_cas) intermediates.push_back(cert.get());
  std::vector<X509*> roots;
  roots.reserve(root.size());
  for (const crypto::X509Ptr& cert : root) roots.push_back(cert.get());
  absl::Status chain = crypto::VerifyChain(bound.get(), intermediates, roots, now);
  if (!chain.ok()) {
    return MakeEvent(
        now, kEventChainUntrusted, kLevelError,
        Unusable(info, absl::StrCat("Its certificate chain is not trusted by the Trusted Root "
                                    "Certification Authorities of the local computer: ",
                                    chain.message())));
  }
  return MakeEvent(now, kEventCertificateLoaded, kLevelInformation,
                   absl::StrCat("The OpsMgr Connector has loaded the authentication certificate "
                                "with subject '",
                                info.subject, "', issuer '", info.issuer, "', serial number '",
                                info.serial, "' and thumbprint '", info.thumbprint, "'."));
}

RestartOutcome HealthServiceEmulator::Restart(const RestartFault& fault) {
  RestartOutcome outcome;
  switch (fault.kind) {
    case RestartFault::Kind::kFail:
      outcome.status = absl::UnavailableError(
          "HealthService failed to start (injected fault): the service stopped and did not "
          "start again");
      outcome.state = ServiceState::kStopped;
      return outcome;
    case RestartFault::Kind::kHang: {
      const absl::Duration wait =
          std::min(std::max(fault.hang, absl::ZeroDuration()), max_restart_time_);
      clock_.SleepFor(wait);
      outcome.status = absl::DeadlineExceededError(
          absl::StrCat("HealthService did not finish starting within ", absl::FormatDuration(wait),
                       " (injected fault)"));
      outcome.state = ServiceState::kStopped;
      return outcome;
    }
    case RestartFault::Kind::kNoEvent:
      outcome.state = ServiceState::kRunning;
      return outcome;
    case RestartFault::Kind::kNone:
      break;
  }
  outcome.state = ServiceState::kRunning;
  absl::StatusOr<HostEvent> event = LoadCertificate();
  if (!event.ok()) {
    outcome.status = common::Annotate(event.status(), "HealthService loading its certificate");
    return outcome;
  }
  outcome.event = std::move(*event);
  return outcome;
}

}  // namespace certfleet::agent::platform
