#pragma once

// A Notifier tells the world outside certfleet that something happened: a certificate is about
// to expire, a renewal failed, a campaign halted. Implementations: WebhookNotifier (an HTTP POST
// per event, webhook_notifier.h), FanoutNotifier (several notifiers as one,
// fanout_notifier.h), and certfleet::testing::RecordingNotifier for tests
// (tests/testing/recording_notifier.h). Every implementation passes the conformance suite in
// tests/controller/notify/notifier_conformance.h.

#include <map>
#include <string>

#include "absl/time/time.h"

namespace certfleet::controller::notify {

// The event types the controller sends.
inline constexpr char kCertificateExpiring[] = "certificate.expiring";
inline constexpr char kDriftDetected[] = "drift.detected";
inline constexpr char kRenewalFailed[] = "renewal.failed";
inline constexpr char kCampaignHalted[] = "campaign.halted";
inline constexpr char kCampaignFinished[] = "campaign.finished";
inline constexpr char kApprovalWaiting[] = "approval.waiting";

struct Event {
  std::string type;     // one of the constants above
  absl::Time at;        // when it happened
  std::string subject;  // what it is about: an FQDN, a campaign id, ...
  std::string summary;  // one human sentence
  // Flat details: agent_id, fqdn, thumbprint, not_after, reason, campaign, ...
  // Never a secret: notifiers send these to third parties.
  std::map<std::string, std::string> fields;

  friend bool operator==(const Event&, const Event&) = default;
};

// Thread-safe: Notify may be called from any thread, concurrently.
class Notifier {
 public:
  virtual ~Notifier() = default;

  // Hands `event` over for delivery and returns without waiting on the network. Events a
  // notifier is subscribed to are delivered at most once each and, from one notifier to one
  // destination, in the order Notify was called; events it is not subscribed to are ignored.
  // Delivery is best effort: a notifier that cannot deliver counts and logs the loss, it never
  // reports it to the caller.
  virtual void Notify(const Event& event) = 0;
};

}  // namespace certfleet::controller::notify
