#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::common {

// Reads the whole file. NotFound when absent, PermissionDenied when unreadable, Unavailable
// for other I/O errors; messages name the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `data` to `path` atomically (temp file in the same directory, fsync, rename) with
// permission bits `mode`. The directory must exist. Unavailable / PermissionDenied on failure.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, int mode);

// Creates `path` and its parents with `mode` for new directories. OK when it already exists.
absl::Status MakeDirectories(const std::string& path, int mode);

bool FileExists(const std::string& path);

}  // namespace certfleet::common
