#pragma once

// How SqliteStore turns record fields that SQLite has no type for into column values. Kept
// apart from the store so the encodings are tested on their own and documented in one place.
//
// Times are INTEGER columns holding microseconds since the Unix epoch (UTC); sub-microsecond
// precision is dropped. absl::InfiniteFuture() and absl::InfinitePast() are stored as the
// largest and smallest int64 and come back as themselves.
//
// Lists of strings (DNS names, URIs, EKU OIDs, problem and drift codes) and string maps
// (labels) are BLOB columns holding netstrings (https://cr.yp.to/proto/netstrings.txt):
// each string is written as "<decimal byte length>:<bytes>,". A list is its elements in
// order; a map is key, value, key, value, ... in key order. The empty list or map is the empty
// blob. Netstrings carry any bytes (commas, newlines, '=', NUL, invalid UTF-8) unchanged, so
// every value round-trips, and they stay readable in the sqlite3 shell:
//   labels = "4:site,5:paris,4:tier,3:web,"   for {site: paris, tier: web}

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::controller::store {

int64_t TimeToMicros(absl::Time t);
absl::Time MicrosToTime(int64_t micros);

std::string EncodeStringList(const std::vector<std::string>& list);
// DataLoss when `encoded` is not a sequence of netstrings.
absl::StatusOr<std::vector<std::string>> DecodeStringList(absl::string_view encoded);

std::string EncodeStringMap(const std::map<std::string, std::string>& map);
// DataLoss when `encoded` is not an even sequence of netstrings with distinct keys.
absl::StatusOr<std::map<std::string, std::string>> DecodeStringMap(absl::string_view encoded);

}  // namespace certfleet::controller::store
