// certfleet-sim against a real controller on loopback: fifty simulated agents enroll and
// connect, then carry out commands an operator sends (scans, a full renewal with its verified
// rebind); a second run connects with the identities the first one cached.

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"
#include "tests/integration/process.h"

namespace certfleet::testing {
namespace {

using google::protobuf::Struct;

Struct JsonObject(const std::string& json) {
  Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

double Number(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

const Struct& Child(const Struct& s, const std::string& key) {
  static const Struct* const kEmpty = new Struct();
  auto it = s.fields().find(key);
  return it == s.fields().end() ? *kEmpty : it->second.struct_value();
}

class SimTest : public FleetTest {
 protected:
  std::vector<std::string> SimArgs(int agents, const std::string& scenario,
                                   const std::string& report) {
    return {CERTFLEET_SIM_BIN,
            "--controller",
            address_,
            "--admin-dir",
            admin_dir(),
            "--agents",
            std::to_string(agents),
            "--state-dir",
            dir_ + "/sim",
            "--scenario",
            scenario,
            "--report",
            report,
            "--log-level",
            "info"};
  }

  // Runs the sim to its end and returns its report.
  Struct RunSim(int agents, const std::string& scenario, const std::string& name) {
    const std::string report = dir_ + "/" + name + ".json";
    std::vector<std::string> args = SimArgs(agents, scenario, report);
    args.insert(args.end(), {"--duration", "20s"});
    RunResult r = RunCommand(args, absl::Seconds(90));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.out, "certfleet-sim: scenario=" + scenario)) << r.out;
    return JsonObject(ReadText(report));
  }
};

TEST_F(SimTest, FiftySimulatedAgentsConnectAndCarryOutAScanAndARenewal) {
  Struct connect = RunSim(50, "connect", "connect");
  EXPECT_EQ(Str(connect, "end_reason"), "all connected");
  EXPECT_EQ(Number(connect, "connected"), 50);
  EXPECT_EQ(Number(Child(connect, "enrolled"), "new"), 50);
  EXPECT_EQ(Number(Child(connect, "enrolled"), "cached"), 0);
  EXPECT_GE(Number(connect, "time_to_all_connected_s"), 0);
  EXPECT_GT(Number(connect, "rss_peak_kb"), 0);
  EXPECT_FALSE(connect.fields().at("key_pool").bool_value());

  // The controller knows them by their FQDNs, labelled sim=true.
  ListValue agents = Agents();
  ASSERT_EQ(agents.values_size(), 50);
  for (const auto& v : agents.values()) {
    const Struct& a = v.struct_value();
    EXPECT_TRUE(absl::StartsWith(Str(a, "fqdn"), "sim-000")) << Str(a, "fqdn");
    EXPECT_EQ(Str(a, "platform"), "memory");
    EXPECT_EQ(Child(a, "labels").fields().at("sim").string_value(), "true");
  }

  // The same agents stay connected and take commands.
  const std::string report = dir_ + "/commands.json";
  std::vector<std::string> args = SimArgs(50, "commands", report);
  args.insert(args.end(), {"--duration", "20s"});
  Process sim(args, dir_ + "/sim-commands.log");
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 50; }, absl::Seconds(30))) << sim.Log();

  // A host's inventory reached the controller: its bound certificate is compliant.
  RunResult certs =
      Ctl({"certs", "list", "--agent", "sim-00002.sim.certfleet.test", "--output", "json"});
  ASSERT_EQ(certs.exit_code, 0) << certs.err;
  bool bound_compliant = false;
  ListValue rows = ParseArray(certs.out);
  for (const auto& v : rows.values()) {
    const Struct& c = v.struct_value();
    if (Str(c, "store") == "My" && c.fields().at("bound").bool_value()) {
      bound_compliant = c.fields().at("compliant").bool_value();
    }
  }
  EXPECT_TRUE(bound_compliant) << certs.out;

  for (const char* host : {"sim-00001", "sim-00002", "sim-00003"}) {
    RunResult scan = Ctl({"cmd", "scan", "--agent", absl::StrCat(host, ".sim.certfleet.test"),
                          "--wait", "--output", "json"});
    EXPECT_EQ(scan.exit_code, 0) << scan.out << scan.err;
    EXPECT_EQ(Str(JsonObject(scan.out), "state"), "succeeded") << scan.out;
  }
  RunResult renew =
      Ctl({"renew", "--agent", "sim-00004.sim.certfleet.test", "--wait", "--output", "json"});
  ASSERT_EQ(renew.exit_code, 0) << renew.out << renew.err << sim.Log();
  Struct renewal = JsonObject(renew.out);
  EXPECT_EQ(Str(renewal, "state"), "done") << renew.out;
  // The verified rebind's evidence: the simulated HealthService loaded the new certificate.
  bool loaded = false;
  for (const auto& e : Child(renewal, "evidence").fields().at("events").list_value().values()) {
    loaded = loaded || Number(e.struct_value(), "id") == 20053;
  }
  EXPECT_TRUE(loaded) << renew.out;

  // The run ends by itself, --duration after the last agent connected.
  EXPECT_EQ(sim.Wait(absl::Seconds(60)), 0) << sim.Log();
  Struct commands = JsonObject(ReadText(report));
  EXPECT_EQ(Number(Child(commands, "enrolled"), "cached"), 50);
  EXPECT_EQ(Number(commands, "renewals_completed"), 1);
  const Struct& kinds = Child(commands, "commands");
  EXPECT_EQ(Number(Child(kinds, "scan"), "succeeded"), 3);
  for (const char* kind : {"renew", "install", "rebind"}) {
    EXPECT_EQ(Number(Child(kinds, kind), "succeeded"), 1) << kind;
    EXPECT_EQ(Number(Child(kinds, kind), "failed"), 0) << kind;
    EXPECT_GT(Number(Child(Child(kinds, kind), "latency_ms"), "p50"), 0) << kind;
  }
}

TEST_F(SimTest, ASecondRunConnectsWithTheIdentitiesTheFirstCached) {
  Struct first = RunSim(20, "connect", "first");
  EXPECT_EQ(Number(Child(first, "enrolled"), "new"), 20);
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/sim/identities.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  Struct second = RunSim(20, "connect", "second");
  EXPECT_EQ(Number(Child(second, "enrolled"), "new"), 0);
  EXPECT_EQ(Number(Child(second, "enrolled"), "cached"), 20);
  EXPECT_EQ(Number(second, "connected"), 20);
  EXPECT_EQ(Agents().values_size(), 20);
}

}  // namespace
}  // namespace certfleet::testing
