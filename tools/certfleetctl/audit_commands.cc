#include "tools/certfleetctl/audit_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/rpc/json.h"
#include "common/time/format.h"
#include "google/protobuf/util/time_util.h"
#include "tools/certfleetctl/connection.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

using google::protobuf::util::TimeUtil;

// Entries asked for per call; the controller returns at most 10000.
constexpr int64_t kPage = 1000;

// An RFC 3339 time, or a duration meaning that long ago ("24h", "7d").
absl::StatusOr<absl::Time> ParseSince(const std::string& text, absl::Time now) {
  absl::StatusOr<absl::Time> at = common::ParseRfc3339(text);
  if (at.ok()) return *at;
  absl::StatusOr<absl::Duration> ago = common::ParseHumanDuration(text);
  if (ago.ok()) return now - *ago;
  return absl::InvalidArgumentError(absl::StrCat(
      "--since: '", text,
      "' is neither an RFC 3339 time (2026-11-22T02:21:11Z) nor a duration (24h, 7d)"));
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  return common::FormatRfc3339(absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t)));
}

int List(const Connection& c, const std::string& since, int64_t limit) {
  certfleet::v1::ListAuditRequest req;
  if (!since.empty()) {
    absl::StatusOr<absl::Time> at = ParseSince(since, absl::Now());
    if (!at.ok()) return ReportError(at.status());
    *req.mutable_since() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(*at));
  }
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  std::vector<certfleet::v1::AuditEntry> entries;
  while (static_cast<int64_t>(entries.size()) < limit) {
    const int64_t want = std::min(kPage, limit - static_cast<int64_t>(entries.size()));
    req.set_limit(static_cast<int32_t>(want));
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    certfleet::v1::ListAuditResponse resp;
    grpc::Status s = (*stub)->ListAudit(&ctx, req, &resp);
    if (!s.ok()) return ReportRpcError(c, s);
    for (const auto& e : resp.entries()) entries.push_back(e);
    if (resp.entries_size() < want) break;
    req.set_after_seq(resp.entries(resp.entries_size() - 1).seq());
  }
  if (c.output == "json") {
    std::vector<std::string> items;
    for (const auto& e : entries) items.push_back(common::rpc::MessageToJson(e));
    std::cout << "[" << absl::StrJoin(items, ",") << "]\n";
    return 0;
  }
  Table t({"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS"});
  for (const auto& e : entries) {
    t.AddRow(
        {absl::StrCat(e.seq()), TimeText(e.at()), e.actor(), e.action(), e.target(), e.details()});
  }
  t.Print(std::cout);
  return 0;
}

int Verify(const Connection& c) {
  auto stub = Dial(c);
  if (!stub.ok()) return ReportError(stub.status());
  grpc::ClientContext ctx;
  // The controller walks the whole log: give it longer than the usual deadline.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  certfleet::v1::VerifyAuditResponse resp;
  grpc::Status s = (*stub)->VerifyAudit(&ctx, certfleet::v1::VerifyAuditRequest(), &resp);
  if (!s.ok()) return ReportRpcError(c, s);
  if (c.output == "json") {
    std::cout << common::rpc::MessageToJson(resp) << "\n";
  } else if (resp.ok()) {
    std::cout << "audit log intact: " << resp.entries() << " entries\n";
  } else {
    std::cout << "audit log NOT intact (" << resp.entries() << " entries): " << resp.problem()
              << "\n";
  }
  return resp.ok() ? 0 : 1;
}

}  // namespace

void RegisterAuditCommands(CLI::App& app, int* exit_code) {
  auto conn = std::make_shared<Connection>();
  auto* audit = app.add_subcommand(
      "audit",
      "The audit log: every admin change and automatic decision, hash-chained so that tampering "
      "is detectable");
  audit->require_subcommand(1);

  auto since = std::make_shared<std::string>();
  auto limit = std::make_shared<int64_t>(1000);
  auto* list = audit->add_subcommand("list", "List audit entries, oldest first (role: viewer)");
  list->add_option("--since", *since,
                   "Only entries at or after this time: RFC 3339 (2026-11-22T02:21:11Z) or a "
                   "duration ago (24h, 7d)");
  list->add_option("--limit", *limit, "At most this many entries (the oldest matching)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  AddConnectionOptions(list, conn.get(), true);
  list->callback([=] { *exit_code = List(*conn, *since, *limit); });

  auto* verify = audit->add_subcommand(
      "verify",
      "Check the whole chain on the controller (role: admin); exit 0 and 'audit log intact: N "
      "entries', or exit 1 and the first problem, naming the entry");
  AddConnectionOptions(verify, conn.get(), true);
  verify->callback([=] { *exit_code = Verify(*conn); });
}

}  // namespace certfleet::ctl
