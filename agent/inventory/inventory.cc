#include "agent/inventory/inventory.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/describe.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/scom/channel_serial.h"
#include "common/scom/rules.h"
#include "common/status/status_macros.h"

namespace certfleet::agent::inventory {
namespace {

namespace crypto = common::crypto;
namespace model = common::model;
using platform::StoreName;

// A certificate that parsed and was described, with what the scan decided about it.
struct Scanned {
  StoreName store;
  crypto::X509Ptr cert;
  ScannedCertificate out;
  std::vector<model::Problem> problems;  // My only
};

void AddOnce(std::vector<std::string>& names, model::Drift drift) {
  std::string name(model::DriftName(drift));
  if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}

// `now` moved into the certificate's validity, so that chain verification judges trust only.
// OpenSSL treats not_after itself as expired, hence the second before it.
absl::Time ClampIntoValidity(absl::Time now, const model::CertificateInfo& info) {
  const absl::Time last = info.not_after - absl::Seconds(1);
  if (last < info.not_before) return now;
  return std::clamp(now, info.not_before, last);
}

// True when `problems` has nothing but EXPIRES_SOON: the HealthService would load it.
bool Usable(const std::vector<model::Problem>& problems) {
  return std::all_of(problems.begin(), problems.end(),
                     [](model::Problem p) { return p == model::Problem::kExpiresSoon; });
}

}  // namespace

absl::StatusOr<HostInventory> ScanHost(platform::HostPlatform& host, const ScanOptions& options) {
  HostInventory inventory;
  std::vector<Scanned> scanned;

  for (StoreName store : {StoreName::kMy, StoreName::kCa, StoreName::kRoot}) {
    const std::string store_name(platform::StoreNameText(store));
    CF_ASSIGN_OR_RETURN(std::vector<platform::StoredCertificate> entries,
                        host.Certificates().List(store), "scanning store ", store_name);
    for (platform::StoredCertificate& entry : entries) {
      if (!entry.error.empty()) {
        inventory.errors.push_back({store_name, std::move(entry.id), std::move(entry.error)});
        continue;
      }
      absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(entry.der);
      if (!cert.ok()) {
        inventory.errors.push_back(
            {store_name, std::move(entry.id), std::string(cert.status().message())});
        continue;
      }
      absl::StatusOr<model::CertificateInfo> info =
          crypto::DescribeCertificate(cert->get(), entry.has_private_key);
      if (!info.ok()) {
        inventory.errors.push_back(
            {store_name, std::move(entry.id), std::string(info.status().message())});
        continue;
      }
      Scanned s{store, std::move(*cert), {}, {}};
      s.out.store = store_name;
      s.out.location = std::move(entry.id);
      s.out.info = std::move(*info);
      scanned.push_back(std::move(s));
    }
  }

  // Trust anchors and helpers for chain building. Only CA certificates can be intermediates,
  // so My's leaves are left out (a store of a thousand leaves would otherwise slow every
  // verification down).
  std::vector<X509*> intermediates;
  std::vector<X509*> roots;
  for (const Scanned& s : scanned) {
    if (s.store == StoreName::kRoot) {
      roots.push_back(s.cert.get());
    } else if (s.store == StoreName::kCa || s.out.info.is_ca) {
      intermediates.push_back(s.cert.get());
    }
  }

  const std::string fqdn = host.Fqdn();
  for (Scanned& s : scanned) {
    if (s.store != StoreName::kMy) continue;
    common::scom::EvaluationOptions evaluation;
    evaluation.now = options.now;
    evaluation.warn_within = options.warn_within;
    evaluation.fqdn = fqdn;
    evaluation.chain_trusted = crypto::VerifyChain(s.cert.get(), intermediates, roots,
                                                   ClampIntoValidity(options.now, s.out.info))
                                   .ok();
    evaluation.require_private_key = true;
    s.problems = common::scom::Evaluate(s.out.info, evaluation);
    s.out.problems = common::scom::ProblemNames(s.problems);
  }

  // The binding.
  absl::StatusOr<platform::MachineSettings> settings = host.Binding().Read();
  if (!settings.ok()) {
    inventory.errors.push_back({"Registry", "", std::string(settings.status().message())});
  } else {
    Scanned* bound = nullptr;
    if (!settings->channel_certificate_serial.has_value()) {
      AddOnce(inventory.drift, model::Drift::kNotBound);
    } else {
      inventory.channel_serial = *settings->channel_certificate_serial;
      for (Scanned& s : scanned) {
        if (s.store != StoreName::kMy ||
            !common::scom::ChannelSerialMatches(inventory.channel_serial, s.out.info.serial)) {
          continue;
        }
        if (bound == nullptr || (!bound->out.info.has_private_key && s.out.info.has_private_key)) {
          bound = &s;
        }
      }
      if (bound == nullptr) AddOnce(inventory.drift, model::Drift::kBindingNotFound);
    }
    if (bound != nullptr) {
      bound->out.bound = true;
      inventory.bound_thumbprint = bound->out.info.thumbprint;
      if (!bound->out.info.has_private_key) {
        AddOnce(inventory.drift, model::Drift::kBoundWithoutPrivateKey);
        AddOnce(bound->out.drift, model::Drift::kBoundWithoutPrivateKey);
      }
    }
    const bool bound_usable = bound != nullptr && Usable(bound->problems);
    for (Scanned& s : scanned) {
      if (s.store != StoreName::kMy || &s == bound || !s.problems.empty() ||
          !common::scom::SubjectMatches(s.out.info, fqdn)) {
        continue;
      }
      if (bound_usable && s.out.info.not_after <= bound->out.info.not_after) continue;
      AddOnce(inventory.drift, model::Drift::kRenewedNotActive);
      AddOnce(s.out.drift, model::Drift::kRenewedNotActive);
    }
  }

  absl::StatusOr<platform::ServiceState> state = host.HealthService().State();
  if (state.ok()) {
    inventory.service = *state;
  } else {
    inventory.errors.push_back({"Service", "", std::string(state.status().message())});
  }

  absl::StatusOr<std::vector<platform::HostEvent>> events =
      host.Events().ReadSince(options.events_since, options.max_events);
  if (events.ok()) {
    inventory.recent_events = std::move(*events);
  } else {
    inventory.errors.push_back({"EventLog", "", std::string(events.status().message())});
  }

  inventory.certificates.reserve(scanned.size());
  for (Scanned& s : scanned) inventory.certificates.push_back(std::move(s.out));
  return inventory;
}

}  // namespace certfleet::agent::inventory
