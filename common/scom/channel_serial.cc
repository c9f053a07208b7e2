#include "common/scom/channel_serial.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common::scom {
namespace {

// The bytes of an even-length hex string, as two-character uppercase groups; nullopt when
// `hex` is not one.
std::optional<std::vector<std::string>> HexBytes(absl::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<std::string> bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (!absl::ascii_isxdigit(hex[i]) || !absl::ascii_isxdigit(hex[i + 1])) return std::nullopt;
    bytes.push_back(absl::AsciiStrToUpper(hex.substr(i, 2)));
  }
  return bytes;
}

}  // namespace

absl::StatusOr<std::string> ChannelSerialFromDisplay(absl::string_view display_serial) {
  auto bytes = HexBytes(display_serial);
  if (!bytes.has_value() || bytes->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("serial '", display_serial, "' is not an even-length hex string"));
  }
  std::string out;
  out.reserve(display_serial.size());
  for (auto it = bytes->rbegin(); it != bytes->rend(); ++it) out += *it;
  return out;
}

bool ChannelSerialMatches(absl::string_view channel_serial, absl::string_view display_serial) {
  auto stored = HexBytes(channel_serial);
  auto serial = HexBytes(display_serial);
  if (!stored.has_value() || !serial.has_value()) return false;
  // Compare in display order (most significant byte first), without leading zero bytes.
  std::reverse(stored->begin(), stored->end());
  auto strip = [](std::vector<std::string>& v) {
    auto first = std::find_if(v.begin(), v.end(), [](const std::string& b) { return b != "00"; });
    v.erase(v.begin(), first);
  };
  strip(*stored);
  strip(*serial);
  if (stored->empty() && serial->empty()) {
    // Both all zeros: the same serial only when both had bytes at all.
    return !channel_serial.empty() && !display_serial.empty();
  }
  return *stored == *serial;
}

}  // namespace certfleet::common::scom
