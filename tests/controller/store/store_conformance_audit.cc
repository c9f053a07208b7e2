// The Store conformance suite, audit log part: AppendAudit and ListAudit (store.h).

#include <atomic>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/store/store_conformance.h"

namespace certfleet::controller::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21

AuditRecord Entry(const std::string& action, absl::Time at = kT0) {
  AuditRecord entry;
  entry.at = at;
  entry.actor = "operator/admin/alice";
  entry.action = action;
  entry.target = "web1.example.com";
  entry.details = R"({"fqdn":"web1.example.com"})";
  return entry;
}

// A sealer that depends on every field it is shown, so a test sees what the store passed.
std::string Seal(const AuditRecord& e) {
  return absl::StrCat("sealed|", e.seq, "|", absl::ToUnixMicros(e.at), "|", e.actor, "|", e.action,
                      "|", e.target, "|", e.details, "|", e.prev_hash);
}

std::vector<uint64_t> Seqs(const std::vector<AuditRecord>& entries) {
  std::vector<uint64_t> seqs;
  for (const AuditRecord& e : entries) seqs.push_back(e.seq);
  return seqs;
}

void ExpectSameEntry(const AuditRecord& actual, const AuditRecord& expected) {
  EXPECT_EQ(actual.seq, expected.seq);
  EXPECT_EQ(actual.at, expected.at);
  EXPECT_EQ(actual.actor, expected.actor);
  EXPECT_EQ(actual.action, expected.action);
  EXPECT_EQ(actual.target, expected.target);
  EXPECT_EQ(actual.details, expected.details);
  EXPECT_EQ(actual.prev_hash, expected.prev_hash);
  EXPECT_EQ(actual.hash, expected.hash);
}

std::vector<AuditRecord> ListAll(Store& store) {
  absl::StatusOr<std::vector<AuditRecord>> all = store.ListAudit({});
  EXPECT_TRUE(all.ok()) << all.status();
  return all.ok() ? *all : std::vector<AuditRecord>{};
}

TEST_P(StoreConformanceTest, AppendedAuditEntriesAreNumberedFromOneAndChainedToTheirPredecessor) {
  std::vector<AuditRecord> appended;
  for (const char* action : {"token.create", "command.create", "command.cancel"}) {
    absl::StatusOr<AuditRecord> stored = store().AppendAudit(Entry(action), Seal);
    ASSERT_TRUE(stored.ok()) << stored.status();
    appended.push_back(*stored);
  }
  EXPECT_THAT(Seqs(appended), ElementsAre(1, 2, 3));
  EXPECT_EQ(appended[0].prev_hash, "");
  EXPECT_EQ(appended[1].prev_hash, appended[0].hash);
  EXPECT_EQ(appended[2].prev_hash, appended[1].hash);
  for (const AuditRecord& e : appended) EXPECT_EQ(e.hash, Seal(e));
}

TEST_P(StoreConformanceTest, TheSealerSeesTheEntryWithItsSeqPrevHashAndEveryField) {
  ASSERT_TRUE(store().AppendAudit(Entry("first"), Seal).ok());
  AuditRecord seen;
  absl::StatusOr<AuditRecord> stored = store().AppendAudit(Entry("second"), [&](const auto& e) {
    seen = e;
    return std::string("h2");
  });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(seen.seq, 2u);
  EXPECT_EQ(seen.prev_hash, ListAll(store())[0].hash);
  EXPECT_EQ(seen.action, "second");
  EXPECT_EQ(seen.actor, "operator/admin/alice");
  EXPECT_EQ(stored->hash, "h2");
}

TEST_P(StoreConformanceTest, AppendAuditIgnoresTheSeqAndHashesItIsGiven) {
  AuditRecord entry = Entry("token.create");
  entry.seq = 42;
  entry.prev_hash = "forged";
  entry.hash = "forged";
  absl::StatusOr<AuditRecord> stored = store().AppendAudit(entry, Seal);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->seq, 1u);
  EXPECT_EQ(stored->prev_hash, "");
  EXPECT_EQ(stored->hash, Seal(*stored));
}

TEST_P(StoreConformanceTest, AnAuditEntryComesBackExactlyAsAppendedWithEveryField) {
  AuditRecord entry = Entry("approval.fulfill", kT0 + absl::Microseconds(123'456));
  entry.target = "tab\there \"quoted\" \xc3\xa9t\xc3\xa9";
  entry.details = "{\"reason\":\"line1\\nline2\",\"emoji\":\"\xf0\x9f\x94\x91\"}";
  absl::StatusOr<AuditRecord> stored = store().AppendAudit(entry, Seal);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->at, entry.at);
  EXPECT_EQ(stored->target, entry.target);
  EXPECT_EQ(stored->details, entry.details);
  std::vector<AuditRecord> all = ListAll(store());
  ASSERT_EQ(all.size(), 1u);
  ExpectSameEntry(all[0], *stored);
}

TEST_P(StoreConformanceTest, AnAuditEntryMayHaveAnEmptyTargetAndDetails) {
  AuditRecord entry = Entry("scheduler.tick");
  entry.target.clear();
  entry.details.clear();
  absl::StatusOr<AuditRecord> stored = store().AppendAudit(entry, Seal);
  ASSERT_TRUE(stored.ok()) << stored.status();
  std::vector<AuditRecord> all = ListAll(store());
  ASSERT_EQ(all.size(), 1u);
  ExpectSameEntry(all[0], *stored);
}

TEST_P(StoreConformanceTest, AnAuditEntryWithoutActorOrActionIsInvalidArgumentAndNotAppended) {
  AuditRecord no_actor = Entry("token.create");
  no_actor.actor.clear();
  EXPECT_EQ(store().AppendAudit(no_actor, Seal).status().code(),
            absl::StatusCode::kInvalidArgument);
  AuditRecord no_action = Entry("");
  EXPECT_EQ(store().AppendAudit(no_action, Seal).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ListAll(store()), IsEmpty());
  // The next entry is still the first.
  absl::StatusOr<AuditRecord> first = store().AppendAudit(Entry("token.create"), Seal);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->seq, 1u);
}

TEST_P(StoreConformanceTest, AnEmptyAuditLogListsEmpty) {
  EXPECT_THAT(ListAll(store()), IsEmpty());
}

TEST_P(StoreConformanceTest, ListAuditFiltersByTimeAtOrAfterSince) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(
        store().AppendAudit(Entry(absl::StrCat("a", i), kT0 + i * absl::Hours(1)), Seal).ok());
  }
  AuditFilter filter;
  filter.since = kT0 + absl::Hours(2);
  absl::StatusOr<std::vector<AuditRecord>> since = store().ListAudit(filter);
  ASSERT_TRUE(since.ok()) << since.status();
  EXPECT_THAT(Seqs(*since), ElementsAre(3, 4));
  filter.since = kT0 + absl::Hours(2) + absl::Microseconds(1);
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(4));
  filter.since = kT0 + absl::Hours(5);
  EXPECT_THAT(*store().ListAudit(filter), IsEmpty());
}

TEST_P(StoreConformanceTest, ListAuditPagesWithAfterSeqAndReturnsTheOldestLimitEntries) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store().AppendAudit(Entry("a"), Seal).ok());
  AuditFilter filter;
  filter.limit = 2;
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(1, 2));
  filter.after_seq = 2;
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(3, 4));
  filter.after_seq = 4;
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(5));
  filter.after_seq = 5;
  EXPECT_THAT(*store().ListAudit(filter), IsEmpty());
  filter.after_seq = 0;
  filter.limit = std::numeric_limits<size_t>::max();
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(1, 2, 3, 4, 5));
}

TEST_P(StoreConformanceTest, ListAuditFiltersCombine) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store().AppendAudit(Entry("a", kT0 + i * absl::Minutes(1)), Seal).ok());
  }
  AuditFilter filter;
  filter.since = kT0 + absl::Minutes(1);
  filter.after_seq = 3;
  filter.limit = 2;
  EXPECT_THAT(Seqs(*store().ListAudit(filter)), ElementsAre(4, 5));
}

TEST_P(StoreConformanceTest, ListingTheAuditLogWithLimitZeroIsInvalidArgument) {
  AuditFilter filter;
  filter.limit = 0;
  EXPECT_EQ(store().ListAudit(filter).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ConcurrentAuditAppendsFormOneContiguousChain) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!store().AppendAudit(Entry(absl::StrCat("t", t, ".", i)), Seal).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::vector<AuditRecord> all = ListAll(store());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<std::string> actions;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq, i + 1);
    EXPECT_EQ(all[i].prev_hash, i == 0 ? "" : all[i - 1].hash);
    EXPECT_EQ(all[i].hash, Seal(all[i]));
    actions.insert(all[i].action);
  }
  EXPECT_EQ(actions.size(), all.size());
}

}  // namespace
}  // namespace certfleet::controller::store
