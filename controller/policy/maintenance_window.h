#pragma once

// Maintenance windows: the weekly times at which the controller may (hard window) or prefers to
// (soft window) renew a host's certificate, in the local wall-clock time of a named zone.
//
//   CF_ASSIGN_OR_RETURN(MaintenanceWindow w,
//                       ParseMaintenanceWindow("Sat,Sun 01:00-05:00 Europe/Berlin"));
//   if (!WindowContains(w, now)) next_try = NextWindowOpening(w, now);
//
// A window is a set of openings. An opening starts on each listed day D at the local time
// `start_minute` and closes at `end_minute` on the same day, or on the next day when the end is
// not after the start ("Fri 22:00-06:00" opens Friday night and closes Saturday morning). Times
// are local wall-clock times resolved through absl::TimeZone on the very day, so around
// daylight-saving changes an opening lasts as long as the wall clock says:
//   - a start or end inside a skipped hour (spring forward) falls on the transition, so
//     "Sun 02:30-05:00" opens at the moment the clock jumps from 02:00 to 03:00;
//   - a start inside a repeated hour (fall back) is its first occurrence and an end inside one
//     is its second, so an opening always includes the whole repeated hour it touches.
// "Sun 01:00-05:00 Europe/Berlin" therefore lasts 5 real hours on the night clocks go back and 3
// on the night they go forward.
//
// Thread-safety: a MaintenanceWindow is a value; the functions are pure and may be called from
// any thread.

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace certfleet::controller::policy {

struct MaintenanceWindow {
  std::string spec;              // as parsed, for display
  std::set<absl::Weekday> days;  // days on which a window OPENS
  int start_minute = 0;          // minutes after local midnight, [0, 1440)
  // (0, 1440]; end <= start means it wraps past midnight into the next day.
  int end_minute = 0;
  std::string zone_name;  // "UTC", "Europe/Berlin"
  absl::TimeZone zone;
  bool always = false;  // spec "always"
};

// Parses a window spec:
//
//   "always" | DAYS " " HH:MM "-" HH:MM [" " ZONE]
//   DAYS: "*" | a comma list of day names or ranges: "Mon-Fri", "Sat,Sun", "Mon,Wed-Fri".
//         Names are Mon..Sun or Monday..Sunday, case-insensitive; a range may wrap ("Fri-Mon"
//         is Fri, Sat, Sun, Mon).
//   HH:MM: 00:00..23:59; "24:00" only as an end. An end of "00:00" means midnight at the end
//         of the day (stored as 1440), so "22:00-00:00" is two hours and "00:00-00:00" a
//         whole day.
//   ZONE: an IANA time zone name read from the system's tz database; UTC when omitted.
//
// Words may be separated by any run of spaces or tabs. InvalidArgument naming the spec and the
// bad part, e.g. "unknown time zone 'Europe/Brlin' in window 'Sat 01:00-05:00 Europe/Brlin'".
absl::StatusOr<MaintenanceWindow> ParseMaintenanceWindow(absl::string_view spec);

// True when `t` is inside an opening of `w` (openings include their start and exclude their
// end). Always true for an "always" window; never for a window without days.
bool WindowContains(const MaintenanceWindow& w, absl::Time t);

// `t` when `w` contains it; otherwise the next instant an opening starts (an opening that a
// daylight-saving change makes empty is skipped); absl::InfiniteFuture() if `w` never opens (no
// days).
absl::Time NextWindowOpening(const MaintenanceWindow& w, absl::Time t);

// When `w` next closes after `t`, for a `t` that `w` contains: the end of the opening
// containing `t`, carried on through any opening that starts before or when that one closes
// ("Sat,Sun 00:00-24:00" closes on Monday at 00:00, not on Sunday). absl::InfiniteFuture() for
// an "always" window and for openings that join up all week ("* 00:00-24:00"). When `t` is not
// inside, returns `t` (the window is already closed).
absl::Time WindowClosesAt(const MaintenanceWindow& w, absl::Time t);

}  // namespace certfleet::controller::policy
