#pragma once

// model::CertificateInfo <-> certfleet.v1.Certificate. The only place certificate fields cross
// between domain structs and the wire.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "certfleet/v1/types.pb.h"
#include "common/model/certificate.h"

namespace certfleet::common::rpc {

// Fills `out` from `info` and its SCOM problem names (model::ProblemName strings);
// `compliant` is true exactly when `problems` is empty. Key usage bits become their names
// (model::KeyUsageNames). Fields the wire does not carry (subject_cn, uris) are dropped.
void ToProto(const model::CertificateInfo& info, const std::vector<std::string>& problems,
             certfleet::v1::Certificate* out);

// The CertificateInfo a peer sent. InvalidArgument when the thumbprint is not 40 hex digits,
// sha256 is neither empty nor 64 hex digits, serial is not a non-empty even-length hex string,
// channel_serial is neither empty nor even-length hex, a timestamp is out of range,
// not_after is before not_before, or a key usage name is unknown. subject_cn is recovered from
// the subject's first CN; uris stay empty (not on the wire); problems are not part of the
// result (read them from the message).
absl::StatusOr<model::CertificateInfo> FromProto(const certfleet::v1::Certificate& proto);

}  // namespace certfleet::common::rpc
