#include "controller/metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace certfleet::controller::metrics {
namespace {

// A bug in the code using the registry (STYLE rule 3): say what and stop.
[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "certfleet metrics: %.*s\n", static_cast<int>(message.size()),
               message.data());
  std::abort();
}

bool IsMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

bool IsLabelName(absl::string_view name) {
  if (name.empty() || absl::StartsWith(name, "__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

void CheckLabelCount(absl::string_view family, const std::vector<std::string>& names,
                     const LabelValues& values) {
  if (values.size() != names.size()) {
    Die(absl::StrCat(family, ": ", values.size(), " label values given for ", names.size(),
                     " labels (", absl::StrJoin(names, ","), ")"));
  }
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values (counts, Unix timestamps) print in full rather than as "1.79e+09".
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), v);
  if (result.ec != std::errc()) Die("formatting a sample value failed");
  return std::string(buffer, result.ptr);
}

std::string EscapeHelp(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` plus an optional `le` pair at the end; "" when there is nothing to print.
std::string FormatLabels(const std::vector<std::string>& names, const LabelValues& values,
                         absl::string_view le = {}) {
  std::vector<std::string> pairs;
  pairs.reserve(names.size() + 1);
  for (size_t i = 0; i < names.size(); ++i) {
    pairs.push_back(absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!le.empty()) pairs.push_back(absl::StrCat("le=\"", le, "\""));
  if (pairs.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(pairs, ","), "}");
}

void AppendSample(std::string* out, absl::string_view name, absl::string_view labels, double v) {
  absl::StrAppend(out, name, labels, " ", FormatValue(v), "\n");
}

void AppendMap(std::string* out, absl::string_view name, const std::vector<std::string>& names,
               const std::map<LabelValues, double>& values) {
  for (const auto& [label_values, value] : values) {
    AppendSample(out, name, FormatLabels(names, label_values), value);
  }
}

}  // namespace

std::vector<double> DefaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1) {
    Die(absl::StrCat("ExponentialBuckets(", start, ", ", factor, ", ", count,
                     "): needs start > 0, factor > 1, count >= 1"));
  }
  std::vector<double> buckets;
  buckets.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i) {
    buckets.push_back(bound);
    bound *= factor;
  }
  return buckets;
}

Counter::Counter(std::string name, std::vector<std::string> label_names)
    : name_(std::move(name)), label_names_(std::move(label_names)) {
  if (label_names_.empty()) values_[{}] = 0;
}

void Counter::Inc(const LabelValues& label_values, double amount) {
  CheckLabelCount(name_, label_names_, label_values);
  if (!(amount >= 0) || std::isinf(amount)) {
    Die(absl::StrCat(name_, ": counter increment ", amount, " is not a finite amount >= 0"));
  }
  absl::MutexLock lock(&mu_);
  values_[label_values] += amount;
}

double Counter::Value(const LabelValues& label_values) const {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second;
}

void Counter::AppendSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  AppendMap(out, name_, label_names_, values_);
}

Gauge::Gauge(std::string name, std::vector<std::string> label_names)
    : name_(std::move(name)), label_names_(std::move(label_names)) {
  if (label_names_.empty()) values_[{}] = 0;
}

void Gauge::Set(const LabelValues& label_values, double value) {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  values_[label_values] = value;
}

void Gauge::Add(const LabelValues& label_values, double delta) {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  values_[label_values] += delta;
}

void Gauge::Remove(const LabelValues& label_values) {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  if (label_names_.empty()) {
    values_[{}] = 0;
  } else {
    values_.erase(label_values);
  }
}

void Gauge::Clear() {
  absl::MutexLock lock(&mu_);
  values_.clear();
  if (label_names_.empty()) values_[{}] = 0;
}

double Gauge::Value(const LabelValues& label_values) const {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second;
}

void Gauge::AppendSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  AppendMap(out, name_, label_names_, values_);
}

Histogram::Histogram(std::string name, std::vector<std::string> label_names,
                     std::vector<double> buckets)
    : name_(std::move(name)), label_names_(std::move(label_names)), buckets_(std::move(buckets)) {
  if (label_names_.empty()) values_[{}].counts.assign(buckets_.size() + 1, 0);
}

void Histogram::Observe(const LabelValues& label_values, double value) {
  CheckLabelCount(name_, label_names_, label_values);
  // The first bucket whose upper bound is >= value; NaN compares false everywhere -> +Inf.
  const size_t index = std::lower_bound(buckets_.begin(), buckets_.end(), value) - buckets_.begin();
  absl::MutexLock lock(&mu_);
  Data& data = values_[label_values];
  if (data.counts.empty()) data.counts.assign(buckets_.size() + 1, 0);
  ++data.counts[std::isnan(value) ? buckets_.size() : index];
  data.sum += value;
  ++data.count;
}

uint64_t Histogram::Count(const LabelValues& label_values) const {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second.count;
}

double Histogram::Sum(const LabelValues& label_values) const {
  CheckLabelCount(name_, label_names_, label_values);
  absl::MutexLock lock(&mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second.sum;
}

void Histogram::AppendSamples(std::string* out) const {
  const std::string bucket_name = absl::StrCat(name_, "_bucket");
  const std::string sum_name = absl::StrCat(name_, "_sum");
  const std::string count_name = absl::StrCat(name_, "_count");
  absl::MutexLock lock(&mu_);
  for (const auto& [label_values, data] : values_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= buckets_.size(); ++i) {
      cumulative += data.counts[i];
      const std::string le = i < buckets_.size() ? FormatValue(buckets_[i]) : "+Inf";
      AppendSample(out, bucket_name, FormatLabels(label_names_, label_values, le),
                   static_cast<double>(cumulative));
    }
    const std::string labels = FormatLabels(label_names_, label_values);
    AppendSample(out, sum_name, labels, data.sum);
    AppendSample(out, count_name, labels, static_cast<double>(data.count));
  }
}

Snapshot::Snapshot(std::map<std::string, size_t, std::less<>> label_counts)
    : label_counts_(std::move(label_counts)) {}

void Snapshot::Set(absl::string_view family, const LabelValues& label_values, double value) {
  auto it = label_counts_.find(family);
  if (it == label_counts_.end()) {
    Die(absl::StrCat("a collector set ", family, ", which is not a collected family"));
  }
  if (label_values.size() != it->second) {
    Die(absl::StrCat(family, ": ", label_values.size(), " label values given for ", it->second,
                     " labels"));
  }
  samples_[it->first][label_values] = value;
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::Register(absl::string_view name, absl::string_view help, Kind kind,
                                     std::vector<std::string> label_names,
                                     std::vector<double> buckets) {
  if (!IsMetricName(name)) Die(absl::StrCat("\"", name, "\" is not a valid metric name"));
  std::set<absl::string_view> seen;
  for (const std::string& label : label_names) {
    if (!IsLabelName(label)) {
      Die(absl::StrCat(name, ": \"", label, "\" is not a valid label name"));
    }
    if (kind == Kind::kHistogram && label == "le") {
      Die(absl::StrCat(name, ": a histogram cannot have a label named le"));
    }
    if (!seen.insert(label).second) Die(absl::StrCat(name, ": label ", label, " given twice"));
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
      Die(absl::StrCat(name, ": buckets must be finite and strictly increasing"));
    }
  }
  auto it = families_.find(name);
  if (it != families_.end()) {
    const Family& existing = it->second;
    if (existing.kind != kind || existing.label_names != label_names ||
        existing.buckets != buckets) {
      Die(absl::StrCat(name, " registered again with another kind, label set or buckets"));
    }
    return it->second;
  }
  Family family;
  family.kind = kind;
  family.help = std::string(help);
  family.label_names = label_names;
  family.buckets = buckets;
  switch (kind) {
    case Kind::kCounter:
      family.counter.reset(new metrics::Counter(std::string(name), std::move(label_names)));
      break;
    case Kind::kGauge:
      family.gauge.reset(new metrics::Gauge(std::string(name), std::move(label_names)));
      break;
    case Kind::kHistogram:
      family.histogram.reset(
          new metrics::Histogram(std::string(name), std::move(label_names), std::move(buckets)));
      break;
    case Kind::kCollectedGauge:
    case Kind::kCollectedCounter:
      break;
  }
  return families_.emplace(std::string(name), std::move(family)).first->second;
}

metrics::Counter& Registry::Counter(absl::string_view name, absl::string_view help,
                                    std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Kind::kCounter, std::move(label_names), {}).counter;
}

metrics::Gauge& Registry::Gauge(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Kind::kGauge, std::move(label_names), {}).gauge;
}

metrics::Histogram& Registry::Histogram(absl::string_view name, absl::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> buckets) {
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Kind::kHistogram, std::move(label_names), std::move(buckets))
              .histogram;
}

void Registry::CollectedGauge(absl::string_view name, absl::string_view help,
                              std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, help, Kind::kCollectedGauge, std::move(label_names), {});
}

void Registry::CollectedCounter(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, help, Kind::kCollectedCounter, std::move(label_names), {});
}

void Registry::AddCollector(std::function<void(Snapshot&)> collect) {
  absl::MutexLock lock(&collect_mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() const {
  std::map<std::string, size_t, std::less<>> label_counts;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, family] : families_) {
      if (family.kind == Kind::kCollectedGauge || family.kind == Kind::kCollectedCounter) {
        label_counts.emplace(name, family.label_names.size());
      }
    }
  }
  Snapshot snapshot(std::move(label_counts));
  {
    absl::MutexLock lock(&collect_mu_);
    for (const auto& collect : collectors_) collect(snapshot);
  }

  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, family] : families_) {
    const char* type = "gauge";
    switch (family.kind) {
      case Kind::kCounter:
      case Kind::kCollectedCounter:
        type = "counter";
        break;
      case Kind::kHistogram:
        type = "histogram";
        break;
      case Kind::kGauge:
      case Kind::kCollectedGauge:
        break;
    }
    absl::StrAppend(&out, "# HELP ", name, family.help.empty() ? "" : " ", EscapeHelp(family.help),
                    "\n");
    absl::StrAppend(&out, "# TYPE ", name, " ", type, "\n");
    switch (family.kind) {
      case Kind::kCounter:
        family.counter->AppendSamples(&out);
        break;
      case Kind::kGauge:
        family.gauge->AppendSamples(&out);
        break;
      case Kind::kHistogram:
        family.histogram->AppendSamples(&out);
        break;
      case Kind::kCollectedGauge:
      case Kind::kCollectedCounter: {
        auto it = snapshot.samples_.find(name);
        if (it != snapshot.samples_.end()) AppendMap(&out, name, family.label_names, it->second);
        break;
      }
    }
  }
  return out;
}

}  // namespace certfleet::controller::metrics
