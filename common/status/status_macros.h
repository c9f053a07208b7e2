#pragma once

// Propagation helpers for absl::Status / absl::StatusOr, named as Abseil names them internally
// (Debian's Abseil ships none). Use them in every function that returns a Status:
//
//   CF_RETURN_IF_ERROR(store.Write(row));
//   CF_ASSIGN_OR_RETURN(auto cert, ParseCertificate(der));
//   CF_RETURN_IF_ERROR(Import(file), "importing ", path);   // adds context
//
// Context is prepended to the message ("importing a.pfx: <original>") and the code is kept,
// so an error crosses layers and the wire with its most specific code.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common {

// Returns `status` with `context` in front of its message; the code is unchanged.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok() || context.empty()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace certfleet::common

#define CF_STATUS_CONCAT_INNER_(a, b) a##b
#define CF_STATUS_CONCAT_(a, b) CF_STATUS_CONCAT_INNER_(a, b)

#define CF_RETURN_IF_ERROR(expr, ...)                                              \
  do {                                                                             \
    absl::Status cf_status_ = (expr);                                              \
    if (!cf_status_.ok()) {                                                        \
      return ::certfleet::common::Annotate(cf_status_, absl::StrCat(__VA_ARGS__)); \
    }                                                                              \
  } while (false)

#define CF_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr, ...)                            \
  auto statusor = (rexpr);                                                              \
  if (!statusor.ok()) {                                                                 \
    return ::certfleet::common::Annotate(statusor.status(), absl::StrCat(__VA_ARGS__)); \
  }                                                                                     \
  lhs = std::move(statusor).value()

#define CF_ASSIGN_OR_RETURN(lhs, rexpr, ...) \
  CF_ASSIGN_OR_RETURN_IMPL_(CF_STATUS_CONCAT_(cf_statusor_, __LINE__), lhs, rexpr, __VA_ARGS__)
