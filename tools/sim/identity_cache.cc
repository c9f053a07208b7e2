#include "tools/sim/identity_cache.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/files/file_util.h"
#include "nlohmann/json.hpp"

namespace certfleet::sim {
namespace {

using Json = nlohmann::json;

// The version of the file format; a file with another one is refused (and then re-created).
constexpr int kVersion = 1;

bool ReadString(const Json& object, const char* name, std::string* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return false;
  *out = it->get_ref<const std::string&>();
  return true;
}

}  // namespace

absl::StatusOr<std::vector<SimIdentity>> LoadIdentities(const std::string& path) {
  if (!common::FileExists(path)) return std::vector<SimIdentity>();
  absl::StatusOr<std::string> text = common::ReadFileToString(path);
  if (!text.ok()) return text.status();
  const absl::Status corrupt =
      absl::DataLossError(absl::StrCat(path, " is not a certfleet-sim identity cache"));
  const Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return corrupt;
  auto version = json.find("version");
  auto cas = json.find("cas");
  auto agents = json.find("agents");
  if (version == json.end() || !version->is_number_integer() || version->get<int>() != kVersion ||
      cas == json.end() || !cas->is_array() || agents == json.end() || !agents->is_array()) {
    return corrupt;
  }
  std::vector<SimIdentity> out;
  out.reserve(agents->size());
  for (const Json& a : *agents) {
    if (!a.is_object()) return corrupt;
    SimIdentity identity;
    auto ca = a.find("ca");
    if (!ReadString(a, "fqdn", &identity.fqdn) ||
        !ReadString(a, "agent_id", &identity.credentials.agent_id) ||
        !ReadString(a, "key_pem", &identity.credentials.key_pem) ||
        !ReadString(a, "identity_pem", &identity.credentials.identity_pem) || ca == a.end() ||
        !ca->is_number_unsigned() || ca->get<size_t>() >= cas->size() ||
        !(*cas)[ca->get<size_t>()].is_string()) {
      return corrupt;
    }
    identity.credentials.ca_pem = (*cas)[ca->get<size_t>()].get<std::string>();
    out.push_back(std::move(identity));
  }
  return out;
}

absl::Status SaveIdentities(const std::string& path, const std::vector<SimIdentity>& identities) {
  // The CA certificate is the same for every agent of one controller: stored once.
  std::map<std::string, size_t> ca_index;
  Json cas = Json::array();
  Json agents = Json::array();
  for (const SimIdentity& identity : identities) {
    auto [it, inserted] = ca_index.emplace(identity.credentials.ca_pem, cas.size());
    if (inserted) cas.push_back(identity.credentials.ca_pem);
    agents.push_back({{"fqdn", identity.fqdn},
                      {"agent_id", identity.credentials.agent_id},
                      {"ca", it->second},
                      {"key_pem", identity.credentials.key_pem},
                      {"identity_pem", identity.credentials.identity_pem}});
  }
  Json json = {{"version", kVersion}, {"cas", std::move(cas)}, {"agents", std::move(agents)}};
  return common::WriteFileAtomically(
      path, json.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", 0600);
}

}  // namespace certfleet::sim
