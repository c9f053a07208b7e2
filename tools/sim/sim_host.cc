#include "tools/sim/sim_host.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/platform/health_service_emulator.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/issue.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

namespace certfleet::sim {

namespace crypto = common::crypto;
namespace model = common::model;
namespace platform = agent::platform;

absl::StatusOr<std::unique_ptr<HostFactory>> HostFactory::Create(common::Clock& clock,
                                                                 KeyPool& keys) {
  std::unique_ptr<HostFactory> factory(new HostFactory(clock, keys));
  CF_ASSIGN_OR_RETURN(factory->ca_key_, crypto::GenerateEcKey(), "simulated enterprise CA key");
  crypto::CertificateSpec spec;
  spec.subject_cn = "certfleet-sim enterprise root";
  spec.subject_o = "certfleet-sim";
  spec.is_ca = true;
  spec.key_usage = model::kKeyCertSign | model::kCrlSign | model::kDigitalSignature;
  const absl::Time now = clock.Now();
  spec.not_before = now - absl::Hours(24);
  spec.not_after = now + absl::Hours(24 * 365 * 5);
  CF_ASSIGN_OR_RETURN(
      factory->ca_,
      crypto::IssueCertificate(spec, factory->ca_key_.get(), nullptr, factory->ca_key_.get()),
      "simulated enterprise root");
  factory->ca_der_ = crypto::CertificateToDer(factory->ca_.get());
  return factory;
}

absl::StatusOr<std::unique_ptr<platform::MemoryHostPlatform>> HostFactory::NewHost(
    const std::string& fqdn, int certificates) {
  platform::MemoryOptions options;
  options.fqdn = fqdn;
  // A simulated host keeps only recent evidence: thousands of hosts share one process.
  options.max_events_kept = 64;
  auto host = std::make_unique<platform::MemoryHostPlatform>(options, platform::MemoryDeps{clock_});
  CF_RETURN_IF_ERROR(
      host->Certificates().Add(platform::StoreName::kRoot, ca_der_, std::nullopt).status(),
      "seeding Root");
  const absl::Time now = clock_.Now();
  for (int i = 0; i < std::max(certificates, 1); ++i) {
    crypto::CertificateSpec spec;
    spec.subject_cn = fqdn;
    spec.dns_names = {fqdn};
    spec.key_usage = model::kDigitalSignature | model::kKeyEncipherment;
    spec.extended_key_usage = {std::string(model::kServerAuthOid),
                               std::string(model::kClientAuthOid)};
    spec.not_before = now - absl::Hours(24);
    spec.not_after = now + absl::Hours(24 * (365 - i));
    spec.signature_digest = "SHA256";
    CF_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, keys_.RsaKey(2048), "host key");
    CF_ASSIGN_OR_RETURN(crypto::X509Ptr cert,
                        crypto::IssueCertificate(spec, key.get(), ca_.get(), ca_key_.get()),
                        "host certificate");
    CF_ASSIGN_OR_RETURN(
        std::string id,
        host->Certificates().Add(platform::StoreName::kMy, crypto::CertificateToDer(cert.get()),
                                 crypto::PrivateKeyToPem(key.get())),
        "seeding My");
    if (i > 0) continue;
    CF_ASSIGN_OR_RETURN(model::CertificateInfo info, crypto::DescribeCertificate(cert.get(), true));
    platform::MachineSettings settings;
    settings.channel_certificate_serial = info.channel_serial;
    settings.channel_certificate_hash = id;
    CF_RETURN_IF_ERROR(host->Binding().Write(settings), "seeding the binding");
  }
  CF_RETURN_IF_ERROR(host->HealthService().Restart(), "starting the HealthService");
  CF_ASSIGN_OR_RETURN(std::vector<platform::HostEvent> events,
                      host->Events().ReadSince(absl::InfinitePast(), 10));
  if (events.empty() || events.back().id != platform::kEventCertificateLoaded) {
    return absl::InternalError(absl::StrCat(
        "the seeded host ", fqdn, " does not load its certificate: ",
        events.empty() ? std::string("no event") : absl::StrCat("event ", events.back().id)));
  }
  return host;
}

}  // namespace certfleet::sim
