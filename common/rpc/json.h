#pragma once

// JSON output for certfleetctl and reports, through protobuf's JSON printer (STYLE.md rule 17).
// Field names are the proto field names (snake_case); primitive fields are always printed, even
// when they hold their default value, so scripts can rely on every key being present.

#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace certfleet::common::rpc {

// One compact JSON object for `message`. Timestamps print as RFC 3339 strings, int64 as strings
// (proto3 JSON mapping). Printing a certfleet message cannot fail (it holds no Any); should the
// printer fail anyway, the result is {"error": "<printer's message>"} rather than a crash.
std::string MessageToJson(const google::protobuf::Message& message);

// One compact JSON object holding `extra`'s fields first (in the given order), then `base`'s
// fields (in declaration order), all at the top level. An `extra` key equal to a field of `base`
// replaces that field. Built through google::protobuf::Struct, e.g.
//   JsonObjectWithFields(certificate, {{"file", file_value}})
//   -> {"file":"a.pfx","subject":"CN=...",...}
std::string JsonObjectWithFields(
    const google::protobuf::Message& base,
    const std::vector<std::pair<std::string, google::protobuf::Value>>& extra);

// A google::protobuf::Value holding a string, a bool, or a list of strings.
google::protobuf::Value StringValue(std::string s);
google::protobuf::Value BoolValue(bool b);
google::protobuf::Value StringListValue(const std::vector<std::string>& items);

}  // namespace certfleet::common::rpc
