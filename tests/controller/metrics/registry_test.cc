#include "controller/metrics/registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/metrics/exposition_parser.h"

namespace certfleet::controller::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Renders `registry` and checks that every line parses.
std::string RenderChecked(const Registry& registry) {
  const std::string text = registry.Render();
  absl::StatusOr<std::vector<ParsedFamily>> parsed = ParseExposition(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  return text;
}

TEST(RegistryTest, RendersCountersAndGaugesWithHelpTypeAndLabels) {
  Registry registry;
  Counter& renewals =
      registry.Counter("certfleet_renewals_total", "Renewal jobs finished.", {"issuer", "result"});
  renewals.Inc({"manual", "failed"}, 3);
  renewals.Inc({"builtin", "done"});
  renewals.Inc({"builtin", "done"});
  registry.Gauge("certfleet_agents_total", "Agents enrolled.").Set({}, 12);

  EXPECT_EQ(RenderChecked(registry),
            "# HELP certfleet_agents_total Agents enrolled.\n"
            "# TYPE certfleet_agents_total gauge\n"
            "certfleet_agents_total 12\n"
            "# HELP certfleet_renewals_total Renewal jobs finished.\n"
            "# TYPE certfleet_renewals_total counter\n"
            "certfleet_renewals_total{issuer=\"builtin\",result=\"done\"} 2\n"
            "certfleet_renewals_total{issuer=\"manual\",result=\"failed\"} 3\n");
  EXPECT_EQ(renewals.Value({"builtin", "done"}), 2);
  EXPECT_EQ(renewals.Value({"builtin", "failed"}), 0);
}

TEST(RegistryTest, EscapesLabelValuesAndHelpText) {
  Registry registry;
  registry.Gauge("x", "First line\nC:\\certs \"quoted\"", {"path"})
      .Set({"C:\\ProgramData\\\"SCOM\"\nnext"}, 1);

  EXPECT_EQ(RenderChecked(registry),
            "# HELP x First line\\nC:\\\\certs \"quoted\"\n"
            "# TYPE x gauge\n"
            "x{path=\"C:\\\\ProgramData\\\\\\\"SCOM\\\"\\nnext\"} 1\n");

  absl::StatusOr<std::vector<ParsedFamily>> parsed = ParseExposition(registry.Render());
  ASSERT_TRUE(parsed.ok());
  ASSERT_THAT(*parsed, SizeIs(1));
  EXPECT_EQ((*parsed)[0].help, "First line\nC:\\certs \"quoted\"");
  ASSERT_THAT((*parsed)[0].samples, SizeIs(1));
  EXPECT_EQ((*parsed)[0].samples[0].labels.at("path"), "C:\\ProgramData\\\"SCOM\"\nnext");
}

TEST(RegistryTest, RendersCumulativeHistogramBucketsEndingWithInfThenSumAndCount) {
  Registry registry;
  Histogram& latency =
      registry.Histogram("certfleet_issuer_latency_seconds", "Time an issuer took to answer.",
                         {"issuer"}, {0.25, 0.5, 1});
  for (double v : {0.125, 0.25, 0.5, 0.75, 2.0}) latency.Observe({"builtin"}, v);
  latency.Observe({"acme"}, 0.5);

  EXPECT_EQ(RenderChecked(registry),
            "# HELP certfleet_issuer_latency_seconds Time an issuer took to answer.\n"
            "# TYPE certfleet_issuer_latency_seconds histogram\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"acme\",le=\"0.25\"} 0\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"acme\",le=\"0.5\"} 1\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"acme\",le=\"1\"} 1\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"acme\",le=\"+Inf\"} 1\n"
            "certfleet_issuer_latency_seconds_sum{issuer=\"acme\"} 0.5\n"
            "certfleet_issuer_latency_seconds_count{issuer=\"acme\"} 1\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"builtin\",le=\"0.25\"} 2\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"builtin\",le=\"0.5\"} 3\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"builtin\",le=\"1\"} 4\n"
            "certfleet_issuer_latency_seconds_bucket{issuer=\"builtin\",le=\"+Inf\"} 5\n"
            "certfleet_issuer_latency_seconds_sum{issuer=\"builtin\"} 3.625\n"
            "certfleet_issuer_latency_seconds_count{issuer=\"builtin\"} 5\n");
  EXPECT_EQ(latency.Count({"builtin"}), 5u);
  EXPECT_EQ(latency.Sum({"builtin"}), 3.625);
}

TEST(RegistryTest, AHistogramWithoutLabelsStartsAtZeroAndCountsNanOnlyInInf) {
  Registry registry;
  Histogram& h = registry.Histogram("h_seconds", "h", {}, {1});
  EXPECT_EQ(RenderChecked(registry),
            "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"1\"} 0\nh_seconds_bucket{le=\"+Inf\"} 0\n"
            "h_seconds_sum 0\nh_seconds_count 0\n");
  h.Observe({}, std::nan(""));
  EXPECT_EQ(RenderChecked(registry),
            "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"1\"} 0\nh_seconds_bucket{le=\"+Inf\"} 1\n"
            "h_seconds_sum NaN\nh_seconds_count 1\n");
}

TEST(RegistryTest, UnlabelledFamiliesStartAtZeroAndLabelledOnesStartEmpty) {
  Registry registry;
  registry.Counter("a_total", "");
  registry.Gauge("b", "B.", {"state"});
  EXPECT_EQ(RenderChecked(registry),
            "# HELP a_total\n# TYPE a_total counter\na_total 0\n"
            "# HELP b B.\n# TYPE b gauge\n");
}

TEST(RegistryTest, SortsFamiliesByNameAndSamplesByLabelValues) {
  Registry registry;
  registry.Gauge("zeta", "z").Set({}, 1);
  Gauge& hosts = registry.Gauge("certfleet_campaign_hosts", "h", {"campaign", "state"});
  hosts.Set({"c2", "done"}, 1);
  hosts.Set({"c1", "running"}, 2);
  hosts.Set({"c1", "done"}, 3);
  registry.Counter("alpha_total", "a").Inc();

  absl::StatusOr<std::vector<ParsedFamily>> parsed = ParseExposition(RenderChecked(registry));
  ASSERT_TRUE(parsed.ok());
  std::vector<std::string> names;
  for (const ParsedFamily& family : *parsed) names.push_back(family.name);
  EXPECT_THAT(names, ElementsAre("alpha_total", "certfleet_campaign_hosts", "zeta"));
  std::vector<std::string> order;
  for (const ParsedSample& sample : (*parsed)[1].samples) {
    order.push_back(absl::StrCat(sample.labels.at("campaign"), "/", sample.labels.at("state")));
  }
  EXPECT_THAT(order, ElementsAre("c1/done", "c1/running", "c2/done"));
}

TEST(RegistryTest, FormatsValuesSoTheyReadBackExactly) {
  Registry registry;
  Gauge& g = registry.Gauge("g", "g", {"k"});
  g.Set({"a_timestamp"}, 1790000000);
  g.Set({"b_tenth"}, 0.1);
  g.Set({"c_negative"}, -2.5);
  g.Set({"d_tiny"}, 1e-9);
  g.Set({"e_huge"}, 1e20);
  g.Set({"f_inf"}, std::numeric_limits<double>::infinity());
  g.Set({"g_minus_inf"}, -std::numeric_limits<double>::infinity());
  g.Set({"h_nan"}, std::nan(""));
  g.Set({"i_third"}, 1.0 / 3);
  EXPECT_EQ(RenderChecked(registry),
            "# HELP g g\n# TYPE g gauge\n"
            "g{k=\"a_timestamp\"} 1790000000\n"
            "g{k=\"b_tenth\"} 0.1\n"
            "g{k=\"c_negative\"} -2.5\n"
            "g{k=\"d_tiny\"} 1e-09\n"
            "g{k=\"e_huge\"} 1e+20\n"
            "g{k=\"f_inf\"} +Inf\n"
            "g{k=\"g_minus_inf\"} -Inf\n"
            "g{k=\"h_nan\"} NaN\n"
            "g{k=\"i_third\"} 0.3333333333333333\n");
}

TEST(RegistryTest, GaugesAddRemoveAndClear) {
  Registry registry;
  Gauge& g = registry.Gauge("certfleet_campaign_hosts", "h", {"campaign", "state"});
  g.Add({"c1", "running"}, 3);
  g.Add({"c1", "running"}, -1);
  g.Set({"c1", "done"}, 5);
  EXPECT_EQ(g.Value({"c1", "running"}), 2);
  g.Remove({"c1", "done"});
  EXPECT_THAT(RenderChecked(registry), Not(HasSubstr("done")));
  g.Clear();
  EXPECT_EQ(RenderChecked(registry),
            "# HELP certfleet_campaign_hosts h\n# TYPE certfleet_campaign_hosts gauge\n");

  Gauge& connected = registry.Gauge("certfleet_agents_connected", "c");
  connected.Set({}, 4);
  connected.Remove({});
  EXPECT_THAT(RenderChecked(registry), HasSubstr("\ncertfleet_agents_connected 0\n"));
}

TEST(RegistryTest, CollectorsSetTheirFamiliesAtEveryScrape) {
  Registry registry;
  registry.CollectedGauge("certfleet_agents_connected", "Agents with an open stream.", {});
  registry.CollectedCounter("certfleet_webhook_deliveries_total", "Webhook outcomes.",
                            {"webhook", "result"});
  registry.CollectedGauge("certfleet_certificate_ready_status", "Ready.",
                          {"agent_id", "fqdn", "thumbprint", "condition"});
  int scrapes = 0;
  registry.AddCollector([&scrapes](Snapshot& snapshot) {
    ++scrapes;
    snapshot.Set("certfleet_agents_connected", {}, scrapes);
    snapshot.Set("certfleet_webhook_deliveries_total", {"ops", "delivered"}, 10 * scrapes);
  });
  registry.AddCollector([&scrapes](Snapshot& snapshot) {
    if (scrapes == 1) {  // a certificate that is gone by the second scrape
      snapshot.Set("certfleet_certificate_ready_status", {"a1", "h1", "AB", "True"}, 1);
      snapshot.Set("certfleet_certificate_ready_status", {"a1", "h1", "AB", "False"}, 0);
    }
  });

  EXPECT_EQ(RenderChecked(registry),
            "# HELP certfleet_agents_connected Agents with an open stream.\n"
            "# TYPE certfleet_agents_connected gauge\n"
            "certfleet_agents_connected 1\n"
            "# HELP certfleet_certificate_ready_status Ready.\n"
            "# TYPE certfleet_certificate_ready_status gauge\n"
            "certfleet_certificate_ready_status{agent_id=\"a1\",fqdn=\"h1\",thumbprint=\"AB\","
            "condition=\"False\"} 0\n"
            "certfleet_certificate_ready_status{agent_id=\"a1\",fqdn=\"h1\",thumbprint=\"AB\","
            "condition=\"True\"} 1\n"
            "# HELP certfleet_webhook_deliveries_total Webhook outcomes.\n"
            "# TYPE certfleet_webhook_deliveries_total counter\n"
            "certfleet_webhook_deliveries_total{webhook=\"ops\",result=\"delivered\"} 10\n");
  EXPECT_EQ(RenderChecked(registry),
            "# HELP certfleet_agents_connected Agents with an open stream.\n"
            "# TYPE certfleet_agents_connected gauge\n"
            "certfleet_agents_connected 2\n"
            "# HELP certfleet_certificate_ready_status Ready.\n"
            "# TYPE certfleet_certificate_ready_status gauge\n"
            "# HELP certfleet_webhook_deliveries_total Webhook outcomes.\n"
            "# TYPE certfleet_webhook_deliveries_total counter\n"
            "certfleet_webhook_deliveries_total{webhook=\"ops\",result=\"delivered\"} 20\n");
  EXPECT_EQ(scrapes, 2);
}

TEST(RegistryTest, RegisteringAFamilyAgainReturnsTheSameOne) {
  Registry registry;
  Counter& first = registry.Counter("c_total", "first help", {"k"});
  Counter& second = registry.Counter("c_total", "other help", {"k"});
  EXPECT_EQ(&first, &second);
  second.Inc({"v"});
  EXPECT_EQ(first.Value({"v"}), 1);
  EXPECT_THAT(registry.Render(), HasSubstr("# HELP c_total first help\n"));
  registry.CollectedGauge("g", "g", {"k"});
  registry.CollectedGauge("g", "g", {"k"});
  EXPECT_EQ(&registry.Histogram("h", "h", {}, {1, 2}), &registry.Histogram("h", "h", {}, {1, 2}));
}

TEST(RegistryTest, CountsEveryIncrementFromConcurrentThreadsWhileRendering) {
  Registry registry;
  Counter& counter = registry.Counter("certfleet_renewals_total", "r", {"issuer", "result"});
  Histogram& histogram = registry.Histogram("latency_seconds", "l", {"issuer"});
  Gauge& gauge = registry.Gauge("in_flight", "f");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.Inc({"builtin", t % 2 == 0 ? "done" : "failed"});
        histogram.Observe({"builtin"}, 0.01 * (i % 7));
        gauge.Add({}, 1);
        gauge.Add({}, -1);
      }
    });
  }
  threads.emplace_back([&registry] {
    for (int i = 0; i < 50; ++i) RenderChecked(registry);
  });
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(counter.Value({"builtin", "done"}), kThreads / 2 * kPerThread);
  EXPECT_EQ(counter.Value({"builtin", "failed"}), kThreads / 2 * kPerThread);
  EXPECT_EQ(histogram.Count({"builtin"}), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(gauge.Value(), 0);
  EXPECT_THAT(RenderChecked(registry),
              HasSubstr("latency_seconds_bucket{issuer=\"builtin\",le=\"+Inf\"} 40000\n"));
}

TEST(RegistryTest, TheControllersMetricsRenderAsValidExposition) {
  Registry registry;
  registry
      .Gauge("certfleet_certificate_expiration_timestamp_seconds", "notAfter of a certificate.",
             {"agent_id", "fqdn", "store", "thumbprint", "subject"})
      .Set({"a1", "ms1.corp.example", "My", "AB12", "CN=ms1.corp.example, O=\"Corp\""}, 1790000000);
  registry
      .Gauge("certfleet_certificate_ready_status", "Compliant and bound.",
             {"agent_id", "fqdn", "thumbprint", "condition"})
      .Set({"a1", "ms1.corp.example", "AB12", "True"}, 1);
  registry.Counter("certfleet_renewals_total", "Renewals.", {"issuer", "result"})
      .Inc({"builtin", "done"});
  registry.Gauge("certfleet_campaign_hosts", "Hosts.", {"campaign", "state"})
      .Set({"q3", "running"}, 4);
  registry.Gauge("certfleet_agents_connected", "Connected.").Set({}, 3);
  registry.Gauge("certfleet_agents_total", "Enrolled.").Set({}, 5);
  registry.Histogram("certfleet_issuer_latency_seconds", "Latency.", {"issuer"})
      .Observe({"builtin"}, 0.02);
  registry.CollectedCounter("certfleet_webhook_deliveries_total", "Deliveries.",
                            {"webhook", "result"});
  registry.AddCollector([](Snapshot& snapshot) {
    snapshot.Set("certfleet_webhook_deliveries_total", {"ops", "dropped"}, 2);
  });

  absl::StatusOr<std::vector<ParsedFamily>> parsed = ParseExposition(RenderChecked(registry));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::vector<std::string> families;
  for (const ParsedFamily& family : *parsed) {
    families.push_back(absl::StrCat(family.name, " ", family.type));
    EXPECT_THAT(family.samples, Not(IsEmpty())) << family.name;
  }
  EXPECT_THAT(
      families,
      ElementsAre("certfleet_agents_connected gauge", "certfleet_agents_total gauge",
                  "certfleet_campaign_hosts gauge",
                  "certfleet_certificate_expiration_timestamp_seconds gauge",
                  "certfleet_certificate_ready_status gauge",
                  "certfleet_issuer_latency_seconds histogram", "certfleet_renewals_total counter",
                  "certfleet_webhook_deliveries_total counter"));
  EXPECT_EQ((*parsed)[3].samples[0].labels.at("subject"), "CN=ms1.corp.example, O=\"Corp\"");
  EXPECT_EQ((*parsed)[3].samples[0].value, 1790000000);
}

TEST(RegistryTest, ExponentialBucketsGrowByTheFactor) {
  EXPECT_THAT(ExponentialBuckets(0.5, 2, 4), ElementsAre(0.5, 1, 2, 4));
  EXPECT_THAT(DefaultBuckets(), SizeIs(11));
}

using RegistryDeathTest = ::testing::Test;

TEST_F(RegistryDeathTest, MisuseIsABugThatStopsWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  Counter& counter = registry.Counter("c_total", "c", {"a", "b"});
  EXPECT_DEATH(counter.Inc({"only-one"}), "c_total: 1 label values given for 2 labels");
  EXPECT_DEATH(counter.Inc({"x", "y"}, -1), "not a finite amount >= 0");
  EXPECT_DEATH(registry.Gauge("c_total", "c", {"a", "b"}), "registered again");
  EXPECT_DEATH(registry.Counter("c_total", "c", {"a"}), "registered again");
  EXPECT_DEATH(registry.Counter("1bad", "c"), "not a valid metric name");
  EXPECT_DEATH(registry.Counter("ok_total", "c", {"__reserved"}), "not a valid label name");
  EXPECT_DEATH(registry.Counter("ok_total", "c", {"a", "a"}), "given twice");
  EXPECT_DEATH(registry.Histogram("h", "h", {"le"}), "cannot have a label named le");
  EXPECT_DEATH(registry.Histogram("h", "h", {}, {1, 1}), "strictly increasing");
  registry.AddCollector([](Snapshot& snapshot) { snapshot.Set("c_total", {"x", "y"}, 1); });
  EXPECT_DEATH(registry.Render(), "a collector set c_total, which is not a collected family");
}

}  // namespace
}  // namespace certfleet::controller::metrics
