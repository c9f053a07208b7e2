#include "tools/sim/enroller.h"

#include <grpcpp/grpcpp.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "agent/rpc/controller_client.h"
#include "common/crypto/parse.h"
#include "common/executor/executor.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/rpc/grpc_status.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::sim {
namespace {

using google::protobuf::util::TimeUtil;

constexpr absl::Duration kTokenTtl = absl::Minutes(30);
constexpr absl::Duration kCheckpointInterval = absl::Seconds(30);
constexpr int kEnrollAttempts = 3;

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// DER of the first certificate of `pem`; empty when there is none.
std::string FirstCertificateDer(absl::string_view pem) {
  absl::StatusOr<common::crypto::X509Ptr> cert = common::crypto::CertificateFromPem(pem);
  if (!cert.ok()) return "";
  return common::crypto::CertificateToDer(cert->get());
}

// The notAfter of the first certificate of `pem`; InfinitePast when unreadable.
absl::Time NotAfter(absl::string_view pem) {
  absl::StatusOr<common::crypto::X509Ptr> cert = common::crypto::CertificateFromPem(pem);
  if (!cert.ok()) return absl::InfinitePast();
  const ASN1_TIME* end = X509_get0_notAfter(cert->get());
  struct tm tm {};
  if (end == nullptr || ASN1_TIME_to_tm(end, &tm) != 1) return absl::InfinitePast();
  return absl::FromTM(tm, absl::UTCTimeZone());
}

}  // namespace

std::string SimFqdn(int index) { return absl::StrFormat("sim-%05d.sim.certfleet.test", index + 1); }

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::Dial(const std::string& target,
                                                               const std::string& server_name,
                                                               const std::string& admin_dir) {
  grpc::SslCredentialsOptions ssl;
  for (auto [name, field] : {std::pair<const char*, std::string*>{"ca.pem", &ssl.pem_root_certs},
                             {"client.pem", &ssl.pem_cert_chain},
                             {"client.key", &ssl.pem_private_key}}) {
    absl::StatusOr<std::string> data = common::ReadFileToString(admin_dir + "/" + name);
    if (!data.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin credentials in ", admin_dir,
          " (the controller writes them to STATE_DIR/admin): ", data.status().message()));
    }
    *field = std::move(*data);
  }
  grpc::ChannelArguments args;
  // ListAgents of a large fleet exceeds the default 4 MiB.
  args.SetMaxReceiveMessageSize(-1);
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  std::string root = ssl.pem_root_certs;
  auto channel = grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
  return std::unique_ptr<AdminClient>(
      new AdminClient(certfleet::v1::Admin::NewStub(channel), std::move(root)));
}

absl::StatusOr<std::string> AdminClient::CreateJoinToken(const std::string& fqdn,
                                                         absl::Duration ttl) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(30)));
  certfleet::v1::CreateJoinTokenRequest req;
  *req.mutable_ttl() = TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(ttl));
  req.set_fqdn(fqdn);
  (*req.mutable_labels())["sim"] = "true";
  certfleet::v1::CreateJoinTokenResponse resp;
  grpc::Status s = stub_->CreateJoinToken(&ctx, req, &resp);
  if (!s.ok()) return common::Annotate(common::rpc::FromGrpcStatus(s), "creating a join token");
  return resp.token();
}

absl::StatusOr<absl::flat_hash_set<std::string>> AdminClient::KnownAgentIds() {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(120)));
  certfleet::v1::ListAgentsResponse resp;
  grpc::Status s = stub_->ListAgents(&ctx, certfleet::v1::ListAgentsRequest(), &resp);
  if (!s.ok()) return common::Annotate(common::rpc::FromGrpcStatus(s), "listing agents");
  absl::flat_hash_set<std::string> ids;
  for (const certfleet::v1::Agent& agent : resp.agents()) ids.insert(agent.id());
  return ids;
}

absl::StatusOr<EnrollmentResult> EnsureIdentities(const EnrollmentOptions& options,
                                                  AdminClient& admin,
                                                  const std::function<bool()>& stopped) {
  EnrollmentResult result;
  result.identities.resize(options.agents);

  std::vector<SimIdentity> cached;
  if (!options.cache_path.empty()) {
    CF_ASSIGN_OR_RETURN(cached, LoadIdentities(options.cache_path), "identity cache");
  }
  // Also proves that the controller is reachable and accepts the admin credentials, before
  // anything else is attempted.
  CF_ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> known, admin.KnownAgentIds(),
                      "the admin API of the controller at ", options.controller);
  // Identities of agents beyond --agents stay in the cache for a later, larger run.
  std::vector<SimIdentity> kept_beyond;
  // The cache needs writing: an identity was dropped or will be added.
  bool changed = false;
  if (!cached.empty()) {
    const std::string root_der = FirstCertificateDer(admin.root_pem());
    std::map<std::string, bool> ca_matches;  // by PEM: parsed once per distinct CA
    absl::flat_hash_map<std::string, int> index_of;
    for (int i = 0; i < options.agents; ++i) index_of[SimFqdn(i)] = i;
    const absl::Time now = absl::Now();
    int64_t stale = 0;
    for (SimIdentity& identity : cached) {
      auto index = index_of.find(identity.fqdn);
      if (index == index_of.end()) {
        kept_beyond.push_back(std::move(identity));
        continue;
      }
      auto [ca, inserted] = ca_matches.emplace(identity.credentials.ca_pem, false);
      if (inserted) {
        ca->second = !root_der.empty() && FirstCertificateDer(ca->first) == root_der;
      }
      if (!ca->second || !known.contains(identity.credentials.agent_id) ||
          NotAfter(identity.credentials.identity_pem) < now + options.min_identity_life) {
        ++stale;
        continue;
      }
      result.identities[index->second] = std::move(identity);
      ++result.cached;
    }
    changed = stale > 0;
    if (stale > 0) {
      common::LogInfo(stale, " cached identities are unknown to this controller or expiring; ",
                      "enrolling them again");
    }
  }

  cached.clear();

  std::vector<int> todo;
  for (int i = 0; i < options.agents; ++i) {
    if (!result.identities[i].has_value()) todo.push_back(i);
  }
  changed = changed || !todo.empty();

  absl::Mutex mu;
  size_t finished = 0;
  auto save = [&]() -> absl::Status {
    if (options.cache_path.empty()) return absl::OkStatus();
    std::vector<SimIdentity> all = kept_beyond;
    {
      absl::MutexLock lock(&mu);
      for (const auto& identity : result.identities) {
        if (identity.has_value()) all.push_back(*identity);
      }
    }
    return SaveIdentities(options.cache_path, all);
  };

  if (!todo.empty()) {
    common::LogInfo("enrolling ", todo.size(), " agents (", result.cached, " cached), ",
                    options.parallelism, " at a time");
    common::Executor workers(options.parallelism);
    for (int index : todo) {
      workers.Post([&, index] {
        absl::StatusOr<agent::rpc::Credentials> credentials =
            absl::CancelledError("stopped before enrollment");
        if (!stopped()) {
          const std::string fqdn = SimFqdn(index);
          absl::StatusOr<std::string> token = admin.CreateJoinToken(fqdn, kTokenTtl);
          if (!token.ok()) credentials = token.status();
          for (int attempt = 0; token.ok() && attempt < kEnrollAttempts; ++attempt) {
            if (attempt > 0) absl::SleepFor(absl::Milliseconds(500 * attempt));
            agent::rpc::EnrollParams params;
            params.controller = options.controller;
            params.token = *token;
            params.fqdn = fqdn;
            params.platform = "memory";
            params.version = options.version;
            credentials = agent::rpc::Enroll(params);
            if (credentials.ok() || credentials.status().code() != absl::StatusCode::kUnavailable) {
              break;
            }
          }
        }
        absl::MutexLock lock(&mu);
        ++finished;
        if (credentials.ok()) {
          result.identities[index] = SimIdentity{SimFqdn(index), std::move(*credentials)};
          ++result.enrolled;
        } else {
          if (result.first_error.ok()) result.first_error = credentials.status();
          ++result.errors[absl::StatusCodeToString(credentials.status().code())];
          if (credentials.status().code() != absl::StatusCode::kCancelled) {
            common::LogWarning("enrolling ", SimFqdn(index), ": ", credentials.status().ToString());
          }
        }
      });
    }
    while (true) {
      bool done = false;
      {
        absl::MutexLock lock(&mu);
        auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished == todo.size(); };
        mu.AwaitWithTimeout(absl::Condition(&all_done), kCheckpointInterval);
        done = finished == todo.size();
        common::LogInfo("enrolled ", result.enrolled, " of ", todo.size(), " new agents");
      }
      if (done) break;
      CF_RETURN_IF_ERROR(save(), "saving the identity cache");
    }
    workers.Shutdown();
  }
  if (changed) {
    CF_RETURN_IF_ERROR(save(), "saving the identity cache");
  }
  return result;
}

}  // namespace certfleet::sim
