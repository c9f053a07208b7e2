#include "agent/commands/command_runner.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/inventory/inventory.h"
#include "agent/platform/health_service_emulator.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/logging/log.h"
#include "common/model/profile.h"
#include "common/scom/channel_serial.h"
#include "common/scom/rules.h"
#include "common/status/status_macros.h"

namespace certfleet::agent::commands {
namespace {

namespace crypto = common::crypto;
namespace model = common::model;
using journal::BindingSnapshot;
using journal::JournalEntry;
using journal::Phase;
using journal::RebindStep;
using platform::HostEvent;
using platform::HostPlatform;
using platform::KeyContainer;
using platform::MachineSettings;
using platform::StoredCertificate;
using platform::StoreName;

// The most events one read of the log returns; far more than one restart writes.
constexpr size_t kMaxEventsRead = 1000;

// The "OpsMgr Connector" ids that end a wait for the HealthService's verdict, beyond 20053
// (SCOM.md). The emulators write a subset; a real HealthService writes all of them.
struct FailureEvent {
  int id;
  absl::string_view meaning;
};
constexpr FailureEvent kFailureEvents[] = {
    {20049, "the certificate's Key Usage lacks digital signature or key encipherment"},
    {20050,
     "the certificate's Enhanced Key Usage lacks Server Authentication or Client "
     "Authentication"},
    {20051, "the certificate is not valid at the current time"},
    {20052, "the certificate's subject does not match the computer name"},
    {20066, "the configured certificate could not be found in the Personal store"},
    {20068, "the certificate has no usable private key"},
    {20069, "the private key's KeySpec is not AT_KEYEXCHANGE"},
    {20071, "the connection closed before authentication"},
    {20072, "the certificate's chain is not trusted"},
    {20077, "the certificate's properties could not be queried (usually no private key)"},
};

std::optional<absl::string_view> FailureMeaning(int id) {
  for (const FailureEvent& event : kFailureEvents) {
    if (event.id == id) return event.meaning;
  }
  return std::nullopt;
}

bool IsVerdict(const HostEvent& event) {
  return event.id == platform::kEventCertificateLoaded || FailureMeaning(event.id).has_value();
}

bool SameEvent(const HostEvent& a, const HostEvent& b) {
  return a.time == b.time && a.id == b.id && a.level == b.level && a.message == b.message;
}

model::EventRecord ToRecord(const HostEvent& event) {
  model::EventRecord record;
  record.time = event.time;
  record.id = event.id;
  record.level = event.level;
  record.message = event.message;
  return record;
}

void AppendEvents(const std::vector<HostEvent>& events, model::CommandResult& result) {
  for (const HostEvent& event : events) result.events.push_back(ToRecord(event));
}

// common::Annotate with the context assembled by StrCat.
template <typename... Args>
absl::Status Annotated(const absl::Status& status, const Args&... context) {
  return common::Annotate(status, absl::StrCat(context...));
}

model::CommandOutcome Outcome(const absl::Status& status, model::CommandResult result = {}) {
  model::CommandOutcome outcome;
  outcome.state = status.ok() ? model::CommandState::kSucceeded : model::CommandState::kFailed;
  outcome.code = status.code();
  outcome.error = std::string(status.message());
  outcome.result = std::move(result);
  return outcome;
}

// Thumbprints as operators write them ("ab cd:ef...") to the uppercase hex Sha1Hex returns.
// InvalidArgument when that is not 40 hex digits.
absl::StatusOr<std::string> NormalizeThumbprint(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' || c == ':') continue;
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat("thumbprint '", text, "' is not a SHA-1 thumbprint (40 hex digits)"));
    }
    out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  if (out.size() != 40) {
    return absl::InvalidArgumentError(
        absl::StrCat("thumbprint '", text, "' is not a SHA-1 thumbprint (40 hex digits)"));
  }
  return out;
}

absl::Status NotInMy(absl::string_view thumbprint) {
  return absl::NotFoundError(
      absl::StrCat("certificate ", thumbprint, " is not in the Personal (My) store"));
}

// One certificate of My, parsed.
struct MyCertificate {
  StoredCertificate entry;
  crypto::X509Ptr cert;
  model::CertificateInfo info;
};

// The My entry with `thumbprint` (one with a linked key preferred); nullopt when none.
absl::StatusOr<std::optional<MyCertificate>> FindInMy(HostPlatform& host,
                                                      absl::string_view thumbprint) {
  CF_ASSIGN_OR_RETURN(std::vector<StoredCertificate> entries,
                      host.Certificates().List(StoreName::kMy), "listing store My");
  std::optional<MyCertificate> found;
  for (StoredCertificate& entry : entries) {
    if (!entry.error.empty() || crypto::Sha1Hex(entry.der) != thumbprint) continue;
    if (found.has_value() && (found->entry.has_private_key || !entry.has_private_key)) continue;
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(entry.der);
    if (!cert.ok()) continue;
    absl::StatusOr<model::CertificateInfo> info =
        crypto::DescribeCertificate(cert->get(), entry.has_private_key);
    if (!info.ok()) continue;
    found = MyCertificate{std::move(entry), std::move(*cert), std::move(*info)};
  }
  return found;
}

// The key container whose public key is `cert`'s; nullopt when none.
absl::StatusOr<std::optional<KeyContainer>> FindKeyContainer(HostPlatform& host, X509* cert) {
  EVP_PKEY* public_key = X509_get0_pubkey(cert);
  if (public_key == nullptr) {
    return absl::InvalidArgumentError("the certificate's public key cannot be read");
  }
  const std::string wanted = crypto::PublicKeyDer(public_key);
  CF_ASSIGN_OR_RETURN(std::vector<KeyContainer> containers, host.Certificates().ListKeyContainers(),
                      "listing key containers");
  for (KeyContainer& container : containers) {
    if (container.error.empty() && container.public_key_der == wanted) {
      return std::optional<KeyContainer>(std::move(container));
    }
  }
  return std::optional<KeyContainer>();
}

// The SCOM problems of My certificate `thumbprint` as the inventory judges them.
absl::StatusOr<std::vector<std::string>> ProblemsOf(HostPlatform& host, absl::Time now,
                                                    absl::Duration warn_within,
                                                    absl::string_view thumbprint) {
  inventory::ScanOptions options;
  options.now = now;
  options.warn_within = warn_within;
  options.max_events = 0;
  CF_ASSIGN_OR_RETURN(inventory::HostInventory scanned, inventory::ScanHost(host, options));
  for (const inventory::ScannedCertificate& cert : scanned.certificates) {
    if (cert.store == "My" && cert.info.thumbprint == thumbprint) return cert.problems;
  }
  return NotInMy(thumbprint);
}

// Replaces `secret` in `status`'s message; the code is kept. A belt to the braces of
// ParseCertificateFile, which promises never to echo a password.
absl::Status Redact(const absl::Status& status, absl::string_view secret) {
  if (status.ok() || secret.size() < 4 || !absl::StrContains(status.message(), secret)) {
    return status;
  }
  return absl::Status(status.code(),
                      absl::StrReplaceAll(status.message(), {{secret, "<redacted>"}}));
}

bool SelfSigned(X509* cert) { return X509_self_signed(cert, /*verify_signature=*/1) == 1; }

std::string DisplayName(const model::CertificateInfo& info) {
  return info.subject.empty() ? info.thumbprint : absl::StrCat("'", info.subject, "'");
}

// --- The event log ---

// Events already in the log at or after `since` when a restart began, so that what the restart
// writes can be told apart from earlier events with the same time (a coarse or fake clock).
struct EventWatch {
  absl::Time since;
  std::vector<HostEvent> before;
};

absl::StatusOr<EventWatch> WatchFrom(HostPlatform& host, absl::Time since) {
  EventWatch watch;
  watch.since = since;
  CF_ASSIGN_OR_RETURN(watch.before, host.Events().ReadSince(since, kMaxEventsRead),
                      "reading the Operations Manager event log");
  return watch;
}

// The events at or after watch.since that were not there when the watch began.
absl::StatusOr<std::vector<HostEvent>> NewEvents(HostPlatform& host, const EventWatch& watch) {
  CF_ASSIGN_OR_RETURN(std::vector<HostEvent> events,
                      host.Events().ReadSince(watch.since, kMaxEventsRead),
                      "reading the Operations Manager event log");
  std::vector<HostEvent> before = watch.before;
  std::vector<HostEvent> out;
  for (HostEvent& event : events) {
    auto it = std::find_if(before.begin(), before.end(),
                           [&](const HostEvent& old) { return SameEvent(old, event); });
    if (it != before.end()) {
      before.erase(it);
      continue;
    }
    out.push_back(std::move(event));
  }
  return out;
}

struct Verdict {
  std::vector<HostEvent> events;     // every new event up to and including the verdict
  std::optional<HostEvent> verdict;  // 20053 or a failure event; nullopt: none in time
  absl::Status last_read_error;      // the log could not be read at the last attempt
};

// Reads the log every `poll` (clock time) until a verdict appears or `timeout` has passed
// since the call.
Verdict WaitForVerdict(HostPlatform& host, common::Clock& clock, const EventWatch& watch,
                       absl::Duration timeout, absl::Duration poll) {
  Verdict out;
  const absl::Time give_up = clock.Now() + timeout;
  while (true) {
    absl::StatusOr<std::vector<HostEvent>> events = NewEvents(host, watch);
    if (events.ok()) {
      out.last_read_error = absl::OkStatus();
      out.events.clear();
      for (HostEvent& event : *events) {
        const bool verdict = IsVerdict(event);
        out.events.push_back(event);
        if (verdict) {
          out.verdict = std::move(event);
          return out;
        }
      }
    } else {
      out.last_read_error = events.status();
    }
    const absl::Time now = clock.Now();
    if (now >= give_up) return out;
    clock.SleepFor(std::max(std::min(poll, give_up - now), absl::Nanoseconds(1)));
  }
}

// --- Import ---

struct ImportPlan {
  crypto::X509Ptr leaf;
  crypto::EvpPkeyPtr key;  // null for a bare certificate
  model::CertificateInfo info;
  std::vector<crypto::X509Ptr> intermediates;  // CA certificates, not self-signed
  std::vector<std::string> roots_skipped;      // self-signed CA certificates, not trusted
  int others_skipped = 0;                      // further end-entity certificates
};

// Sorts every certificate of `certificates` but the leaf at `leaf_index` into the plan:
// CA certificates that are not self-signed go to CA, self-signed roots are named (never trusted
// implicitly), end-entity certificates counted and ignored.
void ClassifyOthers(std::vector<crypto::X509Ptr>& certificates, size_t leaf_index,
                    ImportPlan& plan) {
  for (size_t c = 0; c < certificates.size(); ++c) {
    if (c == leaf_index) continue;
    X509* cert = certificates[c].get();
    absl::StatusOr<model::CertificateInfo> info = crypto::DescribeCertificate(cert, false);
    if (!info.ok() || !info->is_ca) {
      ++plan.others_skipped;
    } else if (SelfSigned(cert)) {
      plan.roots_skipped.push_back(DisplayName(*info));
    } else {
      plan.intermediates.push_back(std::move(certificates[c]));
    }
  }
}

absl::StatusOr<ImportPlan> PlanImport(const model::ImportPayload& payload, absl::string_view fqdn) {
  std::optional<std::string> password;
  if (!payload.password.empty()) password = payload.password;
  absl::StatusOr<crypto::ParsedFile> parsed = crypto::ParseCertificateFile(payload.data, password);
  if (!parsed.ok()) {
    // A missing password is bad input as much as a wrong one.
    absl::Status status = parsed.status().code() == absl::StatusCode::kFailedPrecondition
                              ? absl::InvalidArgumentError(parsed.status().message())
                              : parsed.status();
    return Redact(Annotated(status, "reading the import data"), payload.password);
  }
  if (parsed->certificates.empty()) {
    return absl::InvalidArgumentError("the import data holds no certificate");
  }

  ImportPlan plan;
  size_t leaf_index = parsed->certificates.size();
  if (!parsed->private_keys.empty()) {
    for (size_t k = 0; k < parsed->private_keys.size() && plan.key == nullptr; ++k) {
      for (size_t c = 0; c < parsed->certificates.size(); ++c) {
        if (crypto::KeyMatchesCertificate(parsed->private_keys[k].get(),
                                          parsed->certificates[c].get())) {
          leaf_index = c;
          plan.key = std::move(parsed->private_keys[k]);
          break;
        }
      }
    }
    if (plan.key == nullptr) {
      return absl::InvalidArgumentError(
          "the private key in the import data matches none of its certificates");
    }
  } else {
    for (size_t c = 0; c < parsed->certificates.size(); ++c) {
      absl::StatusOr<model::CertificateInfo> info =
          crypto::DescribeCertificate(parsed->certificates[c].get(), false);
      if (info.ok() && !info->is_ca) {
        leaf_index = c;
        break;
      }
    }
    if (leaf_index == parsed->certificates.size()) {
      return absl::InvalidArgumentError(
          "the import data holds only CA certificates; install them with a trust command");
    }
  }
  plan.leaf = std::move(parsed->certificates[leaf_index]);
  CF_ASSIGN_OR_RETURN(plan.info, crypto::DescribeCertificate(plan.leaf.get(), plan.key != nullptr),
                      "reading the certificate to import");
  if (!common::scom::SubjectMatches(plan.info, fqdn)) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate is for ", common::scom::NameForMatch(plan.info),
                     ", this host is ", fqdn, "; nothing was imported"));
  }
  ClassifyOthers(parsed->certificates, leaf_index, plan);
  return plan;
}

// An install's chain: PEM certificates, the issued certificate first, no private key (the key
// is on the host already).
absl::StatusOr<ImportPlan> PlanInstall(const model::InstallPayload& payload,
                                       absl::string_view fqdn) {
  absl::StatusOr<crypto::ParsedFile> parsed =
      crypto::ParseCertificateFile(payload.chain_pem, std::nullopt);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reading the issued chain: ", parsed.status().message()));
  }
  if (parsed->format != crypto::ParsedFile::Format::kPem) {
    return absl::InvalidArgumentError(
        "the issued chain must be PEM certificates, the issued certificate first");
  }
  if (!parsed->private_keys.empty()) {
    return absl::InvalidArgumentError(
        "the issued chain holds a private key; an install takes only certificates (the key is "
        "on the host already)");
  }
  if (parsed->certificates.empty()) {
    return absl::InvalidArgumentError("the issued chain holds no certificate");
  }
  ImportPlan plan;
  plan.leaf = std::move(parsed->certificates.front());
  CF_ASSIGN_OR_RETURN(plan.info, crypto::DescribeCertificate(plan.leaf.get(), false),
                      "reading the issued certificate");
  if (plan.info.is_ca) {
    return absl::InvalidArgumentError(
        absl::StrCat("the first certificate of the chain, ", DisplayName(plan.info),
                     ", is a CA certificate; the chain must start with the issued certificate"));
  }
  if (!common::scom::SubjectMatches(plan.info, fqdn)) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate is for ", common::scom::NameForMatch(plan.info),
                     ", this host is ", fqdn, "; nothing was installed"));
  }
  ClassifyOthers(parsed->certificates, 0, plan);
  return plan;
}

// How the leaf of a plan without a private key meets its key on the host.
struct KeyPairing {
  std::optional<KeyContainer> container;  // to link once the leaf is in My
  bool already_linked = false;            // the leaf is in My with its key already
};

// For a plan without a private key: the leaf is in My with its key already (a repeated import
// or install), or the key container whose public key is the leaf's is found; neither leaves
// the pairing empty.
absl::StatusOr<KeyPairing> PairWithKey(HostPlatform& host, const ImportPlan& plan) {
  KeyPairing pairing;
  CF_ASSIGN_OR_RETURN(std::optional<MyCertificate> existing, FindInMy(host, plan.info.thumbprint));
  if (existing.has_value() && existing->entry.has_private_key) {
    pairing.already_linked = true;
    return pairing;
  }
  CF_ASSIGN_OR_RETURN(pairing.container, FindKeyContainer(host, plan.leaf.get()));
  return pairing;
}

bool Paired(const KeyPairing& pairing) {
  return pairing.already_linked || pairing.container.has_value();
}

// Puts the plan's intermediate CA certificates into CA and its leaf into My, with the plan's
// private key or linked to pairing.container (what `certreq -accept` does). Returns the
// sentence for the detail, starting with `verb` ("imported", "installed").
absl::StatusOr<std::string> PutIntoStores(HostPlatform& host, const ImportPlan& plan,
                                          const KeyPairing& pairing, absl::string_view verb) {
  for (const crypto::X509Ptr& intermediate : plan.intermediates) {
    CF_RETURN_IF_ERROR(
        host.Certificates()
            .Add(StoreName::kCa, crypto::CertificateToDer(intermediate.get()), std::nullopt)
            .status(),
        "adding an intermediate CA to store CA");
  }
  std::optional<std::string> key_pem;
  if (plan.key != nullptr) key_pem = crypto::PrivateKeyToPem(plan.key.get());
  absl::StatusOr<std::string> added =
      host.Certificates().Add(StoreName::kMy, crypto::CertificateToDer(plan.leaf.get()), key_pem);
  if (key_pem.has_value()) OPENSSL_cleanse(key_pem->data(), key_pem->size());
  CF_RETURN_IF_ERROR(added.status(), "adding the certificate to store My");
  if (pairing.container.has_value()) {
    CF_RETURN_IF_ERROR(host.Certificates().LinkKey(*added, pairing.container->id),
                       "linking key container ", pairing.container->id);
  }
  std::string detail =
      absl::StrCat(verb, " ", DisplayName(plan.info), " (", plan.info.thumbprint, ") into My ",
                   plan.key != nullptr ? "with its private key"
                   : pairing.container.has_value()
                       ? absl::StrCat("linked to key container ", pairing.container->id)
                       : std::string("(its key was linked already)"));
  if (!plan.intermediates.empty()) {
    absl::StrAppend(&detail, "; ", plan.intermediates.size(),
                    " intermediate CA certificate(s) into CA");
  }
  if (!plan.roots_skipped.empty()) {
    absl::StrAppend(&detail, "; root ", absl::StrJoin(plan.roots_skipped, ", "),
                    " not trusted (send a trust command to trust it)");
  }
  if (plan.others_skipped > 0) {
    absl::StrAppend(&detail, "; ", plan.others_skipped, " other end-entity certificate(s) ignored");
  }
  return detail;
}

// --- Rebind ---

MachineSettings SettingsOf(const BindingSnapshot& snapshot) {
  MachineSettings settings;
  settings.channel_certificate_serial = snapshot.channel_serial;
  settings.channel_certificate_hash = snapshot.channel_hash;
  return settings;
}

std::string DescribeSnapshot(const BindingSnapshot& snapshot) {
  return snapshot.channel_serial.has_value()
             ? absl::StrCat("ChannelCertificateSerialNumber ", *snapshot.channel_serial)
             : std::string("no ChannelCertificateSerialNumber (as before the rebind)");
}

std::string DescribeVerdict(const Verdict& verdict) {
  if (verdict.verdict.has_value()) {
    if (verdict.verdict->id == platform::kEventCertificateLoaded) {
      return "the HealthService loaded it (event 20053)";
    }
    return absl::StrCat("the HealthService then wrote event ", verdict.verdict->id, " (",
                        FailureMeaning(verdict.verdict->id).value_or("failure"), ")");
  }
  if (!verdict.last_read_error.ok()) {
    return absl::StrCat("its verdict could not be read: ", verdict.last_read_error.message());
  }
  return "the HealthService wrote no verdict in time";
}

// The registry's serial now, "" when absent or unreadable (for results only).
std::string CurrentChannelSerial(HostPlatform& host) {
  absl::StatusOr<MachineSettings> settings = host.Binding().Read();
  if (!settings.ok()) return "";
  return settings->channel_certificate_serial.value_or("");
}

// Restores `snapshot`, restarts the HealthService and collects its verdict into `result`
// (events, rolled_back, channel_serial). Returns a sentence for the detail, or the error that
// kept the snapshot from being written (nothing else is done then).
absl::StatusOr<std::string> RestoreSnapshot(HostPlatform& host, common::Clock& clock,
                                            const BindingSnapshot& snapshot,
                                            absl::Duration verify_timeout, absl::Duration poll,
                                            model::CommandResult& result) {
  CF_RETURN_IF_ERROR(host.Binding().Write(SettingsOf(snapshot)), "restoring the previous binding");
  result.rolled_back = true;
  std::string note = absl::StrCat("restored ", DescribeSnapshot(snapshot));
  const absl::Time restart_time = clock.Now();
  absl::StatusOr<EventWatch> watch = WatchFrom(host, restart_time);
  absl::Status restarted = host.HealthService().Restart();
  if (!restarted.ok()) {
    absl::StrAppend(&note,
                    "; restarting the HealthService after that failed too: ", restarted.message());
  } else if (!watch.ok()) {
    absl::StrAppend(&note, "; restarted the HealthService, but ", watch.status().message());
  } else {
    Verdict verdict = WaitForVerdict(host, clock, *watch, verify_timeout, poll);
    AppendEvents(verdict.events, result);
    absl::StrAppend(&note, " and restarted the HealthService; ", DescribeVerdict(verdict));
  }
  result.channel_serial = CurrentChannelSerial(host);
  return note;
}

// The work of each command, over the runner's dependencies.
class CommandWork {
 public:
  CommandWork(const CommandRunner::Options& options, HostPlatform& host, journal::Journal& journal,
              common::Clock& clock, KeySource* keys)
      : options_(options), host_(host), journal_(journal), clock_(clock), keys_(keys) {}

  model::CommandOutcome Import(absl::string_view id, const model::ImportPayload& payload) {
    absl::StatusOr<ImportPlan> plan = PlanImport(payload, host_.Fqdn());
    if (!plan.ok()) return Outcome(plan.status());
    const std::string& thumbprint = plan->info.thumbprint;
    model::CommandResult result;
    result.thumbprint = thumbprint;
    if (absl::Status s = journal_.SetTarget(id, thumbprint); !s.ok()) {
      return Outcome(Annotated(s, "journaling the import"), result);
    }
    // A bare certificate pairs with a key already on the host (certreq -accept), unless it is
    // in My with its key already (an import done before).
    KeyPairing pairing;
    if (plan->key == nullptr) {
      absl::StatusOr<KeyPairing> found = PairWithKey(host_, *plan);
      if (!found.ok()) return Outcome(found.status(), result);
      if (!Paired(*found)) {
        return Outcome(absl::NotFoundError(absl::StrCat(
                           "no key container on this host matches certificate ", thumbprint,
                           "; import it as a PFX or together with its private key")),
                       result);
      }
      pairing = std::move(*found);
    }
    absl::StatusOr<std::string> done = PutIntoStores(host_, *plan, pairing, "imported");
    if (!done.ok()) return Outcome(done.status(), result);
    result.detail = *done;
    AddProblems(result);
    return Outcome(absl::OkStatus(), std::move(result));
  }

  // Generates the key inside the host's store and returns the request for it; see the header.
  model::CommandOutcome Renew(absl::string_view id, const model::RenewPayload& payload) {
    const model::CertificateProfile& profile = payload.profile;
    if (absl::Status s = model::ValidateProfile(profile); !s.ok()) return Outcome(s);
    const std::string fqdn = host_.Fqdn();
    if (fqdn.empty()) {
      return Outcome(
          absl::FailedPreconditionError("this host has no FQDN to request a certificate for"));
    }
    crypto::CsrOptions options;
    options.subject_cn = fqdn;
    options.dns_names.push_back(fqdn);
    for (const std::string& name : profile.extra_dns_names) {
      const bool repeated =
          std::any_of(options.dns_names.begin(), options.dns_names.end(),
                      [&](const std::string& seen) { return absl::EqualsIgnoreCase(seen, name); });
      if (!repeated) options.dns_names.push_back(name);
    }
    options.key_usage = profile.key_usage;
    options.extended_key_usage = profile.extended_key_usage;
    options.template_name = profile.template_name;
    options.signature_digest = profile.signature_hash;

    absl::StatusOr<crypto::EvpPkeyPtr> key = keys_ != nullptr
                                                 ? keys_->RsaKey(profile.key_bits)
                                                 : crypto::GenerateRsaKey(profile.key_bits);
    if (!key.ok()) return Outcome(Annotated(key.status(), "generating the key"));
    absl::StatusOr<crypto::X509ReqPtr> csr = crypto::BuildCsr(key->get(), options);
    if (!csr.ok()) return Outcome(Annotated(csr.status(), "building the certificate request"));
    model::CommandResult result;
    result.csr_pem = crypto::CsrToPem(csr->get());
    if (result.csr_pem.empty()) {
      return Outcome(absl::InternalError("the certificate request could not be written as PEM"));
    }
    // The key goes into the store and nowhere else: not the result, not the journal, not a log.
    std::string key_pem = crypto::PrivateKeyToPem(key->get());
    absl::StatusOr<std::string> container = host_.Certificates().AddKeyContainer(key_pem);
    OPENSSL_cleanse(key_pem.data(), key_pem.size());
    if (!container.ok()) {
      return Outcome(Annotated(container.status(), "storing the new key in a key container"));
    }
    if (absl::Status s = journal_.SetTarget(id, *container); !s.ok()) {
      // The key is stored; the outcome (journaled at the end) names the container all the same.
      common::LogWarning("journaling the key container of renew ", id, ": ", s.message());
    }
    result.detail =
        absl::StrCat("generated an RSA-", profile.key_bits, " key in key container ", *container,
                     " (it stays on this host); the request is for CN=", fqdn, ", signed with ",
                     profile.signature_hash, ", profile '", profile.name, "'");
    if (!profile.template_name.empty()) {
      absl::StrAppend(&result.detail, ", template '", profile.template_name, "'");
    }
    return Outcome(absl::OkStatus(), std::move(result));
  }

  // Puts an issued certificate with the key Renew made and, when asked, binds it; see the
  // header.
  model::CommandOutcome Install(absl::string_view id, const model::InstallPayload& payload) {
    absl::StatusOr<ImportPlan> plan = PlanInstall(payload, host_.Fqdn());
    if (!plan.ok()) return Outcome(plan.status());
    const std::string thumbprint = plan->info.thumbprint;
    const std::string target_serial = plan->info.channel_serial;
    model::CommandResult result;
    result.thumbprint = thumbprint;
    absl::StatusOr<KeyPairing> pairing = PairWithKey(host_, *plan);
    if (!pairing.ok()) return Outcome(pairing.status(), result);
    if (!Paired(*pairing)) {
      return Outcome(absl::NotFoundError(absl::StrCat(
                         "no key on this host matches the issued certificate ", thumbprint,
                         "; install only what a renew on this host requested")),
                     result);
    }
    // With bind, the snapshot is journaled before the stores change: the entry then says that a
    // binding was asked for, whatever step a crash interrupts.
    std::optional<BindingSnapshot> snapshot;
    if (payload.bind) {
      absl::StatusOr<BindingSnapshot> taken = TakeSnapshot(id, thumbprint, target_serial, result);
      if (!taken.ok()) return Outcome(taken.status(), result);
      snapshot = std::move(*taken);
    } else if (absl::Status s = journal_.SetTarget(id, thumbprint); !s.ok()) {
      return Outcome(Annotated(s, "journaling the install"), result);
    }
    absl::StatusOr<std::string> done = PutIntoStores(host_, *plan, *pairing, "installed");
    if (!done.ok()) return Outcome(done.status(), result);
    if (!snapshot.has_value()) {
      result.detail = *done;
      AddProblems(result);
      return Outcome(absl::OkStatus(), std::move(result));
    }
    model::CommandOutcome outcome = SwitchBinding(id, *snapshot, thumbprint, target_serial,
                                                  payload.verify_timeout, std::move(result));
    outcome.result.detail =
        outcome.result.detail.empty() ? *done : absl::StrCat(*done, "; ", outcome.result.detail);
    AddProblems(outcome.result);
    return outcome;
  }

  model::CommandOutcome Repair(absl::string_view id, const model::RepairPayload& payload) {
    absl::StatusOr<std::string> thumbprint = NormalizeThumbprint(payload.thumbprint);
    if (!thumbprint.ok()) return Outcome(thumbprint.status());
    model::CommandResult result;
    result.thumbprint = *thumbprint;
    if (absl::Status s = journal_.SetTarget(id, *thumbprint); !s.ok()) {
      return Outcome(Annotated(s, "journaling the repair"), result);
    }
    absl::StatusOr<std::optional<MyCertificate>> found = FindInMy(host_, *thumbprint);
    if (!found.ok()) return Outcome(found.status(), result);
    if (!found->has_value()) return Outcome(NotInMy(*thumbprint), result);
    const MyCertificate& cert = **found;
    if (cert.entry.has_private_key) {
      result.detail = absl::StrCat("certificate ", *thumbprint,
                                   " already has its private key linked; nothing to repair");
      return Outcome(absl::OkStatus(), std::move(result));
    }
    absl::StatusOr<std::optional<KeyContainer>> container =
        FindKeyContainer(host_, cert.cert.get());
    if (!container.ok()) return Outcome(container.status(), result);
    if (!container->has_value()) {
      return Outcome(absl::NotFoundError(absl::StrCat(
                         "no key container on this host matches certificate ", *thumbprint)),
                     result);
    }
    if (absl::Status s = host_.Certificates().LinkKey(cert.entry.id, (*container)->id); !s.ok()) {
      return Outcome(Annotated(s, "linking key container ", (*container)->id), result);
    }
    result.detail =
        absl::StrCat("linked key container ", (*container)->id, " to certificate ", *thumbprint);
    return Outcome(absl::OkStatus(), std::move(result));
  }

  model::CommandOutcome Trust(absl::string_view id, const model::TrustPayload& payload) {
    absl::StatusOr<crypto::ParsedFile> parsed =
        crypto::ParseCertificateFile(payload.data, std::nullopt);
    if (!parsed.ok()) {
      return Outcome(absl::InvalidArgumentError(
          absl::StrCat("reading the CA certificate: ", parsed.status().message())));
    }
    if (parsed->format == crypto::ParsedFile::Format::kPkcs12) {
      return Outcome(absl::InvalidArgumentError(
          "trust takes a PEM or DER CA certificate, not a PKCS#12 file"));
    }
    if (!parsed->private_keys.empty()) {
      return Outcome(absl::InvalidArgumentError(
          "the trust data holds a private key; send only the CA certificate"));
    }
    if (parsed->certificates.empty()) {
      return Outcome(absl::InvalidArgumentError("the trust data holds no certificate"));
    }
    struct Planned {
      X509* cert;
      model::CertificateInfo info;
      StoreName store;
    };
    std::vector<Planned> planned;
    for (const crypto::X509Ptr& cert : parsed->certificates) {
      absl::StatusOr<model::CertificateInfo> info = crypto::DescribeCertificate(cert.get(), false);
      if (!info.ok()) {
        return Outcome(Annotated(info.status(), "reading the CA certificate"));
      }
      if (!info->is_ca) {
        return Outcome(absl::InvalidArgumentError(
            absl::StrCat("certificate ", DisplayName(*info), " (", info->thumbprint,
                         ") is not a CA certificate; nothing was trusted")));
      }
      planned.push_back(
          {cert.get(), *info, SelfSigned(cert.get()) ? StoreName::kRoot : StoreName::kCa});
    }
    model::CommandResult result;
    result.thumbprint = planned.front().info.thumbprint;
    std::vector<std::string> thumbprints;
    for (const Planned& p : planned) thumbprints.push_back(p.info.thumbprint);
    if (absl::Status s = journal_.SetTarget(id, absl::StrJoin(thumbprints, ",")); !s.ok()) {
      return Outcome(Annotated(s, "journaling the trust"), result);
    }
    std::vector<std::string> done;
    for (const Planned& p : planned) {
      absl::StatusOr<std::string> added =
          host_.Certificates().Add(p.store, crypto::CertificateToDer(p.cert), std::nullopt);
      if (!added.ok()) {
        return Outcome(Annotated(added.status(), "adding ", DisplayName(p.info), " to store ",
                                 platform::StoreNameText(p.store)),
                       result);
      }
      done.push_back(absl::StrCat(DisplayName(p.info), " (", p.info.thumbprint, ") in ",
                                  platform::StoreNameText(p.store)));
    }
    result.detail = absl::StrCat("trusted ", absl::StrJoin(done, "; "));
    return Outcome(absl::OkStatus(), std::move(result));
  }

  model::CommandOutcome Remove(absl::string_view id, const model::RemovePayload& payload) {
    absl::StatusOr<std::string> thumbprint = NormalizeThumbprint(payload.thumbprint);
    if (!thumbprint.ok()) return Outcome(thumbprint.status());
    model::CommandResult result;
    result.thumbprint = *thumbprint;
    if (absl::Status s = journal_.SetTarget(id, *thumbprint); !s.ok()) {
      return Outcome(Annotated(s, "journaling the removal"), result);
    }
    absl::StatusOr<std::vector<StoredCertificate>> entries =
        host_.Certificates().List(StoreName::kMy);
    if (!entries.ok()) return Outcome(Annotated(entries.status(), "listing store My"));
    std::vector<std::string> ids;
    std::string serial;
    for (const StoredCertificate& entry : *entries) {
      if (!entry.error.empty() || crypto::Sha1Hex(entry.der) != *thumbprint) continue;
      ids.push_back(entry.id);
      if (serial.empty()) {
        absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(entry.der);
        if (!cert.ok()) continue;
        absl::StatusOr<model::CertificateInfo> info =
            crypto::DescribeCertificate(cert->get(), false);
        if (info.ok()) serial = info->serial;
      }
    }
    if (ids.empty()) return Outcome(NotInMy(*thumbprint), result);
    // Unsure whether it is bound: refuse rather than unbind the host.
    absl::StatusOr<MachineSettings> settings = host_.Binding().Read();
    if (!settings.ok()) {
      return Outcome(Annotated(settings.status(), "reading Machine Settings to check the binding"),
                     result);
    }
    if (settings->channel_certificate_serial.has_value() &&
        (serial.empty() ||
         common::scom::ChannelSerialMatches(*settings->channel_certificate_serial, serial))) {
      return Outcome(absl::FailedPreconditionError(
                         absl::StrCat("certificate ", *thumbprint,
                                      " is the bound certificate (ChannelCertificateSerialNumber ",
                                      *settings->channel_certificate_serial,
                                      "); rebind to another certificate before removing it")),
                     result);
    }
    for (const std::string& entry_id : ids) {
      absl::Status s = host_.Certificates().Remove(StoreName::kMy, entry_id);
      if (!s.ok() && !absl::IsNotFound(s)) {
        return Outcome(Annotated(s, "removing ", entry_id, " from store My"), result);
      }
    }
    result.detail = absl::StrCat("removed certificate ", *thumbprint, " from My");
    return Outcome(absl::OkStatus(), std::move(result));
  }

  model::CommandOutcome Rebind(absl::string_view id, const model::RebindPayload& payload) {
    absl::StatusOr<std::string> thumbprint = NormalizeThumbprint(payload.thumbprint);
    if (!thumbprint.ok()) return Outcome(thumbprint.status());
    model::CommandResult result;
    result.thumbprint = *thumbprint;
    absl::StatusOr<std::optional<MyCertificate>> found = FindInMy(host_, *thumbprint);
    if (!found.ok()) return Outcome(found.status(), result);
    if (!found->has_value()) return Outcome(NotInMy(*thumbprint), result);
    const std::string target_serial = (*found)->info.channel_serial;
    absl::StatusOr<BindingSnapshot> snapshot = TakeSnapshot(id, *thumbprint, target_serial, result);
    if (!snapshot.ok()) return Outcome(snapshot.status(), result);
    return SwitchBinding(id, *snapshot, *thumbprint, target_serial, payload.verify_timeout,
                         std::move(result));
  }

  // Rebind step one: reads Machine Settings and journals them (and the target) before any
  // change; the result gets the snapshot's serial.
  absl::StatusOr<BindingSnapshot> TakeSnapshot(absl::string_view id, absl::string_view thumbprint,
                                               absl::string_view target_serial,
                                               model::CommandResult& result) {
    CF_ASSIGN_OR_RETURN(MachineSettings settings, host_.Binding().Read(),
                        "reading Machine Settings");
    BindingSnapshot snapshot{settings.channel_certificate_serial,
                             settings.channel_certificate_hash};
    result.previous_channel_serial = snapshot.channel_serial.value_or("");
    result.channel_serial = result.previous_channel_serial;
    CF_RETURN_IF_ERROR(journal_.RecordSnapshot(id, snapshot, thumbprint, target_serial),
                       "journaling the binding before the rebind");
    return snapshot;
  }

  // The rest of the verified rebind, from the snapshot journaled: writes the target, restarts
  // the HealthService, waits for its verdict and rolls back on failure (CommandRunner::Execute).
  model::CommandOutcome SwitchBinding(absl::string_view id, const BindingSnapshot& snapshot,
                                      const std::string& thumbprint,
                                      const std::string& target_serial,
                                      absl::Duration verify_timeout, model::CommandResult result) {
    MachineSettings target;
    target.channel_certificate_serial = target_serial;
    target.channel_certificate_hash = thumbprint;
    if (absl::Status s = host_.Binding().Write(target); !s.ok()) {
      // A Write is atomic: the registry still holds the snapshot.
      return Outcome(Annotated(s, "writing ChannelCertificateSerialNumber"), result);
    }
    if (absl::Status s = journal_.RecordValueWritten(id); !s.ok()) {
      // Unjournaled changes must not stay: the HealthService has not seen the value yet.
      absl::Status restore = host_.Binding().Write(SettingsOf(snapshot));
      result.channel_serial = CurrentChannelSerial(host_);
      result.rolled_back = restore.ok();
      return Outcome(Annotated(s, "journaling the written value",
                               restore.ok() ? " (the previous binding was restored)"
                                            : " (restoring the previous binding failed)"),
                     result);
    }
    result.channel_serial = target_serial;

    const absl::Time restart_time = clock_.Now();
    absl::StatusOr<EventWatch> watch = WatchFrom(host_, restart_time);
    if (!watch.ok()) {
      return RollBack(id, snapshot, verify_timeout, watch.status(), std::move(result));
    }
    if (absl::Status s = host_.HealthService().Restart(); !s.ok()) {
      const absl::StatusCode code = absl::IsDeadlineExceeded(s)
                                        ? absl::StatusCode::kDeadlineExceeded
                                        : absl::StatusCode::kUnavailable;
      return RollBack(id, snapshot, verify_timeout,
                      absl::Status(code, absl::StrCat("restarting the HealthService with "
                                                      "certificate ",
                                                      thumbprint, " failed: ", s.message())),
                      std::move(result));
    }
    if (absl::Status s = journal_.RecordRestarted(id, restart_time); !s.ok()) {
      // Carry on: the outcome is still journaled at the end, and should the agent stop before,
      // Recover rolls back from kValueWritten, which is safe.
      common::LogWarning("journaling the restart of rebind ", id, ": ", s.message());
    }
    Verdict verdict =
        WaitForVerdict(host_, clock_, *watch, verify_timeout, options_.event_poll_interval);
    AppendEvents(verdict.events, result);
    if (verdict.verdict.has_value() && verdict.verdict->id == platform::kEventCertificateLoaded) {
      result.channel_serial = CurrentChannelSerial(host_);
      result.detail = absl::StrCat("bound certificate ", thumbprint, " (channel serial ",
                                   target_serial, "); the HealthService loaded it (event 20053)");
      return Outcome(absl::OkStatus(), std::move(result));
    }
    absl::Status reason;
    if (verdict.verdict.has_value()) {
      reason = absl::FailedPreconditionError(absl::StrCat(
          "the HealthService rejected certificate ", thumbprint, " with event ",
          verdict.verdict->id, ": ", FailureMeaning(verdict.verdict->id).value_or("failure")));
    } else {
      reason = absl::DeadlineExceededError(absl::StrCat(
          "the HealthService gave no verdict on certificate ", thumbprint, " (no 20053 or ",
          "failure event) within ", absl::FormatDuration(verify_timeout), " of the restart",
          verdict.last_read_error.ok()
              ? ""
              : absl::StrCat(" (reading the event log: ", verdict.last_read_error.message(), ")")));
    }
    return RollBack(id, snapshot, verify_timeout, reason, std::move(result));
  }

  // Restores the snapshot after `reason` and returns the failed outcome.
  model::CommandOutcome RollBack(absl::string_view id, const BindingSnapshot& snapshot,
                                 absl::Duration verify_timeout, const absl::Status& reason,
                                 model::CommandResult result) {
    absl::StatusOr<std::string> note = RestoreSnapshot(host_, clock_, snapshot, verify_timeout,
                                                       options_.event_poll_interval, result);
    if (!note.ok()) {
      common::LogError("rebind ", id, ": ", note.status().message(),
                       "; the host is left bound to the new certificate");
      result.channel_serial = CurrentChannelSerial(host_);
      result.detail =
          absl::StrCat("could not restore the previous binding: ", note.status().message());
      return Outcome(
          absl::Status(reason.code(), absl::StrCat(reason.message(), "; ", result.detail)),
          std::move(result));
    }
    result.detail = *note;
    return Outcome(absl::Status(reason.code(), absl::StrCat(reason.message(),
                                                            "; the previous binding was restored")),
                   std::move(result));
  }

  // A rebind, or an install that binds, left running by a crash: see CommandRunner::Recover.
  absl::StatusOr<model::CommandOutcome> SettleRebind(const JournalEntry& entry) {
    const absl::string_view what = model::CommandKindName(entry.kind);
    model::CommandResult result;
    result.thumbprint = entry.target;
    if (!entry.rebind.has_value()) {
      // Stopped before the snapshot: nothing was changed.
      return Outcome(absl::AbortedError("interrupted before the binding was changed"), result);
    }
    const journal::RebindProgress& rebind = *entry.rebind;
    result.previous_channel_serial = rebind.snapshot.channel_serial.value_or("");
    // Unreadable settings at kSnapshotTaken: restore the snapshot all the same (below).
    absl::StatusOr<MachineSettings> current = host_.Binding().Read();
    if (rebind.step == RebindStep::kSnapshotTaken && current.ok() &&
        current->channel_certificate_serial == rebind.snapshot.channel_serial &&
        current->channel_certificate_hash == rebind.snapshot.channel_hash) {
      // The value was never written (the restart comes after kValueWritten): the HealthService
      // runs with the binding as it was, so there is nothing to restore or verify.
      result.channel_serial = result.previous_channel_serial;
      result.detail = "the binding was never changed";
      return Outcome(
          absl::AbortedError(absl::StrCat("interrupted: the agent stopped during the ", what,
                                          " before the binding was changed; send it again")),
          std::move(result));
    }
    if (rebind.step == RebindStep::kRestarted && rebind.restart_time.has_value()) {
      CF_ASSIGN_OR_RETURN(MachineSettings settings, std::move(current), "reading Machine Settings");
      CF_ASSIGN_OR_RETURN(std::vector<HostEvent> events,
                          host_.Events().ReadSince(*rebind.restart_time, kMaxEventsRead),
                          "reading the Operations Manager event log");
      std::vector<HostEvent> seen;
      std::optional<HostEvent> verdict;
      for (HostEvent& event : events) {
        seen.push_back(event);
        if (IsVerdict(event)) {
          verdict = std::move(event);
          break;
        }
      }
      AppendEvents(seen, result);
      const bool holds_target = settings.channel_certificate_serial.has_value() &&
                                absl::AsciiStrToUpper(*settings.channel_certificate_serial) ==
                                    absl::AsciiStrToUpper(rebind.target_channel_serial);
      if (verdict.has_value() && verdict->id == platform::kEventCertificateLoaded && holds_target) {
        result.channel_serial = *settings.channel_certificate_serial;
        result.detail = absl::StrCat("the agent stopped during the ", what,
                                     "; on restart it found certificate ", rebind.target_thumbprint,
                                     " bound and loaded (event 20053 after the restart)");
        return Outcome(absl::OkStatus(), std::move(result));
      }
    }
    // The verify timeout is not journaled; the payload's default bounds the wait.
    CF_ASSIGN_OR_RETURN(
        std::string note,
        RestoreSnapshot(host_, clock_, rebind.snapshot, model::RebindPayload{}.verify_timeout,
                        options_.event_poll_interval, result),
        "restoring the binding before ", what, " ", entry.id);
    result.detail = note;
    return Outcome(absl::AbortedError(absl::StrCat("the agent stopped during the ", what,
                                                   "; restored the previous binding")),
                   std::move(result));
  }

  // Any command left running by a crash.
  absl::StatusOr<model::CommandOutcome> SettleOther(const JournalEntry& entry) {
    model::CommandResult result;
    const absl::Status interrupted =
        absl::AbortedError(absl::StrCat("interrupted: the agent stopped while the ",
                                        model::CommandKindName(entry.kind), " ran; send it again"));
    switch (entry.kind) {
      case model::CommandKind::kScan:
        result.detail = "interrupted; the inventory sent at every connect answers it";
        return Outcome(absl::OkStatus(), std::move(result));
      case model::CommandKind::kRenew:
        // The request was never returned, so nothing can use the key: a renewal sent again
        // makes a new one. The key cannot be read back to rebuild the request (the store hands
        // out no unlinked private keys), and the container is left for an operator to judge.
        result.detail =
            entry.target.empty()
                ? std::string(
                      "no key container was journaled as made; a renew sent again "
                      "generates a new key")
                : absl::StrCat("key container ", entry.target,
                               ", made before the interruption, stays on this host unlinked; a "
                               "renew sent again generates a new key");
        return Outcome(interrupted, std::move(result));
      case model::CommandKind::kInstall:
        if (entry.rebind.has_value()) {
          CF_ASSIGN_OR_RETURN(model::CommandOutcome outcome, SettleRebind(entry));
          AppendInstallState(entry.target, outcome.result);
          return outcome;
        }
        [[fallthrough]];
      case model::CommandKind::kImport:
      case model::CommandKind::kRepair: {
        if (entry.target.empty()) return Outcome(interrupted);
        result.thumbprint = entry.target;
        CF_ASSIGN_OR_RETURN(std::optional<MyCertificate> found, FindInMy(host_, entry.target));
        if (!found.has_value() || !found->entry.has_private_key) {
          return Outcome(interrupted, std::move(result));
        }
        result.detail = absl::StrCat("interrupted, but certificate ", entry.target,
                                     " is in My with its private key");
        if (entry.kind != model::CommandKind::kRepair) AddProblems(result);
        return Outcome(absl::OkStatus(), std::move(result));
      }
      case model::CommandKind::kTrust: {
        if (entry.target.empty()) return Outcome(interrupted);
        std::vector<std::string> wanted = absl::StrSplit(entry.target, ',');
        result.thumbprint = wanted.front();
        std::vector<std::string> present;
        for (StoreName store : {StoreName::kRoot, StoreName::kCa}) {
          CF_ASSIGN_OR_RETURN(std::vector<StoredCertificate> entries,
                              host_.Certificates().List(store), "listing store ",
                              platform::StoreNameText(store));
          for (const StoredCertificate& e : entries) {
            if (e.error.empty()) present.push_back(crypto::Sha1Hex(e.der));
          }
        }
        for (const std::string& thumbprint : wanted) {
          if (std::find(present.begin(), present.end(), thumbprint) == present.end()) {
            return Outcome(interrupted, std::move(result));
          }
        }
        result.detail = "interrupted, but every certificate of it is trusted";
        return Outcome(absl::OkStatus(), std::move(result));
      }
      case model::CommandKind::kRemove: {
        if (entry.target.empty()) return Outcome(interrupted);
        result.thumbprint = entry.target;
        CF_ASSIGN_OR_RETURN(std::optional<MyCertificate> found, FindInMy(host_, entry.target));
        if (found.has_value()) return Outcome(interrupted, std::move(result));
        result.detail =
            absl::StrCat("interrupted, but certificate ", entry.target, " is gone from My");
        return Outcome(absl::OkStatus(), std::move(result));
      }
      case model::CommandKind::kRebind:
        return SettleRebind(entry);
    }
    return Outcome(interrupted);
  }

 private:
  // The SCOM problems of My certificate result.thumbprint as the inventory judges them; when
  // they cannot be judged, the detail says why.
  void AddProblems(model::CommandResult& result) {
    absl::StatusOr<std::vector<std::string>> problems =
        ProblemsOf(host_, clock_.Now(), options_.warn_within, result.thumbprint);
    if (problems.ok()) {
      result.problems = std::move(*problems);
    } else {
      absl::StrAppend(&result.detail,
                      "; its problems could not be judged: ", problems.status().message());
    }
  }

  // For a settled install: whether its certificate is in My with its key, and its problems.
  void AppendInstallState(const std::string& thumbprint, model::CommandResult& result) {
    if (thumbprint.empty()) return;
    absl::StatusOr<std::optional<MyCertificate>> found = FindInMy(host_, thumbprint);
    if (!found.ok()) return;
    const bool installed = found->has_value() && (*found)->entry.has_private_key;
    absl::StrAppend(&result.detail, result.detail.empty() ? "" : "; ", "certificate ", thumbprint,
                    installed ? " is in My with its private key" : " is not in My with its key");
    if (installed) AddProblems(result);
  }

  const CommandRunner::Options& options_;
  HostPlatform& host_;
  journal::Journal& journal_;
  common::Clock& clock_;
  KeySource* const keys_;
};

}  // namespace

CommandRunner::CommandRunner(const Options& options, const Deps& deps)
    : options_(options),
      host_(deps.host),
      journal_(deps.journal),
      clock_(deps.clock),
      keys_(deps.keys) {}

model::CommandOutcome CommandRunner::Run(const model::Command& command) {
  CommandWork work(options_, host_, journal_, clock_, keys_);
  return std::visit(
      [&](const auto& payload) -> model::CommandOutcome {
        using T = std::decay_t<decltype(payload)>;
        if constexpr (std::is_same_v<T, model::ScanPayload>) {
          model::CommandResult result;
          result.detail = "the agent sends its inventory";
          return Outcome(absl::OkStatus(), std::move(result));
        } else if constexpr (std::is_same_v<T, model::ImportPayload>) {
          return work.Import(command.id, payload);
        } else if constexpr (std::is_same_v<T, model::RepairPayload>) {
          return work.Repair(command.id, payload);
        } else if constexpr (std::is_same_v<T, model::RebindPayload>) {
          return work.Rebind(command.id, payload);
        } else if constexpr (std::is_same_v<T, model::TrustPayload>) {
          return work.Trust(command.id, payload);
        } else if constexpr (std::is_same_v<T, model::RemovePayload>) {
          return work.Remove(command.id, payload);
        } else if constexpr (std::is_same_v<T, model::RenewPayload>) {
          return work.Renew(command.id, payload);
        } else {
          static_assert(std::is_same_v<T, model::InstallPayload>);
          return work.Install(command.id, payload);
        }
      },
      command.payload);
}

absl::StatusOr<model::CommandOutcome> CommandRunner::Settle(const JournalEntry& entry) {
  CommandWork work(options_, host_, journal_, clock_, keys_);
  CF_ASSIGN_OR_RETURN(model::CommandOutcome outcome, work.SettleOther(entry), "settling ",
                      model::CommandKindName(entry.kind), " ", entry.id);
  CF_RETURN_IF_ERROR(journal_.Finish(entry.id, outcome, clock_.Now()), "settling ",
                     model::CommandKindName(entry.kind), " ", entry.id);
  return outcome;
}

model::CommandOutcome CommandRunner::Finish(absl::string_view id, model::CommandOutcome outcome) {
  if (absl::Status s = journal_.Finish(id, outcome, clock_.Now()); !s.ok()) {
    common::LogError("journaling the outcome of command ", id, ": ", s.message());
  }
  return outcome;
}

absl::Status CommandRunner::Recover() {
  absl::MutexLock run(&run_mu_);
  CF_ASSIGN_OR_RETURN(std::vector<JournalEntry> interrupted, journal_.Interrupted(),
                      "recovering interrupted commands");
  absl::Status first;
  for (const JournalEntry& entry : interrupted) {
    absl::StatusOr<model::CommandOutcome> outcome = Settle(entry);
    if (!outcome.ok()) {
      common::LogError(outcome.status().message());
      if (first.ok()) first = outcome.status();
    }
  }
  return first;
}

model::CommandOutcome CommandRunner::Execute(const model::Command& command,
                                             const std::function<void()>& on_started) {
  absl::MutexLock run(&run_mu_);
  const std::string& id = command.id;
  const model::CommandKind kind = model::KindOf(command.payload);
  absl::StatusOr<JournalEntry> entry = journal_.Receive(id, kind, command.deadline);
  if (!entry.ok()) return Outcome(Annotated(entry.status(), "journaling the command"));
  if (entry->outcome.has_value()) {
    absl::MutexLock lock(&mu_);
    cancelled_.erase(id);
    return *entry->outcome;
  }
  if (entry->phase == Phase::kRunning) {
    // Started by an agent that stopped, and Recover has not settled it yet.
    absl::StatusOr<model::CommandOutcome> settled = Settle(*entry);
    if (settled.ok()) return *settled;
    return Outcome(settled.status());
  }

  bool cancelled = false;
  {
    absl::MutexLock lock(&mu_);
    cancelled = cancelled_.erase(id) > 0;
    if (!cancelled) started_.insert(id);
  }
  auto done = [&](model::CommandOutcome outcome) {
    model::CommandOutcome out = Finish(id, std::move(outcome));
    absl::MutexLock lock(&mu_);
    started_.erase(id);
    return out;
  };
  if (cancelled) {
    model::CommandOutcome outcome;
    outcome.state = model::CommandState::kCancelled;
    outcome.code = absl::StatusCode::kCancelled;
    outcome.error = "cancelled before it started";
    return Finish(id, std::move(outcome));
  }
  if (clock_.Now() > command.deadline) {
    model::CommandOutcome outcome;
    outcome.state = model::CommandState::kExpired;
    outcome.code = absl::StatusCode::kDeadlineExceeded;
    outcome.error = "the deadline passed before the command could start";
    return done(std::move(outcome));
  }
  if (absl::Status s = journal_.MarkRunning(id); !s.ok()) {
    absl::MutexLock lock(&mu_);
    started_.erase(id);
    return Outcome(Annotated(s, "journaling the start; nothing was run"));
  }
  if (on_started) on_started();
  return done(Run(command));
}

void CommandRunner::Cancel(absl::string_view id) {
  absl::StatusOr<std::optional<JournalEntry>> entry = journal_.Find(id);
  if (entry.ok() && entry->has_value() && (*entry)->phase != Phase::kReceived) return;
  absl::MutexLock lock(&mu_);
  if (started_.contains(id)) return;
  cancelled_.insert(std::string(id));
}

absl::StatusOr<std::vector<std::pair<std::string, model::CommandOutcome>>>
CommandRunner::Unreported() {
  return journal_.Unreported();
}

absl::Status CommandRunner::MarkReported(absl::string_view id) { return journal_.MarkReported(id); }

}  // namespace certfleet::agent::commands
