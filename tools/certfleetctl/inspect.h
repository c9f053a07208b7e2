#pragma once

// `certfleetctl inspect`: judges certificate files offline, as SCOM's HealthService would
// judge the certificate on a host. No controller is involved.

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certfleet/v1/types.pb.h"

namespace certfleet::ctl {

struct InspectOptions {
  // Files to inspect: PEM (several blocks, keys included), DER, or PKCS#12 / PFX.
  std::vector<std::string> files;
  // The host's FQDN; SUBJECT_MISMATCH is judged only when set.
  std::optional<std::string> fqdn;
  // Password for PFX files and encrypted PEM keys (never printed).
  std::optional<std::string> password;
  // A file (any of the formats above) whose certificates are the trusted roots; CHAIN_UNTRUSTED
  // is judged only when set. The other certificates of an inspected file serve as
  // intermediates for its certificates.
  std::optional<std::string> ca_file;
  // EXPIRES_SOON when a certificate ends within this many days of `now`.
  int warn_days = 30;
  // Judge NO_PRIVATE_KEY for every certificate. Without it NO_PRIVATE_KEY is judged only for
  // non-CA certificates of a file that holds a private key (the key there belongs to another
  // certificate); a bare certificate file is never expected to hold a key.
  bool require_key = false;
  enum class Output { kTable, kJson };
  Output output = Output::kTable;
  // The time validity is judged at.
  absl::Time now;
};

// The verdict on one file: either `error` is set, or `certificates` lists what it held.
struct InspectedFile {
  std::string file;
  std::string error;  // empty when the file was read
  std::vector<certfleet::v1::Certificate> certificates;
};

// Reads and judges every file of `options.files`; a file that cannot be read or parsed yields
// an InspectedFile with `error` and does not stop the others. FailedPrecondition (or the read
// error) when options.ca_file cannot be read or holds no certificate.
absl::StatusOr<std::vector<InspectedFile>> InspectFiles(const InspectOptions& options);

// One JSON array: per certificate an object with "file" then every certfleet.v1.Certificate
// field; per unreadable file {"file": ..., "error": ...}.
std::string RenderJson(const std::vector<InspectedFile>& files);
// A table with columns FILE, SUBJECT, SERIAL, NOT AFTER, PROBLEMS ("-" when compliant); an
// unreadable file is a row with "error: <reason>" in the PROBLEMS column.
std::string RenderTable(const std::vector<InspectedFile>& files);
// 2 when some file could not be read, else 1 when some certificate has problems, else 0.
int InspectExitCode(const std::vector<InspectedFile>& files);

// Runs the command: the report to `out`, a problem with the options (unreadable --ca-file) to
// `err`. Returns the process exit status (InspectExitCode, or 2 for bad options).
int RunInspect(const InspectOptions& options, std::ostream& out, std::ostream& err);

// The contents of a password file without one trailing newline ("\n" or "\r\n"). Errors name
// the path (never the contents): NotFound, PermissionDenied, ...
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

}  // namespace certfleet::ctl
