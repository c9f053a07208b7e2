#pragma once

// Carries out the controller's commands on the host (ARCHITECTURE.md, "Commands the agent
// carries out"), through the HostPlatform only, with every step journaled so that each command
// has its effect once: a duplicate delivery is answered from the journal, and a rebind cut
// short by a crash is finished or rolled back by Recover() at the next start.
//
//   CommandRunner runner({}, {host, *journal, clock});
//   CF_RETURN_IF_ERROR(runner.Recover());              // before connecting
//   ... for each Command received (on the agent's executor, not a gRPC thread):
//   CommandOutcome outcome = runner.Execute(command, [&] { SendRunning(command.id); });
//   Send(command.id, outcome);                          // then, once acknowledged:
//   runner.MarkReported(command.id);
//   ... at every reconnect: re-send runner.Unreported().
//
// Outcomes carry the most specific canonical code (they cross the wire unchanged):
//   scan     succeeded (the caller sends the inventory).
//   import   InvalidArgument: not a certificate file, wrong or missing PFX password (the message
//            never holds the password), a key matching no certificate, only CA certificates;
//            FailedPrecondition "certificate is for X, this host is Y" (nothing imported);
//            NotFound: a bare certificate whose key is in no key container of the host.
//            Result: thumbprint, and the SCOM problems of the certificate as the inventory
//            judges them (this host's FQDN, chain trust against Root).
//            CA certificates of the file that are not self-signed go to the CA store; roots are
//            never trusted implicitly (that is the trust command): the detail names them.
//   repair   NotFound: the certificate is not in My, or no key container matches it.
//            Already linked: succeeded, the detail says so.
//   rebind   NotFound: the certificate is not in My. Then the verified rebind (see Execute);
//            failures are rolled back: FailedPrecondition for a failure event (named, with its
//            meaning), DeadlineExceeded when no verdict came within verify_timeout (or the
//            restart hung), Unavailable when the restart failed.
//   trust    InvalidArgument: not a PEM/DER certificate, a certificate that is not a CA, or data
//            holding a private key. Self-signed: Root; otherwise: CA. Idempotent.
//   remove   NotFound: not in My; FailedPrecondition: it is the bound certificate.
//   renew    InvalidArgument: the profile fails model::ValidateProfile; FailedPrecondition: the
//            host has no FQDN. Generates an RSA key of profile.key_bits (Deps::keys gives it when
//            set) into a new key container of the host's store (CertificateStore::AddKeyContainer;
//            lab: MachineKeys, 0600) and returns a PKCS#10 request for it in result.csr_pem: CN =
//            the host's FQDN, SAN DNS = the FQDN then profile.extra_dns_names (repeats dropped),
//            the profile's key usage (critical), EKU, template (attribute and extension) and
//            signature hash. The detail names the key container. The private key never leaves the
//            store: it is in neither the result, the journal nor a log. A duplicate is answered
//            with the same request (the journaled outcome); only a new command id makes a new key.
//   install  InvalidArgument: chain_pem is not PEM certificates, holds a private key, or starts
//            with a CA certificate; FailedPrecondition "certificate is for X, this host is Y"
//            (nothing installed); NotFound "no key on this host matches the issued certificate"
//            (no key container has the leaf's public key, and the leaf is not in My with its key
//            already). The leaf goes into My linked to that container (as a bare-certificate
//            import does), the chain's CA certificates that are not self-signed into CA (roots
//            are never trusted implicitly; the detail names them). With bind: then the verified
//            rebind to the leaf, with verify_timeout, its codes and its evidence (a rollback
//            restores the binding; the leaf stays in My). Result: thumbprint, events and serials
//            as for rebind, and the leaf's SCOM problems (as for import) at the end.
// Errors of the host itself keep the platform's code (Unavailable, DataLoss, ...), annotated.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/commands/key_source.h"
#include "agent/journal/journal.h"
#include "agent/platform/host_platform.h"
#include "common/model/command.h"
#include "common/time/clock.h"

namespace certfleet::agent::commands {

// Thread-safety: thread-safe. Commands run one at a time (they share one host): Execute and
// Recover hold a run lock for their whole duration, so a duplicate delivered while the original
// runs waits for it and is then answered from the journal. Cancel never waits for a running
// command.
class CommandRunner {
 public:
  struct Options {
    // How often a rebind reads the event log while it waits for the HealthService's verdict
    // (clock time: a FakeClock makes the wait instant).
    absl::Duration event_poll_interval = absl::Milliseconds(200);
    // Imported certificates ending within this long are reported EXPIRES_SOON.
    absl::Duration warn_within = absl::Hours(24 * 30);
  };
  // All must outlive the runner.
  struct Deps {
    platform::HostPlatform& host;
    journal::Journal& journal;
    common::Clock& clock;
    // Optional: where renew gets its key. Null: common::crypto::GenerateRsaKey, a fresh key
    // per renew (what an agent does).
    KeySource* keys = nullptr;
  };

  CommandRunner(const Options& options, const Deps& deps);
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  // Call once at agent start, before connecting. Gives every command a crash left in the
  // journal as running an outcome (journaled, unreported):
  // - a rebind whose restart was journaled, with a 20053 written at or after that restart as
  //   the first verdict in the event log and the registry holding the target: succeeded (the
  //   events are the evidence);
  // - a rebind whose snapshot was journaled but whose registry still holds the snapshot (the
  //   value was never written, so the HealthService never saw it): failed, Aborted, nothing
  //   restarted;
  // - any other rebind (value written, or a restart that failed or gave no verdict, or a
  //   registry that differs from the snapshot): the snapshot is restored, the HealthService
  //   restarted and its verdict collected; failed, Aborted "the agent stopped during the
  //   rebind; restored the previous binding", rolled_back. A snapshot of "absent" is restored
  //   as absent: the host is left as the rebind found it.
  // - an install with bind: as a rebind (it journals its snapshot before changing the stores;
  //   before that, nothing changed: failed, Aborted); the detail also says whether the leaf is
  //   in My with its key. An install without bind: as an import;
  // - import, repair, trust, remove: succeeded when the effect is verifiably complete on the
  //   host (the certificate imported with its key / linked / trusted / gone), else failed,
  //   Aborted "interrupted";
  // - renew: failed, Aborted "interrupted" (its request was never returned, and the store gives
  //   no unlinked key back to rebuild it). The key container it may have made stays, named in
  //   the detail when it was journaled; a renew sent again generates a new key;
  // - scan: succeeded (the inventory the agent sends at every connect answers it).
  // Commands received but never started stay as they are (a re-delivery runs them).
  // Returns the first error met (the journal could not be read or written, the registry could
  // not be restored); entries it could not settle stay running and are retried by the next
  // Recover or by Execute of the same id.
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(run_mu_);

  // Runs `command` to its outcome, blocking, and journals it (unreported):
  // - already done in the journal: the stored outcome, nothing is run (a duplicate);
  //   on_started is not called;
  // - journaled as running by an earlier process (Recover not called for it): settled as
  //   Recover would, and that outcome returned;
  // - cancelled (Cancel before it started): kCancelled, code Cancelled, host untouched;
  // - clock.Now() > command.deadline: kExpired, code DeadlineExceeded, host untouched;
  // - otherwise journaled running, on_started() called (the caller reports "running"), then
  //   run. The deadline is checked only at the start: a started command completes.
  // When the journal cannot record the start, nothing is run and the outcome is failed with
  // the journal's code. When it cannot record the outcome, the outcome is still returned; the
  // entry stays running and a later duplicate or Recover settles it from the host.
  //
  // Rebind, in order, each step journaled before the next change: the thumbprint must name a
  // certificate in My; the Machine Settings are snapshot; ChannelCertificateSerialNumber = the
  // certificate's channel serial and ChannelCertificateHash = its thumbprint are written; the
  // HealthService is restarted; the event log is read every event_poll_interval until an event
  // written at or after the restart gives a verdict: 20053 succeeds; a failure event (20049
  // 20050 20051 20052 20066 20068 20069 20071 20072 20077), verify_timeout passing, or the
  // restart failing restores the snapshot, restarts again and collects that restart's verdict
  // (rolled_back). A host already bound to the certificate is rebound all the same: the
  // verified restart is idempotent and proves the binding works now. The result has the
  // snapshot's serial, the serial in force at the end and every event seen after each restart.
  // An install with bind runs the same steps, its snapshot journaled before it puts the leaf
  // into My.
  common::model::CommandOutcome Execute(const common::model::Command& command,
                                        const std::function<void()>& on_started)
      ABSL_LOCKS_EXCLUDED(run_mu_, mu_);

  // Asks that command `id` not run. A command not yet started (or not yet delivered) is
  // answered kCancelled when Execute reaches it; one already started or done is unaffected and
  // completes with its own outcome (a rebind halfway is safer finished than abandoned).
  // Cancellations are kept in memory: after a crash the controller's re-sent Cancel applies.
  void Cancel(absl::string_view id) ABSL_LOCKS_EXCLUDED(mu_);

  // Outcomes not yet acknowledged by the controller, oldest first (Journal::Unreported).
  absl::StatusOr<std::vector<std::pair<std::string, common::model::CommandOutcome>>> Unreported();

  // The controller acknowledged the outcome of `id` (Journal::MarkReported).
  absl::Status MarkReported(absl::string_view id);

 private:
  common::model::CommandOutcome Run(const common::model::Command& command);
  // Settles an entry left running by a crash; the outcome is journaled.
  absl::StatusOr<common::model::CommandOutcome> Settle(const journal::JournalEntry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(run_mu_);
  // Journals `outcome` as the final word on `id` and returns it.
  common::model::CommandOutcome Finish(absl::string_view id, common::model::CommandOutcome outcome);

  const Options options_;
  platform::HostPlatform& host_;
  journal::Journal& journal_;
  common::Clock& clock_;
  KeySource* const keys_;

  // Held for the whole of Execute and Recover: one command at a time on the host.
  absl::Mutex run_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  // Cancelled before they started.
  absl::flat_hash_set<std::string> cancelled_ ABSL_GUARDED_BY(mu_);
  // Started in this process and not finished.
  absl::flat_hash_set<std::string> started_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::agent::commands
