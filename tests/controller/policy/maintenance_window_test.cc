#include "controller/policy/maintenance_window.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace certfleet::controller::policy {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
}

MaintenanceWindow Parse(absl::string_view spec) {
  auto w = ParseMaintenanceWindow(spec);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *w : MaintenanceWindow{};
}

// The opening that starts at or after `from`, as [opens, closes).
struct Span {
  absl::Time opens;
  absl::Time closes;
};
Span OpeningFrom(const MaintenanceWindow& w, absl::Time from) {
  absl::Time opens = NextWindowOpening(w, from);
  return {opens, WindowClosesAt(w, opens)};
}

TEST(ParseMaintenanceWindow, ReadsDaysTimesAndZone) {
  MaintenanceWindow w = Parse("Sat,Sun 01:00-05:00 Europe/Berlin");
  EXPECT_EQ(w.spec, "Sat,Sun 01:00-05:00 Europe/Berlin");
  EXPECT_EQ(w.days, (std::set<absl::Weekday>{absl::Weekday::saturday, absl::Weekday::sunday}));
  EXPECT_EQ(w.start_minute, 60);
  EXPECT_EQ(w.end_minute, 300);
  EXPECT_EQ(w.zone_name, "Europe/Berlin");
  EXPECT_EQ(w.zone.name(), "Europe/Berlin");
  EXPECT_FALSE(w.always);
}

TEST(ParseMaintenanceWindow, DefaultsToUtc) {
  MaintenanceWindow w = Parse("Mon-Fri 22:00-06:00");
  EXPECT_EQ(w.zone_name, "UTC");
  EXPECT_EQ(w.days.size(), 5u);
  EXPECT_EQ(w.start_minute, 22 * 60);
  EXPECT_EQ(w.end_minute, 6 * 60);
}

TEST(ParseMaintenanceWindow, DayRangesMayWrapPastSunday) {
  EXPECT_EQ(Parse("Fri-Mon 00:00-01:00").days,
            (std::set<absl::Weekday>{absl::Weekday::friday, absl::Weekday::saturday,
                                     absl::Weekday::sunday, absl::Weekday::monday}));
}

TEST(ParseMaintenanceWindow, MixesDaysAndRangesInAnyCase) {
  EXPECT_EQ(Parse("mon,WED-fri 00:00-01:00").days,
            (std::set<absl::Weekday>{absl::Weekday::monday, absl::Weekday::wednesday,
                                     absl::Weekday::thursday, absl::Weekday::friday}));
  EXPECT_EQ(Parse("Sunday 00:00-01:00").days, std::set<absl::Weekday>{absl::Weekday::sunday});
}

TEST(ParseMaintenanceWindow, StarMeansEveryDay) {
  EXPECT_EQ(Parse("* 01:00-02:00").days.size(), 7u);
}

TEST(ParseMaintenanceWindow, AcceptsMidnightAsAnEnd) {
  EXPECT_EQ(Parse("Mon 22:00-24:00").end_minute, 1440);
  EXPECT_EQ(Parse("Mon 22:00-00:00").end_minute, 1440);
  EXPECT_EQ(Parse("Mon 00:00-00:00").end_minute, 1440);
}

TEST(ParseMaintenanceWindow, AcceptsAlways) {
  EXPECT_TRUE(Parse("always").always);
  EXPECT_TRUE(Parse(" ALWAYS ").always);
}

TEST(ParseMaintenanceWindow, RejectsBadSpecsNamingTheSpecAndTheBadPart) {
  struct Case {
    const char* spec;
    const char* mentions;
  };
  const Case cases[] = {
      {"Mon", "expected 'always' or 'DAYS HH:MM-HH:MM [ZONE]'"},
      {"Mon 01:00-02:00 UTC extra", "expected 'always'"},
      {"Mnday 01:00-02:00", "unknown day 'Mnday'"},
      {"Mon-Xyz 01:00-02:00", "unknown day 'Xyz'"},
      {"Mon,,Tue 01:00-02:00", "empty day in 'Mon,,Tue'"},
      {"Mon-Tue-Wed 01:00-02:00", "bad day range 'Mon-Tue-Wed'"},
      {"Mon 01:00", "bad time range '01:00'"},
      {"Mon 01:00-02:00-03:00", "bad time range"},
      {"Mon 25:00-02:00", "bad start time '25:00'"},
      {"Mon 24:00-02:00", "bad start time '24:00'"},
      {"Mon 1-2", "bad start time '1'"},
      {"Mon 01:5-02:00", "bad start time '01:5'"},
      {"Mon 01:00-02:60", "bad end time '02:60'"},
      {"Mon 01:00-24:01", "bad end time '24:01'"},
      {"Mon 01:00-+2:00", "bad end time '+2:00'"},
      {"Sat 01:00-05:00 Europe/Brlin",
       "unknown time zone 'Europe/Brlin' in window 'Sat 01:00-05:00 Europe/Brlin'"},
  };
  for (const Case& c : cases) {
    auto w = ParseMaintenanceWindow(c.spec);
    ASSERT_FALSE(w.ok()) << c.spec;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << c.spec;
    EXPECT_TRUE(absl::StrContains(w.status().message(), c.mentions)) << w.status();
    EXPECT_TRUE(absl::StrContains(w.status().message(), c.spec)) << w.status();
  }
}

TEST(ParseMaintenanceWindow, RejectsAnEmptySpec) {
  EXPECT_EQ(ParseMaintenanceWindow("  ").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WindowContains, IncludesTheStartAndExcludesTheEnd) {
  MaintenanceWindow w = Parse("Mon-Fri 09:00-17:00");  // 2026-03-02 is a Monday
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 2, 8, 59)));
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 2, 9)));
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 2, 16, 59)));
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 2, 17)));
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 7, 10)));  // Saturday
}

TEST(WindowContains, AnOpeningWrapsPastMidnightIntoTheNextDay) {
  MaintenanceWindow w = Parse("Fri 22:00-06:00");        // 2026-03-06 is a Friday
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 5, 23)));  // Thursday night
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 6, 5)));   // Friday morning
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 6, 22)));
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 7, 5, 59)));  // Saturday morning
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 7, 6)));
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 7, 23)));  // Saturday does not open
}

TEST(WindowContains, AWrappingDayRangeCoversTheWeekend) {
  MaintenanceWindow w = Parse("Fri-Mon 12:00-13:00");
  for (int day = 2; day <= 8; ++day) {  // Monday 2026-03-02 .. Sunday 2026-03-08
    bool opens = day == 2 || day >= 6;
    EXPECT_EQ(WindowContains(w, Utc(2026, 3, day, 12, 30)), opens) << "March " << day;
  }
}

TEST(WindowContains, AlwaysIsAlwaysOpen) {
  MaintenanceWindow w = Parse("always");
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 29, 2, 30)));
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 1, 1, 0)), Utc(2026, 1, 1, 0));
  EXPECT_EQ(WindowClosesAt(w, Utc(2026, 1, 1, 0)), absl::InfiniteFuture());
}

TEST(WindowContains, AWindowWithoutDaysNeverOpens) {
  MaintenanceWindow w;
  EXPECT_FALSE(WindowContains(w, Utc(2026, 1, 1, 0)));
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 1, 1, 0)), absl::InfiniteFuture());
}

TEST(WindowContains, ReadsTheWallClockOfTheWindowsZone) {
  MaintenanceWindow new_york = Parse("* 09:00-17:00 America/New_York");
  MaintenanceWindow tokyo = Parse("* 09:00-17:00 Asia/Tokyo");
  // 14:00Z is 10:00 in New York (EDT) and 23:00 in Tokyo.
  EXPECT_TRUE(WindowContains(new_york, Utc(2026, 6, 15, 14)));
  EXPECT_FALSE(WindowContains(tokyo, Utc(2026, 6, 15, 14)));
  // 01:00Z is 21:00 the day before in New York and 10:00 in Tokyo.
  EXPECT_FALSE(WindowContains(new_york, Utc(2026, 6, 15, 1)));
  EXPECT_TRUE(WindowContains(tokyo, Utc(2026, 6, 15, 1)));
  // In winter New York is an hour further from UTC: 13:30Z is 08:30 EST.
  EXPECT_FALSE(WindowContains(new_york, Utc(2026, 1, 15, 13, 30)));
  EXPECT_TRUE(WindowContains(new_york, Utc(2026, 1, 15, 14)));
}

TEST(WindowContains, TheDayIsTheLocalDayInTheZone) {
  // Monday 00:30 in Tokyo is still Sunday in UTC.
  MaintenanceWindow w = Parse("Mon 00:00-01:00 Asia/Tokyo");
  EXPECT_TRUE(WindowContains(w, Utc(2026, 6, 14, 15, 30)));
  EXPECT_FALSE(WindowContains(w, Utc(2026, 6, 15, 0, 30)));
}

TEST(DaylightSaving, BerlinSpringForwardNightLastsThreeHours) {
  MaintenanceWindow w = Parse("Sun 01:00-05:00 Europe/Berlin");
  Span s = OpeningFrom(w, Utc(2026, 3, 28, 12));
  EXPECT_EQ(s.opens, Utc(2026, 3, 29, 0));   // 01:00 CET
  EXPECT_EQ(s.closes, Utc(2026, 3, 29, 3));  // 05:00 CEST
  EXPECT_EQ(s.closes - s.opens, absl::Hours(3));
}

TEST(DaylightSaving, BerlinFallBackNightLastsFiveHours) {
  MaintenanceWindow w = Parse("Sun 01:00-05:00 Europe/Berlin");
  Span s = OpeningFrom(w, Utc(2026, 10, 24, 12));
  EXPECT_EQ(s.opens, Utc(2026, 10, 24, 23));  // 01:00 CEST
  EXPECT_EQ(s.closes, Utc(2026, 10, 25, 4));  // 05:00 CET
  EXPECT_EQ(s.closes - s.opens, absl::Hours(5));
  EXPECT_TRUE(WindowContains(w, Utc(2026, 10, 25, 1, 30)));  // the second 02:30
}

TEST(DaylightSaving, BerlinOrdinaryNightLastsFourHours) {
  MaintenanceWindow w = Parse("Sun 01:00-05:00 Europe/Berlin");
  Span s = OpeningFrom(w, Utc(2026, 4, 4, 12));
  EXPECT_EQ(s.closes - s.opens, absl::Hours(4));
}

TEST(DaylightSaving, AnOpeningInsideTheSkippedHourOpensAtTheTransition) {
  MaintenanceWindow w = Parse("Sun 02:30-04:00 Europe/Berlin");
  // 02:00 CET jumps to 03:00 CEST at 01:00Z; 02:30 never happens.
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 29, 0, 59)));
  EXPECT_TRUE(WindowContains(w, Utc(2026, 3, 29, 1)));
  Span s = OpeningFrom(w, Utc(2026, 3, 28, 12));
  EXPECT_EQ(s.opens, Utc(2026, 3, 29, 1));
  EXPECT_EQ(s.closes, Utc(2026, 3, 29, 2));  // 04:00 CEST
}

TEST(DaylightSaving, AnOpeningInsideTheRepeatedHourStartsAtItsFirstOccurrence) {
  MaintenanceWindow w = Parse("Sun 02:30-04:00 Europe/Berlin");
  Span s = OpeningFrom(w, Utc(2026, 10, 24, 12));
  EXPECT_EQ(s.opens, Utc(2026, 10, 25, 0, 30));  // 02:30 CEST
  EXPECT_EQ(s.closes, Utc(2026, 10, 25, 3));     // 04:00 CET
}

TEST(DaylightSaving, UsSpringForwardNightLastsThreeHours) {
  MaintenanceWindow w = Parse("Sun 01:00-05:00 America/New_York");
  Span s = OpeningFrom(w, Utc(2026, 3, 7, 12));
  EXPECT_EQ(s.opens, Utc(2026, 3, 8, 6));   // 01:00 EST
  EXPECT_EQ(s.closes, Utc(2026, 3, 8, 9));  // 05:00 EDT
  EXPECT_EQ(s.closes - s.opens, absl::Hours(3));
}

TEST(DaylightSaving, UsFallBackNightLastsFiveHours) {
  MaintenanceWindow w = Parse("Sun 01:00-05:00 America/New_York");
  Span s = OpeningFrom(w, Utc(2026, 10, 31, 12));
  EXPECT_EQ(s.opens, Utc(2026, 11, 1, 5));    // 01:00 EDT
  EXPECT_EQ(s.closes, Utc(2026, 11, 1, 10));  // 05:00 EST
  EXPECT_EQ(s.closes - s.opens, absl::Hours(5));
}

TEST(DaylightSaving, AnEndInsideTheRepeatedHourIsItsSecondOccurrence) {
  MaintenanceWindow w = Parse("Sun 00:00-01:30 America/New_York");
  Span s = OpeningFrom(w, Utc(2026, 10, 31, 12));
  EXPECT_EQ(s.opens, Utc(2026, 11, 1, 4));       // 00:00 EDT
  EXPECT_EQ(s.closes, Utc(2026, 11, 1, 6, 30));  // the second 01:30, EST
}

TEST(DaylightSaving, AnOpeningTheSkippedHourSwallowsIsPassedOver) {
  // 02:15-03:00 does not exist on 2026-03-08 in New York: the next opening is a week later.
  MaintenanceWindow w = Parse("Sun 02:15-03:00 America/New_York");
  EXPECT_FALSE(WindowContains(w, Utc(2026, 3, 8, 7)));
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 3, 7, 12)), Utc(2026, 3, 15, 6, 15));  // 02:15 EDT
}

TEST(NextWindowOpening, IsNowInsideAWindow) {
  MaintenanceWindow w = Parse("Wed 03:00-04:00");
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 6, 17, 3, 30)), Utc(2026, 6, 17, 3, 30));
}

TEST(NextWindowOpening, FindsTheSameDayLaterTheNextDayOrNextWeek) {
  MaintenanceWindow w = Parse("Wed 03:00-04:00");  // 2026-06-17 is a Wednesday
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 6, 17, 2)), Utc(2026, 6, 17, 3));
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 6, 16, 12)), Utc(2026, 6, 17, 3));
  EXPECT_EQ(NextWindowOpening(w, Utc(2026, 6, 17, 4)), Utc(2026, 6, 24, 3));
  MaintenanceWindow two = Parse("Mon,Thu 03:00-04:00");
  EXPECT_EQ(NextWindowOpening(two, Utc(2026, 6, 15, 5)), Utc(2026, 6, 18, 3));
  EXPECT_EQ(NextWindowOpening(two, Utc(2026, 6, 18, 5)), Utc(2026, 6, 22, 3));
}

TEST(WindowClosesAt, IsTheEndOfTheOpeningContainingTheTime) {
  MaintenanceWindow w = Parse("Fri 22:00-06:00 Europe/Berlin");  // 2026-06-19 is a Friday
  EXPECT_EQ(WindowClosesAt(w, Utc(2026, 6, 19, 21)), Utc(2026, 6, 20, 4));  // 06:00 CEST
}

TEST(WindowClosesAt, IsTheTimeItselfOutsideAWindow) {
  MaintenanceWindow w = Parse("Fri 22:00-06:00");
  EXPECT_EQ(WindowClosesAt(w, Utc(2026, 6, 17, 12)), Utc(2026, 6, 17, 12));
}

TEST(WindowClosesAt, CarriesOnThroughOpeningsThatJoinUp) {
  MaintenanceWindow weekend = Parse("Sat,Sun 00:00-24:00");  // 2026-06-20 is a Saturday
  EXPECT_EQ(WindowClosesAt(weekend, Utc(2026, 6, 20, 12)), Utc(2026, 6, 22, 0));
  MaintenanceWindow day_to_day = Parse("Sat-Sun 22:00-22:00");
  EXPECT_EQ(WindowClosesAt(day_to_day, Utc(2026, 6, 20, 23)), Utc(2026, 6, 22, 22));
  EXPECT_EQ(WindowClosesAt(Parse("* 00:00-24:00"), Utc(2026, 6, 20, 12)), absl::InfiniteFuture());
}

// Over two weeks that include a daylight-saving change, minute by minute, the three functions
// agree with each other.
TEST(MaintenanceWindow, TheFunctionsAgreeMinuteByMinuteAcrossAChangeOfClocks) {
  for (const char* spec : {"Sat,Sun 23:30-02:30 Europe/Berlin", "Sun 01:00-05:00 Europe/Berlin",
                           "Fri-Mon 02:15-02:45 Europe/Berlin"}) {
    MaintenanceWindow w = Parse(spec);
    for (int fall = 0; fall < 2; ++fall) {
      absl::Time from = fall ? Utc(2026, 10, 18, 0) : Utc(2026, 3, 22, 0);
      for (absl::Time t = from; t < from + absl::Hours(24 * 14); t += absl::Minutes(1)) {
        absl::Time next = NextWindowOpening(w, t);
        if (WindowContains(w, t)) {
          ASSERT_EQ(next, t) << spec << " at " << t;
          absl::Time closes = WindowClosesAt(w, t);
          ASSERT_GT(closes, t) << spec << " at " << t;
          ASSERT_FALSE(WindowContains(w, closes)) << spec << " at " << t;
          ASSERT_TRUE(WindowContains(w, closes - absl::Nanoseconds(1))) << spec << " at " << t;
        } else {
          ASSERT_GT(next, t) << spec << " at " << t;
          ASSERT_LT(next, t + absl::Hours(24 * 8)) << spec << " at " << t;
          ASSERT_TRUE(WindowContains(w, next)) << spec << " at " << t;
          ASSERT_FALSE(WindowContains(w, next - absl::Nanoseconds(1))) << spec << " at " << t;
          ASSERT_EQ(WindowClosesAt(w, t), t);
        }
      }
    }
  }
}

}  // namespace
}  // namespace certfleet::controller::policy
