#include "controller/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "controller/metrics/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/controller/metrics/exposition_parser.h"

namespace certfleet::controller::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Ne;

constexpr char kLoopbackAnyPort[] = "127.0.0.1:0";

std::unique_ptr<MetricsServer> MustStart(absl::string_view listen, Registry& registry) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(listen, registry);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  return std::move(*server);
}

// The value of the sample `name` (without labels) in a scrape, parsed strictly.
double SampleValue(const std::string& body, const std::string& name) {
  absl::StatusOr<std::vector<ParsedFamily>> parsed = ParseExposition(body);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return -1;
  for (const ParsedFamily& family : *parsed) {
    for (const ParsedSample& sample : family.samples) {
      if (sample.name == name && sample.labels.empty()) return sample.value;
    }
  }
  ADD_FAILURE() << name << " not found in\n" << body;
  return -1;
}

TEST(MetricsServerTest, ServesTheRegistryAtMetricsWithThePrometheusContentType) {
  Registry registry;
  Counter& renewals =
      registry.Counter("certfleet_renewals_total", "Renewals.", {"issuer", "result"});
  renewals.Inc({"builtin", "done"});
  Gauge& agents = registry.Gauge("certfleet_agents_total", "Enrolled.");
  agents.Set({}, 7);
  std::unique_ptr<MetricsServer> server = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);

  httplib::Client client("127.0.0.1", server->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response->body, registry.Render());
  EXPECT_EQ(SampleValue(response->body, "certfleet_agents_total"), 7);
  EXPECT_THAT(response->body,
              HasSubstr("certfleet_renewals_total{issuer=\"builtin\",result=\"done\"} 1\n"));

  agents.Set({}, 8);
  response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(SampleValue(response->body, "certfleet_agents_total"), 8);
}

TEST(MetricsServerTest, RunsTheCollectorsAtEachScrape) {
  Registry registry;
  registry.CollectedGauge("certfleet_agents_connected", "Connected.", {});
  int scrapes = 0;
  registry.AddCollector([&scrapes](Snapshot& snapshot) {
    snapshot.Set("certfleet_agents_connected", {}, ++scrapes);
  });
  std::unique_ptr<MetricsServer> server = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(server, nullptr);

  httplib::Client client("127.0.0.1", server->port());
  for (int i = 1; i <= 3; ++i) {
    httplib::Result response = client.Get("/metrics");
    ASSERT_TRUE(response);
    EXPECT_EQ(SampleValue(response->body, "certfleet_agents_connected"), i);
  }
}

TEST(MetricsServerTest, AnswersNotFoundOnEveryOtherPath) {
  Registry registry;
  std::unique_ptr<MetricsServer> server = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  for (const char* path : {"/", "/metrics/x", "/metricsx", "/favicon.ico", "/debug/vars"}) {
    httplib::Result response = client.Get(path);
    ASSERT_TRUE(response) << path;
    EXPECT_EQ(response->status, 404) << path;
  }
  httplib::Result response = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
}

TEST(MetricsServerTest, PortZeroPicksAFreePortForEachServer) {
  Registry registry;
  std::unique_ptr<MetricsServer> first = MustStart(kLoopbackAnyPort, registry);
  std::unique_ptr<MetricsServer> second = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_GT(first->port(), 0);
  EXPECT_GT(second->port(), 0);
  EXPECT_THAT(first->port(), Ne(second->port()));
  for (const MetricsServer* server : {first.get(), second.get()}) {
    httplib::Client client("127.0.0.1", server->port());
    httplib::Result response = client.Get("/metrics");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
}

TEST(MetricsServerTest, AnAddressInUseIsUnavailableAndNamesTheAddress) {
  Registry registry;
  std::unique_ptr<MetricsServer> first = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(first, nullptr);
  const std::string taken = absl::StrCat("127.0.0.1:", first->port());

  absl::StatusOr<std::unique_ptr<MetricsServer>> second = MetricsServer::Start(taken, registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(taken));

  // The first server is unaffected.
  httplib::Client client("127.0.0.1", first->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(MetricsServerTest, AMalformedAddressIsInvalidArgumentAndNamesIt) {
  Registry registry;
  for (const char* listen :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:123456", "::1:9464", "[::1]9464", "[]:0", "[::1", "bad host:0"}) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(listen, registry);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << listen;
    EXPECT_THAT(server.status().message(), HasSubstr(absl::StrCat("\"", listen, "\"")));
  }
}

TEST(MetricsServerTest, ShutdownIsIdempotentPromptAndStopsServing) {
  Registry registry;
  std::unique_ptr<MetricsServer> server = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  {
    // A client that asked for keep-alive after its scrape, and one that connected and said
    // nothing: neither may hold Shutdown up for long.
    httplib::Client client("127.0.0.1", port);
    client.set_keep_alive(true);
    ASSERT_TRUE(client.Get("/metrics"));
    const int silent = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(silent, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    ASSERT_EQ(connect(silent, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    absl::SleepFor(absl::Milliseconds(50));  // let the server pick it up

    const absl::Time start = absl::Now();
    server->Shutdown();
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
    close(silent);
  }
  server->Shutdown();

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/metrics"));
  server.reset();  // the destructor after Shutdown is fine
}

TEST(MetricsServerTest, ServesConcurrentScrapes) {
  Registry registry;
  Counter& scrapes = registry.Counter("scrapes_total", "s");
  registry.AddCollector([&scrapes](Snapshot&) { scrapes.Inc(); });
  std::unique_ptr<MetricsServer> server = MustStart(kLoopbackAnyPort, registry);
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([port = server->port()] {
      httplib::Client client("127.0.0.1", port);
      for (int i = 0; i < 10; ++i) {
        httplib::Result response = client.Get("/metrics");
        ASSERT_TRUE(response);
        EXPECT_EQ(response->status, 200);
        EXPECT_TRUE(ParseExposition(response->body).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(scrapes.Value(), 40);
}

}  // namespace
}  // namespace certfleet::controller::metrics
