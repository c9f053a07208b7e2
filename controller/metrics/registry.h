#pragma once

// A small metric registry rendered in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). MetricsServer
// (metrics_server.h) serves Render() at GET /metrics.
//
// Three kinds of family are updated as things happen:
//
//   metrics::Registry registry;
//   metrics::Counter& renewals = registry.Counter(
//       "certfleet_renewals_total", "Renewal jobs finished.", {"issuer", "result"});
//   renewals.Inc({"builtin", "done"});
//   metrics::Histogram& latency = registry.Histogram(
//       "certfleet_issuer_latency_seconds", "Time an issuer took to answer.", {"issuer"},
//       metrics::DefaultBuckets());
//   latency.Observe({"builtin"}, 0.042);
//
// and a fourth kind is computed at scrape time by collectors, for values that already live
// elsewhere (the store, the fleet, a notifier's counters):
//
//   registry.CollectedGauge("certfleet_agents_connected", "Agents with an open stream.", {});
//   registry.AddCollector([&fleet](metrics::Snapshot& snapshot) {
//     snapshot.Set("certfleet_agents_connected", {}, fleet.ConnectedCount());
//   });
//
// Metrics the controller exports (registered by controller.cc):
//
//   certfleet_certificate_expiration_timestamp_seconds{agent_id,fqdn,store,thumbprint,subject}
//       gauge: a certificate's notAfter, in Unix seconds.
//   certfleet_certificate_ready_status{agent_id,fqdn,thumbprint,condition="True|False"}
//       gauge: 1 on the sample whose condition says whether the host's certificate is compliant
//       and bound, 0 on the other.
//   certfleet_renewals_total{issuer,result}           counter: renewal jobs finished.
//   certfleet_campaign_hosts{campaign,state}          gauge: hosts of a campaign per state.
//   certfleet_agents_connected                        gauge: agents with an open stream.
//   certfleet_agents_total                            gauge: agents enrolled.
//   certfleet_issuer_latency_seconds{issuer}          histogram: time an issuer took to answer.
//   certfleet_webhook_deliveries_total{webhook,result} counter: webhook outcomes (a collected
//       counter over notify::WebhookNotifier::Stats()).
//
// Output: one block per family, families sorted by name, each block "# HELP", "# TYPE", then
// its samples sorted by label values. A family without labels always has its one sample
// (starting at 0); a labelled family has a sample for each label-value set that was touched.
// Histograms render cumulative `_bucket{le="..."}` samples ending with le="+Inf", then `_sum`
// and `_count`. HELP text escapes backslash and newline; label values escape backslash, double
// quote and newline. Integral values print without a fraction ("1790000000"), others in the
// shortest form that reads back exactly; infinities and NaN as "+Inf", "-Inf", "NaN".
//
// Misuse is a bug in the caller and crashes with a message on stderr (STYLE rule 3): an invalid
// metric or label name, re-registering a name with another kind, label set or buckets, the wrong
// number of label values, a negative counter increment, a collector setting a family that is not
// a collected family.
//
// Thread-safety: every class here is thread-safe. Families are owned by their registry and live
// as long as it does.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace certfleet::controller::metrics {

// The values of a sample's labels, in the order of its family's label names.
using LabelValues = std::vector<std::string>;

// Prometheus' default latency buckets, in seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> DefaultBuckets();

// `count` buckets starting at `start` (> 0), each `factor` (> 1) times the previous.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

class Registry;

// A counter family: values that only go up, one per label-value set. Thread-safe.
class Counter {
 public:
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount` (finite, >= 0) to the sample for `label_values`, which starts at 0.
  void Inc(const LabelValues& label_values = {}, double amount = 1);
  // The sample's value; 0 for one never incremented.
  double Value(const LabelValues& label_values = {}) const;

 private:
  friend class Registry;
  Counter(std::string name, std::vector<std::string> label_names);
  void AppendSamples(std::string* out) const;

  const std::string name_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

// A gauge family: values that go up and down, one per label-value set. Thread-safe.
class Gauge {
 public:
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  // Sets the sample for `label_values` to `value`.
  void Set(const LabelValues& label_values, double value);
  // Adds `delta` (may be negative) to the sample, which starts at 0.
  void Add(const LabelValues& label_values, double delta);
  // Removes the sample so it is no longer rendered (e.g. a certificate that left the fleet).
  // In a family without labels the one sample is reset to 0 instead.
  void Remove(const LabelValues& label_values);
  // Removes every sample (the same rule for a family without labels).
  void Clear();
  // The sample's value; 0 for one never set.
  double Value(const LabelValues& label_values = {}) const;

 private:
  friend class Registry;
  Gauge(std::string name, std::vector<std::string> label_names);
  void AppendSamples(std::string* out) const;

  const std::string name_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

// A histogram family with fixed buckets, one histogram per label-value set. Thread-safe.
class Histogram {
 public:
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value` in the histogram for `label_values`: in every bucket whose upper bound is
  // >= value, in `_sum` and in `_count`. NaN counts only in +Inf and `_count` (and makes `_sum`
  // NaN), as Prometheus' own clients do.
  void Observe(const LabelValues& label_values, double value);
  // How many values were observed for `label_values`.
  uint64_t Count(const LabelValues& label_values = {}) const;
  // The sum of the values observed for `label_values`.
  double Sum(const LabelValues& label_values = {}) const;

 private:
  friend class Registry;
  struct Data {
    std::vector<uint64_t> counts;  // per bucket, not cumulative; the last one is +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Histogram(std::string name, std::vector<std::string> label_names, std::vector<double> buckets);
  void AppendSamples(std::string* out) const;

  const std::string name_;
  const std::vector<std::string> label_names_;
  const std::vector<double> buckets_;  // strictly increasing upper bounds, without +Inf
  mutable absl::Mutex mu_;
  std::map<LabelValues, Data> values_ ABSL_GUARDED_BY(mu_);
};

// What a collector fills at scrape time. Used only inside the collector call that received it.
class Snapshot {
 public:
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // Sets the sample for `label_values` of the collected family `family` (declared with
  // Registry::CollectedGauge or Registry::CollectedCounter) to `value`. Setting the same sample
  // twice keeps the last value. Samples of a collected family that no collector sets in a scrape
  // are not rendered in that scrape.
  void Set(absl::string_view family, const LabelValues& label_values, double value);

 private:
  friend class Registry;
  // Family name -> its number of labels.
  explicit Snapshot(std::map<std::string, size_t, std::less<>> label_counts);

  const std::map<std::string, size_t, std::less<>> label_counts_;
  std::map<std::string, std::map<LabelValues, double>, std::less<>> samples_;
};

// Owns metric families and renders them. Thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The counter family `name` with `label_names`, created on the first call. A later call with
  // the same name, kind and label names returns the same family (its help is kept).
  metrics::Counter& Counter(absl::string_view name, absl::string_view help,
                            std::vector<std::string> label_names = {});
  // The gauge family `name`; same rules.
  metrics::Gauge& Gauge(absl::string_view name, absl::string_view help,
                        std::vector<std::string> label_names = {});
  // The histogram family `name` with `buckets` (finite, strictly increasing upper bounds; the
  // +Inf bucket is implicit); same rules, the buckets must match too. "le" is not a valid label
  // name here.
  metrics::Histogram& Histogram(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names,
                                std::vector<double> buckets = DefaultBuckets());

  // Declares a gauge family whose samples collectors set at each scrape (Snapshot::Set).
  // Declaring the same family again with the same label names does nothing.
  void CollectedGauge(absl::string_view name, absl::string_view help,
                      std::vector<std::string> label_names);
  // Declares a counter family whose samples collectors set at each scrape, for monotonically
  // increasing values that another component already counts (e.g. WebhookNotifier::Stats()).
  void CollectedCounter(absl::string_view name, absl::string_view help,
                        std::vector<std::string> label_names);

  // Adds `collect`, called once per Render, after the collectors added before it, on the
  // rendering thread. Collectors never run concurrently with each other (renders take turns
  // for the collection step), so a collector needs no locking of its own for that; it may read
  // or update this registry's families but must not call Render or AddCollector.
  void AddCollector(std::function<void(Snapshot&)> collect);

  // The exposition text of every family (see the file comment). Runs the collectors.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram, kCollectedGauge, kCollectedCounter };
  struct Family {
    Kind kind;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> buckets;
    std::unique_ptr<metrics::Counter> counter;
    std::unique_ptr<metrics::Gauge> gauge;
    std::unique_ptr<metrics::Histogram> histogram;
  };

  // The family `name`, created as `kind` unless it exists; crashes when an existing one differs.
  Family& Register(absl::string_view name, absl::string_view help, Kind kind,
                   std::vector<std::string> label_names, std::vector<double> buckets)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Order: collect_mu_ before mu_ before any family's own mutex.
  mutable absl::Mutex collect_mu_;
  std::vector<std::function<void(Snapshot&)>> collectors_ ABSL_GUARDED_BY(collect_mu_);
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(collect_mu_);
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::metrics
