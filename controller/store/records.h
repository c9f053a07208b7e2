#pragma once

// Records the controller persists. Plain structs; the Store converts them to rows.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/model/campaign.h"
#include "common/model/certificate.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/model/renewal.h"

namespace certfleet::controller::store {

struct JoinTokenRecord {
  std::string token_hash;  // SHA-256 hex of the token secret; the token itself is never stored
  std::optional<std::string> fqdn;  // when set, only an agent with this FQDN may use it
  std::map<std::string, std::string> labels;
  absl::Time created_at;
  absl::Time expires_at;
  std::optional<absl::Time> used_at;
  std::string used_by_agent;  // agent id, once used
  std::string created_by;     // operator name
  // Re-enrollment: when set, the token may only be used by this existing agent to get a new
  // identity (after its identity expired while offline); it never creates an agent.
  std::string agent_id;
};

struct AgentRecord {
  std::string id;
  std::string fqdn;
  std::map<std::string, std::string> labels;
  std::string platform;
  std::string version;
  absl::Time enrolled_at;
  std::optional<absl::Time> last_seen;
  std::string identity_serial;  // serial of the current identity certificate
  absl::Time identity_not_after;
  // Latest binding report.
  std::string channel_serial;
  std::vector<std::string> drift;
  uint64_t inventory_generation = 0;
};

// One certificate in one store of one agent's host.
struct CertificateRecord {
  std::string agent_id;
  std::string store;  // "My", "CA", "Root"
  std::string location;
  common::model::CertificateInfo info;
  std::vector<std::string> problems;
  bool bound = false;
  std::vector<std::string> drift;

  // "<store>/<thumbprint>": the key of the row within the agent.
  std::string Key() const { return store + "/" + info.thumbprint; }
};

struct CertificateFilter {
  std::optional<std::string> agent_id;
  // Only certificates whose not_after is before this time.
  std::optional<absl::Time> not_after_before;
  // Only certificates carrying this problem or drift code.
  std::optional<std::string> code;
};

// The binding part of an inventory.
struct BindingRecord {
  std::string channel_serial;
  std::vector<std::string> drift;
};

// A command for one agent and where it stands.
struct CommandRecord {
  common::model::Command command;  // id, agent_id, deadline, payload
  common::model::CommandState state = common::model::CommandState::kQueued;
  std::string created_by;  // operator name, or "controller" for automatic work
  absl::Time created_at;
  std::optional<absl::Time> sent_at;      // last time it was sent
  std::optional<absl::Time> started_at;   // the agent reported it running
  std::optional<absl::Time> finished_at;  // it reached a final state
  int attempts = 0;                       // how many times it was sent
  bool cancel_requested = false;
  std::optional<common::model::CommandOutcome> outcome;  // set once final
};

struct CommandFilter {
  std::optional<std::string> agent_id;
  std::optional<common::model::CommandState> state;
  size_t limit = 1000;  // at least 1; at most this many, the newest when more match
};

// A certificate an issuer of this controller signed, recorded before it is handed out.
struct IssuanceRecord {
  std::string serial;  // display form (uppercase hex); unique
  std::string issuer;  // issuer name ("builtin", "manual", ...)
  std::string renewal_id;
  std::string agent_id;
  std::string fqdn;
  std::string thumbprint;
  absl::Time not_before;
  absl::Time not_after;
  absl::Time issued_at;
  std::string certificate_pem;
};

// A request waiting for an officer (the "manual" issuer, a stand-alone CA's pending queue).
struct ApprovalRequestRecord {
  std::string id;
  std::string issuer;
  std::string renewal_id;
  std::string agent_id;
  std::string fqdn;
  std::string csr_pem;
  std::string profile_name;
  common::model::ApprovalState state = common::model::ApprovalState::kPending;
  std::string decided_by;
  std::string reason;     // why denied, or a note
  std::string chain_pem;  // approved (signed here) or fulfilled (signed elsewhere): leaf first
  absl::Time created_at;
  std::optional<absl::Time> decided_at;
};

struct RenewalStep {
  common::model::RenewalState state;
  absl::Time at;
  std::string note;
};

// One host's renewal job, persisted at every step so it resumes after a controller restart.
struct RenewalRecord {
  std::string id;
  std::string agent_id;
  std::string fqdn;
  common::model::CertificateProfile profile;  // a snapshot of the profile used
  std::string issuer;
  bool bind = true;
  common::model::RenewalState state = common::model::RenewalState::kPlanned;
  std::vector<RenewalStep> steps;  // every state entered, oldest first
  std::string csr_pem;
  std::string renew_command_id;
  std::string install_command_id;
  std::string bind_command_id;
  std::string issuer_cookie;        // issuer's handle for a pending request
  std::string approval_request_id;  // manual issuer
  std::string chain_pem;            // issued chain, leaf first
  std::string serial;               // of the issued certificate
  std::string thumbprint;           // of the issued certificate
  std::string failure_reason;
  std::optional<common::model::CommandResult> evidence;  // the rebind's result
  std::string created_by;
  absl::Time created_at;
  absl::Time updated_at;
  // When the job should next be looked at (poll a pending issuer, retry later); InfinitePast =
  // now.
  absl::Time next_attempt_at = absl::InfinitePast();
};

struct RenewalFilter {
  std::optional<std::string> agent_id;
  std::optional<common::model::RenewalState> state;
  bool active_only = false;  // not done, rolled_back or failed
  size_t limit = 1000;       // the newest when more match, returned oldest first
};

// One entry of the audit log: every admin change and every automatic decision. Entries are
// hash-chained: `hash` seals the entry's fields and `prev_hash`, so a changed, removed or
// reordered entry is detectable (controller/audit/audit_log.h).
struct AuditRecord {
  uint64_t seq = 0;  // 1, 2, ...: assigned by the store
  absl::Time at;
  std::string actor;      // "operator/admin/alice", "agent/<id>", "controller"
  std::string action;     // "token.create", "campaign.start", "campaign.wave.promoted", ...
  std::string target;     // what it acted on: an id or an FQDN
  std::string details;    // a JSON object (never a secret)
  std::string prev_hash;  // the previous entry's hash; "" for seq 1
  std::string hash;       // hex
};

struct AuditFilter {
  std::optional<absl::Time> since;  // entries at or after this time
  uint64_t after_seq = 0;           // entries with seq > after_seq
  size_t limit = 1000;              // at least 1; the oldest `limit` matching entries
};

// What a campaign is asked to do (certfleetctl campaign create).
struct CampaignSpec {
  // Selector: every condition given must hold.
  std::map<std::string, std::string> labels;
  std::string fqdn_glob;                          // fnmatch, case-insensitive
  std::optional<absl::Duration> expiring_within;  // the bound certificate ends within this
  std::string problem;                            // a problem or drift code on the host
  // The renewal of each host.
  std::string profile;  // empty = "scom"
  std::string issuer;   // empty = the default issuer
  bool bind = true;
  // Roll-out.
  std::string waves = "1,10%,50%,100%";        // common::model::ParseWaves
  int max_in_flight = 10;                      // hosts renewing at once
  std::string max_failures = "0";              // common::model::ParseFailureBudget
  absl::Duration soak = absl::ZeroDuration();  // wait after a wave passed its gate
  std::string window;      // a window spec or a configured window's name; empty = any time
  bool emergency = false;  // start outside hard windows (audited)
  absl::Duration offline_deadline = absl::Hours(24);  // wait this long for an offline host
};

struct CampaignRecord {
  std::string id;
  std::string name;
  CampaignSpec spec;
  common::model::CampaignState state = common::model::CampaignState::kPlanned;
  std::string reason;    // why halted or cancelled; empty otherwise
  int current_wave = 0;  // index of the wave being run (or next to run)
  int wave_count = 0;
  std::optional<absl::Time> wave_started_at;  // when current_wave started
  std::optional<absl::Time> soak_until;       // current_wave passed its gate; next starts then
  int failures_acknowledged = 0;              // failures the operator accepted by resuming
  std::string created_by;
  absl::Time created_at;
  absl::Time updated_at;
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> finished_at;
};

// One host of a campaign.
struct CampaignTargetRecord {
  std::string campaign_id;
  int position = 0;  // order within the campaign (0-based); waves are contiguous ranges
  int wave = 0;
  std::string agent_id;
  std::string fqdn;
  common::model::TargetState state = common::model::TargetState::kPending;
  std::string renewal_id;           // set when running: derived from campaign and agent
  std::string previous_thumbprint;  // the bound certificate at plan time (for a revert)
  std::optional<absl::Time> previous_not_after;
  std::string revert_command_id;
  std::string reason;  // why it failed, was not reached, ...
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> finished_at;
};

// The automatic scheduler's memory of one agent (retries with backoff, drift remediation).
struct PolicyStateRecord {
  std::string agent_id;
  std::string policy;
  int failures = 0;  // consecutive failed renewals
  absl::Time next_attempt_at = absl::InfinitePast();
  std::string last_renewal_id;
  std::string from_thumbprint;  // the bound certificate the last renewal replaced
  std::string remediation_command_id;
  absl::Time updated_at;
};

}  // namespace certfleet::controller::store
