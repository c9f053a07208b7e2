#include "controller/policy/maintenance_window.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace certfleet::controller::policy {
namespace {

constexpr int kMinutesPerDay = 24 * 60;

// How far back from the local day of an instant an opening containing it may have started: an
// opening lasts at most a day and a bit (wrapping past midnight, plus a repeated hour), so two
// days are enough; three leave room for zones that move their clocks across midnight.
constexpr int kDaysBack = 3;
// How far ahead to look for the next opening: a week covers every day, a second week the case
// where a daylight-saving change empties this week's opening.
constexpr int kDaysAhead = 15;

absl::Status Bad(absl::string_view spec, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " in window '", spec, "'"));
}

std::optional<absl::Weekday> ParseDay(absl::string_view text) {
  static constexpr std::pair<absl::string_view, absl::Weekday> kDays[] = {
      {"mon", absl::Weekday::monday},    {"tue", absl::Weekday::tuesday},
      {"wed", absl::Weekday::wednesday}, {"thu", absl::Weekday::thursday},
      {"fri", absl::Weekday::friday},    {"sat", absl::Weekday::saturday},
      {"sun", absl::Weekday::sunday},
  };
  static constexpr absl::string_view kFullNames[] = {
      "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
  };
  std::string lower = absl::AsciiStrToLower(text);
  for (int i = 0; i < 7; ++i) {
    if (lower == kDays[i].first || lower == kFullNames[i]) return kDays[i].second;
  }
  return std::nullopt;
}

absl::Weekday NextDay(absl::Weekday d) {
  return static_cast<absl::Weekday>((static_cast<int>(d) + 1) % 7);
}

absl::StatusOr<std::set<absl::Weekday>> ParseDays(absl::string_view text, absl::string_view spec) {
  std::set<absl::Weekday> days;
  if (text == "*") {
    for (int i = 0; i < 7; ++i) days.insert(static_cast<absl::Weekday>(i));
    return days;
  }
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (item.empty()) return Bad(spec, absl::StrCat("empty day in '", text, "'"));
    std::vector<absl::string_view> ends = absl::StrSplit(item, '-');
    if (ends.size() > 2) return Bad(spec, absl::StrCat("bad day range '", item, "'"));
    std::optional<absl::Weekday> first = ParseDay(ends[0]);
    if (!first) return Bad(spec, absl::StrCat("unknown day '", ends[0], "'"));
    std::optional<absl::Weekday> last = first;
    if (ends.size() == 2) {
      last = ParseDay(ends[1]);
      if (!last) return Bad(spec, absl::StrCat("unknown day '", ends[1], "'"));
    }
    for (absl::Weekday d = *first;; d = NextDay(d)) {
      days.insert(d);
      if (d == *last) break;
    }
  }
  return days;
}

// "H:MM" or "HH:MM" as minutes after midnight; "24:00" only when `allow_24` is set.
std::optional<int> ParseClock(absl::string_view text, bool allow_24) {
  size_t colon = text.find(':');
  if (colon == absl::string_view::npos || colon < 1 || colon > 2 || text.size() != colon + 3) {
    return std::nullopt;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (i != colon && !absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      return std::nullopt;
    }
  }
  int hours = 0;
  for (size_t i = 0; i < colon; ++i) hours = hours * 10 + (text[i] - '0');
  int minutes = (text[colon + 1] - '0') * 10 + (text[colon + 2] - '0');
  if (minutes > 59) return std::nullopt;
  if (hours == 24 && minutes == 0 && allow_24) return kMinutesPerDay;
  if (hours > 23) return std::nullopt;
  return hours * 60 + minutes;
}

// One opening: [start, end).
struct Opening {
  absl::Time start;
  absl::Time end;
};

// A start inside a skipped hour falls on the transition; inside a repeated hour, on its first
// occurrence.
absl::Time ResolveStart(const absl::TimeZone& zone, absl::CivilSecond cs) {
  absl::TimeZone::TimeInfo info = zone.At(cs);
  switch (info.kind) {
    case absl::TimeZone::TimeInfo::SKIPPED:
      return info.trans;
    case absl::TimeZone::TimeInfo::UNIQUE:
    case absl::TimeZone::TimeInfo::REPEATED:
      break;
  }
  return info.pre;
}

// An end inside a skipped hour falls on the transition; inside a repeated hour, on its second
// occurrence.
absl::Time ResolveEnd(const absl::TimeZone& zone, absl::CivilSecond cs) {
  absl::TimeZone::TimeInfo info = zone.At(cs);
  switch (info.kind) {
    case absl::TimeZone::TimeInfo::SKIPPED:
      return info.trans;
    case absl::TimeZone::TimeInfo::REPEATED:
      return info.post;
    case absl::TimeZone::TimeInfo::UNIQUE:
      break;
  }
  return info.pre;
}

// The opening that starts on local day `day`, if `w` opens that day and the opening is not
// empty (both ends inside the same skipped hour).
std::optional<Opening> OpeningOn(const MaintenanceWindow& w, absl::CivilDay day) {
  if (!w.days.count(absl::GetWeekday(day))) return std::nullopt;
  absl::CivilDay end_day = w.end_minute <= w.start_minute ? day + 1 : day;
  Opening o{ResolveStart(w.zone, absl::CivilSecond(day) + int64_t{w.start_minute} * 60),
            ResolveEnd(w.zone, absl::CivilSecond(end_day) + int64_t{w.end_minute} * 60)};
  if (o.start >= o.end) return std::nullopt;
  return o;
}

bool IsInfinite(absl::Time t) { return t == absl::InfiniteFuture() || t == absl::InfinitePast(); }

}  // namespace

absl::StatusOr<MaintenanceWindow> ParseMaintenanceWindow(absl::string_view spec) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(spec);
  MaintenanceWindow w;
  w.spec = std::string(trimmed);
  w.zone_name = "UTC";
  w.zone = absl::UTCTimeZone();
  if (trimmed.empty()) return absl::InvalidArgumentError("empty maintenance window spec");
  if (absl::AsciiStrToLower(trimmed) == "always") {
    w.always = true;
    for (int i = 0; i < 7; ++i) w.days.insert(static_cast<absl::Weekday>(i));
    w.end_minute = kMinutesPerDay;
    return w;
  }
  std::vector<absl::string_view> words =
      absl::StrSplit(trimmed, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.size() < 2 || words.size() > 3) {
    return Bad(trimmed, "expected 'always' or 'DAYS HH:MM-HH:MM [ZONE]'");
  }
  auto days = ParseDays(words[0], trimmed);
  if (!days.ok()) return days.status();
  w.days = *std::move(days);

  std::vector<absl::string_view> times = absl::StrSplit(words[1], '-');
  if (times.size() != 2) {
    return Bad(trimmed, absl::StrCat("bad time range '", words[1], "' (expected HH:MM-HH:MM)"));
  }
  std::optional<int> start = ParseClock(times[0], /*allow_24=*/false);
  if (!start) return Bad(trimmed, absl::StrCat("bad start time '", times[0], "'"));
  std::optional<int> end = ParseClock(times[1], /*allow_24=*/true);
  if (!end) return Bad(trimmed, absl::StrCat("bad end time '", times[1], "'"));
  w.start_minute = *start;
  w.end_minute = *end == 0 ? kMinutesPerDay : *end;

  if (words.size() == 3) {
    w.zone_name = std::string(words[2]);
    if (!absl::LoadTimeZone(w.zone_name, &w.zone)) {
      return Bad(trimmed, absl::StrCat("unknown time zone '", words[2], "'"));
    }
  }
  return w;
}

bool WindowContains(const MaintenanceWindow& w, absl::Time t) {
  if (w.always) return true;
  if (w.days.empty() || IsInfinite(t)) return false;
  absl::CivilDay today = absl::ToCivilDay(t, w.zone);
  for (absl::CivilDay d = today - kDaysBack; d <= today; ++d) {
    std::optional<Opening> o = OpeningOn(w, d);
    if (o && o->start <= t && t < o->end) return true;
  }
  return false;
}

absl::Time NextWindowOpening(const MaintenanceWindow& w, absl::Time t) {
  if (WindowContains(w, t)) return t;
  if (w.days.empty() || t == absl::InfiniteFuture()) return absl::InfiniteFuture();
  if (t == absl::InfinitePast()) return t;
  absl::CivilDay today = absl::ToCivilDay(t, w.zone);
  for (absl::CivilDay d = today - kDaysBack; d <= today + kDaysAhead; ++d) {
    std::optional<Opening> o = OpeningOn(w, d);
    if (o && o->start > t) return o->start;
  }
  return absl::InfiniteFuture();
}

absl::Time WindowClosesAt(const MaintenanceWindow& w, absl::Time t) {
  if (w.always) return absl::InfiniteFuture();
  if (!WindowContains(w, t)) return t;
  // Openings start in day order, so `close` grows until an opening starts after it.
  absl::Time close = t;
  absl::CivilDay today = absl::ToCivilDay(t, w.zone);
  for (absl::CivilDay d = today - kDaysBack; d <= today + 8; ++d) {
    std::optional<Opening> o = OpeningOn(w, d);
    if (!o) continue;
    if (o->start > close) return close;
    if (o->end > close) close = o->end;
  }
  // Every opening for more than a week joined the next: the window never closes.
  return absl::InfiniteFuture();
}

}  // namespace certfleet::controller::policy
