#include "agent/client/identity_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/status/status_macros.h"

namespace certfleet::agent::client {
namespace {

constexpr char kAgentId[] = "agent_id";
constexpr char kCa[] = "ca.pem";
constexpr char kChain[] = "identity.pem";
constexpr char kKey[] = "identity.key";
constexpr char kNewSuffix[] = ".new";

std::string PathIn(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status RenameOver(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", from, " to ", to, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Makes the renames in `dir` durable. Best effort: a file system without directory fsync keeps
// them anyway, only later.
void SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Finishes (after the commit point) or drops (before it) a replacement a crash interrupted.
absl::Status RecoverReplacement(const std::string& dir) {
  const std::string new_chain = PathIn(dir, absl::StrCat(kChain, kNewSuffix));
  const std::string new_key = PathIn(dir, absl::StrCat(kKey, kNewSuffix));
  const bool chain_pending = common::FileExists(new_chain);
  const bool key_pending = common::FileExists(new_key);
  if (chain_pending && !key_pending) {
    // The new key is in place: its chain must follow.
    CF_RETURN_IF_ERROR(RenameOver(new_chain, PathIn(dir, kChain)));
    SyncDirectory(dir);
    return absl::OkStatus();
  }
  // Not committed (or a stray file): the old pair is intact.
  if (chain_pending) ::unlink(new_chain.c_str());
  if (key_pending) ::unlink(new_key.c_str());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::pair<absl::Time, absl::Time>> IdentityValidity(absl::string_view identity_pem) {
  auto chain = common::crypto::CertificatesFromPem(identity_pem);
  if (!chain.ok() || chain->empty()) {
    return absl::DataLossError("the agent identity certificate cannot be read");
  }
  auto leaf = common::crypto::DescribeCertificate(chain->front().get(), false);
  if (!leaf.ok()) return absl::DataLossError("the agent identity certificate cannot be read");
  return std::make_pair(leaf->not_before, leaf->not_after);
}

absl::StatusOr<StoredIdentity> LoadIdentity(const std::string& dir) {
  CF_RETURN_IF_ERROR(RecoverReplacement(dir), "agent identity in ", dir);
  if (!common::FileExists(PathIn(dir, kKey))) {
    return absl::NotFoundError(absl::StrCat("no agent identity in ", dir));
  }
  auto read = [&](absl::string_view name, std::string* out) -> absl::Status {
    auto data = common::ReadFileToString(PathIn(dir, name));
    if (!data.ok()) {
      return absl::DataLossError(
          absl::StrCat("agent identity in ", dir, " is incomplete: ", data.status().message()));
    }
    *out = *std::move(data);
    return absl::OkStatus();
  };
  StoredIdentity identity;
  CF_RETURN_IF_ERROR(read(kKey, &identity.key_pem));
  CF_RETURN_IF_ERROR(read(kChain, &identity.identity_pem));
  CF_RETURN_IF_ERROR(read(kCa, &identity.ca_pem));
  CF_RETURN_IF_ERROR(read(kAgentId, &identity.agent_id));
  identity.agent_id = std::string(absl::StripAsciiWhitespace(identity.agent_id));
  if (identity.agent_id.empty()) {
    return absl::DataLossError(absl::StrCat(PathIn(dir, kAgentId), " is empty"));
  }

  auto chain = common::crypto::CertificatesFromPem(identity.identity_pem);
  if (!chain.ok() || chain->empty()) {
    return absl::DataLossError(absl::StrCat(PathIn(dir, kChain), " holds no certificate"));
  }
  auto key = common::crypto::PrivateKeyFromPem(identity.key_pem);
  if (!key.ok()) {
    return absl::DataLossError(absl::StrCat(PathIn(dir, kKey), " holds no private key"));
  }
  if (!common::crypto::KeyMatchesCertificate(key->get(), chain->front().get())) {
    return absl::DataLossError(
        absl::StrCat(PathIn(dir, kKey), " is not the key of ", PathIn(dir, kChain)));
  }
  auto leaf = common::crypto::DescribeCertificate(chain->front().get(), false);
  if (!leaf.ok()) {
    return absl::DataLossError(absl::StrCat(PathIn(dir, kChain), " cannot be read"));
  }
  identity.not_before = leaf->not_before;
  identity.not_after = leaf->not_after;
  return identity;
}

absl::Status WriteIdentity(const std::string& dir, const StoredIdentity& identity) {
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(PathIn(dir, kCa), identity.ca_pem, 0644));
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(PathIn(dir, kChain), identity.identity_pem, 0644));
  CF_RETURN_IF_ERROR(
      common::WriteFileAtomically(PathIn(dir, kAgentId), identity.agent_id + "\n", 0644));
  // The key last: its presence marks a complete enrollment.
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(PathIn(dir, kKey), identity.key_pem, 0600));
  SyncDirectory(dir);
  return absl::OkStatus();
}

absl::Status ReplaceIdentity(const std::string& dir, absl::string_view identity_pem,
                             absl::string_view key_pem) {
  const std::string new_chain = PathIn(dir, absl::StrCat(kChain, kNewSuffix));
  const std::string new_key = PathIn(dir, absl::StrCat(kKey, kNewSuffix));
  // The chain first: a lone identity.pem.new means "committed" to RecoverReplacement only when
  // identity.key.new is gone, which happens at the commit point alone.
  CF_RETURN_IF_ERROR(common::WriteFileAtomically(new_chain, identity_pem, 0644));
  if (absl::Status s = common::WriteFileAtomically(new_key, key_pem, 0600); !s.ok()) {
    ::unlink(new_chain.c_str());
    return s;
  }
  SyncDirectory(dir);
  if (absl::Status s = RenameOver(new_key, PathIn(dir, kKey)); !s.ok()) {
    ::unlink(new_chain.c_str());
    ::unlink(new_key.c_str());
    return s;
  }
  // Committed: from here a crash is finished by RecoverReplacement.
  CF_RETURN_IF_ERROR(RenameOver(new_chain, PathIn(dir, kChain)));
  SyncDirectory(dir);
  return absl::OkStatus();
}

}  // namespace certfleet::agent::client
