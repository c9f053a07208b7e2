#pragma once

// The logging facade: every component logs through these functions, never through spdlog
// directly, so the backend can change without touching call sites. Logs go to stderr.
//
// Never pass a secret (private key, PFX password, join token) to a log call.

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace certfleet::common {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Configures the process-wide sink once, from main(). `component` names the process
// ("controller", "agent") in every line. Thread-safe after the call.
void InitLogging(absl::string_view component, LogLevel level);

// Parses "debug", "info", "warning" or "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);

void Log(LogLevel level, absl::string_view message);

template <typename... Args>
void LogDebug(const Args&... args) {
  Log(LogLevel::kDebug, absl::StrCat(args...));
}
template <typename... Args>
void LogInfo(const Args&... args) {
  Log(LogLevel::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  Log(LogLevel::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  Log(LogLevel::kError, absl::StrCat(args...));
}

}  // namespace certfleet::common
